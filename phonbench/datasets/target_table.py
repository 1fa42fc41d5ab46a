"""The targets CSV of a ``folder`` dataset: :class:`TargetTable` and the modes mask rule.

Format and mask rule are described in :mod:`phonbench.datasets.folder` (one row per material,
first column the id; optional header; optional ``n_modes``/``n_atoms`` count column).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from phonbench.exceptions import DataError

COUNT_COLUMNS = {"n_modes": 1, "n_atoms": 3}  # header name -> modes per count


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _trim(cells: list[str]) -> list[str]:
    """Cells without trailing empty ones."""
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


class TargetTable:
    """The parsed targets CSV.

    Attributes:
        ids: first column, length ``n``.
        header: header cells (id column included) or ``None``.
        cells: value cells per row (count column removed, trailing empties trimmed).
        counts: ``(n,)`` real-mode counts from an ``n_modes``/``n_atoms`` column, or ``None``.
    """

    def __init__(self, path: Path, header: bool | str = "auto"):
        self.path = path
        if not path.is_file():
            raise DataError(f"targets file {path} not found", 'set targets = "<file>.csv" in the card')
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"cannot read targets file {path}: {exc}", "write a plain UTF-8 CSV") from exc
        if header == "auto":
            first = rows[0] if rows else []
            header = bool(first) and (first[0].strip().lower() == "id" or any(
                c.strip() and not _is_number(c) for c in first[1:]))
        self.header = [c.strip() for c in rows[0]] if header and rows else None
        body = rows[1:] if self.header is not None else rows
        if not body:
            raise DataError(f"targets file {path} has no data rows", "add one row per material: id, values...")
        self.ids = [r[0].strip() for r in body]
        if not all(self.ids):
            line = self.ids.index("") + 1 + (self.header is not None)
            raise DataError(f"{path}: empty id on line {line}", "give every row an id in the first column")
        if len(set(self.ids)) != len(self.ids):
            seen: set[str] = set()
            dups = sorted({i for i in self.ids if i in seen or seen.add(i)})
            raise DataError(f"{path}: duplicate id(s) {', '.join(dups[:5])}", "give each material one row")
        cells = [r[1:] for r in body]
        self.counts: np.ndarray | None = None
        lowered = [c.lower() for c in (self.header or [])[1:]]
        count_col = next((k for k, c in enumerate(lowered) if c in COUNT_COLUMNS), None)
        if count_col is not None:
            factor = COUNT_COLUMNS[lowered[count_col]]
            raw = [r[count_col].strip() if count_col < len(r) else "" for r in cells]
            numbers = np.array([float(c) if _is_number(c) else np.nan for c in raw])
            bad = [i for i, x in zip(self.ids, numbers) if not (x >= 1 and x == np.round(x))]
            if bad:
                raise DataError(f"{path}: column {lowered[count_col]} is not a positive integer for id(s) "
                                f"{', '.join(bad[:5])}", "write the mode (or atom) count of every row")
            self.counts = numbers.astype(np.int64) * factor
            cells = [r[:count_col] + r[count_col + 1:] for r in cells]
        self.cells = [_trim(r) for r in cells]

    def width(self) -> int:
        """Largest number of value cells in a row."""
        return max(len(r) for r in self.cells)

    def values(self, n_columns: int, exact: bool) -> np.ndarray:
        """``(n, n_columns)`` float64 values, NaN for empty cells.

        Args:
            n_columns: expected number of value columns.
            exact: every row must have exactly ``n_columns`` values (spectrum/scalar); otherwise
                rows may be shorter (modes).

        Raises:
            DataError: a row with the wrong number of columns or a cell that is not a number.
        """
        out = np.full((len(self.ids), n_columns), np.nan)
        for r, (mid, row) in enumerate(zip(self.ids, self.cells)):
            if len(row) > n_columns or (exact and len(row) != n_columns):
                raise DataError(f"{self.path}: id {mid} has {len(row)} value columns, expected "
                                f"{'exactly' if exact else 'at most'} {n_columns}",
                                "give one value per output (grid point, mode, or 1 for a scalar)")
            for c, text in enumerate(row):
                text = text.strip()
                if not text:
                    continue
                try:
                    out[r, c] = float(text)
                except ValueError:
                    raise DataError(f"{self.path}: value {text!r} of id {mid} (value column {c + 1}) is not "
                                    "a number", "write plain numbers (empty or nan for missing)") from None
        return out


def modes_mask(table: TargetTable, values: np.ndarray, padding: str) -> np.ndarray:
    """Boolean mask of real modes by the rule of the module docstring; ``(n, d)``."""
    n, d = values.shape
    cols = np.arange(d)[None, :]
    if table.counts is not None:
        over = np.flatnonzero(table.counts > d)
        if len(over):
            i = int(over[0])
            raise DataError(f"{table.path}: id {table.ids[i]} declares {table.counts[i]} modes but the task has {d}",
                            "raise n_outputs in the card or fix the count column")
        mask = cols < table.counts[:, None]
        pad = np.nan_to_num(np.where(mask, 0.0, values), nan=0.0)
        bad = np.flatnonzero((pad != 0).any(axis=1))
        if len(bad):
            raise DataError(f"{table.path}: id {table.ids[int(bad[0])]} has values after its declared modes",
                            "padding after the real modes must be empty, nan or 0")
        return mask
    present = ~np.isnan(values)
    if padding == "zero":
        present &= values != 0
    n_real = np.where(present.any(axis=1), d - np.argmax(present[:, ::-1], axis=1), 0)
    empty = np.flatnonzero(n_real == 0)
    if len(empty):
        raise DataError(f"{table.path}: id {table.ids[int(empty[0])]} has no mode values", "drop the row")
    return cols < n_real[:, None]
