"""Run the main job's MNIST benchmarks (issue 2) and print a table for benchmarks/RESULTS.md.

Usage, from the repository root::

    python benchmarks/main_job.py [--data-dir ../shared/data/mnist] [--out runs/main_job]
                                  [--only prune|quantize] [--table-only]

Each case runs ``python -m compressopt compress ...`` exactly as written in the table (with the
CLI's defaults for MNIST), one after the other, and reads its ``report.json``. The wall time is
the process's, start to end (data loading, reference training and compression).
``--table-only`` prints the table from the reports of an earlier run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from _runner import load_report, run_all, run_compress, seconds

#: name -> (arguments after the data directory, target test error)
CASES = {
    "prune": (["--method", "lc", "--prune", "0.05"], 0.023),
    "quantize": (["--method", "lc", "--quantize", "2"], 0.030),
}


def command(data_dir: str, args: list[str]) -> list[str]:
    return ["compressopt", "compress", "--model", "lenet300", "--dataset", "mnist",
            "--data-dir", data_dir, *args]


def run_case(name: str, data_dir: str, out: Path) -> float:
    args, _ = CASES[name]
    return run_compress([*command(data_dir, args), "--out", str(out / name)], out / name,
                        "--quiet")


def table(data_dir: str, out: Path) -> str:
    rows = [
        "| command | reference error | test error | target | compression ratio | "
        "nonzero | avg bits | wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, (args, target) in CASES.items():
        r = load_report(out / name)
        if r is None:
            continue
        secs = seconds(out / name, r)
        err = 1 - r["accuracy"]
        rows.append(
            f"| `{' '.join(command(data_dir, args))}` | {1 - r['reference_accuracy']:.2%} | "
            f"{err:.2%} {'✓' if err <= target else '✗'} | <= {target:.1%} | "
            f"{r['compression_ratio']:.1f} | {r['nonzero_fraction']:.2%} | "
            f"{r['average_bits']:.2f} | {secs / 60:.1f} min |"
        )
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data-dir", default=os.environ.get("COMPRESSOPT_MNIST_DIR", "../shared/data/mnist")
    )
    p.add_argument("--out", type=Path, default=Path("runs") / "main_job")
    p.add_argument("--only", choices=sorted(CASES))
    p.add_argument("--table-only", action="store_true")
    a = p.parse_args()
    if not a.table_only:
        run_all([a.only] if a.only else list(CASES), lambda n: run_case(n, a.data_dir, a.out))
    print(table(a.data_dir, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
