"""Several processes: two CPU ranks (gloo on 127.0.0.1) against one process.

The 2-rank checks run once, in :func:`two_ranks` (this file executed as a script by two
subprocesses with torchrun's environment variables), and write their results to a folder;
the tests read them. Checks: one L step on 2 ranks × batch B equals the single-process L step
on batch 2B (rtol 1e-5); MinibatchOracle's gradient likewise; Θ (and the whole LC state)
bitwise identical on both ranks after each of 2 LC iterations; a rank disagreement is
detected on every rank; only rank 0 writes through ``on_main``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from compressopt.dnn import distributed
from compressopt.dnn.data import make_loader
from compressopt.dnn.oracle import LStepSchedule, MinibatchOracle, TorchOracle
from compressopt.dnn.params import read_parameters
from compressopt.errors import ConfigError

B = 8  # per-rank batch
N = 64  # examples: 4 batches of 2B
MU = 0.5


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))


def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, 5, generator=g), torch.randint(0, 3, (N,), generator=g)


def make_oracle(model, loader, **kw) -> TorchOracle:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    return TorchOracle(model, nn.CrossEntropyLoss(), loader, opt,
                       schedule=LStepSchedule(epochs=1, clip=False), **kw)


def center_of(w):
    return {n: 0.5 * t for n, t in w.items()}


def lstep(model, loader, **kw) -> dict[str, torch.Tensor]:
    """One L step (one epoch: N / batch minibatch steps, Nesterov momentum, the penalty)."""
    oracle = make_oracle(model, loader, **kw)
    w = read_parameters(oracle.params)
    oracle.lstep(w, center_of(w), MU, step=0)
    return {n: p.detach().clone() for n, p in model.named_parameters()}  # biases too


def minibatch_grad(model, loader) -> dict[str, torch.Tensor]:
    mb = MinibatchOracle(make_oracle(model, loader), lr=0.1)
    g = mb.grad(read_parameters(mb.oracle.params))
    return {n: t.clone() for n, t in g.items()}


# -- the worker: one rank ------------------------------------------------------------------


def _worker(out: Path) -> None:
    from safetensors.torch import save_file

    from compressopt.projections import GlobalCardinality
    from compressopt.solvers import LC

    torch.set_num_threads(1)
    info = distributed.init_from_env("cpu", timeout_s=60)
    r = info.rank
    res: dict = {"rank": r, "world_size": distributed.world_size(), "backend": info.backend,
                 "is_main": distributed.is_main()}
    x, y = tiny_data()

    # 1. the L step: DDP over each rank's shard of batch B
    model = tiny_model()
    loader = make_loader(x, y, B, shuffle=False, rank=r, world_size=2)
    save_file(lstep(model, loader, train_model=distributed.wrap_model(model)),
              str(out / f"lstep{r}.safetensors"))
    save_file(minibatch_grad(tiny_model(), loader), str(out / f"grad{r}.safetensors"))

    # 2. a short LC run: Θ must agree on both ranks after every iteration
    model = tiny_model()
    shuffled = make_loader(x, y, B, shuffle=True, seed=3, rank=r, world_size=2)
    oracle = make_oracle(model, shuffled, train_model=distributed.wrap_model(model))
    solver, compression = LC(mus=(1e-2, 1e-1), tol=0.0, eval_loss=False), GlobalCardinality(
        keep=0.3)
    checks = []

    def callback(state, record):
        distributed.check_ranks_agree(state.theta, "theta")
        distributed.check_ranks_agree(state, "LC state")
        checks.append(state.k)
        x_now, _ = solver.output(state, compression)
        save_file({n: t.contiguous() for n, t in x_now.items()},
                  str(out / f"iter{state.k}_rank{r}.safetensors"))

    result = solver.run(read_parameters(oracle.params), oracle, compression, callback=callback)
    res["checked_iterations"] = checks
    res["nit"] = result.nit

    # 3. a disagreement is found, on every rank
    try:
        distributed.check_ranks_agree({"a": torch.zeros(3), "b": torch.tensor([float(r)])}, "X")
        res["disagreement"] = None
    except distributed.RanksDisagreeError as e:
        res["disagreement"] = str(e)
    try:
        distributed.check_ranks_agree([torch.zeros(1)] * (r + 1), "L")
        res["structure"] = None
    except distributed.RanksDisagreeError as e:
        res["structure"] = str(e)
    res["average"] = distributed.all_average([torch.tensor([float(r)]), None])[0].tolist()

    # 4. a bare model under 2 ranks is flagged
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda rec: seen.append(rec.getMessage())  # type: ignore[method-assign]
    logging.getLogger("compressopt.dnn").addHandler(handler)
    make_oracle(tiny_model(), loader)
    res["warned"] = any("ranks' weights will diverge" for m in seen)

    # 5. rank-0 I/O
    distributed.on_main((out / "main_only.txt").write_text, "written by rank 0")
    distributed.barrier()
    (out / f"rank{r}.json").write_text(json.dumps(res))
    distributed.shutdown()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                          os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, __file__, str(out)], env={**env, "RANK": str(r),
                         "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for r in range(2)
    ]
    errors = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the 2-rank worker did not finish in 180 s")
        if p.returncode:
            errors.append(err[-3000:])
    assert not errors, "\n".join(errors)
    (out / "seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}")
    return out


def _load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _results(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_two_ranks_joined(two_ranks):
    r0, r1 = _results(two_ranks)
    assert (r0["rank"], r1["rank"]) == (0, 1)
    assert r0["world_size"] == r1["world_size"] == 2 and r0["backend"] == "gloo"
    assert r0["is_main"] and not r1["is_main"]


def test_lstep_on_two_ranks_equals_one_process_with_twice_the_batch(two_ranks):
    model = tiny_model()
    x, y = tiny_data()
    single = lstep(model, make_loader(x, y, 2 * B, shuffle=False))
    start = dict(tiny_model().named_parameters())
    for r in range(2):
        got = _load(two_ranks / f"lstep{r}.safetensors")
        assert set(got) == set(single)
        for n in single:
            assert not torch.equal(single[n], start[n])  # the step moved every tensor
            torch.testing.assert_close(got[n], single[n], rtol=1e-5, atol=1e-7)
    # and the two ranks hold exactly the same weights
    a, b = (_load(two_ranks / f"lstep{r}.safetensors") for r in range(2))
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_lstep_with_batch_b_alone_differs(two_ranks):
    """The check above can fail: one process on batch B takes other steps."""
    x, y = tiny_data()
    alone = lstep(tiny_model(), make_loader(x, y, B, shuffle=False))
    got = _load(two_ranks / "lstep0.safetensors")
    assert any(not torch.allclose(got[n], alone[n], rtol=1e-5, atol=1e-7) for n in got)


def test_minibatch_gradient_is_averaged_over_ranks(two_ranks):
    x, y = tiny_data()
    single = minibatch_grad(tiny_model(), make_loader(x, y, 2 * B, shuffle=False))
    for r in range(2):
        got = _load(two_ranks / f"grad{r}.safetensors")
        for n in single:
            torch.testing.assert_close(got[n], single[n], rtol=1e-5, atol=1e-7)


def test_theta_identical_on_both_ranks_after_each_iteration(two_ranks):
    r0, r1 = _results(two_ranks)
    assert r0["nit"] == r1["nit"] == 2
    assert r0["checked_iterations"] == r1["checked_iterations"] == [1, 2]
    for k in (1, 2):
        a, b = (_load(two_ranks / f"iter{k}_rank{r}.safetensors") for r in range(2))
        assert set(a) == {"0.weight", "2.weight"}
        assert all(torch.equal(a[n], b[n]) for n in a)
        nnz = sum(int((t != 0).sum()) for t in a.values())
        assert nnz == round(0.3 * (16 * 5 + 3 * 16))


def test_disagreement_is_detected_on_every_rank(two_ranks):
    for res in _results(two_ranks):
        assert res["disagreement"] == (
            "X differs across the 2 ranks at X['b']: seed every rank alike and wrap the model "
            "with wrap_model")
        assert res["structure"].startswith("L differs across ranks: 1 to 2 leaves")
        assert res["average"] == [0.5]
        assert res["warned"]


def test_only_rank_0_writes(two_ranks):
    assert (two_ranks / "main_only.txt").read_text() == "written by rank 0"


# -- one process: everything is a no-op -------------------------------------------------------


def test_single_process_defaults(monkeypatch):
    for v in distributed.ENV_VARS:
        monkeypatch.delenv(v, raising=False)
    info = distributed.init_from_env("cpu")
    assert info == distributed.RankInfo(0, 1, 0, None, torch.device("cpu"))
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    m = nn.Linear(2, 2)
    assert distributed.wrap_model(m) is m
    t = torch.ones(2)
    assert distributed.all_average([t])[0] is t
    distributed.check_ranks_agree({"x": torch.randn(3)})  # nothing to compare
    distributed.barrier()
    distributed.shutdown()
    assert distributed.on_main(lambda a: a + 1, 1) == 2


@pytest.mark.parametrize("env, msg", [
    ({"WORLD_SIZE": "2"}, "RANK is not set"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE must be >= 1"),
    ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}, "RANK=2, LOCAL_RANK=0 do not fit"),
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}, "MASTER_ADDR is not set"),
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
      "MASTER_PORT": "1"}, "runs on cpu \\(gloo\\) or cuda \\(NCCL\\), not meta"),
])
def test_init_from_env_errors(env, msg):
    with pytest.raises(ConfigError, match=msg):
        distributed.init_from_env("meta", env=env)


def test_fingerprint_sees_every_bit():
    x = torch.randn(1000)
    y = x.clone()
    y.view(torch.int32)[517] ^= 1  # the lowest mantissa bit of one entry
    fx, fy = (distributed._fingerprint(distributed._leaf_bytes(t), torch.device("cpu"))
              for t in (x, y))
    assert not torch.equal(fx, fy)
    swapped = x.clone()
    swapped[[3, 4]] = x[[4, 3]]  # same bytes, other order: the weighted sum differs
    fs = distributed._fingerprint(distributed._leaf_bytes(swapped), torch.device("cpu"))
    assert fs[0] == fx[0] and fs[1] != fx[1]
    leaves = dict(distributed._leaves({"a": (1, 2.5, None), "b": [torch.zeros(1)]}, "S"))
    assert list(leaves) == ["S['a'][0]", "S['a'][1]", "S['a'][2]", "S['b'][0]"]


if __name__ == "__main__":  # one rank of the two_ranks fixture
    _worker(Path(sys.argv[1]))
