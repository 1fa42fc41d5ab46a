"""``rhombohedron`` and ``mix``: Γ-point phonon frequencies of Nguyen et al. (2022).

N. Nguyen, S.-Y. V. Louis, L. Wei, K. Choudhary, M. Hu, J. Hu, "Predicting Lattice Vibrational
Frequencies Using Deep Graph Neural Networks", *ACS Omega* 7, 26641 (2022),
doi:10.1021/acsomega.2c02765 (arXiv:2111.05885). Code: github.com/usccolumbia/phononvibfrequency
(MIT © 2022 MLEG). The structures and most targets are not public, so these loaders read a folder
the user provides, laid out like the authors' release.

**Where the folder is**: the ``data_dir`` argument (``--data-dir`` on the command line); else
``$PHONBENCH_DATA_DIR/<name>/`` (``<name>`` = ``rhombohedron`` or ``mix``). If ``data_dir`` holds no
CSV but has a ``<name>/`` sub-folder, that sub-folder is used.

**Targets (CSV)**: rows ``id, formula, n_atoms, f_1, …, f_k`` — the ``3·n_atoms`` Γ frequencies in
THz (VASP, sorted descending, negative = imaginary) followed by zero padding. A header row (the
authors' ``ID,Formula,Num_Atoms,P_0,…``) is detected and skipped. ``k`` may be below 42 (rows are
zero-padded to 42) or above (extra columns must be padding). Which CSV files are read, searched in
``<dir>/`` and then ``<dir>/properties-reference/``:

1. the ``csv`` option (a file name or a list of names relative to ``<dir>``), if given;
2. otherwise ``trainSample.csv`` and/or ``testSample.csv`` (the authors' split files, read in that
   order; with both present the ``files`` split reproduces the authors' test set);
3. otherwise the only ``*.csv`` file of the folder (several → error asking for ``csv=``).

**Structures (POSCAR)**: for each id the first existing file of :data:`POSCAR_LAYOUTS`:
``<id>/POSCAR`` (authors' layout), ``POSCAR-data/<id>/POSCAR``, ``POSCAR/<id>``,
``POSCAR/<id>.vasp``, ``<id>.vasp``, ``POSCAR-<id>``.

Mask: the first ``3·n_atoms`` entries of a row are real modes; ``n_atoms`` of the CSV must equal the
atom count of the POSCAR. Splits: ``paper`` (default; seeded 80/20 train/test as in the paper, 10 %
of train as valid), ``files`` (test = rows of ``testSample.csv``), ``random``, ``kfold5``.
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from phonbench.datasets.base import Dataset, DatasetCard, PhononData, Split, Task, fold_from_test
from phonbench.exceptions import ConfigError, DataError
from phonbench.structures import read_structure

DATA_ENV = "PHONBENCH_DATA_DIR"
N_MODES = 42  #: padded mode count, 3 × 14 atoms
TRAIN_CSV, TEST_CSV = "trainSample.csv", "testSample.csv"
CSV_DIRS = (".", "properties-reference")
POSCAR_LAYOUTS = (
    "{id}/POSCAR",
    "POSCAR-data/{id}/POSCAR",
    "POSCAR/{id}",
    "POSCAR/{id}.vasp",
    "{id}.vasp",
    "POSCAR-{id}",
)
PAPER_TRAIN_FRACTION = 0.8
VALID_FRACTION = 0.1

CITATION = (
    "N. Nguyen, S.-Y. V. Louis, L. Wei, K. Choudhary, M. Hu, J. Hu, 'Predicting Lattice Vibrational "
    "Frequencies Using Deep Graph Neural Networks', ACS Omega 7, 26641 (2022), "
    "doi:10.1021/acsomega.2c02765 (arXiv:2111.05885)"
)
LICENSE = "code release MIT © 2022 MLEG; data not public and not redistributed here (bring your own copy)"
SOURCE = "https://github.com/usccolumbia/phononvibfrequency"
TASK = Task("modes", N_MODES, "THz", "gamma_frequencies")
METRICS = ("mae", "rmse", "r2_aggregated", "r2_per_sample", "mean_frequency_error")
SPLITS = ("paper", "files", "random", "kfold5")
LAYOUT_HINT = (
    "a CSV of id,formula,n_atoms + 42 zero-padded Γ frequencies in THz (e.g. trainSample.csv and "
    "testSample.csv) and one POSCAR per id as <id>/POSCAR, POSCAR/<id>, <id>.vasp or POSCAR-<id>"
)


class FrequencyTable:
    """Rows of the authors' frequency CSV files.

    Attributes:
        ids: material ids, length ``n``.
        formulas: formula column, length ``n``.
        n_atoms: ``(n,)`` int atoms per cell.
        freqs: ``(n, 42)`` float64 THz; padding (entries ``>= 3·n_atoms``) set to 0.
        origin: ``(n,)`` index into ``files`` of the CSV each row came from.
        files: the CSV paths read.
    """

    def __init__(self, ids, formulas, n_atoms, freqs, origin, files):
        self.ids: list[str] = ids
        self.formulas: list[str] = formulas
        self.n_atoms: np.ndarray = n_atoms
        self.freqs: np.ndarray = freqs
        self.origin: np.ndarray = origin
        self.files: list[Path] = files

    def mask(self) -> np.ndarray:
        """``(n, 42)`` bool, True for the first ``3·n_atoms`` entries."""
        return np.arange(self.freqs.shape[1])[None, :] < 3 * self.n_atoms[:, None]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _has_header(path: Path) -> bool:
    with open(path, newline="") as fh:
        first = next(csv.reader(fh), [])
    return len(first) >= 3 and math.isnan(_number(first[2].strip()))


def read_frequency_csv(path: str | Path, n_modes: int = N_MODES) -> FrequencyTable:
    """Read one frequency CSV (``id, formula, n_atoms, f_1 … f_k``; optional header row).

    Args:
        path: CSV file.
        n_modes: padded width of the returned frequency array.

    Raises:
        DataError: unreadable file, too few columns, bad ``n_atoms``, ``3·n_atoms > n_modes``,
            NaN among real modes, or non-zero padding; messages name the file and the ids.
    """
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path, header=0 if _has_header(path) else None, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataError(f"cannot read frequency CSV {path}: {' '.join(str(exc).split())}",
                        "give rows of id,formula,n_atoms,f_1,...,f_42 with the same number of columns") from exc
    if df.shape[1] < 4 or len(df) == 0:
        raise DataError(f"frequency CSV {path} has {df.shape[1]} columns and {len(df)} rows",
                        "give rows of id,formula,n_atoms followed by the frequencies in THz")
    raw = df.to_numpy()
    ids = [str(x).strip() for x in raw[:, 0]]
    atoms = np.array([_number(x) for x in raw[:, 2]])
    bad = [ids[i] for i in np.flatnonzero(~np.isfinite(atoms) | (atoms < 1) | (atoms != np.round(atoms)))]
    if bad:
        raise DataError(f"{path}: n_atoms (3rd column) is not a positive integer for {len(bad)} rows "
                        f"(first: {', '.join(bad[:5])})", "write the atom count of the cell in column 3")
    n_atoms = atoms.astype(np.int64)
    values = df.iloc[:, 3:].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    width = values.shape[1]
    too_many = np.flatnonzero(3 * n_atoms > n_modes)
    if len(too_many):
        i = int(too_many[0])
        raise DataError(f"{path}: id {ids[i]} has {n_atoms[i]} atoms, i.e. {3 * n_atoms[i]} modes, more than the "
                        f"{n_modes} outputs of this dataset", f"drop cells with more than {n_modes // 3} atoms")
    short = np.flatnonzero(3 * n_atoms > width)
    if len(short):
        i = int(short[0])
        raise DataError(f"{path}: id {ids[i]} has {n_atoms[i]} atoms but only {width} frequency columns",
                        f"give 3·n_atoms frequencies per row ({len(short)} rows are short)")
    real = np.arange(width)[None, :] < 3 * n_atoms[:, None]
    nan_rows = np.flatnonzero((~np.isfinite(values) & real).any(axis=1))
    if len(nan_rows):
        raise DataError(f"{path}: NaN, empty or non-numeric frequencies among the 3·n_atoms real modes of "
                        f"{len(nan_rows)} rows (first: {', '.join(ids[i] for i in nan_rows[:5])})",
                        "drop or repair those rows")
    padding = np.nan_to_num(np.where(real, 0.0, values), nan=0.0)
    pad_rows = np.flatnonzero((padding != 0).any(axis=1))
    if len(pad_rows):
        raise DataError(f"{path}: non-zero values after the 3·n_atoms real modes in {len(pad_rows)} rows "
                        f"(first: {', '.join(ids[i] for i in pad_rows[:5])})",
                        "check that n_atoms (3rd column) matches the number of frequencies")
    freqs = np.zeros((len(ids), n_modes), dtype=np.float64)
    keep = min(width, n_modes)
    freqs[:, :keep] = np.where(real, values, 0.0)[:, :keep]
    formulas = [str(x).strip() for x in raw[:, 1]]
    return FrequencyTable(ids, formulas, n_atoms, freqs, np.zeros(len(ids), dtype=np.int64), [path])


def find_frequency_csvs(root: Path, csv_option: str | Sequence[str] | None = None) -> list[Path]:
    """CSV files to read from ``root`` by the rules of the module docstring.

    Raises:
        DataError: a named CSV that does not exist, no CSV at all, or several candidates.
    """
    if csv_option:
        names = [csv_option] if isinstance(csv_option, (str, os.PathLike)) else list(csv_option)
        paths = [root / str(name) for name in names]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"frequency CSV {', '.join(missing)} not found", "check the csv= option")
        return paths
    for sub in CSV_DIRS:
        folder = root / sub
        split_files = [folder / name for name in (TRAIN_CSV, TEST_CSV) if (folder / name).is_file()]
        if split_files:
            return split_files
        found = sorted(folder.glob("*.csv")) if folder.is_dir() else []
        if len(found) == 1:
            return found
        if len(found) > 1:
            raise DataError(
                f"several CSV files in {folder}: {', '.join(p.name for p in found[:6])}",
                "name the one(s) to read with --dataset-param csv=NAME.csv (or a JSON list of names)",
            )
    raise DataError(f"no frequency CSV in {root}", f"put there {LAYOUT_HINT}")


def find_poscar(root: Path, material_id: str) -> Path | None:
    """First existing file of :data:`POSCAR_LAYOUTS` for ``material_id`` under ``root``, or ``None``."""
    for layout in POSCAR_LAYOUTS:
        path = root / layout.format(id=material_id)
        if path.is_file():
            return path
    return None


def resolve_data_dir(name: str, data_dir: str | os.PathLike | None) -> Path:
    """Folder holding the user's copy of dataset ``name``.

    Raises:
        DataError: no folder given and none under ``$PHONBENCH_DATA_DIR/<name>/``.
    """
    hint = (f"put {LAYOUT_HINT} in ${DATA_ENV}/{name}/ or pass --data-dir DIR; see the docstring of "
            f"phonbench.datasets.nguyen (data: {SOURCE})")
    if data_dir:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"{name} data folder {root} does not exist", hint)
        nested = root / name
        if nested.is_dir() and not any(root.glob("*.csv")) and not (root / "properties-reference").is_dir():
            return nested
        return root
    env = os.environ.get(DATA_ENV)
    if env and (Path(env).expanduser() / name).is_dir():
        return Path(env).expanduser() / name
    where = f"${DATA_ENV}/{name} = {Path(env) / name} does not exist" if env else f"${DATA_ENV} is not set"
    raise DataError(f"{name} data not found ({where})", hint)


class NguyenDataset(Dataset):
    """Shared loader of the ``rhombohedron`` and ``mix`` sets (see the module docstring).

    Args:
        data_dir: folder with the CSV file(s) and POSCARs; default ``$PHONBENCH_DATA_DIR/<name>/``.
        csv: optional CSV file name or list of names inside ``data_dir``.
    """

    card: ClassVar[DatasetCard]

    def __init__(self, data_dir: str | None = None, csv: str | Sequence[str] | None = None, **options: Any):
        super().__init__(data_dir=data_dir, **options)
        if options:
            raise ConfigError(f"unknown option(s) {', '.join(sorted(options))} for dataset {self.card.name!r}",
                              "valid options: data_dir, csv")
        self.csv = csv
        self.table: FrequencyTable | None = None

    def read_table(self) -> FrequencyTable:
        """All CSV rows (several files concatenated, ``origin`` telling which file each row is from)."""
        root = resolve_data_dir(self.card.name, self.data_dir)
        paths = find_frequency_csvs(root, self.csv)
        tables = [read_frequency_csv(p, self.card.task.n_outputs) for p in paths]
        ids = [i for t in tables for i in t.ids]
        dup = sorted(i for i, c in Counter(ids).items() if c > 1)
        if dup:
            raise DataError(f"{len(dup)} ids occur more than once in {', '.join(p.name for p in paths)} "
                            f"(first: {', '.join(dup[:5])})", "remove the duplicate rows")
        return FrequencyTable(
            ids,
            [f for t in tables for f in t.formulas],
            np.concatenate([t.n_atoms for t in tables]),
            np.concatenate([t.freqs for t in tables]),
            np.concatenate([np.full(len(t.ids), k, dtype=np.int64) for k, t in enumerate(tables)]),
            paths,
        )

    def _load(self) -> PhononData:
        root = resolve_data_dir(self.card.name, self.data_dir)
        table = self.read_table()
        bad_ids = [i for i in table.ids if not i or "/" in i or "\\" in i or i in (".", "..")]
        if bad_ids:
            raise DataError(f"invalid material id(s) {bad_ids[:5]} in {table.files[0].parent}",
                            "ids must be non-empty file names without path separators")
        paths = [find_poscar(root, i) for i in table.ids]
        missing = [i for i, p in zip(table.ids, paths) if p is None]
        if missing:
            raise DataError(
                f"no POSCAR for {len(missing)} of {len(table.ids)} ids in {root} (first: {', '.join(missing[:5])})",
                "put each structure at one of " + ", ".join(f"<dir>/{lay}" for lay in POSCAR_LAYOUTS),
            )
        structures = [read_structure(p, fmt="poscar") for p in paths]
        counts = np.array([len(s) for s in structures])
        wrong = np.flatnonzero(counts != table.n_atoms)
        if len(wrong):
            i = int(wrong[0])
            raise DataError(
                f"id {table.ids[i]}: the CSV says n_atoms={table.n_atoms[i]} but {paths[i]} has {counts[i]} atoms "
                f"({len(wrong)} such ids)", "use the POSCAR the frequencies were computed for",
            )
        self.table = table
        return PhononData(table.ids, structures, table.freqs, self.card.task, table.mask(),
                          extras={"n_atoms": table.n_atoms})

    def _make_split(self, name: str, seed: int) -> Split:
        n = len(self.load())
        if name == "paper":
            n_train = int(math.floor(PAPER_TRAIN_FRACTION * n))
            test = np.random.default_rng(seed).permutation(n)[n_train:]
            return Split("paper", (fold_from_test(n, test, seed, VALID_FRACTION),), seed)
        if name == "files":
            assert self.table is not None
            names = [p.name for p in self.table.files]
            if TEST_CSV not in names or len(names) < 2:
                raise ConfigError(
                    f"split 'files' of {self.name!r} needs {TRAIN_CSV} and {TEST_CSV} (read: {', '.join(names)})",
                    "put both files in the data folder, or use --split paper",
                )
            test = np.flatnonzero(self.table.origin == names.index(TEST_CSV))
            return Split("files", (fold_from_test(n, test, seed, VALID_FRACTION),), seed)
        return super()._make_split(name, seed)


def _nguyen_card(name: str, description: str, size: int, notes: str) -> DatasetCard:
    """Card of one Nguyen et al. set; the sets differ only in name, description, size and notes."""
    return DatasetCard(
        name=name, description=description + "\nUser-provided data (not public): POSCARs plus the authors' "
        "frequency CSV(s).", task=TASK, citation=CITATION, license=LICENSE, source=SOURCE,
        default_split="paper", splits=SPLITS, default_metrics=METRICS, primary_metric="mae", size=size, notes=notes,
    )


class RhombohedronDataset(NguyenDataset):
    """35,552 F-43m primitive cells (8, 9 or 14 atoms); 42 padded Γ frequencies in THz."""

    card = _nguyen_card(
        "rhombohedron",
        "Nguyen et al. 2022 'Rhombohedron' set: Γ-point phonon frequencies (THz, VASP) of 35,552 "
        "primitive F-43m cells with 8, 9 or 14 atoms, 3N modes sorted descending and zero-padded to 42.",
        35552,
        "paper split: 28,441 train / 7,111 test (seeded here; the authors' exact test rows are "
        "testSample.csv, used by split 'files'). Reported aggregated R²: 0.724.",
    )


class MixDataset(NguyenDataset):
    """15,000 mixed-structure cells; Γ frequencies in THz padded to 42."""

    card = _nguyen_card(
        "mix",
        "Nguyen et al. 2022 'Mix' set: Γ-point phonon frequencies (THz, VASP) of 15,000 cells of mixed "
        "structure types, 3N modes sorted descending and zero-padded to 42.",
        15000,
        "paper split: 12,000 train / 3,000 test (seeded here). Reported aggregated R²: 0.554.",
    )
