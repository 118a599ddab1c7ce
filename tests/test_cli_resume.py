"""``compressopt compress --resume OUT``: real processes killed with SIGKILL at seeded random
progress lines (and in the final stage, and in the middle of a checkpoint write), or stopped
with SIGINT / SIGTERM, then resumed: the report is the uninterrupted run's but for the
timings, Θ bit for bit. And the refusals: no checkpoint, a finished run, a corrupted file,
options that contradict the checkpoint's, --overwrite with --resume: one line, exit != 0,
OUT untouched."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("torch")

from compressopt.cli import build_parser, main, settings_from
from compressopt.dnn.checkpoint import CHECKPOINT, Checkpointer, read_checkpoint, without_timings
from compressopt.dnn.job import run_job
from compressopt.options import JobConfig

ROOT = Path(__file__).resolve().parents[1]

TINY = '''
import math
from torch import nn

def tiny(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 16), nn.ReLU(),
                         nn.Linear(16, num_classes))
'''

#: each method's options (digits, the tiny net): every coordinator and final stage
METHODS: dict[str, list[str]] = {
    "lc": ["--method", "lc"],
    "admm": ["--method", "admm", "--prune", "0.2"],
    "joint": ["--method", "admm", "--budget-ratio", "20", "--bit-candidates", "1", "2",
              "--finetune-epochs", "1", "--distill", "2", "--distill-phase", "finish"],
    "slr": ["--method", "slr", "--retrain-epochs", "2"],
    "apgdssm": ["--method", "apgdssm", "--lambda1", "1e-4", "--beta", "1e-2"],
    "idc": ["--method", "dc", "--iterated"],
}
#: the progress events that print a line (--progress-every 0)
PRINTED = {"reference_start", "reference_epoch", "reference_done", "compress_start",
           "lstep_epoch", "step"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("nets") / "tiny.py"
    path.write_text(TINY)
    return f"{path}:tiny"


def args_of(tiny: str, out: Path, method: str) -> list[str]:
    return ["--model", tiny, "--pretrain-epochs", "2", "--steps", "3", "--epochs", "1",
            "--batch-size", "128", "--no-plots", "--out", str(out), *METHODS[method]]


_BASELINES: dict[str, tuple[dict[str, Any], int]] = {}


def baseline(tiny: str, tmp: Path, method: str) -> tuple[dict[str, Any], int]:
    """The uninterrupted run in this process (the same config the command line builds) and
    the number of progress lines it prints."""
    if method not in _BASELINES:
        ns = build_parser().parse_args(["compress", *args_of(tiny, tmp / f"base-{method}",
                                                             method)])
        kinds: list[str] = []
        report = run_job(JobConfig.from_settings(settings_from(ns)),
                         on_event=lambda kind, info: kinds.append(kind))
        _BASELINES[method] = report, sum(k in PRINTED for k in kinds)
    return _BASELINES[method]


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    r = without_timings(report)
    r.pop("run_id")
    r["config"] = {k: v for k, v in r["config"].items() if k != "out"}
    return r


def start(args: list[str], code: str | None = None) -> subprocess.Popen:
    """``compressopt compress ARGS`` in a new process, one progress line per event."""
    cmd = [sys.executable, "-m", "compressopt"] if code is None else [sys.executable, "-c", code]
    return subprocess.Popen([*cmd, "compress", "--progress-every", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def iteration_line(k: int) -> str:
    """The progress line of iteration `k` of 3 ends (it names no epoch)."""
    return f"iteration {k}/3"


def signal_after(p: subprocess.Popen, line: int | str, sig: int) -> list[str]:
    """Send `sig` once the `line`-th progress line (or the line of iteration `line`'s end,
    :func:`iteration_line`) is printed; the stderr lines, when the process is gone."""
    assert p.stderr is not None
    n, seen = 0, []
    for text in p.stderr:
        seen.append(text.rstrip("\n"))
        n += text.startswith("compressopt: ")
        if (n == line) if isinstance(line, int) else (
                f"  {line}  " in text and "test accuracy" in text and " epoch " not in text):
            p.send_signal(sig)
            break
    else:
        pytest.fail(f"the run ended before {line!r}: {p.wait()} {seen[-3:]}")
    _, rest = p.communicate(timeout=300)
    return seen + rest.splitlines()


def resume_here(out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """``compressopt compress --resume OUT`` in this process; the report it wrote."""
    assert main(["compress", "--quiet", "--resume", str(out)]) == 0, capsys.readouterr().err
    assert not (out / CHECKPOINT).exists()
    return json.loads((out / "report.json").read_text())


# -- SIGKILL ------------------------------------------------------------------------------------


def kill_and_resume(tiny: str, tmp: Path, method: str, capsys: Any, rounds: int,
                    final: bool = True) -> None:
    """Killed at seeded random progress lines `rounds` times (resumed each time in a new
    process), then (`final`) in the final stage, then resumed here: the uninterrupted
    report."""
    report, lines = baseline(tiny, tmp, method)
    rng = random.Random(f"sigkill-{method}")
    out = tmp / "run"
    p = start(args_of(tiny, out, method))
    signal_after(p, rng.randrange(3, lines), signal.SIGKILL)
    assert p.returncode == -signal.SIGKILL
    for _ in range(rounds - 1):  # early in the resumed run: its first two lines are sure
        p = start(["--resume", str(out)])
        signal_after(p, rng.randrange(1, 3), signal.SIGKILL)
    if final and read_checkpoint(out).where != "after iteration 3":  # the final stage
        p = start(["--resume", str(out)])
        signal_after(p, iteration_line(3), signal.SIGKILL)
        assert read_checkpoint(out).where == "after iteration 3"
    assert comparable(resume_here(out, capsys)) == comparable(report)


def test_sigkill_at_a_random_point_then_resume(tiny, tmp_path, capsys):
    kill_and_resume(tiny, tmp_path, "lc", capsys, rounds=1, final=False)


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
def test_sigkill_matrix(tiny, tmp_path, capsys, method):
    """Every method, killed three times (twice at random, once in its final stage)."""
    kill_and_resume(tiny, tmp_path, method, capsys, rounds=2)


KILL_IN_WRITE = """
import os, signal, sys
import compressopt.dnn.checkpoint as c
from compressopt.cli import main
calls = [0]
def torn(path, data):
    calls[0] += 1
    if calls[0] == {n}:  # half of the file in its temporary name, then SIGKILL
        with open(path.with_name("." + path.name + ".tmp-" + str(os.getpid())), "wb") as f:
            f.write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return c.atomic_write.__wrapped__(path, data)
torn.__wrapped__ = c.atomic_write
c.atomic_write = torn
sys.exit(main(sys.argv[1:]))
"""


def test_killed_while_writing_a_checkpoint(tiny, tmp_path, capsys):
    """SIGKILL in the middle of the 3rd checkpoint write (after iteration 1): the 2nd
    (after the reference's last epoch) is intact, the torn temporary file is removed on
    resume, the result is the uninterrupted run's."""
    report, _ = baseline(tiny, tmp_path, "lc")
    out = tmp_path / "run"
    p = start(args_of(tiny, out, "lc"), KILL_IN_WRITE.replace("{n}", "3"))
    p.communicate(timeout=300)
    assert p.returncode == -signal.SIGKILL
    torn = [f.name for f in out.iterdir() if f.name.startswith(f".{CHECKPOINT}.tmp-")]
    assert len(torn) == 1
    assert read_checkpoint(out).where == "after reference epoch 2"
    assert comparable(resume_here(out, capsys)) == comparable(report)
    assert sorted(f.name for f in out.iterdir()) == ["config.toml", "model.cpz",
                                                     "reference.safetensors", "report.json"]


# -- SIGINT, SIGTERM --------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT,
                                 pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_a_signal_stops_after_a_checkpoint_and_resume_ends_the_run(tiny, tmp_path, capsys,
                                                                   sig):
    report, _ = baseline(tiny, tmp_path, "lc")
    out = tmp_path / "run"
    p = start(args_of(tiny, out, "lc"))
    lines = signal_after(p, iteration_line(1), sig)
    assert p.returncode == 128 + sig
    last = lines[-1]
    assert last.startswith(f"compressopt compress: stopped by {signal.Signals(sig).name} after ")
    assert last.endswith(f"resume with: compressopt compress --resume {out}")
    assert "Traceback" not in "\n".join(lines)
    assert [f.name for f in out.iterdir()] == [CHECKPOINT]
    assert comparable(resume_here(out, capsys)) == comparable(report)


def test_a_second_signal_stops_at_once_and_says_how_to_resume(tiny, tmp_path, capsys,
                                                              monkeypatch):
    """A KeyboardInterrupt (the second Ctrl-C) in the middle of an iteration: exit 130, one
    line naming the checkpoint of the last iteration, resumed to the uninterrupted run."""
    from compressopt.dnn import api

    report, _ = baseline(tiny, tmp_path, "lc")
    out = tmp_path / "run"
    calls = [0]
    check = api._Events.check

    def interrupt(self: Any, kind: str = "", info: Any = None) -> None:
        calls[0] += kind == "lstep_epoch"
        if calls[0] == 3:
            raise KeyboardInterrupt
        check(self, kind, info)

    monkeypatch.setattr(api._Events, "check", interrupt)
    assert main(["compress", "--quiet", *args_of(tiny, out, "lc")]) == 130
    err = capsys.readouterr().err.strip()
    assert err == (f"compressopt compress: interrupted; {out} holds its checkpoint; resume "
                   f"with: compressopt compress --resume {out}")
    assert read_checkpoint(out).where == "after iteration 1"
    monkeypatch.setattr(api._Events, "check", check)
    assert comparable(resume_here(out, capsys)) == comparable(report)


# -- refusals ------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}


@pytest.fixture
def interrupted(tmp_path: Path) -> Path:
    """OUT holding the checkpoint of a 3-step digits LC run (its state a stand-in: the
    refusals come before any state is read)."""
    out = tmp_path / "run"
    out.mkdir()
    config = JobConfig.from_settings({"steps": 3, "out": str(out)}).resolved()
    Checkpointer(out, "run-1", config.to_settings(), facts={"overwrite": False}).save(
        "solve", lambda: {}, "after iteration 1")
    return out


@pytest.mark.parametrize(("extra", "code", "match"), [
    (["--steps", "4"], 1, r"--steps = 4 \(the run has 3\): a resumed run keeps its settings"),
    (["--method", "slr"], 1, "--method = 'slr'"),
    (["--out", "elsewhere"], 1, "a resumed run writes where it began"),
    (["--overwrite"], 2, "drop --overwrite"),
])
def test_options_that_contradict_the_checkpoint(interrupted, capsys, extra, code, match):
    before = _snapshot(interrupted)
    assert main(["compress", "--resume", str(interrupted), *extra]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("compressopt compress: error: ")
    assert re.search(match, err), err
    assert _snapshot(interrupted) == before


def test_nothing_to_resume(tmp_path, interrupted, capsys):
    cases = []
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((empty, "no checkpoint.safetensors there, nothing to resume"))
    cases.append((tmp_path / "missing", "no such directory"))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    data = bytearray((interrupted / CHECKPOINT).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (corrupt / CHECKPOINT).write_bytes(bytes(data))
    cases.append((corrupt, "not a readable checkpoint"))
    (interrupted / "report.json").write_text(json.dumps({"run_id": "run-1"}))
    cases.append((interrupted, "the run there is finished"))
    for folder, match in cases:
        before = _snapshot(folder) if folder.is_dir() else None
        assert main(["compress", "--resume", str(folder)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and match in err, err
        assert (_snapshot(folder) if folder.is_dir() else None) == before


# -- several processes ---------------------------------------------------------------------------


def _torchrun(args: list[str]) -> list[str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
            "--master-port", str(port), "-m", "compressopt", "compress", *args]


@pytest.mark.slow
def test_two_processes_killed_and_resumed_under_torchrun(tiny, tmp_path):
    """torchrun with 2 CPU processes, the whole group killed with SIGKILL after iteration 1,
    resumed under torchrun: every rank reads rank 0's checkpoint, and the report is the
    uninterrupted two-process run's."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    common = ["--model", tiny, "--pretrain-epochs", "1", "--steps", "3", "--epochs", "1",
              "--batch-size", "64", "--no-plots"]
    full = subprocess.run(_torchrun([*common, "--quiet", "--out", str(tmp_path / "full")]),
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert full.returncode == 0, full.stderr[-2000:]
    out = tmp_path / "run"
    p = subprocess.Popen(_torchrun([*common, "--progress-every", "0", "--out", str(out)]),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env=env)
    assert p.stderr is not None
    for text in p.stderr:
        if f"  {iteration_line(1)}  " in text and "test accuracy" in text:
            # torchrun and its workers (which have process groups of their own)
            for proc in [*psutil.Process(p.pid).children(recursive=True),
                         psutil.Process(p.pid)]:
                proc.kill()
            break
    else:
        pytest.fail(f"the run ended first: {p.wait()}")
    p.wait(timeout=60)
    assert not (out / "report.json").exists()
    assert read_checkpoint(out).facts["world_size"] == 2
    again = subprocess.run(_torchrun(["--quiet", "--resume", str(out)]), capture_output=True,
                           text=True, cwd=ROOT, env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    expected = json.loads((tmp_path / "full" / "report.json").read_text())
    got = json.loads((out / "report.json").read_text())
    assert got["world_size"] == 2 and comparable(got) == comparable(expected)
