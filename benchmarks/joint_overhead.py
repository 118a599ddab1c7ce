"""Coordinator overhead of the joint ADMM on LeNet-5 / MNIST at 2000× (issue 13).

The target: the C step (W projection eq. 8, V projection eq. 10) and the dual update (eq. 7)
take ≤ 3 % of the L step's time (one epoch of SGD, batch 256, 60,000 images).

1. A reference LeNet-5 trained for ``--epochs`` epochs (SGD, Nesterov 0.9, lr 0.05, batch
   128), cached in ``--cache`` (a safetensors file) so that later runs reuse it.
2. ``JointADMM(rho=0.05, init_bits=3)`` (the authors' LeNet-5 setting) under
   ``budget_from_ratio(w, 2000)`` with the proximal L step of eq. (5) (lr 0.01, momentum
   0.9, batch 256): :meth:`~compressopt.solvers.JointADMM.init` then ``--steps`` periods;
   per period the history's ``time_lstep``, ``time_cstep`` (its parts ``time_wproj`` and
   ``time_vproj``) and ``time_multipliers``, and the overhead ratio; also in CPU time
   (``time.process_time``: the L step's, and the rest of the period's), which a busy
   machine distorts less than wall time.
3. The C step alone, repeated on the last state (``--repeats`` times each, interleaved):
   W projection, V projection (``v_support="w"`` and ``"free"``), dual update.

Usage, from the repository root::

    python benchmarks/joint_overhead.py [--data-dir /work/shared/data/mnist]
        [--cache /tmp/lenet5_mnist_ref.safetensors] [--steps 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from compressopt.dnn.data import load_mnist, make_loader
from compressopt.dnn.models import LeNet5
from compressopt.dnn.oracle import TorchOracle
from compressopt.dnn.params import read_parameters, select_parameters
from compressopt.projections import SparseQuantized
from compressopt.solvers import JointADMM
from compressopt.solvers.joint_admm import budget_from_ratio
from compressopt.tree import tree_axpy, tree_sub


def reference(data, epochs: int, cache: Path) -> LeNet5:
    """A LeNet-5 trained for `epochs` epochs, from `cache` when it holds one."""
    torch.manual_seed(0)
    model = LeNet5((1, 28, 28), 10)
    if cache.is_file():
        model.load_state_dict(load_file(str(cache)))
        return model
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loader = make_loader(data.x_train, data.y_train, 128, shuffle=True, seed=0)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(cache))
    return model


def accuracy(model: LeNet5, data) -> float:
    with torch.no_grad():
        return float((model(data.x_test).argmax(1) == data.y_test).float().mean())


def _median_ms(f, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return 1e3 * statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("COMPRESSOPT_MNIST_DIR",
                                                         "/work/shared/data/mnist"))
    ap.add_argument("--cache", default="/tmp/lenet5_mnist_ref.safetensors")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ratio", type=float, default=2000.0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_mnist(args.data_dir)
    model = reference(data, args.epochs, Path(args.cache))
    print(f"reference: test accuracy {accuracy(model, data):.4f}, torch threads "
          f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")

    params = select_parameters(model)
    w0 = read_parameters(params)
    joint = SparseQuantized(budget_bits=budget_from_ratio(w0, args.ratio))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = make_loader(data.x_train, data.y_train, 256, shuffle=True, seed=1)
    oracle = TorchOracle(model, torch.nn.CrossEntropyLoss(), loader, opt, penalty="prox")
    solver = JointADMM(rho=0.05, init_bits=3, eval_loss=False, maxiter=args.steps)

    t = time.perf_counter()
    state = solver.init(w0, joint)
    print(f"init (lines 1-4): {time.perf_counter() - t:.3f} s; budget "
          f"{joint.budget_bits:.0f} bits")
    lstep_cpu = []
    plain_lstep = oracle.lstep

    def lstep(*a, **kw):  # the L step's CPU time (all threads), next to the record's wall time
        t = time.process_time()
        out = plain_lstep(*a, **kw)
        lstep_cpu.append(time.process_time() - t)
        return out

    oracle.lstep = lstep
    print("\n| period | L step (s) | C step (ms) | W proj (ms) | V proj (ms) | dual (ms) | "
          "overhead (wall) | L step CPU (s) | rest CPU (ms) | overhead (CPU) | nnz | bits |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for _ in range(args.steps):
        t = time.process_time()
        state, rec = solver.step(state, oracle, joint)
        cpu = time.process_time() - t
        over = (rec.time_cstep + rec.time_multipliers) / rec.time_lstep
        rest = cpu - lstep_cpu[-1]  # the C step, the dual update and the record
        print(f"| {rec.k} | {rec.time_lstep:.2f} | {1e3 * rec.time_cstep:.0f} | "
              f"{1e3 * rec.time_wproj:.0f} | {1e3 * rec.time_vproj:.0f} | "
              f"{1e3 * rec.time_multipliers:.1f} | {100 * over:.2f} % | {lstep_cpu[-1]:.2f} | "
              f"{1e3 * rest:.0f} | {100 * rest / lstep_cpu[-1]:.2f} % | "
              f"{sum(rec.nnz.values())} | {rec.bits} |")

    # the C step alone on the last state, each part interleaved `repeats` times
    w, y, bits, rho = state.w, state.y, state.bits, solver.rho
    free = JointADMM(rho=0.05, init_bits=3, eval_loss=False, v_support="free")
    parts = {
        "C step, v_support='w'": lambda: solver._project(w, y, bits, rho, joint),
        "C step, v_support='free'": lambda: free._project(w, y, bits, rho, joint),
        "dual update": lambda: tree_axpy(rho, tree_sub(w, state.v), y),
    }
    times = {k: [] for k in parts}
    cpus = {k: [] for k in parts}
    for _ in range(args.repeats):
        for k, f in parts.items():
            c = time.process_time()
            times[k].append(_median_ms(f, 1))
            cpus[k].append(1e3 * (time.process_time() - c))
    print("\n| part (on the last state) | wall, median (ms) | CPU, median (ms) |")
    print("|---|---|---|")
    for k, v in times.items():
        print(f"| {k} | {statistics.median(v):.1f} | {statistics.median(cpus[k]):.1f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
