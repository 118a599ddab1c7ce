"""compressopt.storage works with torch blocked (it is part of the torch-free core)."""

import subprocess
import sys
import textwrap


def test_storage_and_plots_import_and_round_trip_with_torch_blocked():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        import compressopt.storage, compressopt.plots
        from compressopt.storage import load_theta, theta_to_bytes, tree_from_bytes, tree_to_bytes
        from compressopt import projections as P
        c = P.Chain(P.GlobalCardinality(keep=0.5),
                    P.PerTensor(P.AdaptiveQuantization(2, sparse=True)))
        w = {"a": np.array([3.0, -1.0, 2.0, 0.5])}
        arrays, _ = load_theta(theta_to_bytes(c.compress(w), c))
        obj, _ = tree_from_bytes(tree_to_bytes({"theta": c.compress(w)}))
        assert sys.modules["torch"] is None
        print(arrays["a"].tolist())
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[3.0, 0.0, 2.0, 0.0]"
