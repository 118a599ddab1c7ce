"""compressopt.dnn.compress: the one-call API on a user's own nn.Module."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from compressopt.dnn import CompressionResult, JobStopped, compress
from compressopt.dnn.api import check_device, check_resources
from compressopt.dnn.compressed import load_compressed
from compressopt.errors import ConfigError, OutputError, ResourceLimitError
from compressopt.options import JobConfig
from compressopt.projections import AdaptiveQuantization, PerTensor


class Net(nn.Module):
    """A small 1-D conv net with a norm layer (its parameters are not compressed)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3)
        self.norm = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.norm(self.conv(x))).flatten(1))


def data(n: int = 96, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 8, generator=g)
    y = (x[:, 0, :3].sum(1) > 0).long() + (x[:, 1, 5:].sum(1) > 1).long()
    return TensorDataset(x, y)


def net_and_loaders(seed: int = 0):
    torch.manual_seed(seed)
    return (Net(), DataLoader(data(), batch_size=32, shuffle=True),
            DataLoader(data(48, seed=1), batch_size=16))


def nonzeros(model: Net) -> int:
    return int((model.conv.weight != 0).sum() + (model.fc.weight != 0).sum())


def test_defaults_just_work():
    net, train, _ = net_and_loaders()
    bias = net.fc.bias.detach().clone()
    r = compress(net, train, prune=0.1)
    assert isinstance(r, CompressionResult) and r.model is net
    n = net.conv.weight.numel() + net.fc.weight.numel()
    assert nonzeros(net) == round(0.1 * n) == r.report["compressed_nonzeros"]
    assert set(r.x) == {"conv.weight", "fc.weight"}
    assert torch.equal(r.x["fc.weight"], net.fc.weight.detach())
    assert not torch.equal(bias, net.fc.bias)  # free parameters trained in the L steps
    assert r.result.nit == 30 and len(r.report["iterations"]) == 30  # the generic defaults
    assert r.report["model"] == "Net" and r.report["accuracy"] is None
    assert r.config.method == "lc" and r.config.epochs == 2
    json.dumps(r.report, allow_nan=False)


def test_test_loader_and_evaluate():
    net, train, test = net_and_loaders()
    r = compress(net, train, quantize=2, test_loader=test, steps=2, epochs=1)
    rep = r.report
    assert 0 <= rep["accuracy"] <= 1 and 0 <= rep["reference_accuracy"] <= 1
    assert [0 <= it["test_accuracy"] <= 1 for it in rep["iterations"]] == [True, True]
    assert all(torch.unique(w).numel() <= 2 for w in r.x.values())
    net, train, _ = net_and_loaders()
    seen = []
    before = net.fc.weight.detach().clone()

    def evaluate(model):
        seen.append(nonzeros(model))
        return 0.5

    r = compress(net, train, prune=0.25, evaluate=evaluate, steps=2, epochs=1)
    n = net.conv.weight.numel() + net.fc.weight.numel()
    # the reference (dense), then Δ(Θ) of each iteration and of the result (25 % kept)
    assert seen[0] == n and seen[1:] == [round(0.25 * n)] * 3
    assert r.report["accuracy"] == 0.5 and r.report["accuracy_drop"] == 0.0
    assert not torch.equal(before, net.fc.weight)


@pytest.mark.parametrize("kw", [
    {"budget_ratio": 20.0, "bit_candidates": (1, 2)},  # the joint ADMM
    {"method": "admm", "budget_bits": 0},  # a budget of 0 bits: everything pruned, reported
    {"method": "slr", "prune": 0.3, "retrain_epochs": 1},
    {"method": "apgdssm", "bits": 2, "lambda1": 1e-3},
    {"method": "admm", "prune": 0.5, "quantize": 3, "eval_projected": True},
])
def test_every_method_on_a_custom_module(kw):
    net, train, test = net_and_loaders()
    r = compress(net, train, test_loader=test, steps=2, epochs=1, **kw)
    json.dumps(r.report, allow_nan=False)
    assert r.report["method"] == kw.get("method", "admm") and len(r.report["iterations"]) == 2
    if kw.get("budget_bits") == 0:
        assert nonzeros(net) == 0 and r.report["compression_ratio"] is None


def test_options_by_keyword_are_checked_before_training():
    net, train, _ = net_and_loaders()
    w = net.fc.weight.detach().clone()
    for kw, match in [({"rho": 0.1}, "--method lc does not take --rho"),
                      ({"frobnicate": 1}, "unknown option 'frobnicate'"),
                      ({"prune": 2.0}, r"--prune must be a finite number in \(0, 1\]"),
                      ({"lstep_lr": float("inf")}, "--lstep-lr must be a finite number"),
                      ({"quantize": 100}, "--quantize 100 exceeds the 24 weights of conv"),
                      ({"include": "nothing*"}, "pattern 'nothing\\*' matches no parameter")]:
        with pytest.raises(ValueError, match=match):
            compress(net, train, **kw)
    assert torch.equal(w, net.fc.weight)


def test_out_stop_and_callback(tmp_path):
    net, train, _ = net_and_loaders()
    records = []
    r = compress(net, train, prune=0.5, steps=2, epochs=1, out=tmp_path / "o",
                 callback=records.append, plots=False)
    assert [x["k"] for x in records] == [0, 1] and records == r.report["iterations"]
    written = json.loads((tmp_path / "o" / "report.json").read_text())
    # the file reloads into a fresh model, strictly: every tensor of the state_dict,
    # BatchNorm's int64 counter included
    cm = load_compressed(tmp_path / "o" / "model.cpz")
    assert "buffers_left_out" not in cm.metadata
    fresh = cm.apply_to(Net())
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                 net.state_dict().values(), strict=True))
    assert written == r.report and set(written["files"]) == {"config.toml", "model.cpz"}
    with pytest.raises(OutputError, match="--overwrite"):
        compress(net, train, prune=0.5, steps=2, out=tmp_path / "o")
    # a stop request ends the run at the next boundary; OUT is left as it was
    calls = []

    def stop():
        calls.append(1)
        return "test" if len(calls) > 3 else None

    before = {f.name: f.read_bytes() for f in (tmp_path / "o").iterdir()}
    with pytest.raises(JobStopped, match="stopped after") as e:
        compress(net, train, prune=0.2, steps=5, epochs=1, out=tmp_path / "o", overwrite=True,
                 stop=stop)
    assert e.value.reason == "test"
    assert {f.name: f.read_bytes() for f in (tmp_path / "o").iterdir()} == before
    with pytest.raises(JobStopped):
        compress(net, train, prune=0.2, out=tmp_path / "new", stop=lambda: 15)
    assert list((tmp_path / "new").iterdir()) == []

    def enough(rec):
        if rec["k"] == 1:
            raise StopIteration

    r = compress(net, train, prune=0.5, steps=5, epochs=1, callback=enough)
    assert len(r.report["iterations"]) == 2 and r.result.status.name == "CALLBACK"


def test_a_given_compression_and_config():
    net, train, _ = net_and_loaders()
    r = compress(net, train, compression=PerTensor(AdaptiveQuantization(2)), steps=2,
                 epochs=1)
    assert all(torch.unique(w).numel() <= 2 for w in r.x.values())
    assert r.report["prune"] is None and r.report["average_bits"] == 1.0
    with pytest.raises(ConfigError, match="compression= replaces prune"):
        compress(net, train, prune=0.5, compression=PerTensor(AdaptiveQuantization(2)))
    net, train, _ = net_and_loaders()
    cfg = JobConfig(method="admm", prune=0.3, steps=2, epochs=1, lstep_lr=0.01)
    r = compress(net, train, config=cfg, steps=3)
    assert (r.config.method, r.config.steps, r.config.lstep_lr) == ("admm", 3, 0.01)


def test_device_checks():
    assert check_device("cpu") == torch.device("cpu")
    for name, match in [("gpu0", "not a torch device"), ("meta", "holds no data"),
                        ("xpu", "not available"), ("cuda:3", "not available|only")]:
        with pytest.raises(ConfigError, match=match):
            check_device(name)


def test_memory_check_names_the_option():
    from compressopt.projections import kmeans1d_memory

    shapes = {"a": (300, 1000)}
    cfg = JobConfig(quantize=256).resolved()
    need = check_resources(cfg, shapes)
    assert need == kmeans1d_memory(300_000, 256)  # the projection's own estimate
    with pytest.raises(ResourceLimitError, match=r"\(exact k-means with K = 256 on the "
                       r"300,000 weights of a\) needs about 1.28 GB .* lower --quantize"):
        check_resources(cfg, shapes, available=need)
    apg = JobConfig(method="apgdssm", options={"bits": 31}).resolved()
    with pytest.raises(ResourceLimitError, match=r"31-bit grid projection .* lower --bits"):
        check_resources(apg, shapes, available=1000)
    joint = JobConfig(method="admm", options={"budget_ratio": 10}).resolved()
    with pytest.raises(ResourceLimitError, match="lower the largest of --bit-candidates"):
        check_resources(joint, shapes, available=1000)


def test_validation_loader_and_target():
    net, train, test = net_and_loaders()
    r = compress(net, train, prune=0.5, steps=4, epochs=1, val_loader=test,
                 target_accuracy=0.01)
    assert len(r.report["iterations"]) == 1 and 0 <= r.report["val_accuracy"] <= 1
    with pytest.raises(ConfigError, match="target_accuracy needs validation data"):
        compress(net, train, prune=0.5, target_accuracy=0.5)
