"""The command-line half of issue 14's bad-input catalogue (the API half is
tests/test_bad_input_api.py).

Every case runs ``compressopt ...`` in this process (:func:`compressopt.cli.main`) and asserts
its exact outcome: the exit code, a fragment of the one line on stderr, no traceback, no
advice to load anything with pickle, and OUT as it was (absent if it was absent, the same
bytes if it held something) -- or, for a legal degenerate request, a completed run whose
report :func:`~compressopt.storage.atomic.read_run` accepts, checked for what was asked.

Families (one test function each, ids in brackets):

==============================  ================================================================
issue                           every command line of issue 14 (and of issue 10's bad files)
                                [issue-...]; the legal ones complete [test_legal_...]
extreme values                  finite values beyond what the arithmetic holds (refused before
                                training), and legal values whose training diverges (one line)
option values                   every option's bad values on the command line, generated from
                                the options' fields: NaN, ±inf, out of range, wrong type, bad
                                choice, a value given to a flag (the API path of the same
                                values: tests/test_options.py)
contradictions                  options that contradict each other or the method
data files                      MNIST as IDX files (gzip bombs, bad headers, labels -1 and 10,
                                empty splits, wrong types), the user's .npz (not a zip, object
                                arrays, NaN, ...), and model factories
reference files                 a pickle payload (never run), torch pickles of objects, another
                                model's safetensors, truncated, empty, a folder
model files                     ``inspect``/``evaluate``/``export`` on a model.cpz truncated at
                                every 10 %, a flipped byte, a wrong format version, another
                                model's file; ``plot`` on a broken OUT
configs                         ``--config`` TOML: unknown key, wrong type, a table, out of
                                range, not TOML, not UTF-8; ``--recipe``
OUT                             '', a file, below a file, unwritable, too long, another run's
                                report, an unreadable report, a broken commit journal; disk
                                full during the write (the previous run kept)
devices                         meta, xpu, cuda without CUDA, mps, malformed names
memory                          the C step's estimate above the memory available: refused
                                before training, naming the option (and the heavy command
                                lines' peak memory below 2 GB, measured in subprocesses)
==============================  ================================================================

Elsewhere: SIGINT/SIGTERM (tests/test_cli_signals.py), RLIMIT_FSIZE on each output file and
SIGKILL during each write (tests/test_cli_faults.py), unexpected errors and missing modules
(tests/test_cli_errors.py).

The runs that complete use a 16-12-2 network on an 80-example .npz so that the module stays
fast; the issue's digits command lines are the memory test's (@slow).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import math
import os
import pickle
import shlex
import shutil
import subprocess
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import torch
from safetensors.torch import save_file

import compressopt.dnn.api as api
import compressopt.storage.atomic as atomic
from compressopt.cli import main
from compressopt.dnn.checkpoint import CHECKPOINT, read_checkpoint
from compressopt.options import METHOD_OPTIONS, JobConfig, option_fields
from compressopt.storage.atomic import JOURNAL, RunOutput, read_run
from compressopt.storage.container import write_safetensors
from compressopt.storage.model_file import _container

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("compress", "inspect", "evaluate", "export", "plot", "recipes")

#: the shortest run: 1 reference epoch, 1 iteration of 1 epoch
SHORT = "--pretrain-epochs 1 --steps 1 --epochs 1 --first-epochs 1 --no-plots --quiet"
#: the tiny user model and data (see the `files` fixture)
USER = "--model {F}/nets.py:net --dataset {F}/data.npz " + SHORT
#: MNIST-format data in a folder of the fixture
MNIST = "compress --dataset mnist --model lenet300 " + SHORT + " --data-dir {F}/mnist/"

# ------------------------------------------------------------------------------ the runner


@dataclass(frozen=True)
class Case:
    """A command line (shell words; ``{F}``: the fixture's files, ``{OUT}``: this test's
    output folder, ``{TMP}``: its temporary folder) and its expected refusal: exit code and
    fragments of the one line on stderr. ``out``: the state OUT starts in (a key of
    :data:`OUT_STATES`)."""

    argv: str
    rc: int
    match: tuple[str, ...]
    out: str = "absent"
    left: str = "unchanged"  #: or "empty": the run created OUT and left no file in it


def case(argv: str, rc: int, *match: str, out: str = "absent", left: str = "unchanged",
         id: str | None = None) -> pytest.param:  # type: ignore[type-arg]
    return pytest.param(Case(argv, rc, match, out, left), id=id or _id(argv))


def _id(argv: str) -> str:
    """The distinctive tail of a command line (the shared settings left out)."""
    for common in (USER, MNIST, SHORT, "compress "):
        argv = argv.replace(common, "")
    return " ".join(argv.split())[:70] or "defaults"


def snapshot(out: Path) -> dict[str, bytes] | None:
    """OUT's files and their bytes (None: OUT does not exist)."""
    if not out.exists():
        return None
    if not out.is_dir():
        return {"": out.read_bytes()}
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def argv_of(c: Case, files: Path, out: Path, tmp: Path) -> list[str]:
    words = [w.format(F=files, OUT=out, TMP=tmp) for w in shlex.split(c.argv)]
    if words[0] == "compress" and not any(w in ("--out", "--config") or w.startswith("--out=")
                                          for w in words):
        words += ["--out", str(out)]
    return words


def one_line(err: str, command: str) -> str:
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("compressopt"), err  # "compressopt COMMAND:" (usage: "compressopt:")
    assert "Traceback" not in err and "weights_only" not in err, err
    assert "allow_pickle" not in err and "pickle=True" not in err, err
    return err


def check_refused(c: Case, files: Path, tmp: Path, capsys, monkeypatch) -> str:
    monkeypatch.chdir(tmp)  # the default OUT (runs/compress), were it used, lands in tmp
    monkeypatch.delenv("COMPRESSOPT_MNIST_DIR", raising=False)
    out = tmp / "out"
    OUT_STATES[c.out](out, files)
    before = snapshot(out)
    argv = argv_of(c, files, out, tmp)
    rc = main(argv)
    _, err = capsys.readouterr()
    assert rc == c.rc, err
    one_line(err, argv[0])
    for m in c.match:
        assert m in err, (m, err)
    if c.left == "empty":  # found during training: OUT was created, nothing left in it
        assert before is None and out.is_dir() and list(out.iterdir()) == []
    else:
        assert snapshot(out) == before  # OUT as it was: absent, or the same bytes
    return err


# ------------------------------------------------------------------------------ OUT states


def _absent(out: Path, files: Path) -> None:
    pass


def _another_run(out: Path, files: Path) -> None:
    shutil.copytree(files / "run", out)


def _a_file(out: Path, files: Path) -> None:
    out.write_text("not a folder\n")


def _garbage_report(out: Path, files: Path) -> None:
    out.mkdir()
    (out / "report.json").write_text('{"files": {"model.cpz": ')


def _report_of_nothing(out: Path, files: Path) -> None:
    with RunOutput.open(out) as run:  # a complete run of another job: one report, no file
        run.commit({"note": "another run"})


def _broken_journal(out: Path, files: Path) -> None:
    out.mkdir()
    journal = {"format": "compressopt-commit", "version": 1, "run_id": "x",
               "renames": [{"from": ".model.cpz.tmp-1", "to": "model.cpz", "bytes": 3,
                            "sha256": "0" * 64}], "delete": []}
    (out / JOURNAL).write_text(json.dumps(journal))


def _empty_folder(out: Path, files: Path) -> None:
    out.mkdir()


OUT_STATES = {"absent": _absent, "another run": _another_run, "a file": _a_file,
              "garbage report": _garbage_report, "report of nothing": _report_of_nothing,
              "broken journal": _broken_journal, "empty": _empty_folder}

# ------------------------------------------------------------------------------ the files

NETS = '''
import math

from torch import nn


def net(input_shape, num_classes):  # 16-12-2 on the 4x4 inputs of data.npz
    width = math.prod(input_shape)
    return nn.Sequential(nn.Flatten(), nn.Linear(width, 12), nn.ReLU(), nn.Linear(12, num_classes))


def not_a_model():
    return 3


def raises(input_shape, num_classes):
    raise RuntimeError("the factory failed\\non two lines")


def wrong_size(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(99, num_classes))


def wrong_classes(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 5))


def too_many(a, b, c, d):
    return nn.Linear(16, 2)
'''


def idx(code: int, a: np.ndarray) -> bytes:
    """An IDX file: magic 0 0 code ndim, big-endian sizes, big-endian values."""
    dt = {0x08: ">u1", 0x09: ">i1", 0x0D: ">f4"}[code]
    head = bytes([0, 0, code, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
    return head + np.ascontiguousarray(a, dtype=dt).tobytes()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zero_members(gib: float) -> bytes:
    """A gzip stream of `gib` GiB of zero bytes in ~1 KB members of 1 MiB each (~1000:1)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = c.compress(bytes(1 << 20)) + c.flush()
    return member * int(gib * 1024)


MNIST_NAMES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def mnist_files(n_train: int = 64, n_test: int = 32, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = MNIST_NAMES[split]
        out[images] = gz(idx(0x08, rng.integers(0, 256, (n, 28, 28))))
        out[labels] = gz(idx(0x08, rng.integers(0, 10, n)))
    return out


TRAIN_X, TRAIN_Y = MNIST_NAMES["train"]
TEST_X, TEST_Y = MNIST_NAMES["test"]


def mnist_variants() -> dict[str, dict[str, bytes | None]]:
    """name -> the files that differ from the valid folder (None: the file is missing)."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (64, 28, 28))
    lab = rng.integers(0, 10, 64)
    head_60k = idx(0x08, np.zeros((0, 28, 28)))[:4] + b"".join(
        s.to_bytes(4, "big") for s in (60000, 28, 28))
    big = idx(0x08, np.zeros((0, 28, 28)))[:4] + b"".join(
        s.to_bytes(4, "big") for s in (3_000_000, 28, 28))
    return {
        # the issue's 12.8 MB gzip bomb: a valid 60000-image header, then 12 GiB of zeros
        "bomb": {TRAIN_X: gz(head_60k + bytes(60000 * 784)) + zero_members(12),
                 TRAIN_Y: gz(idx(0x08, np.zeros(60000)))},
        # a header that promises more than the file can hold, or more than 2 GiB
        "header-lies": {TRAIN_X: gz(head_60k[:4] + (2**31).to_bytes(4, "big") + bytes(8)),
                        TRAIN_Y: gz(idx(0x08, np.zeros(0))[:4] + (2**31).to_bytes(4, "big"))},
        "header-2gib": {TRAIN_X: gz(big) + zero_members(2.5),
                        TRAIN_Y: gz(idx(0x08, np.zeros(0))[:4] + (3_000_000).to_bytes(4, "big"))},
        "bad-magic": {TRAIN_X: gz(b"\x08\x03\x00\x00" + idx(0x08, img)[4:])},
        "unknown-type": {TRAIN_X: gz(b"\x00\x00\x07\x03" + idx(0x08, img)[4:])},
        "short-header": {TRAIN_X: gz(idx(0x08, img)[:10])},
        "empty-file": {TRAIN_X: gz(b"")},
        "not-gzip": {TRAIN_X: idx(0x08, img)},
        "truncated": {TRAIN_X: gz(idx(0x08, img)[:-784])},
        "trailing": {TRAIN_X: gz(idx(0x08, img) + b"\x00")},
        "2d-images": {TRAIN_X: gz(idx(0x08, img.reshape(64, 784)))},
        "count-mismatch": {TRAIN_Y: gz(idx(0x08, lab[:63]))},
        "labels-minus-1": {TRAIN_Y: gz(idx(0x09, np.r_[lab[:63], -1]))},
        "labels-10": {TEST_Y: gz(idx(0x08, np.r_[lab[:31], 10]))},
        "empty-test": {TEST_X: gz(idx(0x08, np.zeros((0, 28, 28)))),
                       TEST_Y: gz(idx(0x08, np.zeros(0)))},
        "empty-train": {TRAIN_X: gz(idx(0x08, np.zeros((0, 28, 28)))),
                        TRAIN_Y: gz(idx(0x08, np.zeros(0)))},
        "float-images": {TRAIN_X: gz(idx(0x0D, img / 255))},
        "float-labels": {TRAIN_Y: gz(idx(0x0D, lab))},
        "missing-labels": {TEST_Y: None},
        "constant-images": {TRAIN_X: gz(idx(0x08, np.zeros((64, 28, 28)))),
                            TEST_X: gz(idx(0x08, np.zeros((32, 28, 28))))},
    }


def npz_variants(x: np.ndarray, y: np.ndarray) -> dict[str, dict[str, np.ndarray] | bytes]:
    """name -> the arrays of a data file (or its raw bytes)."""
    ok = {"x_train": x[:60], "y_train": y[:60], "x_test": x[60:], "y_test": y[60:]}
    return {
        "not-zip": b"x_train,y_train\n1,2\n",
        "object": {**ok, "y_test": np.array([{"a": 1}] * 20, dtype=object)},
        "missing": {k: v for k, v in ok.items() if k != "y_test"},
        "nan": {**ok, "x_train": np.where(np.arange(60)[:, None, None, None] == 3, np.nan,
                                          x[:60])},
        "inf": {**ok, "x_test": np.full_like(x[60:], np.inf)},
        "float64-huge": {**ok, "x_train": x[:60].astype(np.float64) * 1e300},
        "float-labels": {**ok, "y_train": y[:60].astype(np.float32)},
        "negative-labels": {**ok, "y_test": np.r_[y[60:79], -1]},
        "2d-labels": {**ok, "y_train": y[:60].reshape(30, 2)},
        "length-mismatch": {**ok, "y_train": y[:59]},
        "empty-train": {**ok, "x_train": x[:0], "y_train": y[:0]},
        "empty-test": {**ok, "x_test": x[:0], "y_test": y[:0]},
        "bool-x": {**ok, "x_train": x[:60] > 0, "x_test": x[60:] > 0},
        "scalar-x": {**ok, "x_train": np.float32(1.0)},
        "mixed-kinds": {**ok, "x_test": np.zeros((20, 1, 4, 4), dtype=np.int64)},
    }


class Payload:
    """A pickle that creates a file when unpickled: it must never run."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class Opaque:
    """An arbitrary object in a torch checkpoint (torch.save pickles it)."""


def forged(data: bytes, edit) -> bytes:
    """A model.cpz whose JSON header is `edit(header)`, with a valid checksum."""
    text, _, payload = _container(data)
    header = edit(json.loads(text))
    new = json.dumps(header, separators=(",", ":"))
    digest = hashlib.sha256(new.encode() + bytes(payload)).hexdigest()
    return write_safetensors({"payload": np.frombuffer(bytes(payload), np.uint8)},
                             {"compressopt": new, "sha256": digest})


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Every file of the catalogue, and one real run (``run/``) of the tiny model."""
    d = tmp_path_factory.mktemp("catalogue")
    (d / "nets.py").write_text(NETS)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 1, 4, 4)).astype(np.float32)
    y = (x[:, 0, 0, :2].sum(1) > 0).astype(np.int64)
    np.savez(d / "data.npz", x_train=x[:60], y_train=y[:60], x_test=x[60:], y_test=y[60:])
    npz = d / "npz"
    npz.mkdir()
    for name, content in npz_variants(x, y).items():
        if isinstance(content, bytes):
            (npz / f"{name}.npz").write_bytes(content)
        else:
            with open(npz / f"{name}.npz", "wb") as f:
                np.savez(f, **content)
    (npz / "data.csv").write_text("1,2\n")
    (npz / "folder.npz").mkdir()

    good = mnist_files()
    (d / "mnist").mkdir()
    for name, data in good.items():
        (d / "mnist" / name).write_bytes(data)
    for variant, changed in mnist_variants().items():
        folder = d / "mnist-variants" / variant
        folder.mkdir(parents=True)
        for name, data in {**good, **changed}.items():
            if data is not None:
                (folder / name).write_bytes(data)

    # references: the tiny model's own, and bad ones
    torch.manual_seed(0)
    ns: dict = {}
    exec(compile(NETS, "nets.py", "exec"), ns)
    state = ns["net"]((1, 4, 4), 2).state_dict()
    ref = d / "refs"
    ref.mkdir()
    save_file(state, ref / "ok.safetensors")
    data = (ref / "ok.safetensors").read_bytes()
    (ref / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (ref / "empty.safetensors").write_bytes(b"")
    (ref / "garbage.pt").write_bytes(os.urandom(256))
    (ref / "text.json").write_text('{"1.weight": [1, 2]}')
    (ref / "payload.pt").write_bytes(pickle.dumps(Payload(str(d / "PWNED"))))
    torch.save({**state, "extra": Opaque()}, ref / "object.pt")
    torch.save(list(state.values()), ref / "list.pt")
    save_file({"x": torch.zeros(3)}, ref / "other-names.safetensors")
    save_file({**state, "1.weight": torch.zeros(5, 5)}, ref / "other-shapes.safetensors")
    save_file({k: torch.full_like(v, math.nan) for k, v in state.items()},
              ref / "nan.safetensors")
    (ref / "folder.safetensors").mkdir()

    # one real run: its OUT, and its model.cpz cut, flipped and forged
    rc = main(["compress", *shlex.split(USER.format(F=d)), "--prune", "0.3", "--quantize",
               "4", "--out", str(d / "run")])
    assert rc == 0
    cpz = (d / "run" / "model.cpz").read_bytes()
    bad = d / "cpz"
    bad.mkdir()
    for tenth in range(10):
        (bad / f"cut-{tenth}0.cpz").write_bytes(cpz[: len(cpz) * tenth // 10])
    (bad / "cut-last-byte.cpz").write_bytes(cpz[:-1])
    for where, at in (("header", 40), ("payload", len(cpz) - 10)):
        flipped = bytearray(cpz)
        flipped[at] ^= 0x01
        (bad / f"flip-{where}.cpz").write_bytes(bytes(flipped))
    (bad / "version-2.cpz").write_bytes(forged(cpz, lambda h: {**h, "version": 2}))
    (bad / "format.cpz").write_bytes(forged(cpz, lambda h: {**h, "format": "other"}))
    (bad / "other-model.cpz").write_bytes(forged(cpz, lambda h: {
        **h, "metadata": {**h["metadata"], "model": "lenet300", "dataset": "digits"}}))
    (bad / "no-model.cpz").write_bytes(forged(cpz, lambda h: {**h, "metadata": {}}))
    (bad / "safetensors.cpz").write_bytes(data)  # a reference, not a model file
    (bad / "text.cpz").write_text("hello\n")
    (bad / "folder.cpz").mkdir()

    cfg = d / "configs"
    cfg.mkdir()
    for name, text in CONFIGS.items():
        (cfg / f"{name}.toml").write_bytes(text if isinstance(text, bytes) else text.encode())
    (cfg / "folder.toml").mkdir()
    return d


CONFIGS: dict[str, str | bytes] = {
    "unknown-key": "prune = 0.2\nstepz = 3\n",
    "string-for-int": 'steps = "3"\n',
    "float-for-int": "steps = 3.0\n",
    "bool-for-float": "prune = true\n",
    "int-for-string": "method = 3\n",
    "scalar-for-list": 'include = "fc*"\n',
    "list-for-scalar": "prune = [0.2]\n",
    "bad-list-element": 'method = "admm"\nbudget_ratio = 10\nbit_candidates = [1, 2.5]\n',
    "table": "[train]\nsteps = 3\n",
    "out-of-range": "prune = 1.5\n",
    "inf": "mu0 = inf\n",
    "nan": "lr = nan\n",
    "another-method": 'method = "lc"\nrho = 0.1\n',
    "empty-out": 'out = ""\n',
    "not-toml": "steps = [\n",
    "not-utf8": b"steps = 3\n# \xff\xfe\n",
}

# ------------------------------------------------------------------------------ families

ISSUE = [
    # "Bad values found only at the end": refused before anything runs
    case("compress --method admm --budget-ratio inf", 2,
         "--budget-ratio must be a finite number > 0, got inf", id="issue-budget-ratio-inf"),
    case("compress --method slr --slr-M inf", 2, "--slr-M must be a finite number > 1, got inf",
         id="issue-slr-M-inf"),
    case("compress --method apgdssm --ctl1-a inf", 2,
         "--ctl1-a must be a finite number > 0, got inf", id="issue-ctl1-a-inf"),
    case("compress --method apgdssm --milestones 3 --lambda1-factors 1 nan", 2,
         "--lambda1-factors takes values that are each a finite number >= 0, got nan",
         id="issue-lambda1-factors-nan"),
    case("compress --method slr --s0 inf", 2, "--s0 must be a finite number > 0, got inf",
         id="issue-s0-inf"),
    case("compress " + SHORT + " --out /sys/compressopt-out", 1,
         "--out /sys/compressopt-out is not writable: permission denied",
         id="issue-unwritable-out"),
    # "Unbounded memory": refused before training (--bits 31 completes: test_legal_...)
    case("compress " + SHORT + " --quantize 8192", 2,
         "--quantize 8192 exceeds the 1,000 weights of fc3.weight", id="issue-quantize-8192"),
    case("compress " + SHORT + " --quantize 1000000000000", 2,
         "--quantize 1000000000000 exceeds the 1,000 weights of fc3.weight",
         id="issue-quantize-1e12"),
    case(MNIST.replace("/mnist/", "/mnist-variants/bomb/"), 1, "has trailing bytes",
         id="issue-gzip-bomb"),
    # "Tracebacks"
    case("compress " + SHORT + " --device meta", 2, "--device meta: a meta tensor holds no data",
         id="issue-device-meta"),
    case("compress " + SHORT + " --device xpu", 2, "--device xpu: xpu is not available",
         id="issue-device-xpu"),
    case(MNIST.replace("/mnist/", "/mnist-variants/labels-minus-1/"), 1,
         "MNIST train labels must be 0..9, found -1", id="issue-labels-minus-1"),
    case("compress " + USER + " --reference {F}/refs/object.pt", 1,
         "not a readable reference model: expected a .safetensors file or a torch state_dict "
         "of plain tensors", id="issue-rejected-pickle"),
    case(MNIST.replace("/mnist/", "/mnist-variants/empty-test/"), 1,
         "MNIST test split is empty (0 images)", id="issue-empty-test-split"),
    # "Half-written or mixed outputs"
    case("compress " + SHORT + " --prune 0.5", 1,
         "already holds the report of another run; use --overwrite", out="another run",
         id="issue-existing-report"),
    case("compress " + SHORT + " --out ''", 2, "--out must name a directory, got ''",
         id="issue-empty-out"),
    # issue 10's bad files
    case("inspect {F}/cpz/cut-50.cpz", 1, "compressopt inspect: error: ", id="issue10-truncated"),
    case("evaluate {F}/cpz/flip-payload.cpz", 1, "checksum mismatch: the file is corrupted",
         id="issue10-flipped-byte"),
    case("export {F}/cpz/version-2.cpz --dense {TMP}/d.safetensors", 1,
         "model file format version 2: this compressopt", id="issue10-wrong-version"),
    case("evaluate {F}/cpz/other-model.cpz", 1, "the file holds another model (lenet300)",
         id="issue10-another-model"),
]


@pytest.mark.parametrize("c", ISSUE)
def test_issue_cases(c, files, tmp_path, capsys, monkeypatch):
    check_refused(c, files, tmp_path, capsys, monkeypatch)


def test_no_pickle_payload_ever_runs(files, tmp_path, capsys):
    for ref in ("payload.pt", "object.pt"):
        rc = main(["compress", *shlex.split(USER.format(F=files)), "--reference",
                   str(files / "refs" / ref), "--out", str(tmp_path / "o")])
        err = one_line(capsys.readouterr().err, "compress")
        assert rc == 1 and "not a readable reference model" in err
        assert not (files / "PWNED").exists()


# -- every option's bad values, generated from the fields ------------------------------------

#: flags a method option needs beside its own (the joint ADMM is selected by a budget)
_SELECT = {"JointADMMOptions": "--method admm --budget-ratio 10"}
#: options with a family of their own (files, devices, OUT, the method)
_OWN_FAMILY = {"model", "dataset", "data_dir", "device", "reference", "out", "method",
               "include", "exclude"}


def _fmt(v: float | int) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def _option_cases() -> list:
    out = []
    classes = [JobConfig, *{c for cs in METHOD_OPTIONS.values() for c in cs}]
    seen = set()
    for cls in sorted(classes, key=lambda c: c.__name__):
        # SHORT first (the flag under test comes later and wins): were a bad value accepted,
        # the run it starts would be short
        if cls is JobConfig:
            base = f"compress {SHORT}"
        else:
            base = f"compress {SHORT} " + _SELECT.get(cls.__name__, f"--method {cls.method}")
        for name, spec in option_fields(cls).items():
            if name in _OWN_FAMILY or spec.flag in seen or (
                    cls.__name__ == "JointADMMOptions" and name == "budget_ratio"):
                continue
            seen.add(spec.flag)
            k, i, flag = spec.kind, spec.info, spec.flag
            bad: list[tuple[str, str, int]] = []  # (value text, message fragment, rc)
            if k.base is bool:
                out.append(case(f"{base} {flag}=yes", 2, f"argument {flag}: ignored explicit "
                                "argument 'yes'", id=f"{flag}=yes"))
                continue
            if k.choices is not None:
                bad.append(("nonsense", f"argument {flag}: invalid choice: 'nonsense'", 2))
            elif k.base is float:
                what = "each " if k.seq else ""
                if i.finite:
                    bad.append(("nan", f"{what}a finite number", 2))
                    bad.append(("1e999", f"{what}a finite number", 2))
                bad.append(("half", f"argument {flag}: expected a number, got 'half'", 2))
                if i.low is not None:
                    v = i.low if i.low_open else math.nextafter(i.low, -math.inf)
                    bad.append((_fmt(float(v)), f"got {float(v)!r}", 2))
                if i.high is not None:
                    v = i.high if i.high_open else math.nextafter(i.high, math.inf)
                    bad.append((_fmt(float(v)), f"got {float(v)!r}", 2))
            elif k.base is int:
                bad.append(("1.5", f"argument {flag}: expected an integer, got '1.5'", 2))
                bad.append(("nan", f"argument {flag}: expected an integer, got 'nan'", 2))
                if i.low is not None:
                    v = int(i.low) if i.low_open else int(i.low) - 1
                    bad.append((str(v), f"got {v}", 2))
                if i.high is not None:
                    v = int(i.high) if i.high_open else int(i.high) + 1
                    bad.append((str(v), f"got {v}", 2))
            for text, frag, rc in bad:
                # a list option gets a good value first, unless argparse would read the bad
                # one as a flag (a leading "-"): then it alone, as --flag=VALUE
                seq = k.seq and not text.startswith("-")
                argv = f"{base} {flag} 1 {text}" if seq else f"{base} {flag}={text}"
                checks = (frag,) if frag.startswith("argument") else (
                    f"{flag} {'takes values that are' if k.seq else 'must be'} ", frag)
                out.append(case(argv, rc, *checks, id=f"{flag}={text}"))
    return out


OPTION_VALUES = _option_cases()


def test_option_values_cover_every_option():
    """Every option of every method appears in the generated family (those with a family of
    their own aside; --budget-ratio's bad values are the issue's and the joint ADMM's
    selector)."""
    covered = {p.id.split("=")[0] for p in OPTION_VALUES}
    every = {spec.flag for cls in [JobConfig, *{c for cs in METHOD_OPTIONS.values() for c in cs}]
             for name, spec in option_fields(cls).items() if name not in _OWN_FAMILY}
    assert every - covered == {"--budget-ratio"}
    assert len(OPTION_VALUES) >= 150


@pytest.mark.parametrize("c", OPTION_VALUES)
def test_option_values(c, files, tmp_path, capsys, monkeypatch):
    check_refused(c, files, tmp_path, capsys, monkeypatch)


# -- contradictions ---------------------------------------------------------------------------

CONTRADICTIONS = [
    case("compress --method lc --budget-ratio 10", 2,
         "--method lc does not take --budget-ratio (--method admm)"),
    case("compress --method admm --rho 0.1", 2, "--rho: options of the joint ADMM"),
    case("compress --method admm --finetune-epochs 1 --init-bits 2", 2,
         "--finetune-epochs, --init-bits: options of the joint ADMM"),
    case("compress --method admm --budget-ratio 2 --budget-bits 3", 2,
         "give one of --budget-bits and --budget-ratio"),
    case("compress --method admm --budget-ratio 2 --prune 0.5", 2,
         "choose the sparsity and the bit widths: drop --prune and --quantize"),
    case("compress --method admm --budget-bits 9 --quantize 4", 2,
         "choose the sparsity and the bit widths: drop --prune and --quantize"),
    case("compress --method slr --quantize 4", 2, "--method slr prunes: drop --quantize"),
    case("compress --method slr --bits 4", 2, "does not take --bits (--method apgdssm)"),
    case("compress --method apgdssm --prune 0.5", 2,
         "--method apgdssm quantizes to --bits m: drop --prune and --quantize"),
    case("compress --method apgdssm --lambda1-factors 1", 2,
         "--lambda1-factors needs --milestones"),
    case("compress --method apgdssm --milestones 4 2", 2, "--milestones must be increasing"),
    case("compress --method apgdssm --milestones 2 2", 2, "--milestones must be increasing"),
    case("compress --method apgdssm --lr-milestones 5 3", 2, "--lr-milestones must be increasing"),
    case("compress --method apgdssm --milestones 2 4 --beta-factors 1 2 3", 2,
         "--beta-factors needs 1 or 2 factors (one per milestone: they multiply up), got 3"),
    case("compress --method apgdssm --milestones 2 4 --per-interval-factors "
         "--beta-factors 1 2", 2, "--beta-factors needs 1 or 3 factors (one per interval"),
    case("compress --method apgdssm --lr-schedule cos", 2, "drop --lr-schedule and --warmup"),
    case("compress --method apgdssm --steps 3 --warmup 1", 2, "drop --lr-schedule and --warmup"),
    case("compress --method admm --budget-ratio 2 --bit-candidates", 2,
         "argument --bit-candidates: expected at least one argument"),
    case("compress --distill 1 --distill-phase finish", 2, "has no final retraining"),
    case("compress --steps 2 --warmup 2", 2, "--warmup must be in [0, --steps) = [0, 2), got 2"),
    case("compress --optimizer adam --heavy-ball", 2, "--heavy-ball is a kind of SGD momentum"),
    case("compress " + USER + " --target-accuracy 0.9", 2,
         "--target-accuracy needs a validation split (--val-split N)"),
    case("compress " + USER + " --val-split 60", 2,
         "--val-split 60 leaves no training example (60 in all)"),
    case("compress " + USER + " --quantize 25", 2,
         "--quantize 25 exceeds the 24 weights of 3.weight: choose K <= 24 or --exclude 3.weight"),
    case("compress " + USER + " --include 'nothing*'", 1,
         "pattern 'nothing*' matches no parameter of the model"),
    case("compress " + USER + " --exclude '*'", 1, "no parameter left to compress"),
    case("compress --recipe nope", 2, "--recipe: no recipe 'nope'"),
    case("compress --dataset mnist --data-dir {TMP}/none", 1, "MNIST directory not found"),
    case("compress --model vgg", 1, "vgg"),
    case("compress --dataset imagenet", 1, "imagenet"),
    case("compress --frobnicate", 2, "unrecognized arguments: --frobnicate"),
    case("compress --method sgd", 2, "argument --method: invalid choice: 'sgd'"),
    case("frobnicate", 2, "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("c", CONTRADICTIONS)
def test_contradictions(c, files, tmp_path, capsys, monkeypatch):
    check_refused(c, files, tmp_path, capsys, monkeypatch)


# -- finite but extreme values: refused when checkable, else one line when training diverges --

EXTREMES = [
    case("compress " + USER + " --steps 3 --mu-growth 1e300", 2,
         "--mu0 0.001 x --mu-growth 1e+300^2 (the penalty of the last of --steps 3) overflows"),
    case("compress " + USER + " --steps 3 --lr-decay 1e-300", 2,
         "--lstep-lr 0.05 x --lr-decay 1e-300^2 (the learning rate of the last of --steps 3) "
         "underflows to 0"),
    case("compress " + USER + " --weight-decay 1e39", 2,
         "--weight-decay must be a finite number in [0, 3.40282e+38], got 1e+39"),
    case("compress " + USER + " --lr 1e300", 2,
         "--lr must be a finite number in (0, 3.40282e+38], got 1e+300"),
    case("compress " + USER + " --method admm --budget-ratio 10 --finetune-epochs 1 "
         "--finetune-lr 1e300", 2, "--finetune-lr must be a finite number in (0, 3.40282e+38]"),
    # legal values whose training diverges: one line once the NaN appears
    case("compress " + USER + " --pretrain-epochs 3 --lr 1e30", 1,
         "the reference training diverged in epoch ", ": mean loss nan",
         "lower the learning rate (--lr)",
         left="empty"),
    case("compress " + USER + " --mu0 1e300", 1, "NaN or Inf", left="empty"),
    case("compress " + USER + " --distill 1e39", 1, "NaN or Inf", left="empty"),
    case("compress " + USER + " --method slr --s0 1e300", 1, "NaN or Inf", left="empty"),
    case("compress " + USER + " --method admm --budget-ratio 10 --rho 1e300", 1, "NaN or Inf",
         left="empty"),
    case("compress " + USER + " --method apgdssm --beta 1e300", 1, "NaN or Inf", left="empty"),
]


@pytest.mark.parametrize("c", EXTREMES)
def test_extreme_values(c, files, tmp_path, capsys, monkeypatch):
    check_refused(c, files, tmp_path, capsys, monkeypatch)


# -- data files -------------------------------------------------------------------------------


def mnist(variant: str) -> str:
    return MNIST.replace("/mnist/", f"/mnist-variants/{variant}/")


#: a bad MNIST folder (mnist_variants' name) and the fragment of its one-line error (exit 1)
MNIST_ERRORS = {
    "bomb": "has trailing bytes: more than 47040016 bytes",
    "header-lies": "more than a gzip file of",
    "header-2gib": "promises 2352000000 bytes, more than the limit",
    "bad-magic": "bad IDX magic number 08030000",
    "unknown-type": "bad IDX magic number 00000703",
    "short-header": "truncated IDX header (10 bytes, need 16)",
    "empty-file": "bad IDX magic number (empty file)",
    "not-gzip": "not a readable gzip file",
    "truncated": "truncated: 49408 bytes, header (64, 28, 28) needs 50192",
    "trailing": "has trailing bytes",
    "2d-images": "do not match (expected (N, 28, 28) and (N,))",
    "count-mismatch": "images (64, 28, 28) and labels (63,) do not match",
    "labels-minus-1": "MNIST train labels must be 0..9, found -1",
    "labels-10": "MNIST test labels must be 0..9, found 10",
    "empty-test": "MNIST test split is empty (0 images)",
    "empty-train": "MNIST train split is empty (0 images)",
    "float-images": "images must be uint8 and labels integers",
    "float-labels": "images must be uint8 and labels integers",
}

DATA = [
    *(case(mnist(v), 1, m, id=f"mnist-{v}") for v, m in MNIST_ERRORS.items()),
    case(mnist("missing-labels"), 1, "MNIST file missing", "t10k-labels-idx1-ubyte.gz",
         id="mnist-missing-file"),
    case("compress --dataset mnist " + SHORT, 2, "--dataset mnist needs --data-dir DIR",
         id="mnist-no-data-dir"),
]
for _name, _frag in {
    "not-zip": "not a readable .npz file (not a zip archive)",
    "object": "an array holds Python objects (pickle), refused; store numeric arrays",
    "missing": "missing array(s) ['y_test']",
    "nan": "x_train holds NaN or Inf values",
    "inf": "x_test holds NaN or Inf values",
    "float64-huge": "x_train holds values beyond float32's range",
    "float-labels": "y_train must be integer labels of shape (N,), got float32 (60,)",
    "negative-labels": "y_test holds a negative label (-1)",
    "2d-labels": "y_train must be integer labels of shape (N,), got int64 (30, 2)",
    "length-mismatch": "x_train has 60 examples, y_train 59 labels",
    "empty-train": "the train split is empty (x_train has 0 examples)",
    "empty-test": "the test split is empty (x_test has 0 examples)",
    "bool-x": "x_train has dtype bool; expected floats (features, images) or integers",
    "scalar-x": "x_train must have a first dimension (examples)",
    "mixed-kinds": "x_train and x_test must both be floats or both integers",
    "folder": "data set file not found",
}.items():
    DATA.append(case(f"compress --model {{F}}/nets.py:net --dataset {{F}}/npz/{_name}.npz "
                     + SHORT, 1, _frag, id=f"npz-{_name}"))
DATA += [
    case("compress --model {F}/nets.py:net --dataset {F}/npz/data.csv " + SHORT, 1,
         "a data set file must be an .npz (or give module:factory)", id="npz-csv"),
    case("compress --model {F}/nets.py:net --dataset {F}/npz/none.npz " + SHORT, 1,
         "data set file not found", id="npz-missing"),
    case("compress --model {F}/nets.py:not_a_model --dataset {F}/data.npz " + SHORT, 2,
         "nets.py:not_a_model': the factory returned a int, not a torch.nn.Module",
         id="factory-not-a-model"),
    case("compress --model {F}/nets.py:nothing --dataset {F}/data.npz " + SHORT, 2,
         "nets.py' has no attribute 'nothing'", id="factory-missing"),
    case("compress --model {F}/nets.py:raises --dataset {F}/data.npz " + SHORT, 2,
         "nets.py:raises': the factory raised RuntimeError: the factory failed",
         id="factory-raises"),
    case("compress --model {F}/nets.py:too_many --dataset {F}/data.npz " + SHORT, 2,
         "the factory needs ['a', 'b', 'c', 'd']", id="factory-arguments"),
    case("compress --model {F}/none.py:net --dataset {F}/data.npz " + SHORT, 2,
         "none.py:net': file not found", id="factory-file-missing"),
    case("compress --model {F}/nets.py:wrong_size --dataset {F}/data.npz " + SHORT, 1,
         "nets.py:wrong_size does not accept the inputs of data (shape (1, 4, 4)): mat1 and "
         "mat2 shapes cannot be multiplied", id="factory-wrong-input-size"),
    case("compress --model {F}/nets.py:wrong_classes --dataset {F}/data.npz " + SHORT, 1,
         "nets.py:wrong_classes gives outputs of shape (2, 5) for a batch of data; expected "
         "(batch, 2)", id="factory-wrong-output-size"),
]


@pytest.mark.parametrize("c", DATA)
def test_data_files(c, files, tmp_path, capsys, monkeypatch):
    check_refused(c, files, tmp_path, capsys, monkeypatch)


# -- reference files --------------------------------------------------------------------------


def ref(name: str) -> str:
    return "compress " + USER + f" --reference {{F}}/refs/{name}"


REFERENCES = [
    case(ref("payload.pt"), 1, "not a readable reference model", id="ref-pickle-payload"),
    case(ref("object.pt"), 1, "not a readable reference model", id="ref-torch-object"),
    case(ref("garbage.pt"), 1, "not a readable reference model", id="ref-random-bytes"),
    case(ref("list.pt"), 1, "not a state_dict (a mapping of names to tensors)", id="ref-list"),
    case(ref("truncated.safetensors"), 1, "not a readable reference model",
         id="ref-truncated"),
    case(ref("empty.safetensors"), 1, "not a readable reference model", id="ref-empty"),
    case(ref("text.json"), 1, "not a readable reference model", id="ref-json"),
    case(ref("other-names.safetensors"), 1, "does not fit the model", id="ref-another-model"),
    case(ref("other-shapes.safetensors"), 1, "does not fit the model", id="ref-other-shapes"),
    case("compress " + SHORT + " --reference {F}/refs/ok.safetensors", 1,
         "does not fit the model", id="ref-of-the-tiny-model-for-lenet300"),
    case(ref("nan.safetensors"), 1, "nan.safetensors: 1.bias holds NaN or Inf values",
         id="ref-nan-weights"),
    case(ref("folder.safetensors"), 1, "reference model file not found", id="ref-folder"),
    case(ref("none.safetensors"), 1, "reference model file not found", id="ref-missing"),
]


@pytest.mark.parametrize("c", REFERENCES)
def test_reference_files(c, files, tmp_path, capsys, monkeypatch):
    check_refused(c, files, tmp_path, capsys, monkeypatch)


# -- compressed-model files -------------------------------------------------------------------

_BAD_CPZ = {f"cut-{t}0": "" for t in range(10)} | {
    "cut-last-byte": "",
    "flip-header": "",
    "flip-payload": "checksum mismatch",
    "version-2": "model file format version 2",
    "format": "not a compressopt model file (format 'other')",
    "safetensors": "not a compressopt model file",
    "text": "too short for safetensors",
    "folder": "",
    "missing": "",
}
MODEL_FILES = []
for _name, _frag in _BAD_CPZ.items():
    for _command in ("inspect {f}", "evaluate {f}", "export {f} --dense {{TMP}}/d.safetensors"):
        _cmd = _command.format(f=f"{{F}}/cpz/{_name}.cpz")
        MODEL_FILES.append(case(_cmd, 1, f"compressopt {_cmd.split()[0]}: error: ", _frag,
                                id=f"{_cmd.split()[0]}-{_name}"))
MODEL_FILES += [
    case("evaluate {F}/cpz/other-model.cpz", 1, "the file holds another model (lenet300)",
         id="evaluate-another-model"),
    case("evaluate {F}/run/model.cpz --model lenet5 --dataset digits", 1,
         "the file holds another model", id="evaluate-as-lenet5"),
    case("evaluate {F}/cpz/no-model.cpz", 2, "names no model or data set: give --model",
         id="evaluate-no-model-named"),
    case("evaluate {F}/run/model.cpz --device meta", 2, "--device meta", id="evaluate-meta"),
    case("evaluate {F}/run/model.cpz --device cuda", 2, "--device cuda: cuda is not available",
         id="evaluate-cuda"),
    case("export {F}/run/model.cpz --dense /sys/compressopt.safetensors", 1,
         "cannot write /sys/compressopt.safetensors: permission denied", id="export-unwritable"),
    case("export {F}/run/model.cpz --dense {F}/run", 1, "cannot write", id="export-to-a-folder"),
    case("export {F}/run/model.cpz", 2, "the following arguments are required: --dense",
         id="export-no-dense"),
    case("plot {TMP}/none", 1, "holds no run: report.json is missing", id="plot-no-out"),
    case("plot {OUT}", 1, "report.json: not a readable report (Expecting value",
         out="garbage report", id="plot-garbage-report"),
]


@pytest.mark.parametrize("c", MODEL_FILES)
def test_model_files(c, files, tmp_path, capsys, monkeypatch):
    check_refused(c, files, tmp_path, capsys, monkeypatch)
    assert not (tmp_path / "d.safetensors").exists()


def test_model_files_control(files, tmp_path, capsys):
    """The valid file of the same run passes every command (the bad ones differ only in
    the fault)."""
    cpz = files / "run" / "model.cpz"
    assert main(["inspect", str(cpz)]) == 0
    assert main(["evaluate", str(cpz)]) == 0
    assert "the report's, exactly" in capsys.readouterr().out
    assert main(["export", str(cpz), "--dense", str(tmp_path / "d.safetensors")]) == 0


# -- configs ----------------------------------------------------------------------------------

_CONFIG_FRAGMENTS = {
    "unknown-key": (2, "unknown option 'stepz' (did you mean 'steps'?)"),
    "string-for-int": (2, "key 'steps' must be an integer, got str '3'"),
    "float-for-int": (2, "key 'steps' must be an integer, got float 3.0"),
    "bool-for-float": (2, "key 'prune' must be a number, got bool True"),
    "int-for-string": (2, "key 'method' must be a string, got int 3"),
    "scalar-for-list": (2, "key 'include' must be a list of strings, got str 'fc*'"),
    "list-for-scalar": (2, "key 'prune' must be a number, got list [0.2]"),
    "bad-list-element": (2, "key 'bit_candidates' must be a list of integers"),
    "table": (2, "key 'train' is a table; the keys are flat option names"),
    "out-of-range": (2, "--prune must be a finite number in (0, 1], got 1.5"),
    "inf": (2, "--mu0 must be a finite number > 0, got inf"),
    "nan": (2, "--lr must be a finite number in (0, 3.40282e+38], got nan"),
    "another-method": (2, "--method lc does not take --rho"),
    "empty-out": (2, "--out must name a directory, got ''"),
    "not-toml": (2, "not valid TOML"),
    "not-utf8": (2, "not valid TOML"),
    "folder": (2, "--config {F}/configs/folder.toml: "),
    "missing": (2, "no such file"),
}
CONFIG_CASES = [case(f"compress --config {{F}}/configs/{n}.toml", rc, frag, id=f"toml-{n}")
                for n, (rc, frag) in _CONFIG_FRAGMENTS.items()]


@pytest.mark.parametrize("c", CONFIG_CASES)
def test_config_files(c, files, tmp_path, capsys, monkeypatch):
    c = Case(c.argv, c.rc, tuple(m.format(F=files) for m in c.match), c.out)
    check_refused(c, files, tmp_path, capsys, monkeypatch)


# -- OUT ----------------------------------------------------------------------------------------

OUTS = [
    case("compress " + SHORT + " --out ''", 2, "--out must name a directory, got ''",
         id="out-empty-string"),
    case("compress " + SHORT, 1, "is not a directory", out="a file", id="out-a-file"),
    case("compress " + SHORT + " --out {TMP}/out/below", 1, "is not writable: Not a directory",
         out="a file", id="out-below-a-file"),
    case("compress " + SHORT + " --out /sys/compressopt-out", 1,
         "is not writable: permission denied", id="out-unwritable"),
    case("compress " + SHORT + " --out /sys", 1, "is not writable: permission denied",
         id="out-unwritable-existing"),
    case("compress " + SHORT + " --out {TMP}/" + "o" * 300, 1, "File name too long",
         id="out-name-too-long"),
    case("compress " + SHORT + " --prune 0.5", 1, "already holds the report of another run; use "
         "--overwrite", out="another run", id="out-another-run"),
    case("compress " + SHORT, 1, "already holds the report of another run", out="report of nothing",
         id="out-another-report"),
    case("compress " + SHORT, 1, "holds an unreadable report.json; use --overwrite",
         out="garbage report", id="out-unreadable-report"),
    case("compress " + SHORT, 1, "an interrupted commit cannot be completed", out="broken journal",
         id="out-broken-journal"),
]


@pytest.mark.parametrize("c", OUTS)
def test_out(c, files, tmp_path, capsys, monkeypatch):
    check_refused(c, files, tmp_path, capsys, monkeypatch)


def test_disk_full_during_the_write_keeps_the_previous_run(files, tmp_path, capsys,
                                                          monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(files / "run", out)
    before = snapshot(out)
    real = atomic._write_file

    def full(path, data):
        if "model.cpz" in path.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(atomic, "_write_file", full)
    rc = main(["compress", *shlex.split(USER.format(F=files)), "--prune", "0.5", "--overwrite",
               "--out", str(out)])
    err = one_line(capsys.readouterr().err, "compress")
    assert rc == 1 and f"cannot write {out / 'model.cpz'}: disk full" in err
    after = snapshot(out)
    # the previous run, whole (no staged file left), beside the failed run's checkpoint:
    # --resume OUT finishes it once there is room
    assert after.pop(CHECKPOINT, None) is not None
    assert after == before
    read_checkpoint(out)
    assert read_run(out)["prune"] == 0.3


# -- devices ------------------------------------------------------------------------------------

DEVICES = [case(f"compress {SHORT} --device {d}", 2, f"--device {d}: {m}", id=f"device-{d}")
           for d, m in [("meta", "a meta tensor holds no data"), ("xpu", "xpu is not available"),
                        ("cuda", "cuda is not available"), ("cuda:0", "cuda is not available"),
                        ("cuda:7", "cuda is not available"), ("mps", "mps is not available"),
                        ("hpu", "hpu is not available"), ("mkldnn", "mkldnn is not available")]]
DEVICES += [case(f"compress {SHORT} --device={d}", 2, f"--device: not a torch device: {d!r}",
                 id=f"device-{d or 'empty'}") for d in ("gpu0", "cpu:x", "cuda:-1", "")]


@pytest.mark.parametrize("c", DEVICES)
def test_devices(c, files, tmp_path, capsys, monkeypatch):
    check_refused(c, files, tmp_path, capsys, monkeypatch)


# -- memory -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "match"), [
    ("--quantize 8192 --exclude fc3.weight",
     "(exact k-means with K = 8192 on the 30,000 weights of fc2.weight) needs about 3.94 GB"),
    ("--quantize 1000", "exact k-means with K = 1000 on the 30,000 weights of fc2.weight"),
    ("--method admm --budget-ratio 10 --bit-candidates 16",
     "lower the largest of --bit-candidates"),
])
def test_memory_beyond_what_is_available_is_refused_before_training(args, match, files,
                                                                   tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.setattr(api, "available_memory", lambda: 4_000_000)  # 4 MB "available"
    c = Case(f"compress {SHORT} {args}", 1, (match,))
    err = check_refused(c, files, tmp_path, capsys, monkeypatch)
    assert "of memory, more than 90 % of the 4 MB available: lower " in err
    assert "reference" not in err


# -- legal degenerate requests complete ---------------------------------------------------------


def _layers(r: dict) -> list[tuple[int, int]]:
    return [(x["nonzeros"], x["bits"]) for x in r["layers"]]


LEGAL = {
    # budget 0 = prune everything (issue 14): a report with nothing stored
    "budget-bits-0": ("--method admm --budget-bits 0", lambda r: (
        r["nonzero_fraction"] == 0.0 and r["compression_ratio"] is None
        and all(n == 0 for n, _ in _layers(r)))),
    "budget-ratio-1e300": ("--method admm --budget-ratio 1e300", lambda r: (
        r["nonzero_fraction"] == 0.0 and r["compression_ratio"] is None)),
    # --bits 31 (inside the range): the alternating grid in O(n) memory, m + 1 = 32 bits
    "apgdssm-bits-31": ("--method apgdssm --bits 31", lambda r: (
        all(b == 32 for _, b in _layers(r)) and r["nonzero_fraction"] > 0.9)),
    # the largest legal codebook: K = the weights of the smallest layer
    "quantize-24": ("--quantize 24", lambda r: all(b == 5 for _, b in _layers(r))),
    # KEEP as small as a float goes: one weight kept
    "prune-1e-300": ("--prune 1e-300", lambda r: sum(n for n, _ in _layers(r)) == 1),
    "val-split-59": ("--val-split 59", lambda r: 0 <= r["val_accuracy"] <= 1),
}


@pytest.mark.parametrize("name", LEGAL)
def test_legal_degenerate_requests_complete(name, files, tmp_path, capsys):
    args, ok = LEGAL[name]
    out = tmp_path / "out"
    rc = main(["compress", *shlex.split(USER.format(F=files)), *shlex.split(args),
               "--out", str(out)])
    _, err = capsys.readouterr()
    assert rc == 0 and err == "", err
    report = read_run(out)  # complete: every listed file's size and SHA-256
    assert ok(report), report
    assert math.isfinite(report["accuracy"]) and set(report["files"]) >= {"model.cpz",
                                                                          "config.toml"}


def test_constant_images_complete_without_warnings(files, tmp_path, capsys):
    out = tmp_path / "out"
    argv = shlex.split(MNIST.format(F=files).replace("/mnist/",
                                                     "/mnist-variants/constant-images/"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would end the run
        rc = main([*argv, "--prune", "0.5", "--out", str(out)])
    _, err = capsys.readouterr()
    assert rc == 0 and err == "", err
    report = read_run(out)
    assert math.isfinite(report["reference_accuracy"]) and report["nonzero_fraction"] == 0.5


# -- memory of the heavy command lines, measured ------------------------------------------------

MEMORY_LIMIT = 2 * 10**9  # bytes

HEAVY = {
    "quantize-8192": ("compress " + SHORT + " --quantize 8192", 2),
    "quantize-1e12": ("compress " + SHORT + " --quantize 1000000000000", 2),
    "apgdssm-bits-31": ("compress " + SHORT + " --method apgdssm --bits 31", 0),
    "gzip-bomb": (mnist("bomb"), 1),
    "kmeans-largest-legal": ("compress " + SHORT + " --quantize 1000", 0),
}

_MEASURE = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(r.returncode, peak, repr(r.stderr.strip()[-300:]))
"""


def peak_memory(argv: list[str], cwd: Path) -> tuple[int, int, str]:
    """(exit code, peak resident bytes, stderr) of ``python -m compressopt ARGV``, run as
    the only child of a fresh interpreter (RUSAGE_CHILDREN is then that command's)."""
    r = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "compressopt",
                        *argv], capture_output=True, text=True, cwd=cwd, timeout=900,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    rc, peak, err = r.stdout.split(" ", 2)
    return int(rc), int(peak), err


@pytest.mark.slow
@pytest.mark.parametrize("name", HEAVY)
def test_heavy_command_lines_stay_below_2_gb(name, files, tmp_path):
    line, rc = HEAVY[name]
    argv = argv_of(Case(line, rc, ()), files, tmp_path / "out", tmp_path)
    got, peak, err = peak_memory(argv, tmp_path)
    print(f"{name}: exit {got}, peak {peak / 1e6:.0f} MB")
    assert got == rc, err
    assert peak < MEMORY_LIMIT
