"""Leaderboard figures (matplotlib, Agg, no pyplot state) rendered to deterministic PNG and SVG bytes.

Per table (dataset + split), one panel per model row, so models compare side by side on shared axes
(the per-run figures of :mod:`phonbench.plots` show one run each; the helpers for per-material
errors, histogram bins and quartile picks are shared with it):

* ``parity``: hexbin density of predicted vs true test values (log colour scale of counts), every
  real (unmasked) entry of every run pooled, with the y = x line and the pooled R² (aggregated over
  real entries) and MAE printed on the panel;
* ``errors``: histograms of per-material error on train and test (MSE per material for spectra,
  MAE otherwise): density on linear bins, or the fraction per log-spaced bin on a log x-axis when the
  panel's errors span more than two decades (:func:`phonbench.plots.error_bins`);
* ``dos_quartiles`` (spectrum tasks, :mod:`.figures_spectra`): the same four test materials for every
  model, at the quartiles of the per-material MSE averaged over the table's models, true vs predicted
  spectrum (as Chen et al., Adv. Sci. 2021, Fig. 2d), named by id and reduced formula;
* ``training_curves``: every ``*loss`` key of each run's per-epoch history (when present), one line
  per run, key and ensemble member (members restart at epoch 1; see
  :func:`phonbench.plots.draw_training_lines`). Learning curves in the sense of error vs training-set
  size are :mod:`phonbench.learning_curves`.

Units on axes and titles are typeset as in the tables (``cm⁻¹``, ``a.u.²``, ``THz²``). Bytes depend
only on the inputs (and, for the formulas of the quartile panel, on the installed dataset): fixed
style and font, fixed size and dpi, no version or date metadata (:mod:`.figure_canvas`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from phonbench.leaderboard.figure_canvas import (
    COLORS,
    Rendered,
    render,
    svg_path,
    unit_text,
)
from phonbench.leaderboard.figures_spectra import (
    RULE,
    Formulas,
    dos_quartiles,
    quartile_materials,
)
from phonbench.leaderboard.tables import Row, Table

__all__ = ["FIGURES", "Formulas", "Rendered", "dos_quartiles", "draw_histogram_panel", "draw_parity_panel",
           "draw_training_panel", "error_histograms", "parity", "quartile_materials", "svg_path", "table_figures",
           "training_curves"]
_render = render  # the generalisation figure draws on the same canvas
HEXBIN_GRIDSIZE = 40


def _test_entries(row: Row, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    ys, ps = [], []
    for run in row.runs:
        _, y, p, m = run.predictions.part(split)
        ys.append(y[m])
        ps.append(p[m])
    return (np.concatenate(ys), np.concatenate(ps)) if ys else (np.zeros(0), np.zeros(0))


def parity_scores(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(R² aggregated over the entries, MAE) of flat true/predicted arrays, with the registry's metrics
    (``nan`` without entries, R² ``nan`` without spread)."""
    from phonbench.metrics import MAE, R2_AGGREGATED

    keep = np.isfinite(y) & np.isfinite(p)
    if not keep.any():
        return float("nan"), float("nan")
    return R2_AGGREGATED(y[keep], p[keep]), MAE(y[keep], p[keep])


def parity_text(r2: float, mae: float, unit: str) -> str:
    """The score box of a parity panel: ``R² = 0.987`` and ``MAE = 0.0123 a.u.`` on two lines."""
    r2_text = f"{r2:.3f}" if np.isfinite(r2) else "n/a"
    return f"R² = {r2_text}\nMAE = {mae:.3g}" + (f" {unit}" if unit else "")


def draw_parity_panel(ax: Any, y: np.ndarray, p: np.ndarray, lim: tuple[float, float], unit: str) -> None:
    """Density of (true, predicted) as hexagons coloured by log10 count, the y = x line, the scores."""
    if len(y):
        hb = ax.hexbin(y, p, gridsize=HEXBIN_GRIDSIZE, extent=(*lim, *lim), bins="log", mincnt=1,
                       cmap="viridis", linewidths=0.1, rasterized=True)
        bar = ax.figure.colorbar(hb, ax=ax, fraction=0.046, pad=0.03)
        bar.set_label("entries per hexagon (log scale)")
        bar.ax.tick_params(labelsize=6)
    ax.plot(lim, lim, color="k", lw=0.8, label="y = x")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_aspect("equal")
    ax.text(0.04, 0.96, parity_text(*parity_scores(y, p), unit), transform=ax.transAxes, ha="left", va="top",
            fontsize=7, bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "0.7", "alpha": 0.9})
    suffix = f" ({unit})" if unit else ""
    ax.set_xlabel(f"true{suffix}")
    ax.set_ylabel(f"predicted{suffix}")


def parity(table: Table) -> Rendered | None:
    """Parity density plot (predicted vs true, test split, all runs pooled) per model row."""
    data = [_test_entries(r) for r in table.rows]
    if not any(len(y) for y, _ in data):
        return None
    finite = np.concatenate([np.concatenate([y, p]) for y, p in data])
    finite = finite[np.isfinite(finite)]
    lo, hi = float(finite.min()), float(finite.max())
    pad = 0.03 * (hi - lo or 1.0)
    lim = (lo - pad, hi + pad)
    unit = unit_text(table.task["unit"])

    def draw(ax, i):
        y, p = data[i]
        draw_parity_panel(ax, y, p, lim, unit)
        ax.set_title(f"{table.rows[i].label} (n={len(y)})")

    return render(len(table.rows), draw, title=f"Parity, test split `{table.split}`", wspace=0.65,
                  right_in=0.6)


def _hist_metric(table: Table) -> str:
    return "mse" if table.task["kind"] == "spectrum" else "mae"


def _errors(row: Row, split: str, kind: str) -> np.ndarray:
    from phonbench.plots import per_material_errors

    out = [per_material_errors(*run.predictions.part(split)[1:], kind) for run in row.runs]
    err = np.concatenate(out) if out else np.zeros(0)
    return err[np.isfinite(err)]


def draw_histogram_panel(ax: Any, train: np.ndarray, test: np.ndarray) -> bool:
    """Train and test histograms on shared bins (:func:`phonbench.plots.error_bins`); True when the
    x-axis is logarithmic (then each bar is the fraction of materials in its log-spaced bin, zeros
    counted in the first bin)."""
    from phonbench.plots import error_bins

    edges, log = error_bins(np.concatenate([train, test]))
    for values, name, color in ((train, "train", COLORS[0]), (test, "test", COLORS[1])):
        if not len(values):
            continue
        label = f"{name} (n={len(values)}, mean={np.mean(values):.3g})"
        if log:
            ax.hist(np.clip(values, edges[0], None), bins=edges, weights=np.full(len(values), 1.0 / len(values)),
                    histtype="step", lw=1.2, color=color, label=label)
        else:
            ax.hist(values, bins=edges, density=True, histtype="step", lw=1.2, color=color, label=label)
    if log:
        ax.set_xscale("log")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # headroom for the legend
    ax.set_ylabel("fraction per bin" if log else "density")
    return log


def error_histograms(table: Table) -> Rendered | None:
    """Per-material error histograms, train vs test, per model row (log x when errors span decades)."""
    metric = _hist_metric(table)
    errs = [(_errors(r, "train", metric), _errors(r, "test", metric)) for r in table.rows]
    if not any(len(te) for _, te in errs):
        return None
    unit = unit_text(table.task["unit"], squared=metric == "mse")

    def draw(ax, i):
        log = draw_histogram_panel(ax, *errs[i])
        ax.set_xlabel(f"per-material {metric.upper()}" + (f" ({unit})" if unit else "") + (", log scale" if log else ""))
        ax.set_title(table.rows[i].label)
        ax.legend(loc="upper right")

    return render(len(table.rows), draw, title=f"Per-material error, split `{table.split}`")


def _loss_keys(row: Row) -> list[str]:
    return sorted({k for r in row.runs for h in r.record.get("history", []) for k in h
                   if k.endswith("loss") and isinstance(h[k], (int, float))})


def draw_training_panel(ax: Any, row: Row) -> None:
    """One row's training curves on ``ax``: every ``*loss`` key vs epoch for each run, one line per
    (run, key, ensemble member); colour by key, line style by member (members restart at epoch 1).
    The y-axis names the keys and the runs' ``loss`` params; the legend lists the keys and, when
    there is more than one member, "member 0", "member 1", ...
    """
    from phonbench.plots import draw_training_lines, finish_training_axes

    keys = _loss_keys(row)
    colors = {key: COLORS[k % len(COLORS)] for k, key in enumerate(keys)}
    members: list[Any] = []
    for run in row.runs:
        members += draw_training_lines(ax, run.record.get("history", []), keys, colors, lw=1.0, alpha=0.8)
    losses = [(r.record.get("model", {}).get("params") or {}).get("loss") for r in row.runs]
    finish_training_axes(ax, keys, colors, members, [v for v in losses if v], legend_loc="upper right")
    ax.set_title(f"{row.label} ({len(row.runs)} runs)")


def training_curves(table: Table) -> Rendered | None:
    """Training curves (per-epoch losses, :func:`draw_training_panel`), one panel per model row that
    has a history."""
    rows = [r for r in table.rows if _loss_keys(r)]
    if not rows:
        return None
    return render(len(rows), lambda ax, i: draw_training_panel(ax, rows[i]),
                   title=f"Training curves, split `{table.split}`")


FIGURES: dict[str, tuple[str, Callable[..., Rendered | None]]] = {
    "parity": ("Parity of test predictions: density of entries (log colour scale), y = x line, R² (aggregated) "
               "and MAE over the real entries of all runs", parity),
    "errors": ("Per-material error, train vs test (log x-axis where a model's errors span more than two decades)",
               error_histograms),
    "dos_quartiles": (f"Example spectra (true vs predicted) of {RULE}", dos_quartiles),
    "training_curves": ("Training curves (loss per epoch)", training_curves),
}
#: figures drawn with the board's material formulas (:class:`Formulas`)
WITH_FORMULAS = ("dos_quartiles",)


def table_figures(table: Table, warnings: list[str] | None = None,
                  formulas: Formulas | Mapping[str, str] | None = None) -> dict[str, tuple[str, Rendered]]:
    """``{kind: (caption, PNG and SVG)}`` of every figure that applies to ``table``; ``formulas``
    name the quartile panel's materials (loaded only when that figure applies).

    A figure that fails to draw is left out with a message appended to ``warnings`` (figures are
    derived data; the tables must still be published).
    """
    out = {}
    for kind, (caption, fn) in FIGURES.items():
        try:
            made = fn(table, formulas) if kind in WITH_FORMULAS else fn(table)
        except Exception as exc:  # noqa: BLE001 - report and carry on
            if warnings is not None:
                warnings.append(f"figure {kind} of split {table.split!r} failed: {exc}")
            continue
        if made is not None:
            out[kind] = (caption, made)
    return out
