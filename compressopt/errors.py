"""Typed errors raised by compressopt.

Every error derives from :class:`CompressoptError` and from the built-in exception a caller
would expect (``ValueError`` for bad values, ``TypeError`` for bad types, ...), so both
``except CompressoptError`` and ``except ValueError`` work.
"""

from __future__ import annotations

__all__ = [
    "CompressoptError",
    "DataError",
    "InfeasibleBudgetError",
    "NonFiniteError",
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
