"""The main job (run_job) on digits with tiny epochs: report contents, methods, reference files."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import pytest
import torch
from safetensors.torch import load_file, save_file

from compressopt.dnn.compressed import load_compressed
from compressopt.dnn.experiment import JobConfig, lstep_optimizer, run_job
from compressopt.dnn.methods import METHODS, Method, build_compression, register
from compressopt.errors import ConfigError, DataError, ShapeMismatchError
from compressopt.options import METHOD_OPTIONS, MethodOptions, opt
from compressopt.projections import (
    AdaptiveQuantization,
    Additive,
    Chain,
    GlobalCardinality,
    PerTensor,
    Tasks,
)
from compressopt.solvers import LC

TINY = {"pretrain_epochs": 2, "steps": 3, "epochs": 1, "first_epochs": 1, "plots": False}
REQUIRED = {
    "model", "dataset", "method", "seed", "epochs", "reference_accuracy", "accuracy",
    "accuracy_drop", "compression_ratio", "nonzero_fraction", "average_bits", "weight_bits",
    "wall_seconds", "layers",
}


def job(tmp_path, **kw):
    cfg = JobConfig(**{**TINY, "out": str(tmp_path), **kw})
    return run_job(cfg), load_compressed(tmp_path / "model.cpz").tensors


def check_consistent(report):
    layers = report["layers"]
    numel = sum(x["numel"] for x in layers)
    stored = sum(x["bits"] * x["nonzeros"] for x in layers)
    nnz = sum(x["nonzeros"] for x in layers)
    assert report["compression_ratio"] == pytest.approx(32 * numel / stored, rel=1e-12)
    assert report["weight_bits"] == stored
    assert report["average_bits"] == pytest.approx(stored / nnz, rel=1e-12)
    assert report["nonzero_fraction"] == pytest.approx(nnz / numel, rel=1e-12)
    assert 0 <= report["accuracy"] <= 1 and 0 <= report["reference_accuracy"] <= 1
    drop = report["reference_accuracy"] - report["accuracy"]
    assert report["accuracy_drop"] == pytest.approx(drop)
    assert report["wall_seconds"] > 0


def test_prune_report(tmp_path):
    report, state = job(tmp_path, prune=0.1)
    assert REQUIRED <= set(report)
    check_consistent(report)
    assert (report["model"], report["dataset"], report["method"]) == ("lenet300", "digits", "lc")
    assert report["reference_accuracy"] > 0.5  # 2 epochs are enough to learn the digits
    assert [x["name"] for x in report["layers"]] == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert [x["shape"] for x in report["layers"]] == [[300, 64], [100, 300], [10, 100]]
    assert all(x["bits"] == 32 for x in report["layers"])
    total = 50_200
    assert sum(x["nonzeros"] for x in report["layers"]) == round(0.1 * total)
    assert report["compression_ratio"] == pytest.approx(10.0, rel=1e-3)
    # Δ(Θ) was written into the model that was saved, and matches the table
    for x in report["layers"]:
        assert int(torch.count_nonzero(state[x["name"]])) == x["nonzeros"]
    assert len(report["iterations"]) == 3
    assert [r["k"] for r in report["iterations"]] == [0, 1, 2]
    assert all(0 <= r["test_accuracy"] <= 1 for r in report["iterations"])
    assert report["iterations"][-1]["test_accuracy"] == pytest.approx(report["accuracy"])
    mus = [r["mu"] for r in report["iterations"]]
    assert mus == pytest.approx([1e-3, 1.2e-3, 1.44e-3])
    assert report["diagnostics"]["iterations"] == 3
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["accuracy"] == report["accuracy"] and on_disk["layers"] == report["layers"]
    assert (tmp_path / "reference.safetensors").is_file()
    files = on_disk["files"]  # every file of the run, with its size and SHA-256
    assert set(files) == {"reference.safetensors", "model.cpz", "config.toml"}
    # the compressed file's measured sizes (issue 10)
    assert on_disk["compressed_file"] == "model.cpz"
    assert on_disk["file_bytes"] == files["model.cpz"]["bytes"]
    assert on_disk["file_compression_ratio"] == pytest.approx(
        4 * 50_200 / on_disk["tensor_bytes"])
    assert all(set(x["bytes"]) >= {"values", "positions", "codebook", "total"}
               for x in on_disk["layers"])
    # reloaded into a fresh model, the file gives the report's accuracy exactly
    from compressopt.dnn import build_model, evaluate, load_digits

    d = load_digits()
    cm = load_compressed(tmp_path / "model.cpz")
    assert cm.metadata["input_shape"] == [1, 8, 8] and cm.metadata["num_classes"] == 10
    fresh = cm.apply_to(build_model("lenet300", d.input_shape, d.num_classes))
    assert evaluate(fresh, d.x_test, d.y_test)[1] == report["accuracy"]
    assert all(files[f]["bytes"] == (tmp_path / f).stat().st_size for f in files)


def test_quantize_report(tmp_path):
    report, state = job(tmp_path, quantize=2)
    check_consistent(report)
    assert all(x["bits"] == 1 and x["nonzeros"] == x["numel"] for x in report["layers"])
    assert report["compression_ratio"] == pytest.approx(32.0) and report["average_bits"] == 1.0
    for x in report["layers"]:
        assert torch.unique(state[x["name"]]).numel() <= 2
        assert x["overhead_bits"] == 2 * 32  # the codebook


def test_prune_and_quantize_report(tmp_path):
    report, state = job(tmp_path, prune=0.2, quantize=3)
    check_consistent(report)
    assert all(x["bits"] == 2 for x in report["layers"])  # ceil(log2 3)
    assert sum(x["nonzeros"] for x in report["layers"]) <= round(0.2 * 50_200)
    assert report["compression_ratio"] == pytest.approx(32 / 2 / report["nonzero_fraction"])
    for x in report["layers"]:
        w = state[x["name"]]
        assert torch.unique(w[w != 0]).numel() <= 3


def test_admm_method(tmp_path):
    report, _ = job(tmp_path, method="admm", prune=0.1)
    check_consistent(report)
    assert report["method"] == "admm"
    keys = {"final_rho", "final_primal_residual", "final_dual_residual"}
    assert keys <= set(report["diagnostics"])
    assert [r["rho"] for r in report["iterations"]] == pytest.approx([1e-3, 1.2e-3, 1.44e-3])


def test_lenet5_and_exclude(tmp_path):
    report, _ = job(tmp_path, model="lenet5", exclude=("fc2.*",), prune=0.5)
    check_consistent(report)
    assert [x["name"] for x in report["layers"]] == ["conv1.weight", "conv2.weight", "fc1.weight"]


def test_same_seed_same_result_and_reference_reload(tmp_path):
    a, sa = job(tmp_path / "a", prune=0.1, seed=3)
    b, sb = job(tmp_path / "b", prune=0.1, seed=3)
    assert a["accuracy"] == b["accuracy"] and a["reference_accuracy"] == b["reference_accuracy"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c, _ = job(tmp_path / "c", prune=0.1, seed=4)
    assert c["reference_accuracy"] != a["reference_accuracy"] or c["accuracy"] != a["accuracy"]
    # loading the saved reference reproduces the run without training
    d, sd = job(tmp_path / "d", prune=0.1, seed=3,
                reference=str(tmp_path / "a" / "reference.safetensors"))
    assert d["reference_accuracy"] == a["reference_accuracy"] and d["pretrain_epochs"] == 0
    assert all(torch.equal(sa[k], sd[k]) for k in sa)
    assert not (tmp_path / "d" / "reference.safetensors").exists()  # loaded, not trained
    # a torch state_dict of plain tensors is read too (weights_only=True)
    torch.save(load_file(tmp_path / "a" / "reference.safetensors"), tmp_path / "ref.pt")
    e, _ = job(tmp_path / "e", prune=0.1, seed=3, reference=str(tmp_path / "ref.pt"))
    assert e["accuracy"] == a["accuracy"]


def test_an_empty_test_split_is_refused_before_training(monkeypatch):
    import compressopt.dnn.job as job
    from compressopt.dnn.data import load_digits

    d = load_digits()
    monkeypatch.setattr(job, "load_dataset", lambda *a, **k: d._replace(x_test=d.x_test[:0],
                                                                    y_test=d.y_test[:0]))
    seen = []
    with pytest.raises(DataError, match="the test split is empty"):
        run_job(JobConfig(**TINY), on_event=lambda k, i: seen.append(k))
    assert seen == []


def test_bad_pattern_fails_before_training(tmp_path):
    seen = []
    with pytest.raises(ValueError, match="pattern 'conv\\*' matches no parameter"):
        run_job(JobConfig(**TINY, include=("conv*",)), on_event=lambda k, i: seen.append(k))
    assert seen == ["data"]


def test_reference_errors(tmp_path):
    with pytest.raises(DataError, match="reference model file not found"):
        run_job(JobConfig(**TINY, reference=str(tmp_path / "none.pt")))
    torch.save({"fc1.weight": torch.zeros(3)}, tmp_path / "wrong.pt")
    with pytest.raises(ShapeMismatchError, match="does not fit the model"):
        run_job(JobConfig(**TINY, reference=str(tmp_path / "wrong.pt")))
    save_file({"fc1.weight": torch.zeros(3)}, tmp_path / "wrong.safetensors")
    with pytest.raises(ShapeMismatchError, match="does not fit the model"):
        run_job(JobConfig(**TINY, reference=str(tmp_path / "wrong.safetensors")))
    (tmp_path / "junk.pt").write_text("not a torch file")
    with pytest.raises(DataError, match="not a readable reference model"):
        run_job(JobConfig(**TINY, reference=str(tmp_path / "junk.pt")))
    # a pickled object is refused, and the message never suggests loading it unsafely
    torch.save({"w": torch.zeros(1), "obj": Pickled()}, tmp_path / "obj.pt")
    with pytest.raises(DataError, match="not a readable reference model") as e:
        run_job(JobConfig(**TINY, reference=str(tmp_path / "obj.pt")))
    assert "weights_only" not in str(e.value) and "pickle" not in str(e.value).lower()


class Pickled:
    """An object torch.load(weights_only=True) refuses."""


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"prune": 0.0}, r"--prune must be a finite number in \(0, 1\], got 0.0"),
        ({"prune": 1.5}, r"--prune must be a finite number in \(0, 1\]"),
        ({"quantize": 1}, "--quantize must be an integer >= 2, got 1"),
        ({"method": "sgd"}, "--method must be one of admm, apgdssm, dc, lc, slr, got 'sgd'"),
        ({"steps": 0}, "--steps must be an integer >= 1"),
        ({"mu_growth": 0.5}, "--mu-growth must be a finite number >= 1"),
        ({"momentum": 1.0}, r"--momentum must be a finite number in \[0, 1\)"),
        ({"weight_decay": -1e-4}, r"--weight-decay must be a finite number in \[0, "),
        ({"lr_schedule": "step"}, "--lr-schedule must be one of 'exp', 'cos'"),
        ({"warmup": 3, "steps": 3}, r"--warmup must be in \[0, --steps\)"),
    ],
)
def test_bad_config(kw, match):
    with pytest.raises(ConfigError, match=match):
        JobConfig(**kw).resolved()


@pytest.mark.parametrize(("kw", "error", "match"), [
    ({"device": "gpu0"}, ConfigError, "not a torch device: 'gpu0'"),
    ({"device": "meta"}, ConfigError, "--device meta: a meta tensor holds no data"),
    ({"model": "vgg"}, ValueError, "vgg"),
])
def test_bad_config_found_before_training(kw, error, match):
    seen = []
    with pytest.raises(error, match=match):
        run_job(JobConfig(**TINY, **kw), on_event=lambda k, i: seen.append(k))
    assert "reference_start" not in seen


def test_resolved_defaults():
    c = JobConfig().resolved()
    assert c.prune == 0.1 and c.quantize is None and c.steps == len(c.mus)
    assert c.mus[1] / c.mus[0] == pytest.approx(c.mu_growth)
    assert JobConfig(quantize=4).resolved().prune is None
    assert JobConfig(epochs=3).resolved().first_epochs == 6
    assert JobConfig(dataset="cifar").resolved().steps == 30  # the generic defaults
    m = JobConfig(dataset="mnist", model="lenet300").resolved()
    assert m.mu0 == pytest.approx(9.76e-5) and m.lr_decay == 0.98
    assert JobConfig(lr_schedule="cos").resolved().lr_decay == 1.0  # the cosine alone
    assert JobConfig(lr_schedule="cos", lr_decay=0.9).resolved().lr_decay == 0.9


def test_training_recipe_options(tmp_path):
    # warm-up over 2 L steps, then a cosine over the remaining 2 (the run's learning rates
    # are recorded per iteration); momentum and weight decay reach the L-step optimizer
    r, _ = job(tmp_path, steps=4, lstep_lr=0.1, lr_schedule="cos", warmup=2, momentum=0.5,
               weight_decay=1e-3, keep_momentum=True)
    assert [x["lr"] for x in r["iterations"]] == pytest.approx([0.05, 0.1, 0.1, 0.05])
    assert r["config"]["momentum"] == 0.5 and r["config"]["keep_momentum"] is True
    net = torch.nn.Linear(3, 2)
    g = lstep_optimizer(net, 0.1, 0.5, 1e-3).param_groups[0]
    assert (g["momentum"], g["nesterov"], g["weight_decay"]) == (0.5, True, 1e-3)
    assert lstep_optimizer(net, 0.1, 0.0).param_groups[0]["nesterov"] is False
    assert lstep_optimizer(net, 0.1, 0.5, nesterov=False).param_groups[0]["nesterov"] is False
    plain, _ = job(tmp_path / "plain", steps=2, lstep_lr=0.1, lr_decay=0.5)
    assert [x["lr"] for x in plain["iterations"]] == pytest.approx([0.1, 0.05])


def test_build_compression():
    assert build_compression(0.5, None) == GlobalCardinality(keep=0.5)
    assert build_compression(None, 4) == PerTensor(AdaptiveQuantization(4))
    both = build_compression(0.5, 4)
    assert isinstance(both, Chain) and both.then == PerTensor(AdaptiveQuantization(4, sparse=True))
    with pytest.raises(ValueError, match="--prune KEEP and/or --quantize K"):
        build_compression(None, None)
    add = build_compression(0.01, 2, combine="additive", shared=("a", "b"))
    assert add == Additive(Tasks({("a", "b"): AdaptiveQuantization(2)}),
                           GlobalCardinality(keep=0.01))
    assert build_compression(None, 4, shared=("a",)) == Tasks({("a",): AdaptiveQuantization(4)})
    for kw, msg in [({"combine": "sum"}, "'chain' or 'additive'"),
                    ({"combine": "additive"}, "needs both")]:
        with pytest.raises(ValueError, match=msg):
            build_compression(0.5, None, **kw)
    with pytest.raises(ValueError, match="shared codebook needs quantize"):
        build_compression(0.5, None, shared=("a",))


@pytest.mark.parametrize(("kw", "msg"), [
    ({"combine": "additive", "quantize": 2}, "--combine additive needs both"),
    ({"combine": "additive", "prune": 0.1}, "--combine additive needs both"),
    ({"shared_codebook": True, "prune": 0.1}, "--shared-codebook needs --quantize K"),
    ({"method": "slr", "prune": 0.1, "shared_codebook": True}, "slr builds its own constraint"),
    ({"method": "admm", "options": {"budget_ratio": 50}, "combine": "additive"},
     "admm builds its own constraint"),
])
def test_combine_options_refused_before_any_work(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        JobConfig(**TINY, **kw)


def test_additive_job_is_a_codebook_plus_a_sparse_correction(tmp_path):
    """--combine additive --shared-codebook (the LC authors' LeNet-300 example): every
    weight is one of K = 2 values shared by all the layers plus a correction on KEEP of the
    weights; the nominal ratio counts 1 bit per weight and 32 per correction."""
    report, tensors = job(tmp_path, prune=0.02, quantize=2, combine="additive",
                          shared_codebook=True)
    numel = sum(x["numel"] for x in report["layers"])
    kappa = math.ceil(0.02 * numel)  # GlobalCardinality keeps ceil(keep * n)
    assert sum(x["nonzeros"] for x in report["layers"]) == numel + kappa
    assert report["compression_ratio"] == pytest.approx(32 * numel / (numel + 32 * kappa),
                                                        rel=1e-12)
    assert report["config"]["combine"] == "additive" and report["config"]["shared_codebook"]
    from compressopt.storage.model_file import read_model
    theta = read_model(tmp_path / "model.cpz").theta
    q, corr = theta.first, theta.second
    (group,) = q.values()  # one task: all the layers, one codebook
    assert len(group.theta.codebook) == 2
    nnz = sum(int(torch.count_nonzero(torch.as_tensor(v.values))) for v in corr.values())
    assert 0 < nnz <= kappa
    assert set(tensors) >= set(corr)  # Δ(Θ) = Q + s of every compressed layer was saved


@dataclass(frozen=True)
class QPOptions(MethodOptions):
    method: ClassVar[str] = "lc-qp"
    summary: ClassVar[str] = "LC, quadratic penalty"
    penalty: Literal["al", "qp"] = opt("qp", "the penalty")


def test_registering_a_method_is_one_entry(tmp_path, monkeypatch):
    def build(cfg, shapes):
        assert cfg.options == QPOptions(penalty="qp")
        return LC(mus=cfg.mus, penalty=cfg.options.penalty, eval_loss=False), build_compression(
            cfg.prune, cfg.quantize
        )

    # registered for this test only (monkeypatch removes both entries afterwards)
    monkeypatch.setitem(METHODS, "lc-qp", None)
    monkeypatch.setitem(METHOD_OPTIONS, "lc-qp", [])
    register(Method("lc-qp", "LC, quadratic penalty", build, lambda r: {"nit": r.nit},
                    options=(QPOptions,)))
    from compressopt.cli import main

    rc = main(["compress", "--quiet", "--method", "lc-qp", "--penalty", "qp",
               "--pretrain-epochs", "1", "--steps", "2", "--epochs", "1", "--out", str(tmp_path)])
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["method"] == "lc-qp" and report["diagnostics"] == {"nit": 2}
    assert report["config"]["options"] == {"penalty": "qp"}
    assert all(r["lambda_norm"] == 0.0 for r in report["iterations"])  # qp: no multipliers
    assert not math.isnan(report["accuracy"])


@pytest.mark.parametrize(("method", "options", "attribute", "value"), [
    ("lc", {"inner_iterations": 3}, "inner_iterations", 3),
    ("dc", {}, "niter", 1),
    ("dc", {"iterated": True}, "maxiter", 4),
    ("admm", {"budget_ratio": 10, "init_projections": False}, "init_projections", False),
    ("slr", {"step_rule": "bragin"}, "step_rule", "bragin"),
    ("slr", {"alpha_index": "update"}, "alpha_index", "update"),
    ("apgdssm", {"threshold": "prox_grad"}, "threshold", "prox_grad"),
    ("apgdssm", {"splitting": "simultaneous"}, "splitting", "simultaneous"),
    ("apgdssm", {"ctl1_groups": "channel"}, "ctl1_groups", "channel"),
    ("apgdssm", {"shrink_every": "epoch"}, "shrink_every", "epoch"),
    ("apgdssm", {"milestones": [2], "lambda1_factors": [1, 0.5], "cumulative_factors": False},
     "schedule", "per-interval"),
])
def test_method_options_reach_the_solver(method, options, attribute, value):
    cfg = JobConfig(method=method, steps=4, options=options).resolved()
    solver, _ = METHODS[method].build(cfg, {"w": (4, 3)})
    if value == "per-interval":
        assert solver.schedule.cumulative is False and solver.schedule.at(3)[0] == 0.5
    else:
        assert getattr(solver, attribute) == value


def test_apgdssm_step_learning_rate():
    from compressopt.dnn import TorchOracle, make_loader

    cfg = JobConfig(method="apgdssm", lstep_lr=0.1, steps=4,
                    options={"lr_milestones": [2, 3], "lr_factor": 0.5}).resolved()
    solver, _ = METHODS["apgdssm"].build(cfg, {"weight": (2, 3)})
    net = torch.nn.Linear(3, 2)
    loader = make_loader(torch.randn(50, 3), torch.randint(0, 2, (50,)), 10, shuffle=True)
    oracle = TorchOracle(net, torch.nn.CrossEntropyLoss(), loader,
                         torch.optim.SGD(net.parameters(), lr=0.1))
    adapted, _ = METHODS["apgdssm"].adapt(solver, oracle, cfg)  # 5 minibatches per epoch
    assert [adapted.lr(t) for t in (0, 9, 10, 15)] == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_apgdssm_report_records_the_scheduled_rate():
    """report.json's per-iteration lr is APGDSSM's γ_t (its step schedule), not the unused
    L-step optimizer's rate (which it once showed: 0.02 at every epoch of a ×0.1 schedule)."""
    r = run_job(JobConfig(**TINY, method="apgdssm", options={"bits": 4, "lr_milestones": [1, 2],
                                                             "lr_factor": 0.5}))
    lr0 = r["config"]["lstep_lr"]
    assert [it["lr"] for it in r["iterations"]] == pytest.approx([lr0, lr0 / 2, lr0 / 4])


def test_direct_compression_and_its_iterated_form(tmp_path):
    dc = run_job(JobConfig(**TINY, method="dc", prune=0.2))
    assert len(dc["iterations"]) == 1 and dc["iterations"][0]["change"] == 0.0
    idc = run_job(JobConfig(**TINY, method="dc", prune=0.2, options={"iterated": True}))
    assert len(idc["iterations"]) == 3 and idc["nonzero_fraction"] == pytest.approx(0.2, 1e-3)
    assert all(r["lr"] == 0.05 * 0.98 ** r["k"] for r in idc["iterations"][1:])  # not clipped


def test_hold_out_is_stratified_seeded_and_disjoint():
    from compressopt.dnn.data import load_digits
    from compressopt.dnn.job import hold_out

    d = load_digits()
    rest, xv, yv = hold_out(d, 200, seed=3)
    assert yv.shape[0] == 200 and rest.y_train.shape[0] == d.y_train.shape[0] - 200
    share = torch.bincount(d.y_train, minlength=10).double() / d.y_train.shape[0]
    assert torch.all((torch.bincount(yv, minlength=10) - 200 * share).abs() < 1)
    rows = {tuple(r.tolist()) for r in d.x_train.flatten(1)}
    assert rows >= {tuple(r.tolist()) for r in xv.flatten(1)}
    assert not {tuple(r.tolist()) for r in rest.x_train.flatten(1)} & {
        tuple(r.tolist()) for r in xv.flatten(1)}
    again = hold_out(d, 200, seed=3)
    assert torch.equal(again[1], xv) and not torch.equal(hold_out(d, 200, seed=4)[1], xv)


def test_validation_split_and_target_accuracy():
    r = run_job(JobConfig(**{**TINY, "steps": 5}, method="slr", prune=0.2, val_split=300,
                          target_accuracy=0.3))
    assert 0 <= r["val_accuracy"] <= 1 and 0 <= r["reference_val_accuracy"] <= 1
    assert len(r["iterations"]) == 1 and r["iterations"][0]["val_accuracy"] >= 0.3
    assert "reached --target-accuracy 0.3" in r["message"]
    with pytest.raises(ConfigError, match="--target-accuracy needs a validation split"):
        run_job(JobConfig(**TINY, target_accuracy=0.5))
    plain = run_job(JobConfig(**TINY, prune=0.2))
    assert "val_accuracy" not in plain and "val_accuracy" not in plain["iterations"][0]


def test_eval_loss_and_adam():
    r = run_job(JobConfig(**TINY, method="admm", eval_loss=128, options={"budget_ratio": 40}))
    assert all(x["loss"] > 0 and x["loss_quantized"] > 0 for x in r["iterations"])
    assert "loss" not in run_job(JobConfig(**TINY, prune=0.3))["iterations"][0]
    net = torch.nn.Linear(3, 2)
    adam = lstep_optimizer(net, 0.01, momentum=0.8, weight_decay=1e-4, kind="adam")
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["betas"] == (0.8, 0.999)
    r = run_job(JobConfig(**TINY, prune=0.3, optimizer="adam", lstep_lr=1e-3))
    assert r["config"]["optimizer"] == "adam" and 0 <= r["accuracy"] <= 1
    with pytest.raises(ConfigError, match="--heavy-ball is a kind of SGD momentum"):
        JobConfig(optimizer="adam", nesterov=False)


def test_val_seed_fixes_the_split_across_run_seeds(monkeypatch):
    """Runs of several seeds that share one reference validate on one split (--val-seed)."""
    import compressopt.dnn.job as job

    seeds = []
    real = job.hold_out

    def spy(data, n, seed):
        seeds.append(seed)
        return real(data, n, seed)

    monkeypatch.setattr(job, "hold_out", spy)
    for seed in (1, 2):
        run_job(JobConfig(**{**TINY, "steps": 1}, seed=seed, prune=0.2, val_split=100,
                          val_seed=7))
    run_job(JobConfig(**{**TINY, "steps": 1}, seed=5, prune=0.2, val_split=100))
    assert seeds == [7, 7, 5]
