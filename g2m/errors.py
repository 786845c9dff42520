"""Errors that describe a problem with the user's input, not a bug in g2m.

``python -m g2m.train`` turns a :class:`G2MError` into one line on stderr and exit status 2
(set ``G2M_DEBUG=1`` to see the traceback). Each class also derives from the built-in error a
caller would expect (``ValueError``, ``FileNotFoundError``, ``OSError``, ``RuntimeError``).
"""

from __future__ import annotations


class G2MError(Exception):
    """Base class: the message says what was wrong and what is accepted."""


class ConfigError(G2MError, ValueError):
    """A config value or override is invalid."""


def check_integer(key: str, value: object, low: int) -> int:
    """``value`` as an int if it is a whole number >= ``low`` (not a bool); else a
    :class:`ConfigError` naming ``key``."""
    whole = not isinstance(value, bool) and isinstance(value, int | float) and int(value) == value
    if not whole or value < low:
        raise ConfigError(f"{key} must be an integer >= {low}, got {value!r}.")
    return int(value)


class DataError(G2MError, ValueError):
    """A dataset is missing, unreadable, inconsistent or cannot be split as asked."""


class ArtifactError(G2MError, ValueError):
    """A teacher/student artifact is unreadable, foreign, or does not fit this run."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """An artifact path does not exist."""


class OutputError(G2MError, OSError):
    """An output path cannot be written: a folder where a file goes, a file where a folder
    goes, a path below a regular file, or a read-only location."""


class DiskFullError(OutputError):
    """A write ran out of disk space (or quota); nothing partial was left."""


class TrainingDivergedError(G2MError, RuntimeError):
    """A training loss became NaN or infinite; the last good checkpoint is kept."""


class RunStopped(Exception):
    """A run was stopped by a signal (SIGTERM, Ctrl-C) before it finished.

    Not a :class:`G2MError`: the input was fine. ``python -m g2m.train`` prints the message
    on one line and exits with ``exit_code`` (128 + the signal's number, as a shell does).
    """

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
