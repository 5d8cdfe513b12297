"""Exceptions shared by the engine's parts."""


class Cancelled(Exception):
    """The user cancelled; raised from inside the denoising loop so no further step runs."""
