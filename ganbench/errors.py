"""User-facing errors: one line that names what is wrong and what is allowed."""


class GanbenchError(Exception):
    """An error a user can act on. Its message is printed as one line, without a traceback."""


class ConfigError(GanbenchError, ValueError):
    """A bad option, value or combination in the composed config."""


class DataNotFoundError(GanbenchError, FileNotFoundError):
    """A dataset that is not on disk and may not be downloaded."""


class CheckpointError(GanbenchError):
    """A checkpoint that is missing, corrupt, or from another config."""


class RecordError(GanbenchError, OSError):
    """The run's record (result.json) could not be written, e.g. a full disk."""
