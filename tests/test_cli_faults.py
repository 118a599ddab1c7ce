"""Job-level fault injection (issue 14, "Must show"): a real digits run of ``compressopt
compress`` fails while writing each of its output files in turn, under a file-size limit
(``RLIMIT_FSIZE``) or killed with SIGKILL halfway through each write, each rename of its
commit and before its deletions. Every time, OUT holds the complete previous set or the
complete new set -- never a mix -- as :func:`~compressopt.storage.atomic.read_run` sees it
(it completes an interrupted commit, then checks each listed file's size and SHA-256),
report.json always parses, and a first run into an empty OUT leaves no report at all or a
complete set.

The kill points come from a test hook in :mod:`compressopt.storage.atomic`
(``$COMPRESSOPT_TEST_KILL_AT``: ``write:NAME``, ``rename:NAME``, ``delete``); the sizes that
place a file-size limit between the files are those of the same run done once in this
process (the write order is the report's ``files`` order, then report.json).

The default run holds one case of each kind; the whole matrix is @slow.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from compressopt.cli import main
from compressopt.dnn.checkpoint import CHECKPOINT, read_checkpoint
from compressopt.storage.atomic import JOURNAL, KILL_AT, REPORT, RunOutput, read_run

ROOT = Path(__file__).resolve().parents[1]
#: a tiny digits run (1 reference epoch, 1 iteration of 1 epoch); its checkpoint is kept
#: in memory (written only at a stop), so that the size limits fall on the run's own files
#: (the checkpoint's atomic write: tests/test_cli_resume.py)
SHORT = ["--pretrain-epochs", "1", "--steps", "1", "--epochs", "1", "--first-epochs", "1",
         "--quiet", "--checkpoint-every", "1e9"]
#: the run already in OUT (the previous set), and the runs that fail over it
PREVIOUS = [*SHORT, "--prune", "0.5", "--no-plots"]
#: (settings, the files a size limit can fail first): a trained run writes its reference
#: first and it is the largest file; with --reference the later files come first in turn
CONFIGS = {
    "trained": ([*SHORT, "--prune", "0.3", "--no-plots"], ["reference.safetensors"]),
    "loaded": ([*SHORT, "--prune", "0.3", "--no-plots", "--reference", "{REF}"],
               ["config.toml", "model.cpz"]),
    "plots": ([*SHORT, "--prune", "0.01", "--quantize", "2", "--reference", "{REF}"],
              ["layers.png", "iterations.png", "histograms.png"]),
    "report": ([*SHORT, "--prune", "0.01", "--quantize", "2", "--no-plots", "--reference",
                "{REF}"], [REPORT]),
}


def visible(out: Path) -> dict[str, bytes]:
    """OUT's files other than hidden ones (temporary files, the journal) and the killed
    run's checkpoint (:func:`settle` checks it apart), with their bytes."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.name != CHECKPOINT}


def settle(out: Path, previous: dict[str, bytes] | None) -> str:
    """After a failed or killed run: report.json parses as it is; then read_run (which
    completes an interrupted commit) finds the complete previous set or a complete new one,
    and nothing else is visible; the next open of OUT succeeds and clears what the dead
    run left (its temporary files). Returns "previous", "new" or "none" (no run in OUT)."""
    if (out / REPORT).exists():
        json.loads((out / REPORT).read_text())  # parses before any roll-forward
    if (out / CHECKPOINT).exists():  # what --resume continues from: complete and readable
        read_checkpoint(out)
    if previous is None and not (out / REPORT).exists() and not (out / JOURNAL).exists():
        assert visible(out) == {}, visible(out)  # a first run left nothing visible
        state = "none"
    else:
        report = read_run(out)  # every listed file: size and SHA-256
        assert set(visible(out)) == {*report["files"], REPORT}  # no file of another set
        assert not (out / JOURNAL).exists()
        if visible(out) == previous:
            state = "previous"
        else:  # the new run's own report
            assert report["prune"] != float(PREVIOUS[PREVIOUS.index("--prune") + 1])
            state = "new"
    before = visible(out)
    with RunOutput.open(out, overwrite=True):  # the recovery on the next open
        pass
    assert visible(out) == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    return state


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The previous run (its OUT and reference); each configuration's file sizes in write
    order come from one run of it in this process, on first use (:func:`sizes`)."""
    d = tmp_path_factory.mktemp("faults")
    assert main(["compress", *PREVIOUS, "--out", str(d / "previous")]) == 0
    ref = d / "reference.safetensors"
    shutil.copy(d / "previous" / "reference.safetensors", ref)
    return {"dir": d, "ref": ref, "previous": visible(d / "previous"), "sizes": {}}


def sizes(runs: dict, cfg: str) -> list[tuple[str, int]]:
    """(file, bytes) of configuration `cfg`'s run in write order: the report's ``files``
    (the staging order), then report.json."""
    if cfg not in runs["sizes"]:
        out = runs["dir"] / cfg
        argv = [a.format(REF=runs["ref"]) for a in CONFIGS[cfg][0]]
        assert main(["compress", *argv, "--out", str(out)]) == 0
        report = json.loads((out / REPORT).read_text())
        found = [(f, r["bytes"]) for f, r in report["files"].items()]
        runs["sizes"][cfg] = [*found, (REPORT, (out / REPORT).stat().st_size)]
    return runs["sizes"][cfg]


def compress(argv: list[str], *, limit: int | None = None, kill_at: str | None = None,
             ) -> subprocess.CompletedProcess:
    """``python -m compressopt compress ARGV`` in a child, optionally under RLIMIT_FSIZE
    `limit` bytes or killed by the hook at `kill_at`."""
    def preexec() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(KILL_AT, None)
    if kill_at is not None:
        env[KILL_AT] = kill_at
    return subprocess.run([sys.executable, "-m", "compressopt", "compress", *argv],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          preexec_fn=preexec, env=env)


def limit_for(sizes: list[tuple[str, int]], target: str) -> int:
    """A file-size limit that fails `target` and no file written before it: halfway between
    the largest earlier file and `target` (a margin for sizes that vary by a few bytes)."""
    names = [n for n, _ in sizes]
    size = dict(sizes)[target]
    earlier = max((s for _, s in sizes[: names.index(target)]), default=0)
    assert size - earlier > 256, f"{target} ({size} B) is not larger than an earlier file"
    return (earlier + size) // 2


def out_with(runs: dict, tmp: Path, start: str) -> tuple[Path, dict[str, bytes] | None]:
    out = tmp / "out"
    if start == "previous":
        shutil.copytree(runs["dir"] / "previous", out)
        return out, runs["previous"]
    out.mkdir()
    return out, None


# ------------------------------------------------------------------------- RLIMIT_FSIZE

LIMIT_CASES = [(cfg, target, start) for cfg, (_, targets) in CONFIGS.items()
               for target in targets for start in ("previous", "empty")]


def check_size_limit(runs: dict, tmp: Path, cfg: str, target: str, start: str) -> None:
    settings, _ = CONFIGS[cfg]
    out, previous = out_with(runs, tmp, start)
    argv = [a.format(REF=runs["ref"]) for a in settings]
    limit = limit_for(sizes(runs, cfg), target)
    r = compress([*argv, "--overwrite", "--out", str(out)], limit=limit)
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"cannot write {out / target}: file size limit exceeded (RLIMIT_FSIZE)" in r.stderr
    # the failed run removed its own temporary files (it was not killed)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    assert settle(out, previous) == ("previous" if previous is not None else "none")
    if previous is not None:
        assert visible(out) == previous


def test_size_limit_fails_the_model_file_keeping_the_previous_run(runs, tmp_path):
    check_size_limit(runs, tmp_path, "loaded", "model.cpz", "previous")


@pytest.mark.slow
@pytest.mark.parametrize(("cfg", "target", "start"), LIMIT_CASES,
                         ids=[f"{t}-{s}" for _, t, s in LIMIT_CASES])
def test_size_limit_fails_each_file_in_turn(runs, tmp_path, cfg, target, start):
    check_size_limit(runs, tmp_path, cfg, target, start)


# ------------------------------------------------------------------------- SIGKILL


def kill_points(sizes: list[tuple[str, int]]) -> list[str]:
    """Every write (halfway), every rename of the commit and the deletions, in order."""
    names = [n for n, _ in sizes]  # the staged files, then report.json
    return ([f"write:{n}" for n in names] + [f"write:{JOURNAL}"]
            + [f"rename:{n}" for n in names] + ["delete"])


def check_kill(runs: dict, tmp: Path, cfg: str, point: str, start: str) -> str:
    settings, _ = CONFIGS[cfg]
    out, previous = out_with(runs, tmp, start)
    argv = [a.format(REF=runs["ref"]) for a in settings]
    r = compress([*argv, "--overwrite", "--out", str(out)], kill_at=point)
    assert r.returncode == -signal.SIGKILL, r.stderr
    state = settle(out, previous)
    commit_started = point.startswith(("rename:", "delete"))
    assert state == ("new" if commit_started else "previous" if previous else "none")
    if state == "new":  # the new run's own files, whole
        assert read_run(out)["files"].keys() == {n for n, _ in sizes(runs, cfg)[:-1]}
    return state


def test_sigkill_during_a_commit_completes_the_new_set(runs, tmp_path):
    # killed between renames: the journal is there; read_run completes the new set, and the
    # previous run's reference (not in the new set) is deleted
    assert check_kill(runs, tmp_path, "loaded", "rename:model.cpz", "previous") == "new"
    assert "reference.safetensors" not in visible(tmp_path / "out")


def test_sigkill_while_writing_keeps_the_previous_set(runs, tmp_path):
    assert check_kill(runs, tmp_path, "loaded", "write:model.cpz", "previous") == "previous"
    # a following run into the same OUT (in this process) replaces the set completely
    out = tmp_path / "out"
    argv = [a.format(REF=runs["ref"]) for a in CONFIGS["loaded"][0]]
    assert main(["compress", *argv, "--overwrite", "--out", str(out)]) == 0
    report = read_run(out)
    assert set(visible(out)) == {*report["files"], REPORT} == {"config.toml", "model.cpz", REPORT}


def _kill_cases() -> list:
    out = []
    for cfg in ("trained", "plots"):  # every file, figures included; a trained reference
        names = {"trained": ["reference.safetensors", "config.toml", "model.cpz"],
                 "plots": ["config.toml", "model.cpz", "layers.png", "iterations.png",
                           "histograms.png"]}[cfg]
        points = ([f"write:{n}" for n in names] + [f"write:{REPORT}", f"write:{JOURNAL}"]
                  + [f"rename:{n}" for n in names] + [f"rename:{REPORT}", "delete"])
        out += [pytest.param(cfg, p, s, id=f"{cfg}-{p}-{s}") for p in points
                for s in ("previous", "empty")]
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("cfg", "point", "start"), _kill_cases())
def test_sigkill_at_every_write(runs, tmp_path, cfg, point, start):
    assert kill_points(sizes(runs, cfg)).count(point) == 1  # the run writes there
    check_kill(runs, tmp_path, cfg, point, start)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_sigkill_at_a_random_time(runs, tmp_path, seed):
    """SIGKILL at a random instant of a whole run (training included): the same
    guarantee, whatever was happening."""
    import random

    settings, _ = CONFIGS["plots"]
    out, previous = out_with(runs, tmp_path, "previous")
    argv = [a.format(REF=runs["ref"]) for a in settings]
    p = subprocess.Popen([sys.executable, "-m", "compressopt", "compress", *argv,
                          "--overwrite", "--out", str(out)], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        p.wait(timeout=random.Random(seed).uniform(3.0, 15.0))
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert settle(out, previous) in ("previous", "new")
