"""Training-set-size studies (``phonbench run --train-fraction``): a table and a plot.

:func:`learning_curve_table` averages the metrics of runs that share a train fraction;
:func:`plot_learning_curve` draws a metric against training-set size (Nguyen et al. 2022, Fig. 7b).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from phonbench.exceptions import DataError
from phonbench.plots import figure, unit_label

if TYPE_CHECKING:
    import pandas as pd


def _as_record(item: Any) -> dict[str, Any]:
    from phonbench.records import read_record

    if isinstance(item, Mapping):
        return dict(item)
    if hasattr(item, "to_dict"):
        return item.to_dict()
    return read_record(item)


def learning_curve_table(records: Sequence[Any], split: str = "test", metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Metrics against training-set size, averaged over runs (seeds/folds) of the same fraction.

    Args:
        records: record dicts, :class:`~phonbench.records.RunRecord` objects or run directories.
            The train fraction is read from ``dataset["train_fraction"]`` (or ``extra``) (runs without it count as
            fraction ``n_train / max(n_train)``); ``n_train`` from ``dataset["sizes"]["train"]``.
        split: which split's metrics to tabulate.
        metrics: metric names (default: every metric present in all records for ``split``).

    Returns:
        DataFrame sorted by ``n_train`` with columns ``fraction, n_train, n_runs`` and, per metric,
        ``<metric>`` (mean) and ``<metric>_std`` (sample std, 0 for one run).

    Raises:
        DataError: no records, or a record without metrics for ``split``.
    """
    import pandas as pd

    rows = [_as_record(r) for r in records]
    if not rows:
        raise DataError("no run records given for the learning curve", "pass the records of the study")
    for r in rows:
        if split not in r.get("metrics", {}):
            raise DataError(f"run {r.get('run_id')} has no {split} metrics", "use split='valid' or rerun")
    if metrics is None:
        metrics = sorted(set.intersection(*(set(r["metrics"][split]) for r in rows)))
    n_max = max(int(r["dataset"]["sizes"]["train"]) for r in rows)
    flat = []
    for r in rows:
        n_train = int(r["dataset"]["sizes"]["train"])
        fraction = r["dataset"].get("train_fraction", (r.get("extra") or {}).get("train_fraction"))
        flat.append({"fraction": float(fraction) if fraction is not None else n_train / n_max, "n_train": n_train,
                     **{m: r["metrics"][split].get(m, np.nan) for m in metrics}})
    df = pd.DataFrame(flat)
    grouped = df.groupby("fraction", sort=True)
    table = grouped.agg(n_train=("n_train", "mean"), n_runs=("n_train", "size")).reset_index()
    for m in metrics:
        table[m] = grouped[m].mean().to_numpy()
        table[f"{m}_std"] = grouped[m].std(ddof=1).fillna(0.0).to_numpy()
    table["n_train"] = table["n_train"].round().astype(int)
    return table.sort_values("n_train", kind="stable").reset_index(drop=True)


def plot_learning_curve(table: pd.DataFrame, path: str | Path, metric: str, *, unit: str | None = None) -> Path:
    """Test ``metric`` (mean ± std) against training-set size (Nguyen et al. 2022, Fig. 7b).

    Args:
        table: output of :func:`learning_curve_table`.
        path: output PNG.
        metric: column to plot.
        unit: y-axis unit label.
    """
    if metric not in table.columns:
        raise DataError(f"metric {metric!r} is not in the learning-curve table",
                        f"use one of: {', '.join(c for c in table.columns if not c.endswith('_std'))}")
    std = table.get(f"{metric}_std")
    with figure(path, (5.0, 4.0)) as (_, axes):
        ax = axes[0, 0]
        ax.errorbar(table["n_train"], table[metric], yerr=None if std is None else std, marker="o",
                    capsize=3, color="tab:blue")
        for _, row in table.iterrows():
            ax.annotate(f"{row['fraction']:.0%}", (row["n_train"], row[metric]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("training-set size")
        ax.set_ylabel(metric + unit_label(unit))
    return Path(path)
