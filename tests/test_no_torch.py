"""The math core imports with torch blocked, and without OR-Tools or cvxpy loaded."""

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_core_imports_with_torch_blocked():
    r = _run(
        """
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import compressopt.solvers, compressopt.projections, compressopt.verify
        import compressopt.tree, compressopt.errors
        import compressopt.storage, compressopt.storage.atomic
        assert sys.modules["torch"] is None
        import numpy as np
        from compressopt.projections import project_cardinality
        print(project_cardinality(np.array([3.0, -1.0, 2.0]), 1).tolist())
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[3.0, 0.0, 0.0]"


def test_blocking_torch_really_blocks():
    # the check above would pass vacuously if blocking did not work
    r = _run(
        """
        import sys
        sys.modules["torch"] = None
        import compressopt.dnn
        """
    )
    assert r.returncode != 0
    assert "torch" in r.stderr


def test_verify_does_not_load_solvers_eagerly():
    r = _run(
        """
        import sys
        import compressopt.solvers, compressopt.projections, compressopt.verify
        heavy = [m for m in ("torch", "ortools", "cvxpy") if m in sys.modules]
        print(heavy)
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
