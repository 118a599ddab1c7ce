"""Shared test settings: hypothesis profiles and the solver load order."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from compressopt.verify._deps import preload_ortools

# OR-Tools and highspy (pulled in by cvxpy) bundle clashing HiGHS builds: whichever loads
# second fails. Load OR-Tools first, before any test module imports cvxpy.
preload_ortools()

settings.register_profile(
    "default",
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Tolerances by dtype live in one table: compressopt.verify.report.TOL (see tol_for).
