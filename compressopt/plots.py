"""Figures of a compression run, as PNG files (matplotlib, an optional extra).

From a run's report (the ``report.json`` of ``compressopt compress``):

* :func:`plot_layers`: per layer the fraction of weights kept and the bits per stored weight
  (the layout of Yang et al., CVPR 2020, Fig. 3);
* :func:`plot_iterations`: per coordinator iteration the test accuracy, the constraint
  violation (‖w − Δ(Θ)‖, ‖W − V‖, ...) and the penalty parameter μ or ρ;
* :func:`plot_histograms`: per layer a histogram of the weights with the codebook levels
  (:func:`codebook_levels` reads them from Θ, e.g. a compressed-model file's).

:func:`plot_report` draws all of them into a folder, :func:`render_report` returns them as
PNG bytes (to stage with a run's outputs). Every file is written atomically.
matplotlib is imported only when drawing, through its object-oriented API (no pyplot, no
global backend change); without it the functions raise ImportError with the install hint,
or :func:`plot_report` skips with a warning (``missing_ok=True``). Torch-free.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "codebook_levels",
    "plot_histograms",
    "plot_iterations",
    "plot_layers",
    "plot_report",
    "render_report",
]

logger = logging.getLogger("compressopt.plots")

INSTALL_HINT = "plots need matplotlib: pip install 'compressopt[plot]'"

#: record field of the constraint violation -> axis label, in order of preference
VIOLATION = {
    "feasibility": "‖w − Δ(Θ)‖",
    "w_minus_v": "‖W − V‖",
    "primal_residual": "‖w − z‖ (primal residual)",
    "w_minus_z": "‖W − Z‖",
    "w_minus_u": "‖w − u‖",
}
#: record field of the penalty parameter -> axis label
PENALTY = {"mu": "penalty μ", "rho": "penalty ρ"}


def _figure(nrows: int, ncols: int, size: tuple[float, float]) -> tuple[Any, Any]:
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    fig = Figure(figsize=size, dpi=110, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig: Any, path: str | os.PathLike | None) -> Path | bytes:
    """Write the figure as a PNG file atomically (its path back), or return the PNG bytes
    when `path` is None (e.g. to stage them in a run's output set)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from compressopt.storage.atomic import atomic_write

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    if path is None:
        return buf.getvalue()
    atomic_write(path, buf.getvalue())
    return Path(path)


def _log_if_spread(ax: Any, values: Sequence[float | None], spread: float = 30.0) -> None:
    """Log y scale when the positive values span more than `spread` (a constant series is
    centred on a linear axis from 0 instead)."""
    v = [x for x in values if x is not None and math.isfinite(x) and x > 0]
    if len(v) >= 2 and max(v) / min(v) > spread:
        ax.set_yscale("log")
    elif v and max(v) == min(v):
        ax.set_ylim(0, 2 * v[0])


def plot_layers(report: Mapping[str, Any], path: str | os.PathLike | None = None,
                ) -> Path | bytes:
    """Bars per compressed layer: weights kept (% of the layer) and bits per stored weight.

    Reads ``report["layers"]`` (``name``, ``numel``, ``nonzeros``, ``bits``); the title
    gives the method, the model and the nominal compression ratio. Log scale for the kept
    fraction when it spans decades.
    """
    layers = list(report.get("layers") or [])
    if not layers:
        raise ValueError("the report has no layers to plot")
    names = [str(la["name"]) for la in layers]
    kept = [100.0 * la["nonzeros"] / la["numel"] if la["numel"] else 0.0 for la in layers]
    bits = [float(la["bits"]) for la in layers]
    fig, axes = _figure(2, 1, (max(5.0, 1.1 * len(names) + 2.5), 6.0))
    x = np.arange(len(names))
    ax = axes[0, 0]
    bars = ax.bar(x, kept, color="#3b75af")
    for b, la in zip(bars, layers, strict=True):
        ax.annotate(f"{la['nonzeros']:,}", (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=8)
    _log_if_spread(ax, kept)
    if ax.get_yscale() == "linear":
        ax.set_ylim(0, max([*kept, 1e-9]) * 1.15)  # room for the counts
    ax.set_ylabel("weights kept (%)")
    ax.set_title(_title(report, "per layer: weights kept (count above bar) and bits"))
    ax.set_xticks(x, [])
    ax.grid(axis="y", alpha=0.3)
    ax = axes[1, 0]
    ax.bar(x, bits, color="#e1812c")
    ax.set_ylabel("bits per stored weight")
    ax.set_xticks(x, names, rotation=30 if len(names) > 4 else 0, ha="right"
                  if len(names) > 4 else "center")
    ax.set_xlabel("layer")
    top = max([*bits, 1.0])
    ax.set_ylim(0, top * 1.15)
    if top <= 32:
        ax.set_yticks(sorted({0, *[int(b) for b in bits if b == int(b)]}))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _title(report: Mapping[str, Any], what: str) -> str:
    parts = [str(report[k]) for k in ("model", "dataset", "method") if report.get(k)]
    ratio = report.get("compression_ratio")
    if isinstance(ratio, int | float) and math.isfinite(ratio):
        parts.append(f"nominal ratio {ratio:.0f}×")
    file_ratio = report.get("file_compression_ratio")
    if isinstance(file_ratio, int | float):
        parts.append(f"file ratio {file_ratio:.0f}×")
    return f"{' · '.join(parts)}\n{what}" if parts else what


def _column(iterations: Sequence[Mapping[str, Any]], key: str) -> list[float | None]:
    out = []
    for r in iterations:
        v = r.get(key)
        out.append(float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None)
    return out


def plot_iterations(report: Mapping[str, Any], path: str | os.PathLike | None = None,
                    ) -> Path | bytes:
    """Per-iteration curves: test accuracy (%), the constraint violation and the penalty.

    Reads ``report["iterations"]``: ``test_accuracy`` (a fraction), the first present of
    ``feasibility`` (‖w − Δ(Θ)‖, LC), ``w_minus_v`` (‖W − V‖, joint ADMM),
    ``primal_residual`` (ADMM), ``w_minus_z`` (SLR), ``w_minus_u`` (APGDSSM), and ``mu`` or
    ``rho``. Panels without data are left out; log scale where values span decades.
    """
    its = list(report.get("iterations") or [])
    if not its:
        raise ValueError("the report has no iterations to plot")
    k = np.arange(1, len(its) + 1)
    panels = []
    acc = _column(its, "test_accuracy")
    if any(v is not None for v in acc):
        panels.append(([None if v is None else 100 * v for v in acc], "test accuracy (%)",
                       None))
    for key, label in VIOLATION.items():
        col = _column(its, key)
        if any(v is not None for v in col):
            panels.append((col, f"{label} (ℓ2 norm)", 10.0))
            break
    for key, label in PENALTY.items():
        col = _column(its, key)
        if any(v is not None for v in col):
            panels.append((col, label, 2.0))  # a geometric schedule is a line
            break
    fig, axes = _figure(len(panels), 1, (7.0, 2.3 * len(panels) + 0.8))
    for i, (col, label, spread) in enumerate(panels):
        ax = axes[i, 0]
        y = np.array([np.nan if v is None else v for v in col])
        ax.plot(k, y, marker="o", markersize=3, lw=1.3)
        if spread is not None:
            _log_if_spread(ax, col, spread)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.set_title(_title(report, "per iteration of the coordinator"))
    axes[-1, 0].set_xlabel("iteration")
    return _save(fig, path)


def codebook_levels(theta: Any) -> dict[str, np.ndarray]:
    """The distinct nonzero values each compressed tensor may take, from its Θ.

    Quantized Θ: the codebook's nonzero entries; scaled codes: ``scale × code`` for the codes
    that occur; a group's tensors share its levels; additive combinations and Θ without a
    finite set (pruning, low rank, penalties) give no entry. Arrays of any library; numpy out.
    """
    from compressopt._array import to_numpy
    from compressopt.projections import AdditiveTheta, Grouped, Quantized, ScaledCodes

    def levels(t: Any) -> np.ndarray | None:
        if isinstance(t, Quantized):
            v = to_numpy(t.codebook).astype(np.float64)
        elif isinstance(t, ScaledCodes):
            v = np.unique(to_numpy(t.codes)) * float(to_numpy(t.scale).reshape(-1)[0])
        else:
            return None
        return np.unique(v[v != 0])

    out: dict[str, np.ndarray] = {}
    if isinstance(theta, AdditiveTheta) or not isinstance(theta, Mapping):
        return out
    for key, t in theta.items():
        if isinstance(t, Grouped):
            lv = levels(t.theta)
            if lv is not None:
                out.update(dict.fromkeys(t.names, lv))
        elif isinstance(key, str):
            lv = levels(t)
            if lv is not None:
                out[key] = lv
    return out


def plot_histograms(weights: Mapping[str, Any], path: str | os.PathLike | None = None, *,
                    levels: Mapping[str, Any] | None = None, title: str | None = None,
                    bins: int = 80) -> Path | bytes:
    """One histogram per layer of `weights` (e.g. the reference weights, or the
    uncompressed w of the last iteration), with the codebook `levels` as vertical lines.

    Zeros are left out of the histogram (a pruned layer's spike at 0 would hide the rest);
    the count axis is logarithmic when the counts span decades.
    """
    from compressopt._array import to_numpy

    names = list(weights)
    if not names:
        raise ValueError("no weights to plot")
    levels = levels or {}
    ncols = min(2, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = _figure(nrows, ncols, (5.2 * ncols, 3.0 * nrows + 0.6))
    for i, name in enumerate(names):
        ax = axes[i // ncols, i % ncols]
        w = to_numpy(weights[name]).astype(np.float64).reshape(-1)
        nz = w[w != 0]
        counts, _, _ = ax.hist(nz, bins=bins, color="#3b75af", alpha=0.8,
                                   label=f"weights ≠ 0 ({nz.size:,} of {w.size:,})")
        if nz.size and counts.max() > 30 * max(counts[counts > 0].min(), 1):
            ax.set_yscale("log")
            ax.set_ylim(0.7, counts.max() * 12)  # room for the legend
        elif nz.size:
            ax.set_ylim(0, counts.max() * 1.3)
        lv = levels.get(name)
        if lv is not None and len(lv):
            lv = to_numpy(lv).astype(np.float64).reshape(-1)
            for j, v in enumerate(lv):
                ax.axvline(v, color="#c0392b", lw=1.0, ls="--",
                           label=f"codebook ({lv.size} levels)" if j == 0 else None)
        ax.set_title(name)
        ax.set_xlabel("weight value")
        ax.set_ylabel("count")
        ax.legend(fontsize=7, loc="upper right", framealpha=0.85)
        ax.grid(alpha=0.3)
    for j in range(len(names), nrows * ncols):
        axes[j // ncols, j % ncols].set_visible(False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def render_report(report: Mapping[str, Any], *,
                  weights: Mapping[str, Any] | None = None,
                  levels: Mapping[str, Any] | None = None) -> dict[str, bytes]:
    """The figures of :func:`plot_report` as ``{file name: PNG bytes}`` (nothing written),
    e.g. to stage them with the run's other outputs.

    Raises
    ------
    ImportError
        matplotlib is missing (the message says how to install it).
    """
    out: dict[str, bytes] = {}
    if report.get("layers"):
        out["layers.png"] = plot_layers(report)  # type: ignore[assignment]
    if report.get("iterations"):
        out["iterations.png"] = plot_iterations(report)  # type: ignore[assignment]
    if weights:
        out["histograms.png"] = plot_histograms(  # type: ignore[assignment]
            weights, levels=levels, title=_title(report, "weights and codebook levels"))
    return out


def plot_report(report: Mapping[str, Any], out_dir: str | os.PathLike, *,
                weights: Mapping[str, Any] | None = None,
                levels: Mapping[str, Any] | None = None,
                missing_ok: bool = True) -> list[Path]:
    """Draw ``layers.png``, ``iterations.png`` and (given `weights`) ``histograms.png`` into
    `out_dir`, each written atomically; returns the files written.

    Parameters
    ----------
    report : a run's report (``report.json``).
    out_dir : an existing folder.
    weights, levels : see :func:`plot_histograms`; `levels` e.g. from
        :func:`codebook_levels` of the compressed file's Θ.
    missing_ok : without matplotlib, log a warning and return ``[]`` (True) or raise
        ImportError (False).

    Raises
    ------
    ImportError
        matplotlib is missing and not `missing_ok`.
    """
    from compressopt.storage.atomic import atomic_write

    try:
        figures = render_report(report, weights=weights, levels=levels)
    except ImportError:
        if not missing_ok:
            raise
        logger.warning("%s; skipping the figures", INSTALL_HINT)
        return []
    written = []
    for name, png in figures.items():
        atomic_write(Path(out_dir) / name, png)
        written.append(Path(out_dir) / name)
    return written
