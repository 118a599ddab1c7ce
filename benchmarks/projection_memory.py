"""Peak memory of the heavy projections against their estimates (issue 14), as Markdown.

1. Single calls on 60,000 standard normal values: peak of numpy's allocations
   (``tracemalloc``) next to :func:`~compressopt.projections.kmeans1d_memory` /
   :func:`~compressopt.projections.uniform_memory`, and the time.
2. kmeans1d's dynamic program (the exact k-means): peak resident set (``ru_maxrss``) of one
   call minus the resident set just before it, in a fresh subprocess per size, per K·n.

Usage::

    python benchmarks/projection_memory.py
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc

import numpy as np

from compressopt.projections import (
    kmeans1d_exact,
    kmeans1d_fast,
    kmeans1d_memory,
    project_uniform,
    uniform_memory,
)

_DP = """
import resource, sys, numpy as np, psutil
from compressopt.projections.quantization import _kmeans1d_host
n, k = map(int, sys.argv[1:])
v = np.random.default_rng(0).standard_normal(n) / 4
r0 = psutil.Process().memory_info().rss  # now, not the import's peak
_kmeans1d_host(v, k)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - r0)
"""


def _peak(f):
    tracemalloc.start()
    t = time.perf_counter()
    f()
    dt = time.perf_counter() - t
    p = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return p, dt


def main() -> None:
    x = np.random.default_rng(0).standard_normal(60_000)
    n = x.size
    print("| call | peak (tracemalloc) | estimate | time |")
    print("|---|---|---|---|")
    for name, f, est in [
        ("kmeans1d_exact(x, 10**12)", lambda: kmeans1d_exact(x, 10**12),
         kmeans1d_memory(n, 10**12)),
        ("kmeans1d_fast(x, 10**12)", lambda: kmeans1d_fast(x, 10**12),
         kmeans1d_memory(n, 10**12, method="fast")),
        ("kmeans1d_fast(x, 8192)", lambda: kmeans1d_fast(x, 8192),
         kmeans1d_memory(n, 8192, method="fast")),
        ("kmeans1d_fast(x, 256)", lambda: kmeans1d_fast(x, 256),
         kmeans1d_memory(n, 256, method="fast")),
        ("project_uniform(x, 31)", lambda: project_uniform(x, 31), uniform_memory(n, 31)),
        ("project_uniform(x, 4)", lambda: project_uniform(x, 4), uniform_memory(n, 4)),
        ("project_uniform(x[:1024], levels=1024, method='exact')",
         lambda: project_uniform(x[:1024], levels=1024, method="exact"),
         uniform_memory(1024, levels=1024, method="exact")),
    ]:
        p, dt = _peak(f)
        print(f"| `{name}` | {p / 1e6:.1f} MB | {est / 1e6:.1f} MB | {dt:.2f} s |")
    print()
    print("| kmeans1d DP | growth (ru_maxrss) | per K·n |")
    print("|---|---|---|")
    for m, k in ((20_000, 500), (20_000, 2000), (40_000, 1000)):
        out = subprocess.run([sys.executable, "-c", _DP, str(m), str(k)], check=True,
                             capture_output=True, text=True).stdout
        grow = int(out)
        print(f"| n = {m:,}, K = {k:,} | {grow / 1e6:.0f} MB | {grow / (m * k):.2f} bytes |")


if __name__ == "__main__":
    main()
