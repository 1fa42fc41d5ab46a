"""The quartile panel of spectrum tables: the same four test materials for every model.

Selection rule (:func:`quartile_materials`), once per table: among the test materials that every
row predicts (or, when no material is shared by all rows, the most rows), take each material's MSE in
every row that predicts it and average over those rows; the materials at the 12.5/37.5/62.5/87.5th
percentiles of that mean — the median of each quartile, via :func:`phonbench.plots.quartile_examples`
— are shown for every model (Q1 = easiest). A row's prediction of a material is that of its first run
(by run id) whose test split holds it, and the MSE on the panel is that prediction's.

Panels name the material by id and, when the installed dataset has its structure, reduced formula
(:class:`Formulas`; records hold ids only). The formula is the one extra input of the leaderboard
figures that does not come from the records: without the dataset installed, the id alone is shown.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import numpy as np

from phonbench.leaderboard.figure_canvas import COLORS, Rendered, render, unit_text
from phonbench.leaderboard.tables import Row, Table

SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
RULE = ("the same four test materials for every model, picked at the 12.5/37.5/62.5/87.5th percentiles (the "
        "quartiles' medians) of the per-material MSE averaged over all models of the table, among the materials "
        "that every model tests")


class Formulas:
    """``{material id: reduced formula}`` of an installed dataset, loaded on the first lookup (once).

    ``DATASETS.get(name)(**options).load()``; a dataset that is not installed, fails to load or has
    no structures gives no formulas, and :meth:`get` returns ``None``. A load failure other than "not
    installed" is appended to ``warnings``.
    """

    def __init__(self, name: str, options: Mapping[str, Any] | None = None, warnings: list[str] | None = None):
        self.name, self.options, self.warnings = name, dict(options or {}), warnings
        self._table: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        from phonbench.exceptions import RegistryError
        from phonbench.registry import DATASETS

        try:
            data = DATASETS.get(self.name)(**self.options).load()
        except RegistryError:
            return {}  # not installed here: ids only
        except Exception as exc:  # noqa: BLE001 - formulas are decoration; the figure still draws
            if self.warnings is not None:
                self.warnings.append(f"no formulas for the {self.name} figures (dataset failed to load: {exc})")
            return {}
        out = {}
        for mid, structure in zip(data.ids, data.structures):
            formula = getattr(getattr(structure, "composition", None), "reduced_formula", None)
            if formula:
                out[str(mid)] = str(formula)
        return out

    def get(self, material_id: str) -> str | None:
        if self._table is None:
            self._table = self._load()
        return self._table.get(material_id)


def material_label(material_id: str, formulas: Formulas | Mapping[str, str] | None) -> str:
    """``mp-14017 (K₃Sb)`` with a known formula (counts as subscripts), else the id."""
    formula = formulas.get(material_id) if formulas is not None else None
    if not formula:
        return material_id
    return f"{material_id} ({re.sub(r'[0-9]+', lambda m: m.group(0).translate(SUBSCRIPT), formula)})"


def row_examples(row: Row) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """``{material id: (true, predicted, MSE)}`` of a row's test materials, each from the first run (by
    run id) that tests it; materials with a non-finite error are left out."""
    from phonbench.plots import per_material_errors

    out: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for run in sorted(row.runs, key=lambda r: r.record["run_id"]):
        ids, y, p, m = run.predictions.part("test")
        err = per_material_errors(y, p, m, "mse")
        for i, e in enumerate(err):
            if math.isfinite(e) and str(ids[i]) not in out:
                out[str(ids[i])] = (y[i], p[i], float(e))
    return out


def quartile_materials(table: Table, examples: list[dict] | None = None) -> list[tuple[str, float]]:
    """``[(material id, mean MSE over rows), ...]`` of the four materials shown for every row of
    ``table``, Q1 (lowest mean error) first; the rule is in the module docstring (:data:`RULE`).
    ``examples`` are the rows' :func:`row_examples` when already computed."""
    from phonbench.plots import quartile_examples as picks

    examples = [row_examples(r) for r in table.rows] if examples is None else examples
    counts: dict[str, int] = {}
    for ex in examples:
        for mid in ex:
            counts[mid] = counts.get(mid, 0) + 1
    if not counts:
        return []
    most = max(counts.values())
    candidates = sorted(mid for mid, c in counts.items() if c == most)
    mean = np.array([np.mean([ex[mid][2] for ex in examples if mid in ex]) for mid in candidates])
    return [(candidates[i], float(mean[i])) for _, i in picks(mean, 1)]


def dos_quartiles(table: Table, formulas: Formulas | Mapping[str, str] | None = None) -> Rendered | None:
    """Spectrum tables: rows = models, columns = the table's four quartile materials; true vs predicted."""
    if table.task["kind"] != "spectrum" or not table.task.get("grid"):
        return None
    grid = np.asarray(table.task["grid"], dtype=np.float64)
    examples = [row_examples(r) for r in table.rows]
    chosen = quartile_materials(table, examples)
    if not chosen:
        return None
    names = [material_label(mid, formulas) for mid, _ in chosen]
    xlabel = f"frequency ({unit_text(table.task.get('grid_unit'))})"
    ylabel = f"{table.task.get('target', '')} ({unit_text(table.task['unit'])})"

    def draw(ax, k):
        i, q = divmod(k, len(chosen))
        mid = chosen[q][0]
        header = f"Q{q + 1}: {names[q]}"
        if mid not in examples[i]:
            ax.set_axis_off()
            ax.set_title(f"{header}\n{table.rows[i].label}: not tested")
            return
        y, p, e = examples[i][mid]
        ax.plot(grid, y, color="k", lw=1.2, label="true")
        ax.plot(grid, p, color=COLORS[1], lw=1.2, ls="--", label="predicted")
        ax.set_title(f"{header}\n{table.rows[i].label}: MSE={e:.3g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if k == 0:
            ax.legend(loc="upper right")

    return render(len(table.rows) * len(chosen), draw, ncols=len(chosen), panel=(3.0, 2.6), title_lines=2,
                  title=f"Test examples: the same materials for every model, at the quartiles of the per-material "
                        f"MSE averaged over models, split `{table.split}`")
