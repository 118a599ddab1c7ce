"""TorchOracle: value/grad against autograd and finite differences, the L step, lr clipping."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from compressopt.dnn.data import make_loader
from compressopt.dnn.oracle import LStepSchedule, TorchOracle, clipped_lr
from compressopt.dnn.params import read_parameters, select_parameters
from compressopt.errors import ShapeMismatchError
from compressopt.solvers import LC, DifferentiableOracle, LossOracle

from .conftest import tiny_net

CE = nn.CrossEntropyLoss()


def make_oracle(x, y, *, dtype=torch.float64, lr=0.05, momentum=0.0, batch_size=48, **kw):
    net = tiny_net(dtype)
    x = x.to(dtype)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    loader = make_loader(x, y, batch_size, shuffle=True, seed=0)
    return TorchOracle(net, CE, loader, opt, **kw), net, x


def perturbed(w, scale=0.3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {n: t + scale * torch.randn(t.shape, generator=g, dtype=t.dtype) for n, t in w.items()}


def test_is_a_differentiable_oracle(tiny_data):
    oracle, _, _ = make_oracle(*tiny_data)
    assert isinstance(oracle, LossOracle) and isinstance(oracle, DifferentiableOracle)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_value_and_grad_agree_with_autograd(tiny_data, dtype):
    x, y = tiny_data
    oracle, net, xd = make_oracle(x, y, dtype=dtype)
    w = perturbed(read_parameters(oracle.params))
    # Autograd on a copy of the model holding w: the loss over the whole (48 < eval_size) data.
    ref = tiny_net(dtype)
    ref.load_state_dict(net.state_dict())
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if n in w:
                p.copy_(w[n])
    loss = CE(ref(xd), y)
    loss.backward()
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-14}
    assert oracle.value(w) == pytest.approx(loss.item(), rel=tol["rtol"])
    g = oracle.grad(w)
    assert set(g) == {"fc1.weight", "fc2.weight"}
    for n in g:
        assert g[n].dtype == dtype and g[n].shape == w[n].shape
        torch.testing.assert_close(g[n], dict(ref.named_parameters())[n].grad, **tol)


def test_grad_matches_finite_differences(tiny_data):
    oracle, _, _ = make_oracle(*tiny_data, dtype=torch.float64)
    w = perturbed(read_parameters(oracle.params))
    d = perturbed({n: torch.zeros_like(t) for n, t in w.items()}, scale=1.0, seed=7)
    eps = 1e-6
    fd = (oracle.value({n: w[n] + eps * d[n] for n in w})
          - oracle.value({n: w[n] - eps * d[n] for n in w})) / (2 * eps)
    g = oracle.grad(w)
    assert sum(float((g[n] * d[n]).sum()) for n in w) == pytest.approx(fd, rel=1e-6)


def test_value_and_grad_do_not_touch_model_or_inputs(tiny_data):
    oracle, net, _ = make_oracle(*tiny_data)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    w = perturbed(read_parameters(oracle.params))
    w_copy = {n: t.clone() for n, t in w.items()}
    oracle.value(w)
    g = oracle.grad(w)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    for n in w:
        assert torch.equal(w[n], w_copy[n]) and not w[n].requires_grad
        assert g[n].data_ptr() != w[n].data_ptr()


def test_value_uses_a_fixed_subset(tiny_data):
    x, y = tiny_data
    oracle, _, xd = make_oracle(x, y, eval_size=10)
    w = read_parameters(oracle.params)
    assert oracle.eval_data[0].shape[0] == 10
    assert oracle.value(w) == oracle.value(w)  # deterministic, not a random minibatch
    explicit, _, _ = make_oracle(x, y, eval_data=(xd[:10], y[:10]))
    assert explicit.value(w) == pytest.approx(oracle.value(w), rel=1e-12)


def penalized(oracle, w, c, mu):
    return oracle.value(w) + 0.5 * mu * sum(float(((w[n] - c[n]) ** 2).sum()) for n in w)


@pytest.mark.parametrize("mu", [1e-3, 0.5, 20.0])
def test_lstep_decreases_the_penalized_objective(tiny_data, mu):
    # Full-batch data and eval set: the L step is gradient descent on exactly the objective.
    oracle, _, _ = make_oracle(
        *tiny_data, lr=0.05, schedule=LStepSchedule(epochs=30, clip=True)
    )
    w0 = read_parameters(oracle.params)
    c = perturbed({n: torch.zeros_like(t) for n, t in w0.items()}, scale=0.5, seed=3)
    f0 = penalized(oracle, w0, c, mu)
    w1 = oracle.lstep(w0, c, mu, step=0)
    f1 = penalized(oracle, w1, c, mu)
    assert f1 < f0 - 1e-3 * abs(f0)
    assert oracle.iterations == 30 and len(oracle.lstep_losses) == 1
    if mu >= 0.5:  # a strong penalty pulls w towards the center
        dist = lambda w: math.sqrt(sum(float(((w[n] - c[n]) ** 2).sum()) for n in w))  # noqa: E731
        assert dist(w1) < dist(w0)


def test_lstep_with_minibatches_and_momentum_decreases_the_objective(tiny_data):
    oracle, _, _ = make_oracle(
        *tiny_data, lr=0.05, momentum=0.9, batch_size=8, schedule=LStepSchedule(epochs=5)
    )
    w0 = read_parameters(oracle.params)
    c = {n: torch.zeros_like(t) for n, t in w0.items()}
    f0 = penalized(oracle, w0, c, 1.0)
    w1 = oracle.lstep(w0, c, 1.0)
    assert penalized(oracle, w1, c, 1.0) < 0.9 * f0
    assert oracle.iterations == 5 * 6  # 48 examples in batches of 8


def test_clipped_lr():
    assert clipped_lr(0.1, 1.0) == 0.1
    assert clipped_lr(0.1, 20.0) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="mu must be positive"):
        clipped_lr(0.1, 0.0)
    with pytest.raises(ValueError, match="learning rate"):
        clipped_lr(-1.0, 1.0)


@pytest.mark.parametrize(
    ("mu", "step", "decay", "clip", "expected"),
    [
        (1.0, 0, 1.0, True, 0.5),  # 1/mu = 1 > eta
        (10.0, 0, 1.0, True, 0.1),  # clipped to 1/mu
        (10.0, 0, 1.0, False, 0.5),  # not clipped
        (1.0, 2, 0.5, True, 0.125),  # eta0 * decay**k
        (4.0, 1, 0.5, True, 0.25),  # min(0.25, 0.25)
    ],
)
def test_lstep_sets_the_clipped_decayed_learning_rate(tiny_data, mu, step, decay, clip, expected):
    oracle, _, _ = make_oracle(
        *tiny_data, lr=0.5, schedule=LStepSchedule(iterations=1, lr_decay=decay, clip=clip)
    )
    w = read_parameters(oracle.params)
    oracle.lstep(w, w, mu, step=step)
    assert oracle.optimizer.param_groups[0]["lr"] == pytest.approx(expected)
    assert oracle.learning_rates(mu, step) == [pytest.approx(expected)]


def test_clipped_step_on_the_penalty_lands_on_the_center(tiny_data):
    # A loss that does not depend on the weights: plain SGD on (mu/2)||w - c||^2 with the
    # clipped rate 1/mu reaches c in one step; unclipped (eta = 0.5, mu = 10) it overshoots.
    x, y = tiny_data
    zero_loss = lambda out, t: 0.0 * out.sum()  # noqa: E731
    for clip, expect_exact in ((True, True), (False, False)):
        net = tiny_net(torch.float64)
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        oracle = TorchOracle(
            net, zero_loss, make_loader(x.double(), y, 48, shuffle=False), opt,
            schedule=LStepSchedule(iterations=1, clip=clip),
        )
        w = read_parameters(oracle.params)
        c = perturbed({n: torch.zeros_like(t) for n, t in w.items()}, seed=5)
        w1 = oracle.lstep(w, c, 10.0)
        for n in w:
            if expect_exact:
                torch.testing.assert_close(w1[n], c[n], rtol=0, atol=1e-14)
            else:  # w - 0.5*10*(w - c) = c - 4 (w - c)
                torch.testing.assert_close(w1[n], c[n] - 4 * (w[n] - c[n]))


def test_lstep_inputs_unmodified_and_outputs_fresh_on_the_model_device(tiny_data):
    oracle, net, _ = make_oracle(*tiny_data, schedule=LStepSchedule(epochs=2))
    w = perturbed(read_parameters(oracle.params))
    c = perturbed(w, seed=9)
    w_copy = {n: t.clone() for n, t in w.items()}
    c_copy = {n: t.clone() for n, t in c.items()}
    out = oracle.lstep(w, c, 0.1)
    params = dict(net.named_parameters())
    for n in w:
        assert torch.equal(w[n], w_copy[n]) and torch.equal(c[n], c_copy[n])
        assert out[n].device == params[n].device and out[n].dtype == params[n].dtype
        assert not out[n].requires_grad
        assert out[n].data_ptr() not in (params[n].data_ptr(), w[n].data_ptr(), c[n].data_ptr())
        assert torch.equal(out[n], params[n].detach())  # the model holds the new iterate
    out["fc1.weight"].zero_()  # the caller owns the result: the model is unaffected
    assert params["fc1.weight"].abs().sum() > 0


def test_lstep_warm_starts_from_w(tiny_data):
    # The model's own weights are overwritten by w at the start of the L step.
    oracle, _, _ = make_oracle(*tiny_data, lr=1e-12, schedule=LStepSchedule(iterations=1))
    w = perturbed(read_parameters(oracle.params), scale=2.0)
    out = oracle.lstep(w, w, 1.0)
    for n in w:
        torch.testing.assert_close(out[n], w[n])


@pytest.mark.parametrize("reset", [True, False])
def test_reset_momentum(tiny_data, reset):
    oracle, _, _ = make_oracle(
        *tiny_data, momentum=0.9, schedule=LStepSchedule(iterations=2, reset_momentum=reset)
    )
    w = read_parameters(oracle.params)
    oracle.lstep(w, w, 1.0)
    assert len(oracle.optimizer.state) == 4  # a momentum buffer per parameter
    oracle.optimizer.step = lambda: None  # observe the state without stepping
    oracle.lstep(w, w, 1.0)
    assert len(oracle.optimizer.state) == (0 if reset else 4)


def test_first_epochs_and_on_epoch(tiny_data):
    seen = []
    oracle, _, _ = make_oracle(
        *tiny_data, batch_size=16, schedule=LStepSchedule(epochs=1, first_epochs=3),
        on_epoch=lambda k, e, loss: seen.append((k, e, loss)),
    )
    w = read_parameters(oracle.params)
    oracle.lstep(w, w, 1.0, step=0)
    oracle.lstep(w, w, 1.0, step=1)
    assert [(k, e) for k, e, _ in seen] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert all(isinstance(v, float) and v > 0 for _, _, v in seen)
    assert oracle.iterations == 4 * 3


def test_iterations_cycle_the_loader(tiny_data):
    oracle, _, _ = make_oracle(*tiny_data, batch_size=16, schedule=LStepSchedule(iterations=7))
    w = read_parameters(oracle.params)
    oracle.lstep(w, w, 1.0)
    assert oracle.iterations == 7  # 3 batches per epoch, cycled


def test_shape_and_name_errors(tiny_data):
    oracle, _, _ = make_oracle(*tiny_data)
    w = read_parameters(oracle.params)
    with pytest.raises(ShapeMismatchError, match="missing"):
        oracle.value({"fc1.weight": w["fc1.weight"]})
    with pytest.raises(ShapeMismatchError, match="has shape"):
        oracle.grad({**w, "fc2.weight": w["fc2.weight"].T})
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        oracle.lstep(w, {n: t.numpy() for n, t in w.items()}, 1.0)
    with pytest.raises(ValueError, match="mu must be positive"):
        oracle.lstep(w, w, 0.0)


def test_constructor_errors(tiny_data):
    x, y = tiny_data
    net = tiny_net()
    only_fc2 = torch.optim.SGD(net.fc2.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"not in the optimizer: \['fc1.weight'\]"):
        TorchOracle(net, CE, make_loader(x, y, 8, shuffle=False), only_fc2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="eval_data"):
        TorchOracle(net, CE, [(x, y)], opt)
    with pytest.raises(ValueError, match="epochs"):
        LStepSchedule(epochs=0)
    with pytest.raises(ValueError, match="lr_decay"):
        LStepSchedule(lr_decay=1.5)


def test_runs_under_lc_and_biases_are_trained(tiny_data):
    from compressopt.projections import GlobalCardinality

    oracle, net, _ = make_oracle(*tiny_data, lr=0.1, schedule=LStepSchedule(epochs=3))
    bias0 = net.fc1.bias.detach().clone()
    w0 = read_parameters(select_parameters(net))
    res = LC(mu0=1e-2, mu_growth=2.0, maxiter=12, tol=0.0, eval_loss=True).run(
        w0, oracle, GlobalCardinality(keep=0.25)
    )
    total = sum(t.numel() for t in w0.values())
    assert sum(int((t != 0).sum()) for t in res.x.values()) <= round(0.25 * total)
    assert res.history[-1].feasibility < 0.1 * res.history[0].feasibility
    assert all(math.isfinite(r.loss) for r in res.history)
    assert not torch.equal(net.fc1.bias.detach(), bias0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensors_stay_on_the_cuda_device(tiny_data):  # pragma: no cover - no GPU in CI
    x, y = tiny_data
    net = tiny_net().cuda()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    oracle = TorchOracle(net, CE, make_loader(x, y, 16, shuffle=True), opt)
    w = read_parameters(oracle.params)
    for out in (oracle.grad(w), oracle.lstep(w, w, 1.0)):
        assert all(t.is_cuda for t in out.values())


def test_warmup_and_cosine_learning_rates():
    s = LStepSchedule(warmup=2, cosine=4, clip=False, lr_decay=0.5)
    got = [s.lr_at(0.8, k, 1.0) for k in range(7)]
    cos = [0.5 * (1 + math.cos(math.pi * t / 4)) for t in (0, 0, 0, 1, 2, 3, 4)]
    warm = [0.5, 1.0, 1, 1, 1, 1, 1]
    assert got == pytest.approx([0.8 * 0.5**k * warm[k] * cos[k] for k in range(7)])
    assert got[-1] == 0.0  # t clipped at T: the end of the cosine
    assert LStepSchedule(warmup=3).lr_at(0.3, 0, 100.0) == pytest.approx(0.01)  # clip 1/mu
    for bad in ({"warmup": -1}, {"warmup": 1.5}, {"cosine": 0}, {"cosine": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LStepSchedule(**bad)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_prox_penalty_step_is_the_proximal_map(tiny_data, momentum):
    # A loss that does not depend on the weights: SGD does nothing (also with momentum, as
    # the gradients are 0), so n prox steps give c + (w - c)/(1 + eta mu)^n exactly; the
    # gradient form on the same problem gives c + (w - c)(1 - eta mu)^n without momentum.
    x, y = tiny_data
    zero_loss = lambda out, t: 0.0 * out.sum()  # noqa: E731
    eta, mu, n = 0.1, 2.0, 3
    for penalty, factor in (("prox", (1 + eta * mu) ** -n), ("gradient", (1 - eta * mu) ** n)):
        if penalty == "gradient" and momentum:
            continue
        net = tiny_net(torch.float64)
        opt = torch.optim.SGD(net.parameters(), lr=eta, momentum=momentum)
        oracle = TorchOracle(net, zero_loss, make_loader(x.double(), y, 16, shuffle=False), opt,
                             schedule=LStepSchedule(iterations=n), penalty=penalty)
        w = read_parameters(oracle.params)
        c = perturbed({k: torch.zeros_like(t) for k, t in w.items()}, seed=5)
        w1 = oracle.lstep(w, c, mu)
        for k in w:
            torch.testing.assert_close(w1[k], c[k] + (w[k] - c[k]) * factor, rtol=1e-12,
                                       atol=1e-14)


def test_prox_penalty_decreases_the_penalized_objective(tiny_data):
    oracle, _, _ = make_oracle(*tiny_data, schedule=LStepSchedule(epochs=20), penalty="prox")
    w = read_parameters(oracle.params)
    c = perturbed(w, seed=3)
    before = penalized(oracle, w, c, 1.0)
    assert penalized(oracle, oracle.lstep(w, c, 1.0), c, 1.0) < before - 1e-3
    with pytest.raises(ValueError, match="penalty"):
        make_oracle(*tiny_data, penalty="l1")


# -- tuple inputs and the module trained in the L step ----------------------------------------


class Pair(nn.Module):
    """Takes a tuple (x, scale): logits of Linear(x) * scale."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 3)

    def forward(self, inputs):
        x, scale = inputs
        return self.fc(x) * scale.unsqueeze(1)


def test_tuple_inputs_through_value_grad_lstep_and_retrain(tiny_data):
    x, y = tiny_data
    scale = torch.linspace(0.5, 1.5, x.shape[0])
    torch.manual_seed(0)
    net = Pair()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    oracle = TorchOracle(net, CE, make_loader((x, scale), y, 16, shuffle=True), opt)
    assert isinstance(oracle.eval_data[0], tuple)  # the default subset, collated
    w = read_parameters(oracle.params)
    direct = CE(net((x, scale)), y).item()
    assert oracle.value(w) == pytest.approx(direct, rel=1e-6)
    g = oracle.grad(w)
    assert g["fc.weight"].shape == (3, 5) and torch.isfinite(g["fc.weight"]).all()
    new = oracle.lstep(w, w, 1.0)
    assert not torch.equal(new["fc.weight"], w["fc.weight"])
    mask = {"fc.weight": (torch.arange(15).reshape(3, 5) % 2).float()}
    kept = oracle.retrain(new, mask, steps=1)
    assert torch.all(kept["fc.weight"][mask["fc.weight"] == 0] == 0)


def test_train_model_is_what_the_lstep_calls(tiny_data):
    x, y = tiny_data
    net = tiny_net(torch.float32)
    calls = []

    class Spy(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, inp):
            calls.append(inp.shape[0])
            return self.inner(inp)

    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    oracle = TorchOracle(net, CE, make_loader(x, y, 16, shuffle=False), opt,
                         train_model=Spy(net))
    w = read_parameters(oracle.params)
    oracle.value(w)
    oracle.grad(w)
    assert calls == []  # value and grad evaluate the model itself
    oracle.lstep(w, w, 1.0)
    assert calls == [16, 16, 16]
    oracle.retrain(w, {n: torch.ones_like(t) for n, t in w.items()}, steps=1)
    assert calls == [16] * 6
    assert TorchOracle(net, CE, make_loader(x, y, 16, shuffle=False), opt).train_model is net


def test_train_stops_when_the_loss_diverges(tiny_data):
    """A diverged training (here a loss that turns NaN in the second epoch) raises at the end
    of the first epoch whose loss is not finite, instead of training on to the last epoch."""
    from compressopt.dnn.train import train
    from compressopt.errors import NonFiniteError

    x, y = tiny_data
    model = tiny_net()
    seen = []
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    ce = nn.CrossEntropyLoss()

    def loss(out, target):
        return ce(out, target) * (math.nan if seen else 1.0)

    with pytest.raises(NonFiniteError, match=r"training diverged in epoch 2.*--lr"):
        train(model, loss, make_loader(x, y, 8, shuffle=False), opt, 5,
              on_epoch=lambda e, loss: seen.append(e))
    assert seen == [0, 1]
