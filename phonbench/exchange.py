"""The CSV layout shared by ``phonbench data export`` (targets) and ``phonbench score`` (predictions).

One row per material: ``id``, then one column per output, named with the target, its unit and (for
spectra) the grid point, then — for ``modes`` tasks only — one ``mask_<j>`` column per output
(1 = a real mode, 0 = padding)::

    id,phonon_dos@0cm^-1 [a.u.],phonon_dos@20cm^-1 [a.u.],...       (spectrum, 51 outputs)
    id,omega_0 [THz],...,omega_59 [THz],mask_0,...,mask_59           (modes)
    id,last_phdos_peak [cm^-1]                                       (scalar)

Predictions use the same columns. :func:`read_predictions_csv` checks a file completely before
anything is scored, and names the first problem with its CSV line and column.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from phonbench.datasets.base import Task
from phonbench.exceptions import DataError

FIX = "write one row per test id with the columns of the exported test_targets.csv (see docs/submit.md)"


def value_columns(task: Task) -> list[str]:
    """Header names of the ``task.n_outputs`` value columns."""
    if task.kind == "spectrum":
        return [f"{task.target}@{g:g}{task.grid_unit or ''} [{task.unit}]" for g in task.grid_array()]
    if task.kind == "modes":
        return [f"omega_{j} [{task.unit}]" for j in range(task.n_outputs)]
    return [f"{task.target} [{task.unit}]"]


def mask_columns(task: Task) -> list[str]:
    """``mask_<j>`` header names (``modes`` tasks only; empty otherwise)."""
    return [f"mask_{j}" for j in range(task.n_outputs)] if task.kind == "modes" else []


def table_csv(ids: Sequence[str], values: np.ndarray | None, task: Task, mask: np.ndarray | None = None) -> str:
    """CSV text of ``values`` ``(n, d)`` (and the ``modes`` mask) in the exchange layout; with
    ``values=None`` the value cells are left empty (a template to fill in)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", *value_columns(task), *mask_columns(task)])
    if values is not None:
        values = np.asarray(values, dtype=np.float64).reshape(len(ids), task.n_outputs)
    for i, material in enumerate(ids):
        row = [repr(float(v)) for v in values[i]] if values is not None else [""] * task.n_outputs
        if task.kind == "modes":
            row += ["1" if m else "0" for m in (mask[i] if mask is not None else np.ones(task.n_outputs, bool))]
        writer.writerow([material, *row])
    return buf.getvalue()


def read_predictions_csv(path: str | Path, task: Task, test_ids: Sequence[str], reference_mask: np.ndarray | None,
                         where: str) -> np.ndarray:
    """Predictions ``(len(test_ids), d)`` float64 in the order of ``test_ids``, checked completely.

    Args:
        path: the CSV file.
        task: the task scored.
        test_ids: the fold's test ids (every one must appear exactly once).
        reference_mask: ``(n_test, d)`` mask of a ``modes`` task (padding may be left empty), else None.
        where: e.g. ``"dos/tutorial fold 0"``, used in messages.

    Raises:
        DataError: one line naming the CSV line and column of the first problem.
    """
    path = Path(path)
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read predictions {path}: {getattr(exc, 'strerror', None) or exc}", FIX) from exc
    if not rows or not rows[0]:
        raise DataError(f"predictions {path.name} is empty", FIX)
    order = _column_order(rows[0], task, path.name)
    index = {material: i for i, material in enumerate(test_ids)}
    out = np.full((len(test_ids), task.n_outputs), np.nan)
    seen: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        material = _row_id(row, line, len(rows[0]), index, seen, path.name, where)
        values = _row_values(row, order, rows[0], line, material, path.name)
        real = reference_mask[index[material]] if reference_mask is not None else np.ones(task.n_outputs, bool)
        _check_finite(values, real, order, rows[0], line, material, path.name)
        _check_mask(row, rows[0], task, real, line, material, path.name)
        out[index[material]] = np.where(real, values, 0.0)
    missing = [m for m in test_ids if m not in seen]
    if len(missing) == len(test_ids) and not seen:
        raise DataError(f"predictions {path.name} has no rows", FIX)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"predictions {path.name}: test id {missing[0]!r}{more} of {where} is missing", FIX)
    return out


def _column_order(header: list[str], task: Task, name: str) -> list[int]:
    """Positions of the value columns in ``header`` (by name when the export's names are used)."""
    if header[0].strip().lower() != "id":
        raise DataError(f"predictions {name}: the first column must be 'id' (got {header[0]!r})", FIX)
    expected = value_columns(task)
    masks = mask_columns(task)
    cols = header[1:]
    n_values = len([c for c in cols if not c.startswith("mask_")])
    n_masks = len(cols) - n_values
    if n_values != task.n_outputs:
        names = expected[0] if len(expected) == 1 else f"{expected[0]} … {expected[-1]}"
        raise DataError(f"predictions {name} has {n_values} value columns but task {task.target!r} has "
                        f"{task.n_outputs} output{'s' if task.n_outputs > 1 else ''} ({names})", FIX)
    if n_masks and not masks:
        raise DataError(f"predictions {name} has mask_* columns but task {task.target!r} is a {task.kind} task "
                        "without a mask", "drop the mask_* columns")
    if n_masks and n_masks != len(masks):
        raise DataError(f"predictions {name} has {n_masks} mask_* columns; task {task.target!r} needs "
                        f"{len(masks)} or none", FIX)
    if sorted(cols[:n_values]) == sorted(expected):
        return [header.index(c) for c in expected]
    return list(range(1, 1 + n_values))


def _row_id(row: list[str], line: int, width: int, index: dict[str, int], seen: dict[str, int], name: str,
            where: str) -> str:
    if len(row) != width:
        raise DataError(f"predictions {name} line {line} has {len(row)} fields, the header has {width}", FIX)
    material = row[0].strip()
    if material in seen:
        raise DataError(f"predictions {name} line {line}: id {material!r} appears twice (first on line "
                        f"{seen[material]})", "keep one row per test id")
    if material not in index:
        hint = "are these predictions for another dataset, split or fold?" if not seen else FIX
        raise DataError(f"predictions {name} line {line}: id {material!r} is not a test id of {where}", hint)
    seen[material] = line
    return material


def _row_values(row: list[str], order: list[int], header: list[str], line: int, material: str,
                name: str) -> np.ndarray:
    values = np.empty(len(order))
    for k, col in enumerate(order):
        text = row[col].strip()
        try:
            values[k] = float(text) if text else math.nan
        except ValueError:
            raise DataError(f"predictions {name} line {line} (id {material!r}) column {header[col]!r}: "
                            f"{text!r} is not a number", FIX) from None
    return values


def _check_finite(values: np.ndarray, real: np.ndarray, order: list[int], header: list[str], line: int,
                  material: str, name: str) -> None:
    bad = np.where(real & ~np.isfinite(values))[0]
    if bad.size:
        col = header[order[int(bad[0])]]
        raise DataError(f"predictions {name} line {line} (id {material!r}) column {col!r} is not a finite "
                        "number (NaN, inf or empty)", "predict a finite value for every output")


def _check_mask(row: list[str], header: list[str], task: Task, real: np.ndarray, line: int, material: str,
                name: str) -> None:
    if task.kind != "modes" or len(header) == 1 + task.n_outputs:
        return
    given = np.array([row[header.index(c)].strip() == "1" for c in mask_columns(task)])
    if (given != real).any():
        j = int(np.where(given != real)[0][0])
        raise DataError(f"predictions {name} line {line} (id {material!r}) column 'mask_{j}' differs from the "
                        f"task's mask ({int(real.sum())} real modes)",
                        "copy the mask_* columns from test_template.csv, or drop them")
