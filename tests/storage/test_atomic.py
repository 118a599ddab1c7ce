"""Transactional outputs (issue 14, item 1): atomic_write, RunOutput, read_run.

Fault injection in-process (os.replace / os.unlink failing after k calls) and with real child
processes (RLIMIT_FSIZE failing each file in turn, SIGKILL at every step of a commit): OUT
always ends as the complete old set or the complete new set, and report.json always parses.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from compressopt.errors import CorruptFileError, NonFiniteError, OutputError
from compressopt.storage import atomic
from compressopt.storage.atomic import JOURNAL, REPORT, RunOutput, atomic_write, read_run

ROOT = Path(__file__).resolve().parents[2]

OLD = {"a.bin": b"old a " * 20, "b.bin": b"old b " * 40, "old.bin": b"only in old"}
NEW = {"a.bin": b"A" * 100, "b.bin": b"B" * 200, "new.bin": b"N" * 300}  # growing sizes


def tmp_files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if atomic._TMP.match(p.name))


def commit_set(out: Path, files: dict[str, bytes], tag: str, **open_kw) -> dict:
    with RunOutput.open(out, **open_kw) as run:
        for name, blob in files.items():
            run.stage(name, blob)
        return run.commit({"tag": tag})


def assert_set(out: Path, files: dict[str, bytes], other: dict[str, bytes]) -> dict:
    """OUT holds exactly the set `files` (verified by read_run), no file only of `other`."""
    report = read_run(out)
    assert sorted(report["files"]) == sorted(files)
    for name, blob in files.items():
        assert (out / name).read_bytes() == blob, name
    for name in set(other) - set(files):
        assert not (out / name).exists(), name
    return report


# --------------------------------------------------------------------------- atomic_write


def test_atomic_write_replaces_and_returns_size_and_hash(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write(p, b"first")
    n, sha = atomic_write(p, lambda f: f.write(b"second!"))
    assert p.read_bytes() == b"second!"
    assert (n, sha) == atomic._digest(p) and n == 7
    assert os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.ENOSPC, "disk full"),
        (errno.EFBIG, "file size limit"),
        (errno.EIO, "Input/output error"),
    ],
)
def test_atomic_write_failure_keeps_old_file_and_removes_tmp(tmp_path, code, reason):
    p = tmp_path / "f.bin"
    atomic_write(p, b"old content")

    def writer(f):
        f.write(b"partial new content")
        f.flush()
        raise OSError(code, os.strerror(code))

    with pytest.raises(OutputError, match=rf"^cannot write {re.escape(str(p))}: {reason}"):
        atomic_write(p, writer)
    assert p.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_writer_bug_propagates_unchanged_and_removes_tmp(tmp_path):
    p = tmp_path / "f.bin"

    def writer(f):
        f.write(b"x")
        raise RuntimeError("bug in the writer")

    with pytest.raises(RuntimeError, match="bug in the writer"):
        atomic_write(p, writer)
    assert os.listdir(tmp_path) == []


def test_atomic_write_failed_rename_removes_tmp(tmp_path, monkeypatch):
    def no_replace(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OutputError, match="Invalid cross-device link"):
        atomic_write(tmp_path / "f.bin", b"x")
    assert os.listdir(tmp_path) == []


def test_atomic_write_fsyncs_the_file_and_the_folder(tmp_path, monkeypatch):
    kinds = []
    real_fsync = os.fsync

    def fsync(fd):
        kinds.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write(tmp_path / "f.bin", b"x")
    assert kinds == ["file", "dir"]


def test_atomic_write_rejects_other_data(tmp_path):
    with pytest.raises(TypeError, match="bytes or a callable"):
        atomic_write(tmp_path / "f.bin", "text, not bytes")
    assert os.listdir(tmp_path) == []


def test_ignore_sigxfsz_turns_the_kill_into_an_output_error(tmp_path):
    code = """
        import resource, signal, sys
        from compressopt.errors import OutputError
        from compressopt.storage.atomic import atomic_write, ignore_sigxfsz
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # as where CPython's default was undone
        if sys.argv[2] == "ignore":
            assert ignore_sigxfsz() == signal.SIG_DFL
        resource.setrlimit(resource.RLIMIT_FSIZE, (10, 10))
        try:
            atomic_write(sys.argv[1], b"x" * 100)
        except OutputError as e:
            print(e)
            sys.exit(3)
    """
    runs = {}
    for mode in ("default", "ignore"):
        (tmp_path / mode).mkdir()
        runs[mode] = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), str(tmp_path / mode / "f.bin"), mode],
            capture_output=True, text=True, env=child_env(), timeout=60,
        )
    assert runs["default"].returncode == -signal.SIGXFSZ
    assert not (tmp_path / "default" / "f.bin").exists()
    assert runs["ignore"].returncode == 3, runs["ignore"].stderr
    assert runs["ignore"].stdout.strip() == (
        f"cannot write {tmp_path / 'ignore' / 'f.bin'}: file size limit exceeded (RLIMIT_FSIZE)"
    )
    assert os.listdir(tmp_path / "ignore") == []


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("out", ["", None])
def test_open_refuses_an_empty_out(out):
    with pytest.raises(OutputError, match=r"^--out must name a directory$"):
        RunOutput.open(out)


def test_read_run_refuses_an_empty_out():
    with pytest.raises(OutputError, match=r"^--out must name a directory$"):
        read_run("")


def test_open_refuses_a_file(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(OutputError, match="is not a directory"):
        RunOutput.open(tmp_path / "f")
    with pytest.raises(OutputError, match="not writable: Not a directory"):
        RunOutput.open(tmp_path / "f" / "sub")


def test_open_refuses_an_unwritable_out_found_by_the_probe(tmp_path, monkeypatch):
    real_open = os.open

    def deny_probe(path, flags, *args):
        if ".write-probe.tmp-" in os.fspath(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", deny_probe)
    where = re.escape(str(tmp_path))
    with pytest.raises(OutputError, match=rf"^--out {where} is not writable: permission denied"):
        RunOutput.open(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_open_refuses_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="not writable: permission denied"):
        RunOutput.open(ro)
    with pytest.raises(OutputError, match="not writable: permission denied"):
        RunOutput.open(ro / "sub")


def test_open_creates_out_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "x" / "y"
    run = RunOutput.open(out)
    assert out.is_dir() and os.listdir(out) == []
    assert run.path == out and len(run.run_id) == 32


def test_open_refuses_another_runs_report_unless_overwrite(tmp_path):
    commit_set(tmp_path, OLD, "old")
    with pytest.raises(OutputError, match="another run; use --overwrite"):
        RunOutput.open(tmp_path)
    with pytest.raises(OutputError, match="another run; use --overwrite"):
        RunOutput.open(tmp_path, run_id="some other run")
    RunOutput.open(tmp_path, overwrite=True)
    assert_set(tmp_path, OLD, NEW)  # open alone changes nothing


def test_open_accepts_the_same_run_resuming(tmp_path):
    first = commit_set(tmp_path, OLD, "old", run_id="run-1")
    assert first["run_id"] == "run-1"
    commit_set(tmp_path, NEW, "new", run_id="run-1")
    assert assert_set(tmp_path, NEW, OLD)["tag"] == "new"


def test_open_refuses_an_unreadable_report_unless_overwrite(tmp_path):
    (tmp_path / REPORT).write_bytes(b'{"half a report')
    with pytest.raises(OutputError, match=r"unreadable report\.json; use --overwrite"):
        RunOutput.open(tmp_path)
    commit_set(tmp_path, NEW, "new", overwrite=True)
    assert_set(tmp_path, NEW, OLD)


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "../x", "..", REPORT, JOURNAL])
def test_stage_refuses_names_outside_the_set(tmp_path, name):
    run = RunOutput.open(tmp_path)
    with pytest.raises(ValueError, match="invalid output file name"):
        run.stage(name, b"x")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- the set


def test_commit_reports_the_files_and_overwrite_replaces_the_whole_set(tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"the user's own file")
    (tmp_path / "checkpoint.safetensors").write_bytes(b"not part of any set")
    commit_set(tmp_path, OLD, "old")
    with RunOutput.open(tmp_path, overwrite=True) as run:
        for name, blob in NEW.items():
            run.stage(name, blob)
        pid = os.getpid()
        assert dict(run.staged) == {n: atomic._digest(run.path / f".{n}.tmp-{pid}") for n in NEW}
        assert sorted(os.listdir(tmp_path)) == sorted(  # nothing visible changed yet
            [*OLD, REPORT, "notes.txt", "checkpoint.safetensors", *tmp_files(tmp_path)]
        )
        report = run.commit({"tag": "new", "accuracy": 0.5})
    assert report == json.loads((tmp_path / REPORT).read_bytes())
    sha = atomic._digest(tmp_path / "new.bin")[1]
    assert report["files"]["new.bin"] == {"bytes": 300, "sha256": sha}
    assert_set(tmp_path, NEW, OLD)  # old.bin deleted
    assert (tmp_path / "notes.txt").read_bytes() == b"the user's own file"
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == b"not part of any set"
    assert tmp_files(tmp_path) == []


def test_context_manager_aborts_on_exception(tmp_path):
    commit_set(tmp_path, OLD, "old")
    with pytest.raises(KeyError), RunOutput.open(tmp_path, overwrite=True) as run:
        run.stage("a.bin", b"new")
        run.stage("new.bin", b"new")
        raise KeyError("training failed")
    assert tmp_files(tmp_path) == []
    assert_set(tmp_path, OLD, NEW)


def test_leaving_without_commit_removes_staged_files(tmp_path):
    with RunOutput.open(tmp_path) as run:
        run.stage("a.bin", b"x")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"diag": {"loss": [1.0, float("nan")]}}, r"report\['diag'\]\['loss'\]\[1\] is nan"),
        ({"ratio": float("inf")}, r"report\['ratio'\] is inf"),
        ({"rows": [{"x": (0, -float("inf"))}]}, r"report\['rows'\]\[0\]\['x'\]\[1\] is -inf"),
    ],
)
def test_nonfinite_report_is_refused_before_any_rename(tmp_path, monkeypatch, bad, where):
    commit_set(tmp_path, OLD, "old")
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append(b), real_replace(a, b)))
    with RunOutput.open(tmp_path, overwrite=True) as run:
        for name, blob in NEW.items():
            run.stage(name, blob)
        with pytest.raises(NonFiniteError, match=where):
            run.commit({"tag": "new", **bad})
        assert sorted(run.staged) == sorted(NEW)  # still staged: the caller may fix and retry
    assert replaced == []
    assert tmp_files(tmp_path) == [] and not (tmp_path / JOURNAL).exists()
    assert_set(tmp_path, OLD, NEW)


def test_unserializable_report_is_refused_before_any_write(tmp_path):
    with RunOutput.open(tmp_path) as run:
        run.stage("a.bin", b"x")
        with pytest.raises(TypeError, match="cannot be written as JSON"):
            run.commit({"x": object()})
    assert os.listdir(tmp_path) == []


def test_read_run_finds_corrupt_missing_and_foreign_files(tmp_path):
    commit_set(tmp_path, NEW, "new")
    p = tmp_path / "b.bin"
    where = re.escape(str(p))
    p.write_bytes(b"B" * 199 + b"C")
    with pytest.raises(CorruptFileError, match=rf"^{where}: SHA-256 differs"):
        read_run(tmp_path)
    p.write_bytes(b"B" * 150)
    with pytest.raises(CorruptFileError, match=rf"^{where}: 150 bytes, report\.json lists 200"):
        read_run(tmp_path)
    p.unlink()
    with pytest.raises(CorruptFileError, match=rf"^{where}: listed in report\.json but missing"):
        read_run(tmp_path)
    report = json.loads((tmp_path / REPORT).read_bytes())
    report["files"]["../escape"] = {"bytes": 0, "sha256": ""}
    (tmp_path / REPORT).write_bytes(json.dumps(report).encode())
    with pytest.raises(CorruptFileError, match=r"invalid output file name '\.\./escape'"):
        read_run(tmp_path)
    (tmp_path / REPORT).write_bytes(b"[1, 2")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        read_run(tmp_path)
    (tmp_path / REPORT).unlink()
    with pytest.raises(OutputError, match="holds no run"):
        read_run(tmp_path)


def test_a_tampered_journal_renames_nothing(tmp_path):
    commit_set(tmp_path, OLD, "old")
    (tmp_path / "victim").write_bytes(b"keep me")
    journal = {"format": "compressopt-commit", "version": 1, "run_id": "x", "delete": [],
               "renames": [{"from": "victim", "to": "a.bin", "bytes": 7, "sha256": "0"}]}
    (tmp_path / JOURNAL).write_bytes(json.dumps(journal).encode())
    with pytest.raises(CorruptFileError, match="is not of a staged file"):
        read_run(tmp_path)
    assert (tmp_path / "victim").read_bytes() == b"keep me"
    assert (tmp_path / "a.bin").read_bytes() == OLD["a.bin"]


def test_open_removes_temporary_files_of_dead_processes_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    mine = f".a.bin.tmp-{os.getpid()}"
    for name in (f".a.bin.tmp-{dead_pid}", f".{JOURNAL}.tmp-{dead_pid}", mine, "a.tmp-1"):
        (tmp_path / name).write_bytes(b"x")
    RunOutput.open(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([mine, "a.tmp-1"])


# --------------------------------------------------------------------------- roll forward

N_RENAMES = len(NEW) + 1  # the staged files, then report.json


class CountingFailure:
    """Replaces an os function; the call number `fail_at` (1-based) raises OSError(EIO)."""

    def __init__(self, real, fail_at, only=lambda *a: True):
        self.real, self.fail_at, self.only, self.calls = real, fail_at, only, 0

    def __call__(self, *args, **kw):
        if self.only(*args):
            self.calls += 1
            if self.calls == self.fail_at:
                raise OSError(errno.EIO, "Input/output error (injected)")
        return self.real(*args, **kw)


def interrupted_commit(out: Path, monkeypatch, fn: str, failure: CountingFailure,
                       match: str = "commit to .* interrupted") -> bytes:
    """Commit OLD, then NEW with ``os.<fn>`` replaced by `failure`; returns OLD's report."""
    commit_set(out, OLD, "old")
    old_report = (out / REPORT).read_bytes()
    monkeypatch.setattr(os, fn, failure)
    with RunOutput.open(out, overwrite=True) as run:
        for name, blob in NEW.items():
            run.stage(name, blob)
        with pytest.raises(OutputError, match=match):
            run.commit({"tag": "new"})
    monkeypatch.undo()
    return old_report


@pytest.mark.parametrize("k", range(-1, N_RENAMES))
def test_a_commit_stopped_after_k_renames_is_rolled_forward(tmp_path, monkeypatch, k):
    """k = -1: the journal's own rename fails (call 1); k >= 0: the journal and k renames
    are done, the (k+1)-th fails."""
    match = r"/\.commit\.json: Input/output error" if k < 0 else "commit to .* interrupted"
    old_report = interrupted_commit(
        tmp_path, monkeypatch, "replace", CountingFailure(os.replace, k + 2), match
    )
    assert (tmp_path / REPORT).read_bytes() == old_report  # report.json is renamed last
    if k < 0:
        assert not (tmp_path / JOURNAL).exists() and tmp_files(tmp_path) == []
        assert_set(tmp_path, OLD, NEW)
        return
    assert (tmp_path / JOURNAL).exists()
    done = sorted(NEW)[:k]  # the renames already done: new content beside the old report
    assert all((tmp_path / n).read_bytes() == NEW[n] for n in done)
    first = assert_set(tmp_path, NEW, OLD)
    assert first["tag"] == "new" and not (tmp_path / JOURNAL).exists()
    assert tmp_files(tmp_path) == []
    assert assert_set(tmp_path, NEW, OLD) == first  # idempotent


def test_rolling_forward_twice_is_idempotent(tmp_path, monkeypatch):
    """The first roll-forward itself stops after one rename; the second completes it."""
    real_replace = os.replace
    interrupted_commit(tmp_path, monkeypatch, "replace", CountingFailure(real_replace, 3))
    monkeypatch.setattr(os, "replace", CountingFailure(real_replace, 2))
    with pytest.raises(OutputError, match="cannot complete the interrupted commit"):
        read_run(tmp_path)
    monkeypatch.undo()
    assert (tmp_path / JOURNAL).exists()
    RunOutput.open(tmp_path, overwrite=True)  # open rolls forward too
    assert not (tmp_path / JOURNAL).exists()
    assert_set(tmp_path, NEW, OLD)


def test_a_journal_whose_staged_file_is_gone_is_not_completed(tmp_path, monkeypatch):
    interrupted_commit(tmp_path, monkeypatch, "replace", CountingFailure(os.replace, 2))
    (tmp_path / f".b.bin.tmp-{os.getpid()}").unlink()  # b.bin still holds the old content
    with pytest.raises(CorruptFileError, match=r"b\.bin: an interrupted commit cannot be"):
        read_run(tmp_path)
    assert (tmp_path / JOURNAL).exists()  # kept for a human to look at
    assert json.loads((tmp_path / REPORT).read_bytes())["tag"] == "old"


def test_a_commit_stopped_while_deleting_the_old_set_is_rolled_forward(tmp_path, monkeypatch):
    only_old = CountingFailure(os.unlink, 1, only=lambda p, *a: os.fspath(p).endswith("old.bin"))
    interrupted_commit(tmp_path, monkeypatch, "unlink", only_old)
    assert (tmp_path / "old.bin").exists() and (tmp_path / JOURNAL).exists()
    assert_set(tmp_path, NEW, OLD)
    assert not (tmp_path / JOURNAL).exists()


# --------------------------------------------------------------------------- real processes

CHILD = """
import os, sys
from compressopt.errors import OutputError
from compressopt.storage.atomic import RunOutput, ignore_sigxfsz

out, src, limit, barrier = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"

def tick(*what):  # announce the next action; with the barrier, wait for the parent's "go"
    print("tick", *what, flush=True)
    if barrier:
        sys.stdin.readline()

real_replace, real_unlink = os.replace, os.unlink
def replace(a, b):
    tick("replace", os.path.basename(b), os.stat(a).st_size)
    real_replace(a, b)
def unlink(p, *args, **kw):
    tick("unlink", os.path.basename(p))
    real_unlink(p, *args, **kw)
os.replace, os.unlink = replace, unlink

def in_two_writes(blob):
    def write(f):
        half = len(blob) // 2
        for part in (blob[:half], blob[half:]):
            tick("write", len(part))
            f.write(part)
            f.flush()
    return write

ignore_sigxfsz()
if limit >= 0:
    import resource
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    with RunOutput.open(out, overwrite=True) as run:
        for name in sorted(os.listdir(src)):
            with open(os.path.join(src, name), "rb") as f:
                run.stage(name, in_two_writes(f.read()))
        run.commit({"tag": "new"})
except OutputError as e:
    print(e, file=sys.stderr)
    sys.exit(3)
"""


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}


def child_args(out: Path, src: Path, limit: int = -1, barrier: bool = False) -> list[str]:
    return [sys.executable, "-c", CHILD, str(out), str(src), str(limit), str(int(barrier))]


def run_child(out: Path, src: Path, limit: int = -1) -> subprocess.CompletedProcess:
    return subprocess.run(child_args(out, src, limit), capture_output=True, text=True,
                          env=child_env(), timeout=60)


def ticks(stdout: str) -> list[list[str]]:
    return [line.split()[1:] for line in stdout.splitlines() if line.startswith("tick ")]


def same_step(a: list[str], b: list[str]) -> bool:  # temporary names differ by their pid
    return [re.sub(r"tmp-[0-9]+", "tmp", w) for w in a[:2]] == [
        re.sub(r"tmp-[0-9]+", "tmp", w) for w in b[:2]
    ]


@pytest.fixture
def new_src(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name, blob in NEW.items():
        (src / name).write_bytes(blob)
    return src


def fresh_old_set(out: Path) -> Path:
    if out.exists():
        for p in out.iterdir():
            p.unlink()
    commit_set(out, OLD, "old")
    return out


def check_after_crash(out: Path) -> str:
    """report.json parses as it is; read_run gives a complete set; the next open leaves no
    temporary file and no journal. Returns the surviving set's tag."""
    assert json.loads((out / REPORT).read_bytes())["tag"] in ("old", "new")
    tag = read_run(out)["tag"]
    assert_set(out, *((OLD, NEW) if tag == "old" else (NEW, OLD)))
    RunOutput.open(out, overwrite=True)
    assert tmp_files(out) == [] and not (out / JOURNAL).exists(), os.listdir(out)
    return tag


def test_rlimit_fsize_failing_each_file_in_turn_keeps_the_old_set(tmp_path, new_src):
    # the size of every file the commit writes, in order: staged files, report, journal
    ref = run_child(fresh_old_set(tmp_path / "ref"), new_src)
    assert ref.returncode == 0, ref.stderr
    renamed = {t[1]: int(t[2]) for t in ticks(ref.stdout) if t[0] == "replace"}
    sizes = [(name, renamed[name]) for name in [*sorted(NEW), REPORT, JOURNAL]]
    assert [s for _, s in sizes] == sorted({s for _, s in sizes}), sizes  # strictly growing
    out = tmp_path / "out"
    previous = 0
    for name, size in sizes:
        limit = (previous + size) // 2  # every earlier file fits, this one does not
        previous = size
        r = run_child(fresh_old_set(out), new_src, limit)
        assert r.returncode == 3, (name, r.returncode, r.stderr)
        assert r.stderr.strip() == (
            f"cannot write {out / name}: file size limit exceeded (RLIMIT_FSIZE)"
        )
        assert tmp_files(out) == [] and not (out / JOURNAL).exists()  # cleaned up at once
        assert check_after_crash(out) == "old"
    r = run_child(fresh_old_set(out), new_src, 2 * previous)
    assert r.returncode == 0, r.stderr
    assert check_after_crash(out) == "new"


def test_sigkill_at_every_step_leaves_the_old_or_the_new_set(tmp_path, new_src):
    ref = run_child(fresh_old_set(tmp_path / "ref"), new_src)
    assert ref.returncode == 0, ref.stderr
    steps = ticks(ref.stdout)
    journal_step = steps.index(next(t for t in steps if t[:2] == ["replace", JOURNAL]))
    assert len(steps) > journal_step + N_RENAMES
    out = tmp_path / "out"
    for j, step in enumerate(steps):
        for go in (False, True):  # kill before action j, or at a random moment after it began
            fresh_old_set(out)
            child = subprocess.Popen(child_args(out, new_src, barrier=True), env=child_env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
            for i in range(j + 1):
                assert same_step(child.stdout.readline().split()[1:], steps[i])
                if i < j or go:
                    child.stdin.write("go\n")
                    child.stdin.flush()
            if go:
                time.sleep(random.Random(j).uniform(0, 0.002))
            child.kill()
            child.communicate(timeout=60)
            assert child.returncode == -signal.SIGKILL
            tag = check_after_crash(out)
            if j < journal_step or (j == journal_step and not go):
                assert tag == "old", (j, step, go)
            elif j > journal_step:
                assert tag == "new", (j, step, go)
