"""compressopt: neural-network compression as constrained optimization.

Subpackages: :mod:`compressopt.solvers` (coordinators), :mod:`compressopt.projections`
(C steps), :mod:`compressopt.verify` (exact oracles), :mod:`compressopt.dnn` (the torch
adapter; the only part that imports torch).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("compressopt")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
