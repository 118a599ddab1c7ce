"""OR-Tools and highspy (which cvxpy imports) bundle clashing HiGHS builds: the one loaded
second fails. Load OR-Tools before any test module imports cvxpy directly."""

from compressopt.verify._deps import preload_ortools

preload_ortools()
