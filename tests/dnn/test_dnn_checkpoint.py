"""Checkpoint and resume in one process: the pieces (random states, loader positions, the
minibatch oracle mid-epoch), the job killed at seeded random events and resumed to the
uninterrupted run's report for every method, the stop that writes the pending checkpoint,
and the refusals (no checkpoint, a finished run, a corrupted file, contradicting options).

A "kill" here is an exception raised from the progress hook, which the job does not catch:
the process state after it is thrown away (a fresh model, loaders and random states on
resume). tests/test_cli_resume.py kills real processes with SIGKILL."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from compressopt.dnn import compress
from compressopt.dnn.api import JobStopped
from compressopt.dnn.checkpoint import (
    CHECKPOINT,
    Checkpointer,
    TrackedLoader,
    check_fresh_out,
    config_hash,
    loader_state,
    read_checkpoint,
    restore_solve,
    resumed_settings,
    rng_state,
    set_loader_state,
    set_rng_state,
    solve_tree,
    without_timings,
)
from compressopt.dnn.data import make_loader
from compressopt.dnn.job import run_job
from compressopt.dnn.oracle import MinibatchOracle, TorchOracle
from compressopt.errors import CheckpointError, OutputError
from compressopt.options import JobConfig
from compressopt.storage.tree import tree_from_bytes, tree_to_bytes

TINY = '''
import math
from torch import nn

def tiny(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 16), nn.ReLU(),
                         nn.Linear(16, num_classes))
'''

#: the methods' settings (digits, the tiny net): every coordinator and every final stage
METHODS: dict[str, dict[str, Any]] = {
    "lc": {"method": "lc"},
    "admm": {"method": "admm", "prune": 0.2},
    "joint": {"method": "admm", "budget_ratio": 20, "bit_candidates": [1, 2],
              "finetune_epochs": 1, "distill": 2.0, "distill_phase": "finish"},
    "slr": {"method": "slr", "retrain_epochs": 1, "val_split": 200, "target_accuracy": 0.99},
    "apgdssm": {"method": "apgdssm", "lambda1": 1e-4, "beta": 1e-2},
    "idc": {"method": "dc", "iterated": True},
}
#: the default test run's subset (the rest is marked slow)
FAST = ("lc",)


class Kill(BaseException):
    """Stands for SIGKILL: nothing catches it."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("nets") / "tiny.py"
    path.write_text(TINY)
    return f"{path}:tiny"


def settings(tiny: str, out: Path, method: str) -> dict[str, Any]:
    return {"model": tiny, "pretrain_epochs": 2, "steps": 3, "epochs": 1, "batch_size": 128,
            "plots": False, "out": str(out), **METHODS[method]}


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without timings, run_id and OUT (the runs write to different folders)."""
    r = without_timings(report)
    r.pop("run_id")
    r["config"] = {k: v for k, v in r["config"].items() if k != "out"}
    r["files"] = {k: v for k, v in r["files"].items() if not k.endswith(".png")}
    return r


_BASELINES: dict[str, dict[str, Any]] = {}


def baseline(tiny: str, tmp: Path, method: str) -> dict[str, Any]:
    """The uninterrupted run (once per method and module)."""
    if method not in _BASELINES:
        events: list[str] = []
        report = run_job(JobConfig.from_settings(settings(tiny, tmp / f"base-{method}", method)),
                         on_event=lambda kind, info: events.append(kind))
        _BASELINES[method] = {"report": report, "events": events}
    return _BASELINES[method]


def killed(config: JobConfig, at: int, **kw: Any) -> int:
    """Run `config`, killed at its `at`-th progress event; the events seen."""
    seen = [0]

    def on_event(kind: str, info: Any) -> None:
        seen[0] += 1
        if seen[0] == at:
            raise Kill(kind)

    with pytest.raises(Kill):
        run_job(config, on_event=on_event, **kw)
    return seen[0]


def resume(out: Path, *, on_event: Any = None) -> dict[str, Any]:
    ckpt = read_checkpoint(out)
    config = JobConfig.from_settings(resumed_settings(ckpt, {}, str(out)))
    return run_job(config, resume=ckpt, on_event=on_event)


# -- the pieces -----------------------------------------------------------------------------


def test_random_states_round_trip_through_a_file():
    torch.manual_seed(1)
    np.random.seed(2)  # noqa: NPY002 (the legacy global generator users seed)
    random.seed(3)
    saved, _ = tree_from_bytes(tree_to_bytes(rng_state()))
    first = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    torch.manual_seed(9)
    np.random.seed(9)  # noqa: NPY002
    random.seed(9)
    set_rng_state(saved)
    again = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2]


def _loaders() -> list[Any]:
    x, y = torch.arange(50.0).reshape(25, 2), torch.arange(25)
    return [make_loader(x, y, 4, shuffle=True, seed=5),
            DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True,
                       generator=torch.Generator().manual_seed(5)),
            DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True),  # global generator
            make_loader(x, y, 4, shuffle=True, seed=5, rank=1, world_size=2)]


def _labels(batches: Any, n: int | None = None) -> list[list[int]]:
    return [b[1].tolist() for _, b in zip(range(n or 10**9), batches, strict=False)]


@pytest.mark.parametrize("kind", range(4))
@pytest.mark.parametrize("taken", [0, 3, "all"])
def test_a_pass_replays_from_its_position(kind, taken):
    """The batches after a position, and the next pass, are the same when the pass is
    rebuilt from the position in a fresh loader (generators, epoch counters, torch's)."""
    torch.manual_seed(0)
    loader = TrackedLoader(_loaders()[kind])
    _labels(iter(loader))  # one full pass first
    it = iter(loader)
    n = len(loader) if taken == "all" else taken
    _labels(it, n)
    saved, _ = tree_from_bytes(tree_to_bytes(
        {"position": loader.position(), "loader": loader_state(loader.loader),
         "rng": rng_state()}))
    expected = _labels(it) + _labels(iter(loader)), loader_state(loader.loader)

    torch.manual_seed(123)
    fresh = TrackedLoader(_loaders()[kind])
    replayed = fresh.replay(saved["position"])
    set_loader_state(fresh.loader, saved["loader"])
    set_rng_state(saved["rng"])
    got = _labels(replayed) + _labels(iter(fresh)), loader_state(fresh.loader)
    assert got[0] == expected[0]
    assert got[1].keys() == expected[1].keys()
    for k, v in got[1].items():
        assert (torch.equal(v, expected[1][k]) if isinstance(v, torch.Tensor)
                else v == expected[1][k])


def test_another_loader_is_refused():
    state = loader_state(_loaders()[0])
    with pytest.raises(CheckpointError, match="another kind of loader"):
        set_loader_state(_loaders()[2], state)


def _minibatch_oracle(seed: int) -> tuple[MinibatchOracle, TrackedLoader, torch.nn.Module]:
    g = torch.Generator().manual_seed(0)  # the same data
    x, y = torch.randn(30, 4, generator=g), torch.randint(0, 3, (30,), generator=g)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    loader = TrackedLoader(make_loader(x, y, 7, shuffle=True, seed=1))
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    oracle = TorchOracle(model, torch.nn.CrossEntropyLoss(), loader, sgd)
    return MinibatchOracle(oracle, lr=0.05), loader, model


def test_the_minibatch_oracle_continues_mid_epoch():
    """APGDSSM's oracle keeps an epoch open across iterations: restored from a position
    three batches into its second epoch, it draws the same batches, takes the same steps on
    the free parameters and closes the epoch with the same loss."""
    mb, loader, model = _minibatch_oracle(0)
    w = {n: p.detach().clone() for n, p in mb.oracle.params.items()}
    for _ in range(8):  # 5 batches an epoch: 3 into the second
        mb.grad(w)
    tree = solve_tree(model=model, reference={}, oracle=mb.oracle, run_oracle=mb,
                      loader=loader, state=None, history=[], iterations=[], stopped=None)
    saved, _ = tree_from_bytes(tree_to_bytes(tree))
    expected = [mb.grad(w) for _ in range(9)]
    expected_losses = list(mb.oracle.lstep_losses)

    mb2, loader2, model2 = _minibatch_oracle(7)  # other weights and random state
    restore_solve(saved, model=model2, oracle=mb2.oracle, run_oracle=mb2, loader=loader2)
    got = [mb2.grad(w) for _ in range(9)]
    for a, b in zip(expected, got, strict=True):
        assert all(torch.equal(a[n], b[n]) for n in a)
    assert mb2.oracle.lstep_losses == expected_losses and mb2.calls == mb.calls
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), model2.parameters(),
                                                 strict=True))


# -- the job killed and resumed ----------------------------------------------------------------


@pytest.mark.parametrize("method", [
    m if m in FAST else pytest.param(m, marks=pytest.mark.slow) for m in METHODS])
def test_killed_at_random_events_and_resumed_ends_as_the_uninterrupted_run(
        tiny, tmp_path, method):
    """Killed at a seeded random progress event of the coordinator (an L-step epoch, an
    iteration, the last iteration before the final stage), resumed, killed again later,
    resumed: the report is the uninterrupted run's but for the timings; Θ is bit for bit
    the same (model.cpz's SHA-256). (tests/test_cli_resume.py also kills in the
    reference's epochs.)"""
    base = baseline(tiny, tmp_path, method)
    events = len(base["events"])
    rng = random.Random(f"resume-{method}")
    first = rng.randrange(base["events"].index("compress_start") + 2, events - 1)
    out = tmp_path / "run"
    config = JobConfig.from_settings(settings(tiny, out, method))
    killed(config, first)
    assert (out / CHECKPOINT).exists() and not (out / "report.json").exists()
    second = rng.randrange(1, events - first + 2)
    ckpt = read_checkpoint(out)
    cfg = JobConfig.from_settings(resumed_settings(ckpt, {}, str(out)))
    seen = [0]

    def on_event(kind: str, info: Any) -> None:
        seen[0] += 1
        if seen[0] == second and kind not in ("data", "done"):
            raise Kill(kind)

    try:
        run_job(cfg, resume=ckpt, on_event=on_event)
    except Kill:
        pass
    report = resume(out) if (out / CHECKPOINT).exists() else json.loads(
        (out / "report.json").read_text())
    assert comparable(report) == comparable(base["report"])
    assert not (out / CHECKPOINT).exists()  # removed with the commit


def test_killed_while_training_the_reference(tiny, tmp_path):
    """Killed after the reference's first epoch: the reference resumes at its second epoch
    (model, optimizer, loader and random states), and the run ends as the uninterrupted."""
    base = baseline(tiny, tmp_path, "lc")
    out = tmp_path / "run"
    killed(JobConfig.from_settings(settings(tiny, out, "lc")),
           base["events"].index("reference_epoch") + 1)
    ckpt = read_checkpoint(out)
    assert (ckpt.phase, ckpt.where, ckpt.tree["epoch"]) == ("reference",
                                                            "after reference epoch 1", 1)
    assert comparable(resume(out)) == comparable(base["report"])


def test_the_last_iteration_then_the_final_stage(tiny, tmp_path):
    """Killed after the checkpoint of the last iteration (the stop rule of
    --target-accuracy not reached), resumed: the coordinator's end is replayed (the same
    message) and the masked retraining runs as in the uninterrupted run."""
    base = baseline(tiny, tmp_path, "slr")
    last_step = max(i for i, k in enumerate(base["events"]) if k == "step") + 1
    out = tmp_path / "run"
    killed(JobConfig.from_settings(settings(tiny, out, "slr")), last_step)
    assert read_checkpoint(out).where == "after iteration 3"
    assert comparable(resume(out)) == comparable(base["report"])


def test_the_stop_rule_ends_the_resumed_run_where_it_ended(tiny, tmp_path):
    """--target-accuracy reached at an iteration, killed right after its checkpoint: the
    resumed run does not iterate again; the stop is replayed with its message."""
    out = tmp_path / "run"
    config = JobConfig.from_settings({**settings(tiny, out, "slr"), "target_accuracy": 0.3})
    events: list[str] = []
    full = run_job(replace(config, out=str(tmp_path / "full")),
                   on_event=lambda kind, info: events.append(kind))
    assert full["message"].startswith("SLR: stopped by the callback: validation accuracy")
    assert len(full["iterations"]) < 3
    killed(config, len(events) - events[::-1].index("step"))  # at the last iteration's end
    assert comparable(resume(out)) == comparable(full)


def test_a_stop_writes_the_checkpoint_it_kept_and_resumes(tiny, tmp_path):
    """With --checkpoint-every far away nothing is written at the iterations, but a stop
    writes the last state kept in memory; the resumed run ends as the uninterrupted one."""
    base = baseline(tiny, tmp_path, "lc")
    out = tmp_path / "run"
    config = JobConfig.from_settings({**settings(tiny, out, "lc"), "checkpoint_every": 1e6})
    steps = [0]

    def stop() -> Any:
        return "test" if steps[0] == 2 else None

    with pytest.raises(JobStopped) as e:
        run_job(config, stop=stop,
                on_event=lambda kind, info: steps.__setitem__(0, steps[0] + (kind == "step")))
    assert e.value.checkpoint == str(out / CHECKPOINT) and e.value.where == "after iteration 2"
    assert read_checkpoint(out).where == "after iteration 2"
    assert sorted(p.name for p in out.iterdir()) == [CHECKPOINT]  # nothing staged is left
    got, expected = comparable(resume(out)), comparable(base["report"])
    assert got["config"].pop("checkpoint_every") == 1e6  # the one setting that differs
    del expected["config"]["checkpoint_every"]
    assert got["files"].pop("config.toml") != expected["files"].pop("config.toml")
    assert got == expected


# -- refusals -------------------------------------------------------------------------------------


def test_nothing_to_resume(tmp_path):
    with pytest.raises(CheckpointError, match="no such directory"):
        read_checkpoint(tmp_path / "none")
    with pytest.raises(CheckpointError, match=r"no checkpoint\.safetensors there"):
        read_checkpoint(tmp_path)
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(CheckpointError, match="finished"):
        read_checkpoint(tmp_path)


def _fake_checkpoint(out: Path, **settings: Any) -> Checkpointer:
    """A checkpoint of a digits LC run of 3 iterations (its state a stand-in)."""
    out.mkdir(exist_ok=True)
    config = JobConfig.from_settings({"steps": 3, "out": str(out), **settings}).resolved()
    saver = Checkpointer(out, "run-1", config.to_settings(), facts={"overwrite": False})
    saver.save("solve", lambda: {"state": None}, "after iteration 2")
    return saver


def test_a_finished_run_and_a_corrupted_file(tmp_path):
    out = tmp_path / "run"
    _fake_checkpoint(out)
    ckpt = read_checkpoint(out)
    assert (ckpt.phase, ckpt.run_id, ckpt.where) == ("solve", "run-1", "after iteration 2")
    assert ckpt.settings["steps"] == 3 and ckpt.tree == {"state": None}

    data = (out / CHECKPOINT).read_bytes()
    bad = bytearray(data)
    bad[-5] ^= 1
    (out / CHECKPOINT).write_bytes(bytes(bad))
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(out)
    (out / CHECKPOINT).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(out)
    (out / CHECKPOINT).write_bytes(tree_to_bytes({}, {"format": "compressopt.checkpoint",
                                                      "version": 1, "phase": "solve",
                                                      "run_id": "x", "settings": {"steps": 4},
                                                      "config_hash": "0"}))
    with pytest.raises(CheckpointError, match="do not match their hash"):
        read_checkpoint(out)

    (out / CHECKPOINT).write_bytes(data)  # killed between the commit and the removal
    (out / "report.json").write_text(json.dumps({"run_id": "run-1"}))
    with pytest.raises(CheckpointError, match="finished"):
        read_checkpoint(out)
    (out / "report.json").write_text(json.dumps({"run_id": "another run"}))
    assert read_checkpoint(out).run_id == "run-1"  # resumed with the other run's --overwrite


def test_options_that_contradict_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    _fake_checkpoint(out, lstep_lr=0.1)
    ckpt = read_checkpoint(out)
    with pytest.raises(CheckpointError, match=r"--steps = 5 \(the run has 3\)"):
        resumed_settings(ckpt, {"steps": 5}, str(out))
    with pytest.raises(CheckpointError, match=r"--lstep-lr = 0\.05 .*--seed = 3"):
        resumed_settings(ckpt, {"lstep_lr": 0.05, "seed": 3}, str(out))
    with pytest.raises(CheckpointError, match="--method = 'slr'"):
        resumed_settings(ckpt, {"method": "slr", "retrain_epochs": 1}, str(out))
    with pytest.raises(CheckpointError, match="a resumed run writes where it began"):
        resumed_settings(ckpt, {"out": str(tmp_path / "elsewhere")}, str(out))
    again = resumed_settings(ckpt, {"steps": 3, "lstep_lr": 0.1, "epochs": 2,  # the defaults
                                    "checkpoint_every": 60.0, "plots": False}, str(out))
    assert again["checkpoint_every"] == 60.0 and again["plots"] is False
    assert config_hash(again) == config_hash(ckpt.settings)


def test_a_new_run_refuses_an_out_holding_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    _fake_checkpoint(out)
    with pytest.raises(OutputError, match=r"--resume .*--overwrite"):
        check_fresh_out(out, overwrite=False)
    check_fresh_out(out, overwrite=True)
    model, train, _ = _problem()
    with pytest.raises(OutputError, match="interrupted run"):
        compress(model, train, steps=1, out=out)


# -- from Python ------------------------------------------------------------------------------


def _problem() -> tuple[torch.nn.Module, DataLoader, DataLoader]:
    torch.manual_seed(0)
    x, y = torch.randn(128, 10), torch.randint(0, 3, (128,))
    model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    return (model, DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True),
            DataLoader(TensorDataset(x, y), batch_size=128))


def test_compress_resume_from_python(tmp_path):
    """``compress(..., resume=OUT)``: a fresh model and loaders (shuffled with torch's
    global generator), another random state; the result is the uninterrupted call's."""
    model, train, test = _problem()
    full = compress(model, train, prune=0.2, test_loader=test, steps=3, epochs=1,
                    out=tmp_path / "full", plots=False)
    assert not (tmp_path / "full" / CHECKPOINT).exists()
    model, train, test = _problem()
    steps = [0]

    def on_event(kind: str, info: Any) -> None:
        steps[0] += kind == "step"
        if steps[0] == 2:
            raise Kill

    with pytest.raises(Kill):
        compress(model, train, prune=0.2, test_loader=test, steps=3, epochs=1,
                 out=tmp_path / "part", plots=False, on_event=on_event)
    model, train, test = _problem()
    torch.manual_seed(99)
    with pytest.raises(CheckpointError, match="--prune"):
        compress(model, train, prune=0.3, test_loader=test, resume=tmp_path / "part")
    again = compress(model, train, test_loader=test, resume=tmp_path / "part")
    assert comparable(again.report) == comparable(full.report)
    assert all(torch.equal(full.x[n], again.x[n]) for n in full.x)
