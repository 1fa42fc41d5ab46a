"""In- vs out-of-distribution: one table and one figure per board that has grouped-split runs.

Rows are model variants (the row labels of the split tables); columns are the primary metric on the
dataset's default (in-distribution) split and on each out-of-distribution protocol that has runs
(``chemsys``, ``cluster``, ``element``; mean ± std over the runs, i.e. folds × seeds), then the ratio
OOD / in-distribution of each protocol. Rows are sorted by the ``cluster`` column (the protocol
furthest from the training set); tiers stay per split, in the split tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from phonbench.leaderboard.tables import BASELINE, Board, Table

if TYPE_CHECKING:
    from phonbench.leaderboard.figure_canvas import Rendered

OOD_SPLITS = ("chemsys", "cluster", "element")
SORT_BY = "cluster"
#: the in-distribution split of datasets whose card is not installed (first one the board has)
FALLBACK_DEFAULTS = ("tutorial", "matbench", "random")


@dataclass
class GenRow:
    """One model variant: ``values[split] = (mean, std, n runs)`` of the primary metric."""

    label: str
    model: str
    values: dict[str, tuple[float, float, int]] = field(default_factory=dict)

    def ratio(self, split: str, reference: str) -> float:
        """``values[split] / values[reference]`` (NaN when either is missing or the reference is 0)."""
        a, b = self.values.get(split, (math.nan,))[0], self.values.get(reference, (math.nan,))[0]
        return a / b if math.isfinite(a) and math.isfinite(b) and b != 0 else math.nan


@dataclass
class GenTable:
    """The generalisation table of one board."""

    metric: str
    unit: str
    direction: str
    reference: str  # the in-distribution split
    protocols: list[str]  # OOD splits with runs, in OOD_SPLITS order
    rows: list[GenRow]

    @property
    def splits(self) -> list[str]:
        return [self.reference, *self.protocols]


def default_split(board: Board) -> str | None:
    """The in-distribution split of ``board`` (its card's default, else the first known default present)."""
    names = [t.split for t in board.tables]
    card_default = board.card.get("default_split")
    if card_default in names:
        return card_default
    return next((s for s in FALLBACK_DEFAULTS if s in names), None)


def generalisation_table(board: Board) -> GenTable | None:
    """The board's in- vs out-of-distribution table, or ``None`` without OOD or in-distribution runs."""
    tables = {t.split: t for t in board.tables}
    reference = default_split(board)
    protocols = [s for s in OOD_SPLITS if s in tables]
    if reference is None or not protocols:
        return None
    first: Table = tables[reference]
    rows: dict[str, GenRow] = {}
    for split in [reference, *protocols]:
        table = tables[split]
        if table.primary != first.primary:
            continue  # a table ranked by another metric cannot share a column
        for row in table.rows:
            gen = rows.setdefault(row.label, GenRow(row.label, row.model))
            gen.values[split] = row.metrics[table.primary]
    sign = 1.0 if first.direction == "minimize" else -1.0

    def key(row: GenRow) -> tuple:
        value = row.values.get(SORT_BY if SORT_BY in protocols else protocols[0], (math.nan,))[0]
        return (not math.isfinite(value), sign * value if math.isfinite(value) else 0.0, row.label)

    kept = [r for r in rows.values() if any(s in r.values for s in protocols)]  # rows with an OOD run
    return GenTable(first.primary, first.units.get(first.primary, ""), first.direction, reference, protocols,
                    sorted(kept, key=key))


def _cell(value: tuple[float, float, int] | None) -> str:
    from phonbench.leaderboard.render import DASH, fmt_mean_std

    return fmt_mean_std(*value) if value else DASH


def headers(gen: GenTable) -> list[str]:
    from phonbench.leaderboard.render import pretty_unit

    unit = f" ({pretty_unit(gen.unit)})" if gen.unit and gen.unit != "1" else ""
    return (["Model", f"{gen.reference} (in-distribution){unit}"] + [f"{s}{unit}" for s in gen.protocols]
            + [f"{s} / {gen.reference}" for s in gen.protocols])


def row_cells(gen: GenTable, row: GenRow) -> list[str]:
    from phonbench.leaderboard.render import fmt

    ratios = [row.ratio(s, gen.reference) for s in gen.protocols]
    return ([row.label] + [_cell(row.values.get(s)) for s in gen.splits]
            + [f"{fmt(r, 3)}×" if math.isfinite(r) else fmt(r) for r in ratios])


def describe(gen: GenTable) -> str:
    better = "lower" if gen.direction == "minimize" else "higher"
    return (f"Test **{gen.metric}** ({better} is better), mean ± std over folds and seeds, on the in-distribution "
            f"split `{gen.reference}` and on each out-of-distribution protocol; the last columns divide each "
            f"protocol's mean by the in-distribution mean. Sorted by `{SORT_BY}`. Rows with a budget in "
            "parentheses are their own variants (e.g. `benchmarks/generalisation.toml`).")


def markdown(gen: GenTable) -> list[str]:
    from phonbench.leaderboard.render import _md_table

    return ["## Generalisation: in- vs out-of-distribution", "", describe(gen), "",
            *_md_table(headers(gen), [row_cells(gen, r) for r in gen.rows]), ""]


def figure(gen: GenTable) -> Rendered | None:
    """Dot plot: the metric per protocol (x) per model (one marker series each, ± std bars), with the
    dummy baseline as a dashed grey reference line (PNG and SVG, :mod:`.figure_canvas`)."""
    from phonbench.leaderboard.figure_canvas import render, unit_text

    models = [r for r in gen.rows if r.model != BASELINE]
    if not models:
        return None
    dummy = next((r for r in gen.rows if r.model == BASELINE and r.label == BASELINE), None)
    xs = list(range(len(gen.splits)))

    def draw(ax, _):
        import matplotlib

        cmap = matplotlib.colormaps["tab10"]
        width = 0.5 / max(1, len(models))
        for k, row in enumerate(models):
            pts = [(x + (k - (len(models) - 1) / 2) * width, *row.values[s][:2])
                   for x, s in zip(xs, gen.splits) if s in row.values]
            if pts:
                px, py, pe = zip(*pts)
                ax.errorbar(px, py, yerr=[e if math.isfinite(e) else 0 for e in pe], fmt="o", ms=4, capsize=2,
                            color=cmap(k % 10), label=row.label)
        if dummy is not None:
            dx = [x for x, s in zip(xs, gen.splits) if s in dummy.values]
            ax.plot(dx, [dummy.values[s][0] for s in gen.splits if s in dummy.values], "--", color="0.5",
                    label=f"{BASELINE} (reference)")
        ax.set_xticks(xs, [f"{s}\n(in-dist.)" if s == gen.reference else s for s in gen.splits])
        ax.set_ylabel(f"test {gen.metric}" + (f" ({unit_text(gen.unit)})" if gen.unit and gen.unit != "1" else ""))
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="best", frameon=False, ncol=2)

    return render(1, draw, ncols=1, panel=(7.5, 3.6), title="In- vs out-of-distribution test error")

