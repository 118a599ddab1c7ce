"""Lazy imports of the optional exact solvers, in an order that lets both load.

OR-Tools 9.15 bundles its own HiGHS, and so does highspy (which cvxpy imports to look for its
HiGHS interface); whichever loads second fails to resolve its HiGHS symbols. Loading OR-Tools
first keeps OR-Tools working (cvxpy then merely reports its HiGHS interface unavailable; the
verifiers use Clarabel), so every import of cvxpy here goes through :func:`cvxpy`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["cvxpy", "ortools", "preload_ortools"]


def preload_ortools() -> bool:
    """Load OR-Tools' shared library now, if it is installed (True when it is loaded).

    Call it before anything imports cvxpy or highspy directly (a test suite's first import):
    afterwards both work. Whether OR-Tools can load at all is decided by the first of the two
    libraries to load.
    """
    try:
        importlib.import_module("ortools.sat.python.cp_model")
        importlib.import_module("ortools.algorithms.python.knapsack_solver")
    except ImportError:
        return False
    return True


def ortools(module: str) -> ModuleType:
    """Import ``ortools.<module>`` with a clear message when it cannot be loaded."""
    try:
        return importlib.import_module(f"ortools.{module}")
    except ImportError as e:
        raise ImportError(
            f"OR-Tools ({module}) is needed by this verifier: pip install 'compressopt[verify]'. "
            "If OR-Tools is installed, it may clash with a highspy loaded earlier (import "
            f"compressopt.verify before cvxpy/highspy): {e}"
        ) from e


def cvxpy() -> ModuleType:
    """Import cvxpy, loading OR-Tools first when it is installed (see the module docstring)."""
    preload_ortools()
    try:
        import logging

        # cvxpy logs an error when its optional HiGHS interface fails to import; not ours.
        logging.getLogger("__cvxpy__").setLevel(logging.CRITICAL)
        return importlib.import_module("cvxpy")
    except ImportError as e:
        raise ImportError(
            f"cvxpy is needed by this verifier: pip install 'compressopt[verify]' ({e})"
        ) from e
