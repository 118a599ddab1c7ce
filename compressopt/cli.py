"""The command line: ``compressopt compress ...``, ``compressopt recipes`` (also
``python -m compressopt``).

A shell around :func:`compressopt.dnn.job.run_job`: it parses the options (their flags, help
and ranges come from the dataclass fields of :mod:`compressopt.options`), merges a recipe,
a ``--config`` TOML file and the command line (in that order, later ones win), runs the job
and prints the summary. This module does not import torch at import time: ``compressopt
--help`` works without it.

Every failure ends with one line on stderr and a non-zero exit code, never a traceback:
2 for bad options (usage, :class:`~compressopt.errors.ConfigError`), 1 for errors found while
running (data, files, memory, an unexpected error: then the line names a log file holding the
traceback), 130 / 143 when stopped by SIGINT / SIGTERM (at the next epoch or iteration
boundary; nothing of the run is left in OUT but its checkpoint, from which ``compressopt
compress --resume OUT`` continues).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from compressopt import __version__
from compressopt.errors import CompressoptError, ConfigError
from compressopt.options import (
    METHOD_OPTIONS,
    FieldSpec,
    JobConfig,
    load_recipe,
    load_toml,
    option_fields,
    recipes,
)
from compressopt.storage.atomic import ignore_sigxfsz

__all__ = ["build_parser", "main"]

MNIST_ENV = "COMPRESSOPT_MNIST_DIR"
DEFAULT_OUT = os.path.join("runs", "compress")
PROG = "compressopt compress"
#: the optional extra that provides a module a command may import
EXTRAS = {"torch": "torch", "rich": "torch", "matplotlib": "plot", "sklearn": "data",
          "ortools": "verify", "cvxpy": "verify"}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _converter(spec: FieldSpec) -> Callable[[str], Any]:
    """An argparse type for the option's base type (its range is checked by the options
    class, so the message names the valid range in one place)."""
    base = spec.kind.base
    what = {int: "an integer", float: "a number"}.get(base)
    if what is None:
        return str

    def parse(s: str) -> Any:
        try:
            return base(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None

    return parse


def _add_option(group: argparse._ArgumentGroup, spec: FieldSpec) -> None:
    """One command-line option from its field: flag, help, metavar, type, choices; the
    default is left out (SUPPRESS), so the namespace holds only the options given."""
    kw: dict[str, Any] = {"dest": spec.name, "default": argparse.SUPPRESS,
                          "help": spec.info.help}
    if spec.kind.base is bool:
        kw["action"] = "store_false" if spec.info.negate else "store_true"
    else:
        kw["type"] = _converter(spec)
        kw["metavar"] = spec.info.metavar
        if spec.kind.choices is not None:
            kw["choices"] = spec.kind.choices
            kw.pop("metavar")
        if spec.kind.seq:
            kw["action" if spec.info.append else "nargs"] = (
                "append" if spec.info.append else "+")
    group.add_argument(spec.flag, **kw)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``compressopt``; the options of ``compress`` come from the fields of
    :class:`~compressopt.options.JobConfig` and of every registered method's options."""
    parser = _Parser(
        prog="compressopt",
        description="Neural-network compression as constrained optimization.",
    )
    parser.add_argument("--version", action="version", version=f"compressopt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("recipes", help="list the recipes of --recipe, one line each")
    i = sub.add_parser("inspect", help="per-tensor byte accounting of a compressed-model file")
    i.add_argument("file", metavar="FILE", help="a model.cpz")
    e = sub.add_parser(
        "evaluate", help="reload a compressed-model file into its model, print the accuracy",
        description="Rebuild the model and data set named in FILE's metadata (or given), load "
        "the file's tensors into the model and print its test accuracy (the report's exactly).")
    e.add_argument("file", metavar="FILE", help="a model.cpz")
    e.add_argument("--model", metavar="NAME", help="the model (default: the file's)")
    e.add_argument("--dataset", metavar="NAME", help="the data set (default: the file's)")
    e.add_argument("--data-dir", metavar="DIR",
                   help=f"the MNIST directory (default: ${MNIST_ENV})")
    e.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    x = sub.add_parser("export", help="a compressed-model file's tensors as dense safetensors")
    x.add_argument("file", metavar="FILE", help="a model.cpz")
    x.add_argument("--dense", required=True, metavar="OUT",
                   help="the safetensors file to write (every tensor, decompressed)")
    p = sub.add_parser("plot", help="redraw a run's figures from OUT/report.json")
    p.add_argument("out", metavar="OUT", help="a run's output directory")
    c = sub.add_parser(
        "compress",
        help="train (or load) a reference model, compress it, report",
        description=(
            "Train (or load) a reference model, compress its Conv/Linear weights with a "
            "constrained-optimization method, print a per-layer table and write OUT "
            "(report.json, config.toml, the models). Settings come from --recipe, then "
            "--config, then the command line; those not given from the data set's defaults."
        ),
    )
    run = c.add_argument_group("the run")
    run.add_argument("--config", metavar="FILE",
                     help="a TOML file of settings (flat keys: the option names with "
                     "underscores, e.g. lstep_lr = 0.1); the command line overrides it")
    run.add_argument("--recipe", metavar="NAME",
                     help="start from a named preset (compressopt recipes lists them); "
                     "--config and the command line override it")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the run already in OUT, or the checkpoint of an "
                     "interrupted one (otherwise refused)")
    run.add_argument("--resume", metavar="OUT",
                     help="continue the interrupted run in OUT from its checkpoint "
                     "(OUT/checkpoint.safetensors), with its settings; it ends as the "
                     "uninterrupted run would have. Options given again must agree with "
                     "them (but --checkpoint-every, --no-plots, --data-dir)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    run.add_argument("--verbose", "-v", action="count", default=0,
                     help="log solver iterations (-vv: debug)")
    run.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                     help="when stderr is not a terminal: one progress line at most every "
                     "SECONDS (default 30)")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for spec in option_fields(JobConfig).values():
        g = groups.get(spec.info.group) or groups.setdefault(
            spec.info.group, c.add_argument_group(spec.info.group))
        if spec.name == "method":
            g.add_argument(
                "--method", dest="method", default=argparse.SUPPRESS,
                choices=sorted(METHOD_OPTIONS),
                help="; ".join(f"{m}: {cls[0].summary}" for m, cls in METHOD_OPTIONS.items()))
        else:
            _add_option(g, spec)
    for method, classes in METHOD_OPTIONS.items():
        specs = {n: s for cls in classes for n, s in option_fields(cls).items()}
        if specs:
            g = c.add_argument_group(f"--method {method}")
            for spec in specs.values():
                _add_option(g, spec)
    return parser


# -- settings: recipe < --config < command line ---------------------------------------------


#: the options of the shell itself, not settings of the run
SHELL_OPTIONS = frozenset({"command", "config", "recipe", "quiet", "verbose", "overwrite",
                           "progress_every", "resume"})


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a ``compress`` command gives: the recipe's, the --config file's, then
    the options on the command line (later ones win); no defaults."""
    settings: dict[str, Any] = {}
    if args.recipe:
        settings.update(load_recipe(args.recipe))
    if args.config:
        settings.update(load_toml(args.config))
    settings.update({k: tuple(v) if isinstance(v, list) else v
                     for k, v in vars(args).items() if k not in SHELL_OPTIONS})
    return settings


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """The flat settings of a ``compress`` command: :func:`given_settings`, then the shell's
    defaults (OUT, the MNIST directory from $COMPRESSOPT_MNIST_DIR)."""
    settings = given_settings(args)
    settings.setdefault("out", DEFAULT_OUT)
    if settings.get("dataset") == "mnist" and not settings.get("data_dir"):
        if not os.environ.get(MNIST_ENV):
            raise ConfigError(f"--dataset mnist needs --data-dir DIR (or ${MNIST_ENV})")
        settings["data_dir"] = os.environ[MNIST_ENV]
    return settings


# -- signals ------------------------------------------------------------------------------


class _StopSignals:
    """SIGINT and SIGTERM request a clean stop (the job checks at each epoch and iteration
    boundary); a second one stops at once. Calling the object returns the signal received."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, tty: bool) -> None:
        self.signum: int | None = None
        self.tty = tty
        self._old: dict[int, Any] = {}

    def __call__(self) -> int | None:
        return self.signum

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # a second signal: stop now
        self.signum = signum
        if self.tty:
            print(f"\n{PROG}: {signal.Signals(signum).name}: stopping at the next epoch "
                  "(again to stop now)", file=sys.stderr)

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)


def _resume_hint(out: str, checkpoint: str | None) -> str:
    if checkpoint:
        return f"{out} holds its checkpoint; resume with: compressopt compress --resume {out}"
    return (f"{out} is as it was before this run (no checkpoint yet), so run the same "
            "command again to start over")


# -- the compress command -------------------------------------------------------------------


def _compress(args: argparse.Namespace) -> int:
    checkpoint = None
    if args.resume:  # the run's own settings; those given again must agree with them
        if args.overwrite:
            raise ConfigError("--resume continues the run in OUT: drop --overwrite")
        from compressopt.dnn.checkpoint import read_checkpoint, resumed_settings

        checkpoint = read_checkpoint(args.resume)
        config = JobConfig.from_settings(
            resumed_settings(checkpoint, given_settings(args), args.resume))
    else:
        config = JobConfig.from_settings(settings_from(args))  # ConfigError before any import
    from compressopt.dnn.api import JobStopped
    from compressopt.dnn.job import run_job

    tty = sys.stderr.isatty()
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 reports
    display: Any
    if args.quiet or not main_rank:
        display = None
    elif tty:
        display = _Display()
    else:
        display = _PlainProgress(sys.stderr, every=args.progress_every)
    stop = _StopSignals(tty)
    try:
        with stop, display or contextlib.nullcontext():
            report = run_job(config, on_event=display.event if display else None, stop=stop,
                             overwrite=args.overwrite, resume=checkpoint)
    except JobStopped as e:
        name = signal.Signals(e.reason).name if isinstance(e.reason, int) else str(e.reason)
        hint = _resume_hint(config.out or "", e.checkpoint)
        print(f"{PROG}: stopped by {name} {e.where}; {hint}", file=sys.stderr)
        return 128 + e.reason if isinstance(e.reason, int) else 130
    except KeyboardInterrupt as e:  # a second signal: at once
        hint = _resume_hint(config.out or "", getattr(e, "checkpoint", None))
        print(f"{PROG}: interrupted; {hint}", file=sys.stderr)
        return 130
    if main_rank:
        _print_summary(report, config.out)
    return 0


class _Display:
    """Progress bars (rich, on stderr: a terminal) driven by the job's events."""

    def __init__(self) -> None:
        from rich.console import Console
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
            console=Console(stderr=True),
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
            p.update(t[name], advance=1, info=f"mu {mu:.3g}  test accuracy of Δ(Θ) {_f4(acc)}")


def _f4(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _clock(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class _PlainProgress:
    """Plain one-line progress records for logs (stderr not a terminal): phase, iteration,
    epoch, loss, accuracy, elapsed and estimated remaining time, at most one line every
    `every` seconds."""

    def __init__(self, stream: Any, *, every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.every, self.clock = stream, every, clock
        self.start = clock()
        self.last: float | None = None
        self.phase, self.phase_start = "start", self.start
        self.total = self.done = 0  # epochs of the phase
        self.steps = self.iteration = 0
        self.epochs = (1, 1)
        self.fields: dict[str, str] = {}

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _begin(self, phase: str, total: int) -> None:
        self.phase, self.phase_start, self.total, self.done = phase, self.clock(), total, 0
        self.fields = {}

    def event(self, kind: str, info: Any) -> None:
        if kind == "reference_start":
            self._begin("reference", info["epochs"])
        elif kind == "reference_epoch":
            self.done = info["epoch"] + 1
            self.fields = {"epoch": f"{self.done}/{self.total}", "loss": f"{info['loss']:.4f}"}
        elif kind == "reference_done":
            self.fields = {"test accuracy": f"{info['accuracy']:.4f}"}
        elif kind == "compress_start":
            self.steps, self.epochs = info["steps"], (info["first_epochs"], info["epochs"])
            self._begin(info["method"].upper(), self.epochs[0] + (self.steps - 1) * self.epochs[1])
            self.iteration = 0
        elif kind == "lstep_epoch":
            self.done += 1
            per = self.epochs[0] if info["step"] == 0 else self.epochs[1]
            self.fields.update({"iteration": f"{info['step'] + 1}/{self.steps}",
                                "epoch": f"{info['epoch'] + 1}/{per}",
                                "loss": f"{info['loss']:.4f}"})
        elif kind == "step":
            self.iteration = info.get("k", self.iteration) + 1
            self.fields.update({"iteration": f"{self.iteration}/{self.steps}",
                                "test accuracy": _f4(info.get("test_accuracy"))})
            self.fields.pop("epoch", None)
        else:
            return
        self._maybe_print()

    def _fraction(self) -> float:
        f = self.done / self.total if self.total else 0.0
        if self.steps and self.phase not in ("start", "reference"):
            f = max(f, self.iteration / self.steps)
        return min(f, 1.0)

    def _maybe_print(self) -> None:
        now = self.clock()
        if self.last is not None and now - self.last < self.every:
            return
        self.last = now
        f = self._fraction()
        spent = now - self.phase_start
        order = ("iteration", "epoch", "loss", "test accuracy")
        parts = [f"{k} {self.fields[k]}" for k in order if k in self.fields]
        parts.append(f"elapsed {_clock(now - self.start)}")
        if f > 0:
            parts.append(f"remaining ~{_clock(spent * (1 - f) / f)}")
        print(f"compressopt: {self.phase}  " + "  ".join(parts), file=self.stream, flush=True)


def _bits(b: float) -> str:
    """Bits per stored value: an integer as is, an average (additive parts) to 2 decimals."""
    return str(int(b)) if float(b).is_integer() else f"{b:.2f}"


def _print_summary(report: dict[str, Any], out: str | None) -> None:
    """The per-layer table and the summary lines, on stdout."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"{report['model']} on {report['dataset']}, {report['method']}")
    for col in ("layer", "shape", "weights", "nonzeros", "kept", "bits", "ratio"):
        table.add_column(col, justify="left" if col in ("layer", "shape") else "right")
    for layer in report["layers"]:
        stored = layer["bits"] * layer["nonzeros"]
        table.add_row(
            layer["name"], "×".join(map(str, layer["shape"])), f"{layer['numel']:,}",
            f"{layer['nonzeros']:,}", f"{layer['nonzeros'] / max(layer['numel'], 1):.2%}",
            _bits(layer["bits"]), f"{32 * layer['numel'] / stored:.1f}" if stored else "inf",
        )
    table.add_section()
    ratio, bits = report["compression_ratio"], report["average_bits"]
    table.add_row(
        "total", "", f"{sum(x['numel'] for x in report['layers']):,}",
        f"{sum(x['nonzeros'] for x in report['layers']):,}", f"{report['nonzero_fraction']:.2%}",
        "-" if bits is None else f"{bits:.2f}", "inf" if ratio is None else f"{ratio:.1f}",
    )
    console.print(table)
    ref, acc = report["reference_accuracy"], report["accuracy"]
    console.print(
        f"reference accuracy {ref:.4f} (error {1 - ref:.2%}), compressed {acc:.4f} "
        f"(error {1 - acc:.2%}), drop {report['accuracy_drop']:+.4f}"
    )
    console.print(
        f"compression ratio {'inf' if ratio is None else f'{ratio:.2f}'} nominal (the papers' "
        f"32 x weights / stored bits), {report['nonzero_fraction']:.2%} nonzero, "
        f"{'-' if bits is None else f'{bits:.2f}'} bits per stored weight; "
        f"{report['wall_seconds']:.1f} s"
    )
    if report.get("compressed_file"):
        fr, mr = report["file_compression_ratio"], report["model_bytes_ratio"]
        console.print(
            f"measured on disk: {report['compressed_file']} {report['file_bytes']:,} bytes; "
            f"file ratio {'inf' if fr is None else f'{fr:.1f}'} (4 x weights / bytes of the "
            f"compressed tensors), whole model {mr:.1f}x smaller than float32"
        )
    if out is not None:
        console.print(f"report: {os.path.join(out, 'report.json')}")


def _inspect(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from compressopt.storage import inspect

    info = inspect(args.file)
    table = Table(title=f"{args.file}: {info['file_bytes']:,} bytes")
    cols = ("tensor", "scheme", "shape", "nnz", "bits", "values", "positions", "codebook",
            "header", "total")
    for col in cols:
        table.add_column(col, justify="left" if col in cols[:3] else "right")
    for r in info["tensors"]:
        b = r["bytes"]
        table.add_row(r["name"], r["scheme"], "×".join(map(str, r["shape"])), f"{r['nnz']:,}",
                      str(r["bits"]), *(f"{b[k]:,}" for k in cols[5:9]), f"{r['total']:,}")
    for name, t in info["totals"].items():
        table.add_section()
        table.add_row(f"total {name}", "", "", f"{t['nnz']:,}", "",
                      *(f"{t[k]:,}" for k in cols[5:9]), f"{t['total']:,}")
    Console(highlight=False, width=None if sys.stdout.isatty() else 150).print(table)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from compressopt.dnn.api import check_device
    from compressopt.dnn.compressed import load_compressed
    from compressopt.dnn.job import load
    from compressopt.dnn.train import evaluate

    cm = load_compressed(args.file)
    meta = cm.metadata
    model, dataset = args.model or meta.get("model"), args.dataset or meta.get("dataset")
    if not model or not dataset:
        raise ConfigError(f"{args.file} names no model or data set: give --model and --dataset")
    data_dir = args.data_dir or (os.environ.get(MNIST_ENV) if dataset == "mnist" else None)
    config = JobConfig(model=model, dataset=dataset, data_dir=data_dir, device=args.device)
    check_device(config.device)
    data, net = load(config, lambda kind, info: None)
    cm.apply_to(net)
    _, acc = evaluate(net, data.x_test, data.y_test)
    stored = meta.get("accuracy")
    same = "" if stored is None else (
        "; the report's, exactly" if stored == acc else f"; the report says {stored:.6f}")
    print(f"{model} on {dataset}: test accuracy {acc:.6f} ({acc:.2%}){same}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from compressopt.storage import export_dense
    from compressopt.storage.atomic import atomic_write

    data = export_dense(args.file)
    atomic_write(args.dense, data)
    print(f"{args.dense}: {len(data):,} bytes (every tensor dense)")
    return 0


def _plot(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from compressopt.plots import codebook_levels, plot_report
    from compressopt.storage import read_model

    # the report as written (not read_run: a figure to redraw may be missing); the model
    # file is checked by its own checksum
    path = Path(args.out) / "report.json"
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise CompressoptError(f"{args.out} holds no run: report.json is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CompressoptError(f"{path}: not a readable report ({e})") from None
    if not isinstance(report, dict):
        raise CompressoptError(f"{path}: not a report (a JSON object)")
    weights = levels = None
    if report.get("compressed_file"):
        m = read_model(Path(args.out) / report["compressed_file"])
        arrays = m.arrays()
        weights = {x["name"]: arrays[x["name"]] for x in report["layers"]
                   if x["name"] in arrays}
        levels = codebook_levels(m.theta)
    for path in plot_report(report, args.out, weights=weights, levels=levels,
                            missing_ok=False):
        print(path)
    return 0


def _recipes(args: argparse.Namespace) -> int:
    found = recipes()
    width = max(map(len, found), default=0)
    for name, line in found.items():
        print(f"{name:<{width}}  {line}")
    return 0


# -- the top-level handler ------------------------------------------------------------------


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) if str(e).strip() else type(e).__name__
    return text


def _log_traceback(e: BaseException) -> str | None:
    """Write the traceback of `e` to a new temporary log file; its path (None if that fails)."""
    try:
        fd, path = tempfile.mkstemp(prefix="compressopt-error-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(f"compressopt {__version__}, {' '.join(sys.argv)}\n")
            traceback.print_exception(e, file=f)
        return path
    except OSError:
        return None


def _guarded(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run `command`; every failure becomes one line on stderr and an exit code."""
    prog = f"compressopt {args.command}"
    try:
        return command(args)
    except KeyboardInterrupt:  # before the job could check its stop flag
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except ConfigError as e:
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (CompressoptError, OSError, ValueError, MemoryError) as e:
        what = "out of memory: " if type(e) is MemoryError else ""
        print(f"{prog}: error: {what}{_one_line(e)}", file=sys.stderr)
        return 1
    except ImportError as e:
        top = (e.name or "").split(".")[0]
        extra = EXTRAS.get(top, "all")
        print(f"{prog}: error: needs the module {top or e}; install compressopt[{extra}]",
              file=sys.stderr)
        return 1
    except Exception as e:
        path = _log_traceback(e)
        where = f"; traceback in {path}" if path else ""
        print(f"{prog}: internal error: {type(e).__name__}: {_one_line(e)}{where}",
              file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default ``sys.argv[1:]``); return the exit code."""
    if threading.current_thread() is threading.main_thread():
        ignore_sigxfsz()  # a file-size limit becomes an OSError (one line), not a kill
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage errors (one line), --help, --version
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    commands = {"recipes": _recipes, "inspect": _inspect, "evaluate": _evaluate,
                "export": _export, "plot": _plot}
    if args.command in commands:
        return _guarded(commands[args.command], args)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(name)s: %(message)s")
    return _guarded(_compress, args)
