"""What the benchmark scripts share: run one ``compressopt compress`` command from this
checkout, time it, and read its report back.

``python benchmarks/SCRIPT.py`` puts this directory on ``sys.path``, so the scripts import it
as ``_runner``. A relative output directory is relative to the repository root (where the
commands run), whatever the current directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from compressopt.storage.atomic import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def run_compress(command: list[str], out: Path, *flags: str) -> float:
    """Run ``command`` (starting ``compressopt compress``) as ``python -m compressopt ...`` of
    this checkout with `flags` appended; write its wall time in seconds (the whole process:
    data, reference, coordinator) to ``OUT/process_seconds.txt`` and return it."""
    cmd = [sys.executable, "-m", *command, *flags]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    seconds = time.perf_counter() - t0
    atomic_write(ROOT / out / "process_seconds.txt", f"{seconds:.1f}\n".encode())
    return seconds


def load_report(out: Path) -> dict[str, Any] | None:
    """``OUT/report.json`` as a dict, or None if that run has not finished."""
    path = ROOT / out / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


def seconds(out: Path, report: dict[str, Any]) -> float:
    """The process time of :func:`run_compress`, else the report's own ``wall_seconds``."""
    f = ROOT / out / "process_seconds.txt"
    return float(f.read_text()) if f.is_file() else float(report["wall_seconds"])


def run_all(names: list[str], run: Any) -> None:
    """Run the named cases one after the other, logging each time to stderr."""
    for name in names:
        secs = run(name)
        print(f"{name}: {secs:.1f} s", file=sys.stderr)
