"""What the benchmark scripts share: run one ``compressopt compress`` command from this
checkout, time it, and read its report back; describe the runs of a protocol (:class:`Run`),
tell complete runs from pending and broken ones (:func:`run_state`) and print the commands
still to run (:func:`print_commands`); Markdown table helpers.

``python benchmarks/SCRIPT.py`` puts this directory on ``sys.path``, so the scripts import it
as ``_runner``. A relative output directory is relative to the repository root (where the
commands run), whatever the current directory.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from compressopt.errors import CorruptFileError, OutputError
from compressopt.storage.atomic import atomic_write, read_run

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


# ------------------------------------------------------------------ runs queued by the coordinator
#
# The long protocols (issues 10, 12 and 13) are not run by the scripts: each run is one
# ``python -m compressopt compress ... --out ROOT/<path>`` command, printed by the scripts'
# ``--print-commands`` for the coordinator's queues, and the tables read the finished runs
# with :func:`compressopt.storage.atomic.read_run` (a folder without a committed report.json
# is pending; one whose files do not match its report is broken).

#: how the printed commands start (the queues run them from a checkout with its venv active)
PYTHON = "python -m compressopt compress"

#: the validation split every protocol run holds out: 5,000 training examples, drawn once
VAL = ("--val-split", "5000", "--val-seed", "0")


@dataclass(frozen=True)
class Run:
    """One ``compressopt compress`` run of a protocol, written to ``ROOT/out``.

    Attributes
    ----------
    out : the run's folder relative to ROOT (``"l5/admm_k02"``).
    args : the command's options after ``compress``, without ``--out``; a ``{root}`` in an
        argument is replaced by ROOT (e.g. a ``--reference {root}/l5/ref/...``).
    needs : folders (relative to ROOT) of the runs that must be complete first.
    """

    out: str
    args: tuple[str, ...]
    needs: tuple[str, ...] = ()

    def argv(self, root: Path) -> list[str]:
        """The options with ROOT filled in and ``--out ROOT/out`` appended."""
        return [a.replace("{root}", str(root)) for a in self.args] + ["--out",
                                                                     str(root / self.out)]

    def command(self, root: Path, *extra: str) -> str:
        """The shell command line (``python -m compressopt compress ...``), quoted."""
        return " ".join([PYTHON, *map(shlex.quote, self.argv(root)), *extra])


class RunState(NamedTuple):
    """What a run folder holds: ``state`` is ``"complete"`` (``report`` is its report.json,
    every listed file checked), ``"pending"`` (no folder, or no report yet: not started,
    running, or stopped before its commit; ``started`` says whether the folder exists) or
    ``"broken"`` (``why``: a report that does not parse or files that do not match it)."""

    state: str
    report: dict[str, Any] | None = None
    why: str = ""
    started: bool = False


def run_state(path: Path) -> RunState:
    """Read the run in `path` with :func:`~compressopt.storage.atomic.read_run`."""
    if not (path / "report.json").is_file() and not (path / ".commit.json").is_file():
        return RunState("pending", started=path.is_dir())
    try:
        return RunState("complete", read_run(path), started=True)
    except (CorruptFileError, OutputError) as e:
        return RunState("broken", why=str(e), started=True)


def reports(root: Path, runs: Iterable[str]) -> dict[str, dict[str, Any]]:
    """folder (relative to ROOT) -> report of each complete run among `runs`."""
    out = {}
    for name in runs:
        s = run_state(root / name)
        if s.report is not None:
            out[name] = s.report
    return out


def pending_commands(runs: Sequence[Run], root: Path, *, ready_only: bool = False,
                     skip_started: bool = False) -> tuple[list[str], list[str]]:
    """The command lines of the runs of `runs` that are not complete, in the order given
    (list a run after the runs it needs), and notes for a human (stderr).

    A broken run's command gets ``--overwrite`` (its folder holds a report of its own);
    `ready_only` leaves out the runs whose `needs` are not complete yet; `skip_started` those
    whose folder exists (perhaps running now)."""
    states = {r.out: run_state(root / r.out) for r in runs}
    done = {n for n, s in states.items() if s.state == "complete"}
    lines, notes = [], []
    for run in runs:
        s = states[run.out]
        if s.state == "complete":
            continue
        waiting = [n for n in run.needs if n not in done and
                   run_state(root / n).state != "complete"]
        if waiting and ready_only:
            notes.append(f"{run.out}: waits for {', '.join(waiting)}")
            continue
        if s.started and s.state == "pending":
            if skip_started:
                notes.append(f"{run.out}: started (folder exists, no report): left out")
                continue
            notes.append(f"{run.out}: started (folder exists, no report): running or stopped")
        extra = ()
        if s.state == "broken":
            notes.append(f"{run.out}: broken ({s.why}): run again with --overwrite")
            extra = ("--overwrite",)
        if waiting:
            notes.append(f"{run.out}: needs {', '.join(waiting)} first")
        lines.append(run.command(root, *extra))
    return lines, notes


def print_commands(runs: Sequence[Run], root: Path, *, ready_only: bool = False,
                   skip_started: bool = False) -> None:
    """Print :func:`pending_commands`: the commands on stdout (one per line, ready for a
    queue), the notes and a count on stderr."""
    lines, notes = pending_commands(runs, root, ready_only=ready_only,
                                    skip_started=skip_started)
    for line in lines:
        print(line)
    for note in notes:
        print(f"# {note}", file=sys.stderr)
    print(f"# {len(lines)} of {len(runs)} runs to do under {root}", file=sys.stderr)


def add_protocol_options(p: argparse.ArgumentParser, default_root: str = "/work/runs") -> None:
    """``--root``, ``--print-commands``, ``--ready`` and ``--skip-started``."""
    p.add_argument("--root", type=Path, default=Path(default_root),
                   help=f"the folder of the protocol's runs (default {default_root})")
    p.add_argument("--print-commands", action="store_true",
                   help="print the command of every run not complete yet, one per line")
    p.add_argument("--ready", action="store_true",
                   help="with --print-commands: only the runs whose inputs are complete")
    p.add_argument("--skip-started", action="store_true",
                   help="with --print-commands: leave out runs whose folder exists")


# ------------------------------------------------------------------ table helpers


def md(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction as a percentage, ``-`` for None."""
    return "-" if x is None else f"{100 * x:.{digits}f}"


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for fewer than 1 and 2 values)."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None
