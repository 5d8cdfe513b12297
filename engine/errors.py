"""Exceptions shared by the engine's parts."""


class Cancelled(Exception):
    """The user cancelled; raised from inside the denoising loop so no further step runs."""


class ModelError(RuntimeError):
    """A model that can't be found or loaded; the message names it and says how to get it."""
