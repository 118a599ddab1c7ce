"""Fine-tune a stored joint-ADMM result with its nonzeros and bit widths fixed; print a table.

Usage, from the repository root::

    python benchmarks/lenet5_finetune.py CASE [CASE ...] [--epochs 10] [--lr 0.01]
        [--distill T] [--out runs/lenet5_issue4] [--data-dir ../shared/data/mnist]

For each ``OUT/CASE`` written by ``benchmarks/lenet5_issue4.py`` (its compressed weights,
``model.cpz``, or the ``compressed.pt`` of an earlier run, and ``report.json``), this
runs :func:`compressopt.dnn.methods.finetune_joint`, the function that
``compressopt compress --method admm --budget-ratio R --finetune-epochs N --finetune-lr LR``
runs at the end of the joint ADMM, on the stored result: straight-through SGD (the job's
momentum, Nesterov or heavy-ball, and weight decay; learning rate a cosine from LR over the
N epochs) with every tensor's zeros held and its nonzeros quantized with the run's bit
widths (k-means codebook refitted at every minibatch). So the fine-tuning is measured without
repeating the two-hour ADMM runs. The budget cannot grow: the nonzeros and widths are fixed.
``--distill T`` adds knowledge distillation from the run's reference model (``--distill``
of the command line: L = cross-entropy + T·KL(reference || model) at temperature T).
Writes ``OUT/CASE/finetune.json`` (``finetune_T.json`` with ``--distill T``) and prints one
row per case and per epoch count.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from compressopt.dnn import (
    Distillation,
    LStepSchedule,
    TorchOracle,
    build_model,
    evaluate,
    load_compressed,
    load_dataset,
    make_loader,
    read_parameters,
    select_parameters,
)
from compressopt.dnn.experiment import lstep_optimizer
from compressopt.dnn.methods import finetune_joint
from compressopt.projections import SparseQuantized
from compressopt.storage.atomic import atomic_write


def read_state(folder: Path, *names: str) -> dict[str, torch.Tensor]:
    """The state_dict in the first of the files `names` present in `folder`: a compressed
    model (.cpz: its decompressed tensors), safetensors, or a torch state_dict of tensors
    written by an earlier version (weights only)."""
    for name in names:
        p = folder / name
        if p.suffix == ".cpz" and p.is_file():
            return load_compressed(p).tensors
        if p.is_file():
            return (load_file(p) if p.suffix == ".safetensors"
                    else torch.load(p, map_location="cpu", weights_only=True))
    raise FileNotFoundError(f"none of {', '.join(names)} in {folder}")


def finetune(out: Path, case: str, data_dir: str, epochs: int, lr: float,
             distill: float = 0.0) -> dict:
    report = json.loads((out / case / "report.json").read_text())
    cfg = report["config"]
    data = load_dataset(cfg["dataset"], data_dir)
    model = build_model(cfg["model"], data.input_shape, data.num_classes)
    model.load_state_dict(read_state(out / case, "model.cpz", "compressed.pt"))
    params = select_parameters(model)
    _, before = evaluate(model, data.x_test, data.y_test)
    bits = {x["name"]: x["bits"] for x in report["layers"]}
    teacher = None
    if distill > 0:
        teacher = build_model(cfg["model"], data.input_shape, data.num_classes)
        if cfg["reference"]:  # the reference the run started from
            ref = Path(cfg["reference"])
            teacher.load_state_dict(read_state(ref.parent, ref.name))
        else:  # the reference the run trained
            teacher.load_state_dict(read_state(out / case, "reference.safetensors",
                                               "reference.pt"))
    oracle = TorchOracle(
        model, nn.CrossEntropyLoss(),
        make_loader(data.x_train, data.y_train, cfg["batch_size"], shuffle=True,
                    seed=cfg["seed"] + 2),
        lstep_optimizer(model, lr, cfg["momentum"], cfg["weight_decay"],
                        cfg.get("nesterov", True)),
        params=params, schedule=LStepSchedule(clip=False),
        distill=Distillation(teacher, distill) if teacher is not None else None,
    )
    joint = SparseQuantized(budget_bits=report["diagnostics"]["final_budget"])
    rows = []
    t0 = time.perf_counter()

    def record(e: int, x: dict) -> None:
        _, acc = evaluate(model, data.x_test, data.y_test, params=x)
        used = sum(int(torch.count_nonzero(x[n])) * bits[n] for n in x)
        rows.append({"epoch": e + 1, "accuracy": acc, "weight_bits": used,
                     "seconds": time.perf_counter() - t0})

    finetune_joint(read_parameters(params), bits, oracle, joint, epochs, lr, on_epoch=record)
    result = {"case": case, "reference_accuracy": report["reference_accuracy"],
              "accuracy_before": before, "epochs": epochs, "lr": lr, "curve": rows,
              "budget_bits": joint.budget_bits, "distill": distill}
    name = f"finetune_T{distill:g}.json" if distill > 0 else "finetune.json"
    atomic_write(out / case / name, (json.dumps(result, indent=2) + "\n").encode())
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="+")
    p.add_argument("--out", default="runs/lenet5_issue4")
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--distill", type=float, default=0.0, metavar="T",
                   help="distil from the run's reference at temperature T (default 0: off)")
    a = p.parse_args()
    torch.manual_seed(0)
    print("| case | reference % | before % | after % (epochs) | drop after | bits used / budget "
          "| time |")
    print("|---|---|---|---|---|---|---|")
    for case in a.cases:
        r = finetune(Path(a.out), case, a.data_dir, a.epochs, a.lr, a.distill)
        last = r["curve"][-1]
        print(f"| {case} | {100 * r['reference_accuracy']:.2f} | {100 * r['accuracy_before']:.2f}"
              f" | {100 * last['accuracy']:.2f} ({r['epochs']}) | "
              f"{100 * (r['reference_accuracy'] - last['accuracy']):.2f} | "
              f"{last['weight_bits']:,} / {r['budget_bits']:,.0f} | "
              f"{last['seconds'] / 60:.1f} min |")
        print("  per epoch: " + ", ".join(f"{100 * c['accuracy']:.2f}" for c in r["curve"]))


if __name__ == "__main__":
    main()
