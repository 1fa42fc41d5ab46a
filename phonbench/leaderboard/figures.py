"""Leaderboard figures (matplotlib, Agg, no pyplot state) rendered to deterministic PNG bytes.

Per table (dataset + split), one panel per model row, so models compare side by side on shared axes
(the per-run figures of :mod:`phonbench.plots` show one run each; the helpers for per-material
errors and quartile picks are shared with it):

* ``parity``: predicted vs true test values, every real (unmasked) entry of every run;
* ``errors``: histograms of per-material error on train and test (MSE per material for spectra,
  MAE otherwise), density-normalised;
* ``dos_quartiles`` (spectrum tasks): for each model, one test material per quartile of the
  per-material MSE — the material closest to the quartile's median — true vs predicted spectrum
  (as Chen et al., Adv. Sci. 2021, Fig. 2d);
* ``training_curves``: every ``*loss`` key of each run's per-epoch history (when present), one line
  per run, key and ensemble member (members restart at epoch 1; see
  :func:`phonbench.plots.draw_training_lines`). Learning curves in the sense of error vs training-set
  size are :mod:`phonbench.learning_curves`.

PNG bytes depend only on the inputs: fixed style and font (DejaVu Sans, bundled with matplotlib),
fixed size and dpi, and ``metadata={"Software": None}`` so no version string is embedded.
"""

from __future__ import annotations

import io
import math
from typing import Any, Callable

import numpy as np

from phonbench.leaderboard.tables import Row, Table

DPI = 100
PANEL = (3.4, 3.0)  # inches per panel
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
RC = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "svg.hashsalt": "phonbench",
}


def _render(n_panels: int, draw: Callable[[Any, int], None], ncols: int = 3, panel: tuple = PANEL,
            title: str = "", title_lines: int = 1) -> bytes:
    """Lay ``n_panels`` axes out in a grid, call ``draw(ax, i)`` for each, and return PNG bytes."""
    import matplotlib
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    with matplotlib.style.context("default"), matplotlib.rc_context(RC):
        # inches above the first row for the figure title and multi-line panel titles
        top_in = (0.25 if title else 0.0) + 0.28 * title_lines
        height = panel[1] * nrows + top_in
        fig = Figure(figsize=(panel[0] * ncols, height), dpi=DPI)
        FigureCanvasAgg(fig)
        # fixed margins instead of constrained layout: much faster and just as deterministic
        fig.subplots_adjust(left=0.8 / (panel[0] * ncols), right=1 - 0.15 / (panel[0] * ncols),
                            bottom=0.55 / height, top=1 - top_in / height, wspace=0.4,
                            hspace=0.55 + 0.15 * (title_lines - 1))
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for i, ax in enumerate(axes):
            if i < n_panels:
                draw(ax, i)
            else:
                ax.set_visible(False)
        if title:
            fig.suptitle(title, y=1 - 0.06 / height, va="top")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _test_entries(row: Row, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    ys, ps = [], []
    for run in row.runs:
        _, y, p, m = run.predictions.part(split)
        ys.append(y[m])
        ps.append(p[m])
    return (np.concatenate(ys), np.concatenate(ps)) if ys else (np.zeros(0), np.zeros(0))


def parity(table: Table) -> bytes | None:
    """Parity plot (predicted vs true, test split) per model row."""
    data = [_test_entries(r) for r in table.rows]
    if not any(len(y) for y, _ in data):
        return None
    finite = np.concatenate([np.concatenate([y, p]) for y, p in data])
    finite = finite[np.isfinite(finite)]
    lo, hi = float(finite.min()), float(finite.max())
    pad = 0.03 * (hi - lo or 1.0)
    lim = (lo - pad, hi + pad)
    unit = table.task["unit"]

    def draw(ax, i):
        y, p = data[i]
        alpha = 0.6 if len(y) < 2000 else 0.25
        ax.scatter(y, p, s=6 if len(y) < 2000 else 3, alpha=alpha, color=COLORS[0], linewidths=0, rasterized=True)
        ax.plot(lim, lim, color="k", lw=0.8)
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal")
        ax.set_xlabel(f"true ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
        ax.set_title(f"{table.rows[i].label} (n={len(y)})")

    return _render(len(table.rows), draw, title=f"Parity, test split `{table.split}`")


def _hist_metric(table: Table) -> str:
    return "mse" if table.task["kind"] == "spectrum" else "mae"


def _errors(row: Row, split: str, kind: str) -> np.ndarray:
    from phonbench.plots import per_material_errors

    out = [per_material_errors(*run.predictions.part(split)[1:], kind) for run in row.runs]
    err = np.concatenate(out) if out else np.zeros(0)
    return err[np.isfinite(err)]


def error_histograms(table: Table) -> bytes | None:
    """Per-material error histograms, train vs test, per model row."""
    metric = _hist_metric(table)
    errs = [(_errors(r, "train", metric), _errors(r, "test", metric)) for r in table.rows]
    if not any(len(te) for _, te in errs):
        return None
    unit = table.task["unit"]
    unit = f"({unit})²" if metric == "mse" else unit

    def draw(ax, i):
        train, test = errs[i]
        both = np.concatenate([train, test])
        hi = float(both.max()) if len(both) else 1.0
        bins = np.linspace(0.0, hi if hi > 0 else 1.0, 26)
        for values, name, color in ((train, "train", COLORS[0]), (test, "test", COLORS[1])):
            if len(values):
                ax.hist(values, bins=bins, density=True, histtype="step", lw=1.2, color=color,
                        label=f"{name} (n={len(values)}, mean={np.mean(values):.3g})")
        ax.set_xlabel(f"per-material {metric.upper()} ({unit})")
        ax.set_ylabel("density")
        ax.set_title(table.rows[i].label)
        ax.legend(loc="upper right")

    return _render(len(table.rows), draw, title=f"Per-material error, split `{table.split}`")


def quartile_examples(row: Row) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """For one row: ``(material id, true, predicted, MSE)`` of one test material per MSE quartile.

    Entries of all the row's runs are pooled (ordered by run id, then material id) and picked with
    :func:`phonbench.plots.quartile_examples` (the 12.5/37.5/62.5/87.5th percentiles of the
    per-material MSE), as in the per-run figures. Quartile 1 = lowest error.
    """
    from phonbench.plots import per_material_errors, quartile_examples as picks

    entries = []
    for run in row.runs:
        ids, y, p, m = run.predictions.part("test")
        err = per_material_errors(y, p, m, "mse")
        entries += [(ids[i], y[i], p[i], float(e)) for i, e in enumerate(err) if math.isfinite(e)]
    if not entries:
        return []
    return [entries[i] for _, i in picks(np.array([e[3] for e in entries]), 1)]


def dos_quartiles(table: Table) -> bytes | None:
    """Spectrum tasks: rows = models, columns = MSE quartiles; true vs predicted spectrum."""
    if table.task["kind"] != "spectrum" or not table.task.get("grid"):
        return None
    grid = np.asarray(table.task["grid"], dtype=np.float64)
    examples = [quartile_examples(r) for r in table.rows]
    if not any(examples):
        return None
    panels = [(i, q) for i, ex in enumerate(examples) for q in range(4)]

    def draw(ax, k):
        i, q = panels[k]
        if q >= len(examples[i]):
            ax.set_visible(False)
            return
        mid, y, p, e = examples[i][q]
        ax.plot(grid, y, color="k", lw=1.2, label="true")
        ax.plot(grid, p, color=COLORS[1], lw=1.2, ls="--", label="predicted")
        ax.set_title(f"{table.rows[i].label} · Q{q + 1}: {mid}\nMSE={e:.3g}")
        ax.set_xlabel(f"frequency ({table.task.get('grid_unit') or ''})")
        ax.set_ylabel(f"{table.task.get('target', '')} ({table.task['unit']})")
        if k == 0:
            ax.legend(loc="upper right")

    return _render(len(panels), draw, ncols=4, panel=(3.0, 2.6), title_lines=2,
                   title=f"Test examples per quartile of per-material MSE, split `{table.split}`")


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


def training_curves(table: Table) -> bytes | None:
    """Training curves (per-epoch losses, :func:`draw_training_panel`), one panel per model row that
    has a history."""
    rows = [r for r in table.rows if _loss_keys(r)]
    if not rows:
        return None
    return _render(len(rows), lambda ax, i: draw_training_panel(ax, rows[i]),
                   title=f"Training curves, split `{table.split}`")


FIGURES: dict[str, tuple[str, Callable[[Table], bytes | None]]] = {
    "parity": ("Parity plot of test predictions", parity),
    "errors": ("Per-material error, train vs test", error_histograms),
    "dos_quartiles": ("Example spectra per error quartile", dos_quartiles),
    "training_curves": ("Training curves (loss per epoch)", training_curves),
}


def table_figures(table: Table, warnings: list[str] | None = None) -> dict[str, tuple[str, bytes]]:
    """``{kind: (caption, png bytes)}`` of every figure that applies to ``table``.

    A figure that fails to draw is left out with a message appended to ``warnings`` (figures are
    derived data; the tables must still be published).
    """
    out = {}
    for kind, (caption, fn) in FIGURES.items():
        try:
            png = fn(table)
        except Exception as exc:  # noqa: BLE001 - report and carry on
            if warnings is not None:
                warnings.append(f"figure {kind} of split {table.split!r} failed: {exc}")
            continue
        if png is not None:
            out[kind] = (caption, png)
    return out
