"""The adapter pieces of the issue-4 coordinators: masked retraining (SLR) and minibatch
gradients (APGDSSM), and the CLI methods slr, apgdssm and the joint ADMM."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.func import functional_call

from compressopt.cli import main
from compressopt.dnn.data import make_loader
from compressopt.dnn.oracle import MinibatchOracle, TorchOracle
from compressopt.dnn.params import read_parameters
from compressopt.errors import ShapeMismatchError
from compressopt.projections import SparseQuantized, project_knapsack
from compressopt.solvers import JointADMM, RetrainOracle

from .conftest import tiny_net

CE = nn.CrossEntropyLoss()


def _oracle(x, y, batch_size=16):
    net = tiny_net(torch.float64)
    x = x.to(torch.float64)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    return TorchOracle(net, CE, make_loader(x, y, batch_size, shuffle=True, seed=0), opt), net, x


def test_retrain_keeps_the_zeros_and_lowers_the_loss(tiny_data):
    oracle, net, _ = _oracle(*tiny_data)
    assert isinstance(oracle, RetrainOracle)
    w = read_parameters(oracle.params)
    mask = {n: torch.rand(t.shape, generator=torch.Generator().manual_seed(0)) < 0.5
            for n, t in w.items()}
    pruned = {n: t * mask[n] for n, t in w.items()}
    before = oracle.value(pruned)
    bias_before = net.fc1.bias.detach().clone()
    out = oracle.retrain(pruned, mask, steps=5)
    for n in out:
        assert torch.all(out[n][~mask[n]] == 0)  # the pruned entries stay pruned
        assert out[n] is not oracle.params[n]
    assert oracle.value(out) < before
    assert not torch.equal(net.fc1.bias, bias_before)  # free parameters train too
    with pytest.raises(ValueError, match="steps"):
        oracle.retrain(pruned, mask, steps=0)
    with pytest.raises(ShapeMismatchError):
        oracle.retrain(pruned, {"fc1.weight": mask["fc1.weight"]})


def test_straight_through_retraining_stays_on_the_set_and_lowers_the_loss(tiny_data):
    # JointADMM.finetune: retrain(project=Q) with Q the quantization of the nonzeros with
    # fixed widths; the result is a point of the set (support within the mask, <= 2^b values)
    oracle, _, _ = _oracle(*tiny_data)
    w = read_parameters(oracle.params)
    joint = SparseQuantized(budget_bits=40, candidates=(1, 2))
    bits = {n: 1 for n in w}
    x = JointADMM().output(
        JointADMM(init_bits=1).init(w, joint)._replace(
            w=project_knapsack(w, bits, 40).w, bits=bits), joint)[0]
    before = oracle.value(x)
    out = JointADMM().finetune(x, bits, oracle, joint, steps=10, lr=0.05)
    for n in out:
        assert torch.all(out[n][x[n] == 0] == 0)
        assert torch.unique(out[n][out[n] != 0]).numel() <= 2
    used = sum(int(torch.count_nonzero(out[n])) * bits[n] for n in out)
    assert used <= 40 and oracle.value(out) < before
    # the joint set's projection keeps the fine-tuned point (what the job reports)
    again = joint.decompress(joint.compress(out))
    for n in out:
        torch.testing.assert_close(again[n], out[n])
    with pytest.raises(ValueError, match="lr"):
        oracle.retrain(x, {n: t != 0 for n, t in x.items()}, lr=-1.0)


def test_finetune_joint_runs_a_cosine_over_the_epochs():
    import math

    import numpy as np

    from compressopt.dnn.methods import finetune_joint

    seen = []

    class Stub:  # records the rates; returns the projected point like the torch adapter
        def retrain(self, w, mask, *, steps, project, lr):
            seen.append((steps, lr))
            return project(w)

    x = {"a": np.array([0.0, 1.0, 1.1, -2.0])}
    out = finetune_joint(x, {"a": 1}, Stub(), SparseQuantized(budget_bits=3), 4, 0.2,
                         on_epoch=lambda e, y: seen.append(("epoch", e)))
    lrs = [lr for s, lr in seen if s == 1]
    assert lrs == pytest.approx([0.1 * (1 + math.cos(math.pi * e / 4)) for e in range(4)])
    assert [e for s, e in seen if s == "epoch"] == [0, 1, 2, 3]
    assert out["a"][0] == 0 and np.unique(out["a"][out["a"] != 0]).size <= 2


def test_minibatch_gradient_is_autograd_on_the_next_batch(tiny_data):
    oracle, _, _ = _oracle(*tiny_data, batch_size=16)
    mb = MinibatchOracle(oracle, lr=0.05)
    assert mb.steps_per_epoch == len(oracle.loader) == 3
    w = read_parameters(oracle.params)
    batches = [b for b in oracle.loader]  # the order the oracle will see (same seed)
    mb2 = MinibatchOracle(_oracle(*tiny_data, batch_size=16)[0], lr=0.05)
    xb, yb = batches[0]
    ref = tiny_net(torch.float64)
    ref.load_state_dict(mb2.oracle.model.state_dict())
    leaves = {n: t.detach().clone().requires_grad_(True) for n, t in w.items()}
    loss = CE(functional_call(ref, leaves, (xb.to(torch.float64),)), yb)
    expected = torch.autograd.grad(loss, list(leaves.values()))
    g = mb2.grad(w)
    for (n, e) in zip(leaves, expected, strict=True):
        torch.testing.assert_close(g[n], e)
    # the epoch's mean loss is recorded after steps_per_epoch calls, then the loader cycles
    bias = mb.oracle.model.fc2.bias.detach().clone()
    for _ in range(3):
        mb.grad(w)
    assert len(oracle.lstep_losses) == 1 and mb.calls == 3
    assert not torch.equal(mb.oracle.model.fc2.bias, bias)  # free parameters stepped
    mb.grad(w)
    assert mb.calls == 4 and oracle.iterations == 4
    with pytest.raises(ValueError, match="lr"):
        MinibatchOracle(oracle, lr=0.0)


def _run(tmp_path, *args):
    rc = main(["compress", "--quiet", "--pretrain-epochs", "3", "--epochs", "1",
               "--out", str(tmp_path), *args])
    assert rc == 0
    return json.loads((tmp_path / "report.json").read_text())


def test_cli_slr_with_retraining(tmp_path):
    r = _run(tmp_path, "--method", "slr", "--steps", "3", "--prune", "0.2",
             "--prune-scope", "layer", "--retrain-epochs", "1")
    assert r["method"] == "slr" and r["nonzero_fraction"] == pytest.approx(0.2, abs=1e-3)
    for layer in r["layers"]:  # per-layer budget: every layer keeps 20%
        assert layer["nonzeros"] == round(0.2 * layer["numel"])
    d = r["diagnostics"]
    assert d["retrain_epochs"] == 1 and 0 <= d["accuracy_before_finish"] <= 1
    assert {"condition1", "condition2", "s", "alpha"} <= set(r["iterations"][0])


def test_cli_joint_admm_meets_the_budget(tmp_path):
    r = _run(tmp_path, "--method", "admm", "--budget-ratio", "40", "--steps", "3",
             "--bit-candidates", "1", "2", "3", "4", "--rho", "0.01", "--rho-growth", "2")
    assert [x["rho"] for x in r["iterations"]] == pytest.approx([0.01, 0.02, 0.04])
    budget = 32 * r["compressed_numel"] / 40
    assert r["weight_bits"] <= budget and r["compression_ratio"] >= 40
    layers = r["diagnostics"]["layers"]
    assert set(layers) == {x["name"] for x in r["layers"]}
    for x in r["layers"]:
        assert x["bits"] == layers[x["name"]]["bits"] in (1, 2, 3, 4)
        assert x["nonzeros"] == layers[x["name"]]["nnz"]


def test_joint_admm_l_step_is_the_proximal_step_of_eq5_by_default():
    from types import SimpleNamespace

    from compressopt.dnn.experiment import JobConfig
    from compressopt.dnn.methods import METHODS

    admm = METHODS["admm"]
    shapes = {"w": (4, 3)}
    for options, expected in (({"budget_ratio": 10.0}, "prox"),
                              ({"budget_ratio": 10.0, "penalty_step": "gradient"}, "gradient"),
                              ({}, "gradient"), ({"penalty_step": "prox"}, "prox")):
        cfg = JobConfig(method="admm", options=options).resolved()
        solver, _ = admm.build(cfg, shapes)
        oracle = SimpleNamespace(penalty=None)
        assert admm.adapt(solver, oracle, cfg) == (solver, oracle)
        assert oracle.penalty == expected, options


def test_cli_joint_admm_finetuning_keeps_the_budget(tmp_path):
    r = _run(tmp_path, "--method", "admm", "--budget-ratio", "40", "--steps", "2",
             "--bit-candidates", "1", "2", "3", "--rho", "0.01", "--finetune-epochs", "2")
    d = r["diagnostics"]
    assert d["finetune_epochs"] == 2 and d["finetune_lr"] == pytest.approx(0.005)
    assert r["weight_bits"] <= 32 * r["compressed_numel"] / 40
    for x in r["layers"]:  # the widths of the last V, the nonzeros of the last W at most
        assert x["bits"] == d["layers"][x["name"]]["bits"]
        assert x["nonzeros"] <= d["layers"][x["name"]]["nnz"]
    assert 0 <= d["accuracy_before_finish"] <= 1


def test_cli_admm_eval_projected_records_the_hard_pruned_w(tmp_path):
    r = _run(tmp_path, "--method", "admm", "--prune", "0.2", "--steps", "2",
             "--eval-projected")
    it = r["iterations"]
    assert all(0 <= x["projected_test_accuracy"] <= 1 for x in it)
    # the first z-update projects w + u with u = 0: z = P(W), the same point
    assert it[0]["projected_test_accuracy"] == it[0]["test_accuracy"]
    plain = _run(tmp_path / "plain", "--method", "admm", "--prune", "0.2", "--steps", "1")
    assert "projected_test_accuracy" not in plain["iterations"][0]


def test_cli_apgdssm_reports_sparsity(tmp_path):
    r = _run(tmp_path, "--method", "apgdssm", "--bits", "2", "--steps", "2",
             "--lambda1", "1e-3", "--lambda2", "1e-3", "--beta", "0.1")
    d = r["diagnostics"]
    assert 0 <= d["final_weight_sparsity"] <= 1 and 0 <= d["final_channel_sparsity"] <= 1
    assert set(d["layers"]) == {x["name"] for x in r["layers"]}
    assert all(x["bits"] == 3 for x in r["layers"])  # 2L + 1 = 5 levels: 3 bits
    assert len(r["iterations"]) == 2 and r["iterations"][1]["weight_sparsity"] >= 0


@pytest.mark.parametrize(
    ("args", "msg"),
    [(["--method", "lc", "--budget-ratio", "10"], "does not take --budget-ratio"),
     (["--method", "apgdssm", "--prune", "0.1"], "drop --prune"),
     (["--method", "admm", "--budget-ratio", "10", "--quantize", "4"], "drop --prune and"),
     (["--method", "admm", "--prune", "0.1", "--rho", "0.1"], "--rho: options of the joint"),
     (["--method", "admm", "--prune", "0.1", "--finetune-epochs", "1"],
      "--finetune-epochs: options of the joint")],
)
def test_cli_method_option_errors(tmp_path, capsys, args, msg):
    try:
        rc = main(["compress", "--quiet", "--pretrain-epochs", "0", "--out", str(tmp_path), *args])
    except SystemExit as e:  # usage errors leave through argparse
        rc = e.code
    assert rc in (1, 2)
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err and err.count("\n") == 1
