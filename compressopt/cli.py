"""The command line: ``compressopt compress ...`` (also ``python -m compressopt``).

This module does not import torch at import time: ``compressopt --help`` works without it,
and ``compress`` loads :mod:`compressopt.dnn` when it runs. Bad arguments and bad data end
with one line on stderr and a non-zero exit code (2 for usage errors, 1 for errors found
while running), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from compressopt import __version__
from compressopt.errors import CompressoptError

__all__ = ["build_parser", "main"]

MNIST_ENV = "COMPRESSOPT_MNIST_DIR"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _checked(convert: Any, valid: Any, what: str) -> Any:
    """An argparse type: ``convert(s)``, rejected with "WHAT, got S" unless ``valid``."""

    def parse(s: str) -> Any:
        try:
            v = convert(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}, got {s!r}") from None
        if not valid(v):
            raise argparse.ArgumentTypeError(f"{what}, got {s}")
        return v

    return parse


_keep = _checked(float, lambda v: 0.0 < v <= 1.0, "KEEP must be a number in (0, 1]")
_codebook = _checked(int, lambda v: v >= 2, "K must be an integer >= 2")
_positive_int = _checked(int, lambda v: v >= 1, "expected a positive integer")
_nonneg_int = _checked(int, lambda v: v >= 0, "expected an integer >= 0")
_positive_float = _checked(
    float, lambda v: 0.0 < v < float("inf"), "expected a positive finite number"
)


def _method_registry() -> dict[str, Any]:
    """:data:`compressopt.dnn.methods.METHODS`, or {} when torch is not installed."""
    try:
        from compressopt.dnn.methods import METHODS
    except ImportError:  # torch missing: the parser still builds, compress reports it
        return {}
    return METHODS


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, list[str]]]:
    """The parser, and for each method the ``dest`` names of its own options."""
    parser = _Parser(
        prog="compressopt",
        description="Neural-network compression as constrained optimization.",
    )
    parser.add_argument("--version", action="version", version=f"compressopt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    c = sub.add_parser(
        "compress",
        help="train (or load) a reference LeNet, compress it, report",
        description=(
            "Train (or load) a reference model, compress its Conv/Linear weights with a "
            "constrained-optimization method, print a per-layer table and write OUT/report.json. "
            "Defaults that are not given come from the data set (see compressopt.dnn.experiment)."
        ),
    )
    c.add_argument("--model", choices=["lenet300", "lenet5"], default="lenet300")
    c.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    c.add_argument(
        "--data-dir", metavar="DIR", default=os.environ.get(MNIST_ENV),
        help=f"directory of the four MNIST IDX .gz files (default: ${MNIST_ENV})",
    )
    methods = _method_registry()
    c.add_argument(
        "--method", choices=sorted(methods) or ["lc", "admm"], default="lc",
        help="; ".join(f"{m.name}: {m.help}" for m in methods.values()) or None,
    )
    c.add_argument("--prune", metavar="KEEP", type=_keep,
                   help="keep this fraction of the compressed weights (global l0), in (0, 1]; "
                   "with neither --prune nor --quantize, the data set's default (digits 0.1, "
                   "mnist 0.05)")
    c.add_argument("--quantize", metavar="K", type=_codebook,
                   help="a K-entry codebook per layer, ceil(log2 K) bits per weight")
    g = c.add_argument_group("training (default: per data set)")
    g.add_argument("--epochs", type=_positive_int, metavar="N", help="L-step epochs per iteration")
    g.add_argument("--first-epochs", type=_positive_int, metavar="N",
                   help="epochs of the first L step (default: 2 x --epochs if given)")
    g.add_argument("--pretrain-epochs", type=_nonneg_int, metavar="N",
                   help="reference training epochs")
    g.add_argument("--steps", type=_positive_int, metavar="N", help="number of penalty values mu_k")
    g.add_argument("--mu0", type=_positive_float, help="first penalty mu_0")
    g.add_argument("--mu-growth", type=_positive_float, metavar="A", help="mu_k = mu0 * A**k")
    g.add_argument("--lr", type=_positive_float, help="reference learning rate (cosine schedule)")
    g.add_argument("--lstep-lr", type=_positive_float, metavar="LR",
                   help="L-step learning rate eta_0 (then eta_0 * decay**k, clipped to 1/mu)")
    g.add_argument("--lr-decay", type=_positive_float, metavar="D",
                   help="L-step learning-rate decay per iteration")
    g.add_argument("--lr-schedule", choices=["exp", "cos"], default="exp",
                   help="L-step learning rates: exp, eta_0 * D**k (default), or cos, a cosine "
                   "over the iterations after the warm-up (--lr-decay then defaults to 1)")
    g.add_argument("--warmup", type=_nonneg_int, default=0, metavar="N",
                   help="iterations of linear learning-rate warm-up (default 0)")
    g.add_argument("--momentum", type=float, default=0.9, metavar="M",
                   help="L-step SGD momentum, Nesterov unless --heavy-ball (default 0.9)")
    g.add_argument("--weight-decay", type=float, default=0.0, metavar="WD",
                   help="L-step weight decay on all parameters (default 0)")
    g.add_argument("--heavy-ball", dest="nesterov", action="store_false",
                   help="L-step momentum of the heavy-ball kind instead of Nesterov's (a "
                   "wider stable range of learning rates; Yang et al.'s code)")
    g.add_argument("--keep-momentum", action="store_true",
                   help="carry the momentum over from one L step to the next (default: clear)")
    g.add_argument("--distill", type=float, default=0.0, metavar="T",
                   help="knowledge distillation from the reference at temperature T: "
                   "L = cross-entropy + T * KL(reference || model) in the L steps and any "
                   "retraining (default 0: off)")
    g.add_argument("--distill-phase", choices=["all", "finish"], default="all",
                   help="distil in the L steps and the final retraining/fine-tuning (all, "
                   "default) or in the latter only (finish)")
    g.add_argument("--batch-size", type=_positive_int, metavar="B")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p = c.add_argument_group("parameters and output")
    p.add_argument("--include", action="append", default=[], metavar="PATTERN",
                   help="compress the parameters matching this glob (repeatable; "
                   "default: Conv/Linear weights)")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="do not compress the parameters matching this glob (repeatable)")
    p.add_argument("--reference", metavar="PATH",
                   help="load this reference state_dict instead of training")
    p.add_argument("--out", metavar="DIR", default="runs/compress",
                   help="output directory for report.json (default: runs/compress)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.add_argument("--verbose", "-v", action="count", default=0,
                   help="log solver iterations (-vv: debug)")
    option_dests: dict[str, list[str]] = {}
    for m in methods.values():
        if m.add_arguments is None:
            continue
        before = {a.dest for a in c._actions}
        m.add_arguments(c.add_argument_group(f"--method {m.name}"))
        option_dests[m.name] = [a.dest for a in c._actions if a.dest not in before]
    return parser, option_dests


def _foreign_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace, option_dests: dict[str, list[str]]
) -> list[str]:
    """Options of other methods than ``args.method`` that were given (they would be ignored)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    compress = sub.choices["compress"]
    by_dest = {a.dest: a for a in compress._actions}
    given = []
    for method, dests in option_dests.items():
        if method == args.method:
            continue
        for d in dests:
            if getattr(args, d, None) != by_dest[d].default:
                given.append(f"{by_dest[d].option_strings[0]} (--method {method})")
    return given


def _config(args: argparse.Namespace, option_dests: dict[str, list[str]]) -> Any:
    from compressopt.dnn.experiment import JobConfig

    return JobConfig(
        model=args.model, dataset=args.dataset, data_dir=args.data_dir, method=args.method,
        prune=args.prune, quantize=args.quantize, epochs=args.epochs,
        first_epochs=args.first_epochs, pretrain_epochs=args.pretrain_epochs, steps=args.steps,
        mu0=args.mu0, mu_growth=args.mu_growth, lr=args.lr, lstep_lr=args.lstep_lr,
        lr_decay=args.lr_decay, batch_size=args.batch_size, seed=args.seed, out=args.out,
        reference=args.reference, include=tuple(args.include), exclude=tuple(args.exclude),
        device=args.device, momentum=args.momentum, weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule, warmup=args.warmup, keep_momentum=args.keep_momentum,
        nesterov=args.nesterov, distill=args.distill, distill_phase=args.distill_phase,
        options={d: getattr(args, d) for d in option_dests.get(args.method, [])},
    )


def _compress(args: argparse.Namespace, option_dests: dict[str, list[str]]) -> int:
    try:
        from rich.console import Console

        from compressopt.dnn.experiment import run_job
    except ImportError as e:
        print(f"compressopt compress: error: needs torch and rich ({e}); "
              "install compressopt[torch]", file=sys.stderr)
        return 1
    if args.dataset == "mnist" and not args.data_dir:
        print("compressopt compress: error: --dataset mnist needs --data-dir DIR "
              f"(or ${MNIST_ENV})", file=sys.stderr)
        return 2
    out = Console(highlight=False, soft_wrap=True)
    display = _Display(Console(stderr=True), enabled=not args.quiet)
    try:
        with display:
            report = run_job(_config(args, option_dests), on_event=display.event)
    except (CompressoptError, ValueError, OSError) as e:
        print(f"compressopt compress: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("compressopt compress: interrupted", file=sys.stderr)
        return 130
    _print_summary(out, report, args.out)
    return 0


class _Display:
    """Progress bars (rich, on stderr) driven by the events of
    :func:`~compressopt.dnn.experiment.run_job`."""

    def __init__(self, console: Any, *, enabled: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
            console=console, disable=not enabled,
        )
        self.tasks: dict[str, Any] = {}
        self.epochs = (1, 1)
        self.step = 0

    def __enter__(self) -> _Display:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tasks:
            self.progress.stop()

    def _task(self, name: str, total: int | None, info: str = "") -> Any:
        if not self.tasks:  # started with the first bar: an early error prints nothing else
            self.progress.start()
        self.tasks[name] = self.progress.add_task(name, total=total, info=info)
        return self.tasks[name]

    def event(self, kind: str, info: Any) -> None:
        p, t = self.progress, self.tasks
        if kind == "reference_start":
            self._task("reference", info["epochs"])
        elif kind == "reference_epoch":
            p.update(t["reference"], advance=1, info=f"loss {info['loss']:.4f}")
        elif kind == "reference_done":
            if "reference" not in t:
                self._task("reference", 0)
            p.update(t["reference"], info=f"test accuracy {info['accuracy']:.4f}")
        elif kind == "compress_start":
            self.epochs = (info["first_epochs"], info["epochs"])
            self._task(info["method"].upper(), info["steps"])
            self._task("  L step", self.epochs[0])
        elif kind == "lstep_epoch":
            if info["step"] != self.step:  # a new L step: restart its bar
                self.step = info["step"]
                p.reset(t["  L step"], total=self.epochs[1])
            p.update(t["  L step"], advance=1, info=f"loss {info['loss']:.4f}")
        elif kind == "step":
            name = next(k for k in t if k not in ("reference", "  L step"))
            mu = info.get("mu", info.get("rho", float("nan")))
            acc = info["test_accuracy"]
            p.update(t[name], advance=1, info=f"mu {mu:.3g}  test accuracy of Δ(Θ) {acc:.4f}")


def _print_summary(console: Any, report: dict[str, Any], out: str | None) -> None:
    """The per-layer table and the summary lines, on stdout."""
    from rich.table import Table

    table = Table(title=f"{report['model']} on {report['dataset']}, {report['method']}")
    for col in ("layer", "shape", "weights", "nonzeros", "kept", "bits", "ratio"):
        table.add_column(col, justify="left" if col in ("layer", "shape") else "right")
    for layer in report["layers"]:
        stored = layer["bits"] * layer["nonzeros"]
        table.add_row(
            layer["name"], "×".join(map(str, layer["shape"])), f"{layer['numel']:,}",
            f"{layer['nonzeros']:,}", f"{layer['nonzeros'] / max(layer['numel'], 1):.2%}",
            str(layer["bits"]), f"{32 * layer['numel'] / stored:.1f}" if stored else "inf",
        )
    table.add_section()
    table.add_row(
        "total", "", f"{sum(x['numel'] for x in report['layers']):,}",
        f"{sum(x['nonzeros'] for x in report['layers']):,}", f"{report['nonzero_fraction']:.2%}",
        f"{report['average_bits']:.2f}", f"{report['compression_ratio']:.1f}",
    )
    console.print(table)
    ref, acc = report["reference_accuracy"], report["accuracy"]
    console.print(
        f"reference accuracy {ref:.4f} (error {1 - ref:.2%}), compressed {acc:.4f} "
        f"(error {1 - acc:.2%}), drop {report['accuracy_drop']:+.4f}"
    )
    console.print(
        f"compression ratio {report['compression_ratio']:.2f} (32 x weights / stored bits), "
        f"{report['nonzero_fraction']:.2%} nonzero, {report['average_bits']:.2f} bits per "
        f"stored weight; {report['wall_seconds']:.1f} s"
    )
    if out is not None:
        console.print(f"report: {os.path.join(out, 'report.json')}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default ``sys.argv[1:]``); return the exit code."""
    parser, option_dests = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    foreign = _foreign_options(parser, args, option_dests)
    if foreign:
        parser.error(f"--method {args.method} does not take {', '.join(foreign)}")
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(name)s: %(message)s")
    return _compress(args, option_dests)
