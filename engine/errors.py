"""Exceptions shared by the engine's parts."""


class Cancelled(Exception):
    """The user cancelled; raised from inside the denoising loop so no further step runs."""


class ModelError(RuntimeError):
    """A model that can't be found or loaded; the message names it and says how to get it."""


class OutputFolderError(RuntimeError):
    """An output folder the engine must not or cannot write: another program's files are there, another render holds
    it, or its disk is full. The message names the folder (and the file) and says what to do."""


class FolderInUseError(OutputFolderError):
    """Another render holds the output folder; the message names it (process, host, start time, command)."""


class DiskFullError(OutputFolderError):
    """The output folder's disk (or quota) is full; the message says how much more space the render needs."""
