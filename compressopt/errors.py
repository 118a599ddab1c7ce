"""Typed errors raised by compressopt.

Every error derives from :class:`CompressoptError` and from the built-in exception a caller
would expect (``ValueError`` for bad values, ``TypeError`` for bad types, ...), so both
``except CompressoptError`` and ``except ValueError`` work.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CompressoptError",
    "ConfigError",
    "CorruptFileError",
    "DataError",
    "FileFormatError",
    "FormatVersionError",
    "InfeasibleBudgetError",
    "ModelMismatchError",
    "NonFiniteError",
    "OutputError",
    "ResourceLimitError",
    "ShapeMismatchError",
    "UnsupportedDTypeError",
]


class CompressoptError(Exception):
    """Base class of every error raised on purpose by compressopt."""


class NonFiniteError(CompressoptError, ValueError):
    """An input array holds NaN or Inf where finite values are required."""


class ShapeMismatchError(CompressoptError, ValueError):
    """Arrays or parameter collections that must agree in shape or names do not."""


class UnsupportedDTypeError(CompressoptError, TypeError):
    """An array has a dtype the operation does not accept (e.g. integers for floats)."""


class InfeasibleBudgetError(CompressoptError, ValueError):
    """A storage budget is below the cheapest feasible choice.

    Attributes
    ----------
    budget : float
        The budget that was asked for (bits, unless the message says otherwise).
    minimum : float
        The smallest budget for which the problem is feasible, in the same unit.
    """

    def __init__(self, message: str, *, budget: float, minimum: float) -> None:
        super().__init__(message)
        self.budget = budget
        self.minimum = minimum


class DataError(CompressoptError, FileNotFoundError):
    """A data set cannot be read: a missing file or directory, or a malformed file."""


class ConfigError(CompressoptError, ValueError):
    """A job's settings are invalid: an option out of range, an unknown or mistyped key of a
    TOML configuration, options that contradict each other, a recipe that does not exist.

    Raised before any training starts; the message names the option and its valid range.
    """


class OutputError(CompressoptError, OSError):
    """An output directory cannot be used: empty path, not writable, or already holding
    another run's report (pass ``overwrite``), or a write failed (disk full, file-size limit).
    """


class ResourceLimitError(CompressoptError, MemoryError):
    """A request would need more memory (or other resources) than the machine has.

    The message gives the estimate, what is available and the option to change.
    """


class FileFormatError(CompressoptError, ValueError):
    """A compressopt file (compressed model, checkpoint) cannot be read.

    Subclasses say why: :class:`CorruptFileError`, :class:`FormatVersionError`,
    :class:`ModelMismatchError`.
    """


class CorruptFileError(FileFormatError):
    """The file is truncated, its header malformed, or its checksum does not match."""


class FormatVersionError(FileFormatError):
    """The file was written in a format version this compressopt cannot read."""


class ModelMismatchError(FileFormatError):
    """The file holds tensors of another model (names or shapes differ from the target)."""


class CheckpointError(FileFormatError):
    """A checkpoint is missing, unreadable, or belongs to another configuration."""
