"""Knowledge distillation: the term's value, its gradient, and its use in the oracle and the job."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from compressopt.dnn import Distillation, JobConfig, run_job
from compressopt.dnn.data import make_loader
from compressopt.dnn.job import run
from compressopt.dnn.oracle import TorchOracle
from compressopt.dnn.params import read_parameters

from .conftest import tiny_net

CE = nn.CrossEntropyLoss()


def kl_by_hand(z, zt, t):
    """Σ_rows Σ_c p_t (log p_t - log p) / N at temperature t, from the definition."""
    z, zt = z.detach(), zt.detach()
    p_t = torch.softmax(zt / t, dim=1)
    return float((p_t * (torch.log(p_t) - torch.log_softmax(z / t, dim=1))).sum(1).mean())


@pytest.mark.parametrize("t, weight", [(1.0, None), (4.0, None), (2.0, 0.5)])
def test_value_is_the_weighted_kl(tiny_data, t, weight):
    x, _ = tiny_data
    student, teacher = tiny_net(torch.float64, seed=0), tiny_net(torch.float64, seed=3)
    x = x.double()
    d = Distillation(teacher, t, weight)
    z = student(x).detach()
    expected = (t if weight is None else weight) * kl_by_hand(z, teacher(x), t)
    assert float(d(z, x)) == pytest.approx(expected, rel=1e-12)
    assert float(d(z, x)) > 0.0


def test_zero_for_the_teacher_itself_and_shift_invariant(tiny_data):
    x, _ = tiny_data
    teacher = tiny_net(torch.float64, seed=3)
    x = x.double()
    d = Distillation(teacher, 3.0)
    z = teacher(x).detach()
    assert abs(float(d(z, x))) < 1e-14
    assert abs(float(d(z + 5.0, x))) < 1e-12  # softmax ignores a per-row constant


def test_gradient_flows_to_the_student_only_and_teacher_mode_is_kept(tiny_data):
    x, _ = tiny_data
    student, teacher = tiny_net(seed=0), tiny_net(seed=3)
    teacher.train()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    d = Distillation(teacher, 2.0)
    d(student(x), x).backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert teacher.training  # restored after the eval-mode forward
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k])


def test_errors(tiny_data):
    x, _ = tiny_data
    teacher = tiny_net()
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="temperature"):
            Distillation(teacher, bad)
    with pytest.raises(ValueError, match="weight"):
        Distillation(teacher, 2.0, -0.1)
    with pytest.raises(ValueError, match="shape"):
        Distillation(teacher, 2.0)(torch.zeros(x.shape[0], 4), x)


def make(x, y, distill, seed=0):
    net = tiny_net(torch.float64, seed=seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    loader = make_loader(x.double(), y, 48, shuffle=True, seed=0)
    return TorchOracle(net, CE, loader, opt, distill=distill), net


def test_oracle_value_and_grad_include_the_term(tiny_data):
    x, y = tiny_data
    teacher = tiny_net(torch.float64, seed=3)
    d = Distillation(teacher, 2.0)
    plain, net = make(x, y, None)
    kd, _ = make(x, y, d)
    w = read_parameters(plain.params)
    with torch.no_grad():
        z = net(x.double())
    assert kd.value(w) == pytest.approx(plain.value(w) + float(d(z, x.double())), rel=1e-12)
    # the gradient is the data loss's plus the term's (autograd on the model holding w)
    net.zero_grad()
    out = net(x.double())
    (CE(out, y) + d(out, x.double())).backward()
    g = kd.grad(w)
    for n, p in net.named_parameters():
        if n in g:
            torch.testing.assert_close(g[n], p.grad, rtol=1e-10, atol=1e-12)


def test_lstep_moves_the_student_toward_the_teacher(tiny_data):
    """With the labels' weight negligible, L steps mostly shrink KL(teacher || student)."""
    x, y = tiny_data
    teacher = tiny_net(torch.float64, seed=3)
    d = Distillation(teacher, 1.0, weight=50.0)
    oracle, net = make(x, y, d)
    w = read_parameters(oracle.params)
    with torch.no_grad():
        kl0 = float(d(net(x.double()), x.double()))
    for k in range(5):
        w = oracle.lstep(w, w, 1e-6, step=k)
    with torch.no_grad():
        kl1 = float(d(net(x.double()), x.double()))
    assert kl1 < 0.5 * kl0


def test_job_option_reaches_the_report_and_changes_the_training(tmp_path):
    base = dict(model="lenet300", dataset="digits", method="lc", prune=0.2, steps=2,
                epochs=1, pretrain_epochs=2, seed=0)
    plain_run = run(JobConfig(**base))
    kd_run = run(JobConfig(**base, distill=3.0))
    plain, kd = plain_run.report, kd_run.report
    assert kd["config"]["distill"] == 3.0 and plain["config"]["distill"] == 0.0
    assert kd["reference_accuracy"] == plain["reference_accuracy"]  # same reference
    # the L steps' loss includes the term, and the trained weights differ
    assert kd["iterations"][0]["train_loss"] > plain["iterations"][0]["train_loss"]
    w = [plain_run.x, kd_run.x]
    assert not torch.equal(w[0]["fc1.weight"], w[1]["fc1.weight"])
    with pytest.raises(ValueError, match="--distill"):
        JobConfig(**base, distill=-1.0).resolved()
    with pytest.raises(ValueError, match="--distill-phase"):
        JobConfig(**base, distill=1.0, distill_phase="never").resolved()
    with pytest.raises(ValueError, match="no final retraining"):  # LC has no finish stage
        run_job(JobConfig(**base, distill=1.0, distill_phase="finish"))


def test_finish_phase_distils_only_the_final_retraining(tmp_path):
    """SLR with masked retraining: 'finish' leaves the L steps as without distillation."""
    base = dict(model="lenet300", dataset="digits", method="slr", prune=0.2, steps=2,
                epochs=1, pretrain_epochs=2, seed=0, options={"retrain_epochs": 1})
    plain_run = run(JobConfig(**base))
    fin_run = run(JobConfig(**base, distill=3.0, distill_phase="finish"))
    plain, fin = plain_run.report, fin_run.report
    every = run_job(JobConfig(**base, distill=3.0))
    loss = [[i["train_loss"] for i in r["iterations"]] for r in (plain, fin, every)]
    assert loss[1] == loss[0] and loss[2] != loss[0]
    d = [r["diagnostics"]["accuracy_before_finish"] for r in (plain, fin)]
    assert d[0] == d[1]  # the same point before the retraining
    assert fin["config"]["distill_phase"] == "finish"
    w = [plain_run.x, fin_run.x]
    assert not torch.equal(w[0]["fc1.weight"], w[1]["fc1.weight"])  # the retraining differs
    assert torch.equal(w[0]["fc1.weight"] != 0, w[1]["fc1.weight"] != 0)  # same zeros
