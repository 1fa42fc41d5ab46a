"""Figures of a run: parity, per-material error histograms, DoS examples, training curves.

Every function takes arrays (not files), writes one PNG and returns its path. Output is
deterministic: matplotlib's default style (independent of the user's matplotlibrc), the Agg
canvas, fixed figure sizes and dpi, and no software/date metadata in the file.
:func:`plot_run` reads a run directory (``record.json`` + ``predictions.csv``) and writes all
applicable figures to ``<run_dir>/plots/``. Training-set-size studies are plotted by
:mod:`phonbench.learning_curves`.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from phonbench.exceptions import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from phonbench.datasets.base import Task

DPI = 120
PLOTS_DIR = "plots"
SPLIT_COLORS = {"train": "tab:blue", "valid": "tab:green", "test": "tab:orange"}
MEMBER_STYLES = ("-", "--", ":", "-.")  # training curves: line style per ensemble member


# ---------------------------------------------------------------------- figure plumbing
@contextmanager
def figure(path: str | Path, size: tuple[float, float], nrows: int = 1, ncols: int = 1) -> Iterator[tuple[Figure, Any]]:
    """A Figure with an Agg canvas and ``nrows × ncols`` axes, saved to ``path`` on exit."""
    from matplotlib import style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with style.context("default"):
        fig = Figure(figsize=size, dpi=DPI)
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})


def unit_label(unit: str | None) -> str:
    return f" ({unit})" if unit else ""


# ---------------------------------------------------------------------- error helpers
def per_material_errors(
    y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None = None, kind: str = "mse"
) -> np.ndarray:
    """Per-material ``mse`` or ``mae`` over real entries, shape ``(n,)``.

    Args:
        y_true, y_pred: ``(n, d)`` arrays (1-D is treated as ``(n, 1)``).
        mask: ``(n, d)`` booleans (True = real); ``None`` means all real.
        kind: ``mse`` or ``mae``.
    """
    if kind not in ("mse", "mae"):
        raise DataError(f"unknown error kind {kind!r}", "use 'mse' or 'mae'")
    y = np.asarray(y_true, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    p = np.asarray(y_pred, dtype=np.float64).reshape(y.shape)
    m = np.ones(y.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool).reshape(y.shape)
    diff = np.abs(y - p) if kind == "mae" else (y - p) ** 2
    counts = np.maximum(m.sum(axis=1), 1)
    return np.where(m, diff, 0.0).sum(axis=1) / counts


def quartile_examples(errors: np.ndarray, per_quartile: int = 1) -> list[tuple[int, int]]:
    """Materials representative of each quartile of ``errors`` (Chen et al. 2021, Fig. 2d).

    Within quartile ``q`` (0 = lowest errors) the materials at the evenly spaced quantiles
    ``(q + (k + 0.5) / per_quartile) / 4`` are chosen, e.g. the 12.5/37.5/62.5/87.5th percentiles
    for ``per_quartile=1``.

    Returns:
        ``[(quartile, row_index), ...]`` ordered by quartile, then by error; a material is listed
        once (fewer than ``4 * per_quartile`` materials give fewer picks).
    """
    errors = np.asarray(errors, dtype=np.float64)
    order = np.argsort(errors, kind="stable")
    out: list[tuple[int, int]] = []
    seen: set[int] = set()
    for q in range(4):
        for k in range(per_quartile):
            position = int(np.floor((q + (k + 0.5) / per_quartile) / 4 * len(errors)))
            index = int(order[min(position, len(errors) - 1)]) if len(errors) else -1
            if index >= 0 and index not in seen:
                seen.add(index)
                out.append((q, index))
    return out


#: per-material errors spanning more than this many decades are histogrammed on a log x-axis
LOG_DECADES = 2.0


def spans_decades(errors: np.ndarray, decades: float = LOG_DECADES) -> bool:
    """Whether the positive finite ``errors`` span more than ``decades`` decades (max / min >
    10**decades), i.e. whether their histogram needs a log x-axis. Zeros and non-finite values are
    ignored; fewer than two positive values never span anything."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    e = e[np.isfinite(e) & (e > 0)]
    return len(e) >= 2 and float(np.log10(e.max() / e.min())) > decades


def error_bins(errors: np.ndarray, bins: int = 25, decades: float = LOG_DECADES) -> tuple[np.ndarray, bool]:
    """Histogram edges for per-material errors and whether they are log-spaced.

    Log-spaced from the smallest to the largest positive error when :func:`spans_decades`, else
    ``bins`` linear bins from 0 to the largest error (0..1 without any).

    Returns:
        ``(edges, log)`` with ``bins + 1`` edges.
    """
    e = np.asarray(errors, dtype=np.float64).ravel()
    e = e[np.isfinite(e)]
    if spans_decades(e, decades):
        positive = e[e > 0]
        return np.geomspace(float(positive.min()), float(positive.max()), bins + 1), True
    hi = float(e.max()) if len(e) else 0.0
    return np.linspace(0.0, hi if hi > 0 else 1.0, bins + 1), False


# ---------------------------------------------------------------------- individual plots
def plot_parity(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    path: str | Path,
    mask: np.ndarray | None = None,
    *,
    unit: str | None = None,
    title: str = "",
) -> Path:
    """Parity scatter of every real entry (Nguyen et al. 2022, Figs. 3 and 5).

    Args:
        y_true, y_pred: ``(n, d)`` arrays in ``unit``.
        path: output PNG.
        mask: ``(n, d)`` booleans (True = real); padding is not drawn.
        unit: axis unit label.
        title: figure title (R² and MAE over the plotted points are appended).
    """
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    keep = np.ones_like(y, dtype=bool) if mask is None else np.asarray(mask, dtype=bool).ravel()
    y, p = y[keep], p[keep]
    ss_tot = float(((y - y.mean()) ** 2).sum()) if len(y) else 0.0
    r2 = 1.0 - float(((y - p) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    mae = float(np.abs(y - p).mean()) if len(y) else float("nan")
    with figure(path, (4.8, 4.5)) as (_, axes):
        ax = axes[0, 0]
        ax.scatter(y, p, s=4, alpha=0.4, color="tab:blue", linewidths=0, rasterized=True)
        lo = float(min(y.min(), p.min())) if len(y) else 0.0
        hi = float(max(y.max(), p.max())) if len(y) else 1.0
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("true" + unit_label(unit))
        ax.set_ylabel("predicted" + unit_label(unit))
        ax.set_title(f"{title + ': ' if title else ''}R² = {r2:.3f}, MAE = {mae:.3g}", fontsize=10)
    return Path(path)


def plot_error_histograms(
    errors: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    xlabel: str = "per-material error",
    title: str = "",
    bins: int = 30,
) -> Path:
    """Overlaid per-material error histograms, e.g. train vs test (Nguyen et al. 2022, Figs. 4, 6).

    Args:
        errors: ``{split: (n_split,) errors}``; histograms share bins and are density-normalised.
        path: output PNG.
        xlabel, title: labels.
        bins: number of shared bins.
    """
    values = [np.asarray(v, dtype=np.float64) for v in errors.values() if len(v)]
    edges = np.histogram_bin_edges(np.concatenate(values), bins=bins) if values else np.linspace(0, 1, bins + 1)
    with figure(path, (5.5, 4.0)) as (_, axes):
        ax = axes[0, 0]
        for split, v in errors.items():
            v = np.asarray(v, dtype=np.float64)
            if len(v):
                ax.hist(v, bins=edges, density=True, histtype="step", lw=1.5,
                        color=SPLIT_COLORS.get(split), label=f"{split} (n={len(v)}, mean {v.mean():.3g})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
        if title:
            ax.set_title(title, fontsize=10)
    return Path(path)


def plot_dos_quartiles(
    grid: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    path: str | Path,
    *,
    ids: Sequence[str] | None = None,
    per_quartile: int = 3,
    grid_unit: str | None = "cm^-1",
) -> Path:
    """Predicted vs true DoS of materials picked at each quartile of per-material MSE (Chen Fig. 2d).

    Args:
        grid: ``(d,)`` frequencies in ``grid_unit``.
        y_true, y_pred: ``(n, d)`` DoS.
        path: output PNG.
        ids: material names for panel titles.
        per_quartile: materials per quartile (one row of panels per quartile).
        grid_unit: x-axis unit label.
    """
    grid = np.asarray(grid, dtype=np.float64)
    errors = per_material_errors(y_true, y_pred)
    picks = quartile_examples(errors, per_quartile)
    with figure(path, (2.6 * per_quartile, 8.0), 4, per_quartile) as (_, axes):
        used: dict[int, int] = {}
        for q, i in picks:
            ax = axes[q, used.get(q, 0)]
            used[q] = used.get(q, 0) + 1
            ax.fill_between(grid, np.asarray(y_true[i]), color="0.8", label="true")
            ax.plot(grid, np.asarray(y_pred[i]), color="tab:red", lw=1.2, label="predicted")
            name = ids[i] if ids is not None else f"#{i}"
            ax.set_title(f"Q{q + 1} {name}\nMSE {errors[i]:.3g}", fontsize=8)
            ax.tick_params(labelsize=7)
            if q == 3:
                ax.set_xlabel("frequency" + unit_label(grid_unit), fontsize=8)
        for q in range(4):
            for k in range(used.get(q, 0), per_quartile):
                axes[q, k].set_axis_off()
        if picks:
            axes[picks[0][0], 0].legend(fontsize=7)
    return Path(path)


def history_members(history: Sequence[Mapping[str, Any]]) -> list[tuple[Any, list[Mapping[str, Any]]]]:
    """``history`` split by ensemble member: ``[(member, entries), ...]`` in order of first appearance.

    Ensembles train their members one after another, each restarting at epoch 1, and tag every entry
    with ``member`` (0, 1, ...); entries without ``member`` are one member (``None``).
    """
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in history:
        groups.setdefault(row.get("member"), []).append(row)
    return list(groups.items())


def member_style(member: Any) -> str:
    """Line style of an ensemble member (solid for member 0 and for histories without members)."""
    return MEMBER_STYLES[member % len(MEMBER_STYLES)] if isinstance(member, int) else MEMBER_STYLES[0]


def loss_axis_label(keys: Sequence[str], losses: Sequence[str] = ()) -> str:
    """y-axis label of training curves: the keys and the training loss, e.g. ``train_loss / valid_loss (L1)``.

    ``losses`` are the models' ``loss`` params (``l1``, ``mse``); without any, only the keys are named.
    """
    names = " / ".join(keys) if keys else "loss"
    losses = sorted({str(v).upper() for v in losses if v})
    return f"{names} ({', '.join(losses)})" if losses else names


def draw_training_lines(ax: Any, history: Sequence[Mapping[str, Any]], keys: Sequence[str],
                        colors: Mapping[str, Any], **style: Any) -> list[Any]:
    """Draw one line per (key, ensemble member) of ``history`` on ``ax``: loss vs epoch.

    Colour by key (``colors``), line style by member (:func:`member_style`), so an ensemble's members
    are separate curves rather than one line jumping back to epoch 1. Entries without a numeric value
    for a key are skipped. ``style`` goes to ``ax.plot`` (lw, alpha). Returns the members drawn.
    """
    members = []
    for member, rows in history_members(history):
        drawn = False
        for key in keys:
            rows_k = [row for row in rows if isinstance(row.get(key), (int, float))]
            if not rows_k:
                continue
            epochs = [row.get("epoch", j) for j, row in enumerate(rows_k)]
            ax.plot(epochs, [float(row[key]) for row in rows_k], color=colors.get(key), ls=member_style(member),
                    **style)
            drawn = True
        if drawn:
            members.append(member)
    return members


def finish_training_axes(ax: Any, keys: Sequence[str], colors: Mapping[str, Any], members: Sequence[Any],
                         losses: Sequence[str] = (), legend_loc: str = "best", **legend_kw: Any) -> None:
    """Axes of training curves: log y when every drawn value is positive, "epoch" and
    :func:`loss_axis_label` labels, and a legend with one colour entry per key plus one line-style
    entry per ensemble member ("member 0", "member 1", ...) when there is more than one member.
    """
    from matplotlib.lines import Line2D

    values = [np.asarray(line.get_ydata(), dtype=np.float64) for line in ax.get_lines()]
    if values and all(len(v) and np.all(v > 0) for v in values):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_axis_label(keys, losses))
    handles = [Line2D([], [], color=colors.get(key), ls="-", label=key) for key in keys]
    distinct = list(dict.fromkeys(members))
    if len(distinct) > 1:
        handles += [Line2D([], [], color="0.35", ls=member_style(m), label=f"member {m}") for m in distinct]
    ax.legend(handles=handles, loc=legend_loc, **legend_kw)


def plot_training_history(
    history: Sequence[Mapping[str, Any]], path: str | Path, keys: Sequence[str] | None = None, *,
    loss: str | None = None, title: str = "",
) -> Path:
    """Training curves: per-epoch values of ``keys`` (default: every ``*_loss`` key, e.g. train_loss
    and valid_loss), one line per key and ensemble member (members restart at epoch 1).

    Args:
        history: per-epoch dicts with ``epoch``, metric values and, for ensembles, ``member``
            (``Model.history``).
        path: output PNG.
        keys: which keys to draw.
        loss: the training loss (the model's ``loss`` param, e.g. ``l1``), named on the y-axis.
        title: prefix of the figure title ("<title>: training curves").

    Raises:
        DataError: empty history or none of ``keys`` present.
    """
    if not history:
        raise DataError("the training history is empty", "only models trained in epochs have curves")
    if keys is None:
        keys = sorted({k for row in history for k in row if k.endswith("_loss")})
    keys = [k for k in keys if any(k in row for row in history)]
    if not keys:
        raise DataError("the training history has none of the requested keys", "pass keys=[...] present in it")
    colors = {key: SPLIT_COLORS.get(key.split("_")[0]) for key in keys}
    with figure(path, (5.5, 4.0)) as (_, axes):
        ax = axes[0, 0]
        members = draw_training_lines(ax, history, keys, colors, lw=1.5)
        finish_training_axes(ax, keys, colors, members, [loss] if loss else (), fontsize=8)
        ax.set_title(f"{title}: training curves" if title else "Training curves", fontsize=10)
    return Path(path)


# ---------------------------------------------------------------------- run directories
def read_predictions(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Per-split arrays from ``<run_dir>/predictions.csv`` (or its archived ``.csv.gz``).

    Returns:
        ``{split: {"ids": list[str], "y_true": (n, d), "y_pred": (n, d), "mask": (n, d) bool | None}}``.

    Raises:
        DataError: missing or malformed file.
    """
    import pandas as pd

    from phonbench.records import PREDICTIONS_FILE, predictions_path

    file = predictions_path(run_dir)
    if not file.is_file():
        raise DataError(f"no {PREDICTIONS_FILE} in {run_dir}", "pass a run directory written by phonbench run")
    table = pd.read_csv(file, dtype={"id": str, "split": str})
    true_cols = [c for c in table.columns if c.startswith("y_true_")]
    pred_cols = [c for c in table.columns if c.startswith("y_pred_")]
    mask_cols = [c for c in table.columns if c.startswith("mask_")]
    if not true_cols or len(true_cols) != len(pred_cols):
        raise DataError(f"{file} has no matching y_true_*/y_pred_* columns", "rerun the experiment")
    out = {}
    for split, part in table.groupby("split", sort=False):
        out[str(split)] = {
            "ids": part["id"].tolist(),
            "y_true": part[true_cols].to_numpy(np.float64),
            "y_pred": part[pred_cols].to_numpy(np.float64),
            "mask": part[mask_cols].to_numpy(np.int64).astype(bool) if mask_cols else None,
        }
    return out


def _task_from_record(record: Mapping[str, Any]) -> Task:
    from phonbench.datasets.base import Task

    task = dict(record["dataset"]["task"])
    if task.get("grid") is not None:
        task["grid"] = tuple(task["grid"])
    return Task(**task)


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write every applicable figure of a run into ``<run_dir>/plots/`` and return their paths.

    Figures: ``parity_test.png`` (or the last predicted split), ``errors_histogram.png`` (per-material
    MSE for spectra, MAE otherwise, all predicted splits), ``dos_quartiles.png`` (spectra) and
    ``training_history.png`` (training curves of models with per-epoch losses).
    """
    from phonbench.records import read_record

    run_dir = Path(run_dir)
    record = read_record(run_dir)
    task = _task_from_record(record)
    preds = read_predictions(run_dir)
    out_dir = run_dir / PLOTS_DIR
    title = f"{record['model']['name']} on {record['dataset']['name']}"
    main = next((s for s in ("test", "valid", "train") if s in preds), None)
    paths: list[Path] = []
    if main is not None:
        part = preds[main]
        paths.append(plot_parity(part["y_true"], part["y_pred"], out_dir / f"parity_{main}.png", part["mask"],
                                 unit=task.unit, title=f"{title} ({main})"))
        kind = "mse" if task.kind == "spectrum" else "mae"
        errors = {s: per_material_errors(v["y_true"], v["y_pred"], v["mask"], kind) for s, v in preds.items()}
        unit = f"({task.unit})^2" if kind == "mse" else task.unit
        paths.append(plot_error_histograms(errors, out_dir / "errors_histogram.png",
                                           xlabel=f"per-material {kind.upper()}{unit_label(unit)}", title=title))
        if task.kind == "spectrum":
            paths.append(plot_dos_quartiles(task.grid_array(), part["y_true"], part["y_pred"],
                                            out_dir / "dos_quartiles.png", ids=part["ids"], grid_unit=task.grid_unit))
    history = record.get("history") or []
    if any(k.endswith("_loss") for row in history for k in row):
        loss = (record["model"].get("params") or {}).get("loss")
        paths.append(plot_training_history(history, out_dir / "training_history.png", loss=loss, title=title))
    return paths


# ---------------------------------------------------------------------- predictions of new structures
def plot_predicted_dos(
    grid: np.ndarray, dos: np.ndarray, path: str | Path, *, title: str = "", grid_unit: str = "cm^-1",
    dos_unit: str = "states/(cm^-1 cell)",
) -> Path:
    """One predicted DoS (``phonbench predict`` writes one per structure).

    Args:
        grid: ``(d,)`` frequencies in ``grid_unit``.
        dos: ``(d,)`` DoS in ``dos_unit``.
        path: output PNG.
        title: figure title (structure name, ω̄, C_V).
    """
    with figure(path, (5.0, 3.5)) as (_, axes):
        ax = axes[0, 0]
        ax.fill_between(np.asarray(grid), np.asarray(dos), color="tab:red", alpha=0.35, lw=0)
        ax.plot(grid, dos, color="tab:red", lw=1.2)
        ax.set_xlabel("frequency" + unit_label(grid_unit))
        ax.set_ylabel("DoS" + unit_label(dos_unit))
        ax.set_ylim(bottom=0)
        if title:
            ax.set_title(title, fontsize=9)
    return Path(path)


def plot_alloy_series(
    grid: np.ndarray, dos_matrix: np.ndarray, p_values: Sequence[float], path: str | Path, *,
    grid_unit: str = "cm^-1", label: str = "p",
) -> Path:
    """DoS along an alloy series, coloured by composition (Chen et al. 2021, Fig. 4: Mg₃Sb₂₍₁₋ₚ₎Bi₂ₚ).

    Args:
        grid: ``(d,)`` frequencies in ``grid_unit``.
        dos_matrix: ``(n_p, d)`` DoS, one row per composition.
        p_values: ``(n_p,)`` fractions of end member B.
        path: output PNG.
        label: name of the composition variable in the colour bar.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    dos_matrix = np.atleast_2d(np.asarray(dos_matrix, dtype=np.float64))
    p_values = np.asarray(p_values, dtype=np.float64)
    if len(p_values) != len(dos_matrix):
        raise DataError(f"{len(p_values)} compositions for {len(dos_matrix)} DoS rows", "give one p per row")
    norm = Normalize(float(p_values.min()), float(p_values.max()) if p_values.max() > p_values.min() else 1.0)
    cmap = colormaps["viridis"]
    with figure(path, (5.5, 4.0)) as (fig, axes):
        ax = axes[0, 0]
        for p, row in zip(p_values, dos_matrix):
            ax.plot(grid, row, color=cmap(norm(p)), lw=1.3)
        ax.set_xlabel("frequency" + unit_label(grid_unit))
        ax.set_ylabel("DoS")
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label)
    return Path(path)
