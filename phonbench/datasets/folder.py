"""``folder``: the user's own structures and targets, described by a small card file.

The folder (``data_dir`` / ``--data-dir``; else ``$PHONBENCH_DATA_DIR/folder/``) holds:

* ``phonbench.toml`` (or ``card.json`` when there is no TOML) — the card, e.g.::

      name = "my_set"
      task = "spectrum"            # spectrum | modes | scalar
      unit = "a.u."                # unit of the target values
      grid = [0, 20, 40]           # spectrum only; or grid_start / grid_stop / grid_points
      grid_unit = "cm^-1"
      targets = "targets.csv"      # default "targets.csv"
      structures = "structures/"   # default "structures/", or the folder itself if that is absent
      default_metrics = ["mae", "r2_per_sample"]

  Optional keys: ``description``, ``citation``, ``license``, ``source``, ``target`` (quantity
  name), ``primary_metric``, ``default_split`` (``random``, ``kfold5`` or a grouped protocol,
  ``chemsys``, ``cluster`` or ``element`` of :mod:`.grouped_splits`, which need enough chemical
  systems / compositions for every fold or the split is a one-line error), ``n_outputs`` (modes),
  ``header`` (``true``/``false``; default: auto), ``padding`` (modes: ``"empty"`` or ``"zero"``).
* the targets CSV: one row per material, first column the id, then the values. The first row is a
  header if ``header = true``, or (auto) if its first cell is ``id`` or another cell is text that is
  not a number. *scalar*: one value; *spectrum*: one value per grid point; *modes*: up to
  ``n_outputs`` values (default: the widest row). Trailing empty cells are ignored when counting.
* structure files (CIF, POSCAR/``*.vasp``, extxyz, pymatgen JSON) under ``structures``. The id of a
  file is its path relative to that folder with or without the extension (``a.cif`` → ``a`` or
  ``a.cif``; ``sub/b.vasp`` → ``sub/b``); a file named ``POSCAR``/``CONTCAR`` is also found by its
  folder (``c/POSCAR`` → ``c``).

**Mask rule for modes.** With a header column ``n_modes`` (or ``n_atoms``, meaning ``3·n_atoms``
modes), the first ``n_modes`` values of a row are real and the rest is padding (must be empty, NaN
or 0). Without it, the real modes of a row run up to its last cell that is not empty/NaN (with
``padding = "zero"``: not empty, NaN or exactly 0); an empty cell before that is an error.
Padding is stored as 0 with mask False.

The card's ``name`` is shown in the description; the registry name stays ``folder`` and the card
version is the first 12 hex digits of the targets file's sha256, so records tell datasets apart.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from phonbench.datasets.base import GROUPED_SPLITS, TASK_KINDS, Dataset, DatasetCard, PhononData, Task
from phonbench.exceptions import ConfigError, DataError
from phonbench.datasets.target_table import TargetTable, modes_mask
from phonbench.io import sha256_file
from phonbench.structures import is_structure_file, read_structure, structure_key

DATA_ENV = "PHONBENCH_DATA_DIR"
CARD_FILES = ("phonbench.toml", "card.json")
CARD_KEYS = frozenset({
    "name", "description", "task", "unit", "target", "grid", "grid_start", "grid_stop", "grid_points",
    "grid_unit", "targets", "structures", "default_metrics", "primary_metric", "default_split",
    "citation", "license", "source", "n_outputs", "header", "padding",
})
SPLITS = ("random", "kfold5", *GROUPED_SPLITS)
DEFAULT_METRICS = {
    "spectrum": ("mae", "mse", "r2_per_sample", "mean_frequency_error"),
    "modes": ("mae", "rmse", "r2_aggregated", "mean_frequency_error"),
    "scalar": ("mae", "rmse", "r2_aggregated"),
}
GENERIC_CARD = DatasetCard(
    name="folder",
    description=("Your own data: structure files plus a targets CSV, described by phonbench.toml "
                 "(pass --data-dir DIR; see phonbench.datasets.folder)."),
    task=Task("scalar", 1, "a.u.", "target"),
    source="user folder",
    splits=SPLITS,
)


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def read_card(folder: Path) -> tuple[dict[str, Any], Path]:
    """The card of ``folder`` and its file (``phonbench.toml`` preferred over ``card.json``).

    Raises:
        DataError: no card file, unparsable card, or unknown keys.
    """
    path = next((folder / n for n in CARD_FILES if (folder / n).is_file()), None)
    if path is None:
        raise DataError(f"no card file ({' or '.join(CARD_FILES)}) in {folder}",
                        'write phonbench.toml there with at least task = "spectrum", "modes" or "scalar"')
    try:
        card = _load_toml(path) if path.suffix == ".toml" else json.loads(path.read_text(encoding="utf-8"))
    except Exception as exc:
        raise DataError(f"cannot parse {path}: {' '.join(str(exc).split())}", "fix the TOML/JSON syntax") from exc
    if not isinstance(card, dict):
        raise DataError(f"{path} is not a table of keys", "write key = value pairs")
    unknown = sorted(set(card) - CARD_KEYS)
    if unknown:
        raise DataError(f"unknown key(s) {', '.join(unknown)} in {path}", f"valid keys: {', '.join(sorted(CARD_KEYS))}")
    return card, path


def task_from_card(card: dict[str, Any], card_path: Path, n_values: int = 0) -> Task:
    """The :class:`Task` declared by ``card`` (``n_values``: widest CSV row, the modes default).

    Raises:
        DataError: unknown task kind, missing/bad grid, bad ``n_outputs``.
    """
    kind = str(card.get("task", "")).strip().lower()
    if kind not in TASK_KINDS:
        raise DataError(f"task {card.get('task')!r} in {card_path} is not a known task kind",
                        f"set task to one of: {', '.join(TASK_KINDS)}")
    unit, target, grid_unit = str(card.get("unit", "a.u.")), str(card.get("target", "target")), card.get("grid_unit")
    if kind == "scalar":
        return Task("scalar", 1, unit, target)
    if kind == "modes":
        n = card.get("n_outputs", n_values)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DataError(f"n_outputs {n!r} in {card_path} is not a positive integer", "set e.g. n_outputs = 42")
        return Task("modes", n, unit, target, grid_unit=grid_unit)
    try:
        if "grid" in card:
            grid = tuple(float(g) for g in card["grid"])
        elif {"grid_start", "grid_stop", "grid_points"} <= set(card):
            start, stop, points = float(card["grid_start"]), float(card["grid_stop"]), int(card["grid_points"])
            grid = tuple(np.linspace(start, stop, points).tolist())
        else:
            raise DataError(f"spectrum task in {card_path} has no grid",
                            "set grid = [...] or grid_start, grid_stop and grid_points")
    except (TypeError, ValueError) as exc:
        raise DataError(f"grid in {card_path} is not made of numbers", "write grid = [0, 20, 40, ...]") from exc
    if len(grid) < 2 or not all(map(math.isfinite, grid)) or np.any(np.diff(grid) <= 0):
        raise DataError(f"grid in {card_path} is not at least 2 finite increasing numbers", "fix the grid")
    return Task("spectrum", len(grid), unit, target, grid=grid, grid_unit=grid_unit or "cm^-1")


def _structure_index(folder: Path, exclude: set[Path]) -> dict[str, list[Path]]:
    """Id → structure files under ``folder`` (see the module docstring for the id rules)."""
    index: dict[str, list[Path]] = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root, name)
            if name.startswith(".") or not is_structure_file(name) or path.resolve() in exclude:
                continue
            rel = path.relative_to(folder)
            keys = {rel.as_posix(), (rel.parent / structure_key(name)).as_posix()}
            if name.upper() in ("POSCAR", "CONTCAR") and rel.parent != Path("."):
                keys.add(rel.parent.as_posix())
            for key in keys:
                index.setdefault(key, []).append(path)
    return index


class _CardAttribute:
    """``FolderDataset.card``: the generic card on the class, the folder's card on an instance."""

    def __get__(self, obj: Any, owner: type) -> DatasetCard:
        return GENERIC_CARD if obj is None else obj.folder_card()


class FolderDataset(Dataset):
    """A user folder of structures plus a targets CSV (see the module docstring).

    Args:
        data_dir: the folder; default ``$PHONBENCH_DATA_DIR/folder/``.
    """

    card = _CardAttribute()  # type: ignore[assignment]

    def __init__(self, data_dir: str | None = None, **options: Any):
        super().__init__(data_dir=data_dir, **options)
        if options:
            raise ConfigError(f"unknown option(s) {', '.join(sorted(options))} for dataset 'folder'",
                              "the folder dataset takes only --data-dir")
        self._card: DatasetCard | None = None
        self._table: TargetTable | None = None
        self._raw: dict[str, Any] = {}
        self._card_path = Path()
        self._padding = "empty"

    @property
    def folder(self) -> Path:
        """The data folder (``data_dir`` or ``$PHONBENCH_DATA_DIR/folder``)."""
        env = os.environ.get(DATA_ENV)
        root = Path(self.data_dir).expanduser() if self.data_dir else (Path(env) / "folder" if env else None)
        if root is None or not root.is_dir():
            where = f"{root} does not exist" if root is not None else "no folder given"
            raise DataError(f"folder dataset: {where}",
                            "pass --data-dir DIR with phonbench.toml, a targets CSV and structure files")
        return root

    def folder_card(self) -> DatasetCard:
        """The card built from the folder's card file and targets CSV (read once)."""
        if self._card is not None:
            return self._card
        folder = self.folder
        raw, card_path = read_card(folder)
        header = raw.get("header", "auto")
        padding = str(raw.get("padding", "empty")).lower()
        if padding not in ("empty", "zero"):
            raise DataError(f"padding {raw['padding']!r} in {card_path} is not 'empty' or 'zero'", 'set padding = "zero"')
        table = TargetTable(folder / str(raw.get("targets", "targets.csv")), header)
        task = task_from_card(raw, card_path, table.width())
        metrics = tuple(str(m) for m in raw.get("default_metrics", DEFAULT_METRICS[task.kind]))
        primary = str(raw.get("primary_metric", metrics[0] if metrics else "mae"))
        metrics += (primary,) if primary not in metrics else ()
        self._check_metrics(metrics, task.kind, card_path)
        split = str(raw.get("default_split", "random"))
        if split not in SPLITS:
            raise DataError(f"default_split {split!r} in {card_path} is not one of {', '.join(SPLITS)}", "fix the card")
        sha = sha256_file(table.path)
        user_name = str(raw.get("name", folder.name))
        description = str(raw.get("description", f"user dataset from {folder}"))
        self._raw, self._card_path, self._padding, self._table = raw, card_path, padding, table
        self._card = DatasetCard(
            name="folder",
            description=f"{user_name}: {description}",
            task=task,
            citation=str(raw.get("citation", "not given (set citation in the card)")),
            license=str(raw.get("license", "not given (set license in the card)")),
            source=str(raw.get("source", folder.resolve())),
            version=sha[:12],
            default_split=split,
            splits=SPLITS,
            default_metrics=metrics,
            primary_metric=primary,
            files={table.path.name: sha, card_path.name: sha256_file(card_path)},
            size=len(table.ids),
            notes=f"user dataset {user_name!r} in {folder.resolve()}",
        )
        return self._card

    @staticmethod
    def _check_metrics(names: tuple[str, ...], kind: str, card_path: Path) -> None:
        from phonbench.registry import METRICS

        unknown = [m for m in names if m not in METRICS]
        if unknown:
            raise DataError(f"unknown metric(s) {', '.join(unknown)} in {card_path}",
                            f"use registered metrics: {', '.join(METRICS.names())}")
        wrong = [m for m in names if kind not in METRICS.get(m).task_kinds]
        if wrong:
            raise DataError(f"metric(s) {', '.join(wrong)} in {card_path} do not apply to {kind} tasks",
                            "remove them from default_metrics / primary_metric")

    def _structures_dir(self) -> Path:
        folder = self.folder
        given = self._raw.get("structures")
        path = folder / str(given if given is not None else "structures")
        if given is None and not path.is_dir():
            return folder
        if not path.is_dir():
            raise DataError(f"structures folder {path} not found", f"fix structures = ... in {self._card_path}")
        return path

    def _load(self) -> PhononData:
        card = self.folder_card()
        table, task = self._table, card.task
        assert table is not None
        values = table.values(task.n_outputs, exact=task.kind != "modes")
        mask = None
        if task.kind == "modes":
            mask = modes_mask(table, values, self._padding)
            values = np.where(mask, values, 0.0)
        real = np.isnan(values) if mask is None else (np.isnan(values) & mask)
        nan_rows = np.flatnonzero(real.any(axis=1))
        if len(nan_rows):
            what = "NaN or empty values among the real modes" if mask is not None else "NaN or empty targets"
            raise DataError(f"{table.path}: {what} for {len(nan_rows)} ids (first: "
                            f"{', '.join(table.ids[i] for i in nan_rows[:5])})", "drop or repair those rows")
        sdir = self._structures_dir()
        exclude = {table.path.resolve(), self._card_path.resolve()}
        index = _structure_index(sdir, exclude)
        keys = [i.replace("\\", "/").removeprefix("./") for i in table.ids]
        missing = [i for i, k in zip(table.ids, keys) if k not in index]
        if missing:
            raise DataError(f"no structure file in {sdir} for {len(missing)} of {len(keys)} ids "
                            f"(first: {', '.join(missing[:5])})",
                            "name files <id>.cif, <id>.vasp, <id>.extxyz or <id>.json, or <id>/POSCAR")
        ambiguous = [(i, index[k]) for i, k in zip(table.ids, keys) if len(index[k]) > 1]
        if ambiguous:
            mid, files = ambiguous[0]
            raise DataError(f"id {mid} matches several files: {', '.join(str(f) for f in files[:4])}",
                            "keep one structure file per id")
        structures = [read_structure(index[k][0]) for k in keys]
        n_atoms = np.array([len(s) for s in structures], dtype=np.int64)
        return PhononData(table.ids, structures, values, task, mask, extras={"n_atoms": n_atoms})
