"""Dataset contract: task, card, records (:class:`PhononData`) and named splits.

A dataset plugin is a subclass of :class:`Dataset` registered under ``phonbench.datasets``. It
declares a :class:`DatasetCard` and implements :meth:`Dataset._load` (records) and
:meth:`Dataset._make_split` (train/valid/test indices for a named split protocol).

Shapes: ``targets`` is ``(n_materials, n_outputs)`` float64; ``mask`` (``modes`` tasks only) is a
boolean array of the same shape, ``True`` for real modes and ``False`` for zero padding.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Sequence

import numpy as np

from phonbench.exceptions import ConfigError, DataError

TaskKind = Literal["spectrum", "modes", "scalar"]
TASK_KINDS: tuple[str, ...] = ("spectrum", "modes", "scalar")
#: grouped protocols any dataset with structures may declare (see :mod:`.grouped_splits`)
GROUPED_SPLITS: tuple[str, ...] = ("chemsys", "cluster", "element")
SPLIT_DESCRIPTIONS: dict[str, str] = {
    "random": "Seeded random hold-out: 80% train, 10% valid, 10% test.",
    "kfold5": "Seeded random 5-fold cross-validation; a seeded 10% of each fold's train part is valid.",
}


@dataclass(frozen=True)
class Task:
    """What is predicted.

    Attributes:
        kind: ``spectrum`` (values on a fixed ``grid``), ``modes`` (variable-length frequency sets,
            zero-padded, with a mask) or ``scalar``.
        n_outputs: number of output columns ``d`` (grid length, padded mode count, or 1).
        unit: unit of the target values (``"a.u."`` for max-normalised spectra, ``"THz"``, ``"cm^-1"``).
        target: short name of the target quantity.
        grid: for spectra, the grid points (length ``n_outputs``), in ``grid_unit``.
        grid_unit: unit of ``grid`` (e.g. ``"cm^-1"``); for modes tasks the frequency unit.
    """

    kind: TaskKind
    n_outputs: int
    unit: str
    target: str = "target"
    grid: tuple[float, ...] | None = None
    grid_unit: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ConfigError(f"unknown task kind {self.kind!r}", f"use one of {TASK_KINDS}")
        if self.kind == "spectrum" and (self.grid is None or len(self.grid) != self.n_outputs):
            raise ConfigError("a spectrum task needs a grid of length n_outputs")
        if self.kind == "scalar" and self.n_outputs != 1:
            raise ConfigError("a scalar task has exactly one output")

    @property
    def frequency_unit(self) -> str:
        """Unit of frequencies for this task (grid unit for spectra, target unit otherwise)."""
        return self.grid_unit or self.unit

    def grid_array(self) -> np.ndarray:
        """Grid as a float64 array of shape ``(n_outputs,)`` (spectra only)."""
        if self.grid is None:
            raise ConfigError(f"task {self.target!r} of kind {self.kind} has no grid")
        return np.asarray(self.grid, dtype=np.float64)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_outputs": self.n_outputs,
            "unit": self.unit,
            "target": self.target,
            "grid": list(self.grid) if self.grid is not None else None,
            "grid_unit": self.grid_unit,
        }


@dataclass(frozen=True)
class DatasetCard:
    """Metadata of a dataset, printed by ``phonbench data info`` and stored in every record."""

    name: str
    description: str
    task: Task
    citation: str = ""
    license: str = ""
    source: str = ""
    version: str = "1"
    default_split: str = "random"
    splits: tuple[str, ...] = ("random",)
    default_metrics: tuple[str, ...] = ("mae",)
    primary_metric: str = "mae"
    files: dict[str, str] = field(default_factory=dict)  # bundled file name -> sha256
    size: int | None = None  # number of materials when known without loading
    notes: str = ""
    #: what the scored model is fitted on: ``"train"`` (valid held out for early stopping), or
    #: ``"train+valid"`` (the whole training fold, as matbench does; tuning still selects on valid)
    final_fit: str = "train"

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["task"] = self.task.as_dict()
        d["splits"] = list(self.splits)
        d["default_metrics"] = list(self.default_metrics)
        return d


class PhononData:
    """Records of a dataset or of one of its subsets.

    Args:
        ids: material identifiers, length ``n``.
        structures: ``n`` pymatgen ``Structure`` objects (any sequence; may be lazy).
        targets: ``(n, d)`` float array in ``task.unit``.
        task: the :class:`Task`.
        mask: ``(n, d)`` bool array for ``modes`` tasks (True = real mode); ``None`` otherwise.
        extras: per-material arrays with first dimension ``n`` (e.g. ``n_atoms``, ``dos_norm``).

    Raises:
        DataError: on wrong shapes, NaN/inf targets, or a mask that is missing for ``modes``.
    """

    def __init__(
        self,
        ids: Sequence[str],
        structures: Sequence[Any],
        targets: np.ndarray,
        task: Task,
        mask: np.ndarray | None = None,
        extras: dict[str, np.ndarray] | None = None,
    ):
        targets = np.asarray(targets, dtype=np.float64)
        if targets.ndim == 1:
            targets = targets[:, None]
        n = len(ids)
        if targets.shape != (n, task.n_outputs):
            raise DataError(
                f"targets have shape {targets.shape}, expected ({n}, {task.n_outputs}) for "
                f"{n} materials and task {task.target!r}",
                "give one row per material with one column per output",
            )
        if len(structures) != n:
            raise DataError(f"{len(structures)} structures for {n} ids", "give one structure per id")
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != targets.shape:
                raise DataError(f"mask shape {mask.shape} differs from targets {targets.shape}")
        if task.kind == "modes" and mask is None:
            raise DataError("a modes task needs a mask of real modes", "pass mask=(n, d) booleans")
        finite = np.isfinite(targets) if mask is None else (np.isfinite(targets) | ~mask)
        if not finite.all():
            bad = [ids[i] for i in np.where(~finite.all(axis=1))[0][:5]]
            raise DataError(
                f"targets contain NaN or inf for {int((~finite.all(axis=1)).sum())} materials "
                f"(first: {', '.join(map(str, bad))})",
                "drop or repair those rows before loading",
            )
        self.ids = list(ids)
        self.structures = structures
        self.targets = targets
        self.task = task
        self.mask = mask
        self.extras = {k: np.asarray(v) for k, v in (extras or {}).items()}
        for key, value in self.extras.items():
            if len(value) != n:
                raise DataError(f"extra {key!r} has {len(value)} rows for {n} materials")

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"PhononData(n={len(self)}, task={self.task.kind}:{self.task.target})"

    def subset(self, indices: Sequence[int] | np.ndarray) -> PhononData:
        """A new :class:`PhononData` holding rows ``indices`` (in that order)."""
        idx = np.asarray(indices, dtype=np.int64)
        structures = [self.structures[int(i)] for i in idx]
        return PhononData(
            [self.ids[i] for i in idx],
            structures,
            self.targets[idx],
            self.task,
            None if self.mask is None else self.mask[idx],
            {k: v[idx] for k, v in self.extras.items()},
        )

    def effective_mask(self) -> np.ndarray:
        """``(n, d)`` bool mask; all True when the task has no padding."""
        return self.mask if self.mask is not None else np.ones_like(self.targets, dtype=bool)

    def content_hash(self) -> str:
        """sha256 of ids, targets and mask (hex, 16 chars): identifies the data a model saw."""
        h = hashlib.sha256()
        h.update("\n".join(self.ids).encode())
        h.update(np.ascontiguousarray(self.targets).tobytes())
        if self.mask is not None:
            h.update(np.ascontiguousarray(self.mask).tobytes())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class Fold:
    """Row indices (into the full dataset) of one train/valid/test partition."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    name: str = "0"

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


@dataclass(frozen=True)
class Split:
    """A named split protocol: one fold (hold-out) or several (k-fold, matbench, grouped).

    Attributes:
        name: protocol name (``random``, ``kfold5``, ``chemsys``, ...).
        folds: the folds, row indices into the full dataset.
        seed: seed of seeded protocols (``None`` for fixed ones).
        groups: for grouped protocols, one label per material of the dataset (length ``n``) that
            never occurs in two of train/valid/test of any fold; ``None`` otherwise.
        group_kind: what the protocol groups by (``"chemsys"``, ``"cluster"``, ``"element"``).
        description: one sentence on how the folds are made (may be empty).

    Raises:
        DataError: parts of a fold overlap, or a group label occurs in two parts of a fold.
    """

    name: str
    folds: tuple[Fold, ...]
    seed: int | None = None
    groups: tuple[str, ...] | None = None
    group_kind: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        for fold in self.folds:
            parts = [fold.train, fold.valid, fold.test]
            joined = np.concatenate(parts)
            if len(np.unique(joined)) != len(joined):
                raise DataError(f"split {self.name!r} fold {fold.name}: train/valid/test overlap")
        if self.groups is not None:
            self._check_groups()

    def _check_groups(self) -> None:
        n = len(self.groups or ())
        for fold in self.folds:
            top = max((int(p.max()) for p in (fold.train, fold.valid, fold.test) if len(p)), default=-1)
            if top >= n:
                raise DataError(f"split {self.name!r} fold {fold.name} uses row {top} but has {n} group labels",
                                "give one group label per material of the dataset")
            labels = [set(self.part_groups(p)) for p in (fold.train, fold.valid, fold.test)]
            shared = (labels[0] & labels[1]) | (labels[0] & labels[2]) | (labels[1] & labels[2])
            if shared:
                raise DataError(f"split {self.name!r} fold {fold.name}: group {sorted(shared)[0]!r} "
                                "is in two of train/valid/test")

    def part_groups(self, rows: np.ndarray) -> list[str]:
        """Group labels of ``rows`` (empty list for an ungrouped split)."""
        if self.groups is None:
            return []
        return [self.groups[int(i)] for i in rows]

    def group_counts(self) -> list[dict[str, int]] | None:
        """Distinct groups in train/valid/test of each fold (``None`` for an ungrouped split)."""
        if self.groups is None:
            return None
        return [
            {part: len(set(self.part_groups(getattr(fold, part)))) for part in ("train", "valid", "test")}
            for fold in self.folds
        ]


def random_split(n: int, seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> Split:
    """Seeded hold-out split of ``n`` rows into train/valid/test by ``fractions``."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test = int(round(fractions[2] * n))
    n_valid = int(round(fractions[1] * n))
    test, valid, train = perm[:n_test], perm[n_test : n_test + n_valid], perm[n_test + n_valid :]
    return Split("random", (Fold(np.sort(train), np.sort(valid), np.sort(test)),), seed)


def kfold_split(n: int, seed: int, k: int = 5, valid_fraction: float = 0.1, name: str = "kfold5") -> Split:
    """Seeded k-fold split; in each fold a seeded ``valid_fraction`` of train becomes valid."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    chunks = np.array_split(perm, k)
    folds = []
    for i, test in enumerate(chunks):
        rest = np.concatenate([c for j, c in enumerate(chunks) if j != i])
        folds.append(_fold_with_valid(rest, test, rng, valid_fraction, str(i)))
    return Split(name, tuple(folds), seed)


def _fold_with_valid(
    train_pool: np.ndarray, test: np.ndarray, rng: np.random.Generator, valid_fraction: float, name: str
) -> Fold:
    pool = rng.permutation(train_pool)
    n_valid = max(1, int(round(valid_fraction * len(pool))))
    return Fold(np.sort(pool[n_valid:]), np.sort(pool[:n_valid]), np.sort(np.asarray(test)), name)


def fold_from_test(n: int, test: np.ndarray, seed: int, valid_fraction: float = 0.1, name: str = "0") -> Fold:
    """Fold whose test rows are given; train is the rest, of which a seeded fraction is valid."""
    test = np.asarray(test, dtype=np.int64)
    rest = np.setdiff1d(np.arange(n), test)
    return _fold_with_valid(rest, test, np.random.default_rng(seed), valid_fraction, name)


class Dataset(ABC):
    """Base class of dataset plugins.

    Subclasses set ``card`` and implement :meth:`_load` and, for splits other than ``random``,
    ``kfold5`` and the grouped protocols (:data:`GROUPED_SPLITS`, for datasets with structures),
    :meth:`_make_split`. Constructor arguments are options (e.g. ``data_dir``); no I/O
    happens before :meth:`load`.
    """

    card: ClassVar[DatasetCard]
    #: one-sentence descriptions of the dataset's own (non-generic) splits, e.g. ``tutorial``
    split_descriptions: ClassVar[dict[str, str]] = {}

    def __init__(self, data_dir: str | None = None, **options: Any):
        self.data_dir = data_dir
        self.options = options
        self._data: PhononData | None = None

    @property
    def name(self) -> str:
        return self.card.name

    def load(self) -> PhononData:
        """All records (loaded once, then cached on the instance)."""
        if self._data is None:
            self._data = self._load()
        return self._data

    @abstractmethod
    def _load(self) -> PhononData:
        """Read all records (called once by :meth:`load`)."""

    def split(self, name: str | None = None, seed: int = 0) -> Split:
        """The split protocol ``name`` (default: the card's default split).

        Raises:
            ConfigError: unknown split name (lists the valid ones).
            DataError: a grouped split that leaves a fold without train, valid or test rows.
        """
        name = (name or self.card.default_split).lower().replace("-", "_")
        if name not in self.card.splits:
            raise ConfigError(
                f"dataset {self.name!r} has no split {name!r}",
                f"use one of: {', '.join(self.card.splits)}",
            )
        return self._make_split(name, seed)

    def _make_split(self, name: str, seed: int) -> Split:
        n = len(self.load())
        if name == "random":
            return random_split(n, seed)
        if name == "kfold5":
            return kfold_split(n, seed)
        if name in GROUPED_SPLITS:
            from phonbench.datasets.grouped_splits import grouped_split

            return grouped_split(name, self.load().structures, seed, dataset=self.name)
        raise ConfigError(f"dataset {self.name!r} declares split {name!r} but does not implement it")

    def split_description(self, name: str, seed: int = 0) -> str:
        """One sentence on how split ``name`` is made ("" when none is known).

        Grouped protocols are described from the data (e.g. the held-out elements and how many
        materials each fold tests), which loads the records but computes no features.
        """
        if name in GROUPED_SPLITS:
            from phonbench.datasets.grouped_splits import describe

            return describe(name, self.load().structures, seed)
        return {**SPLIT_DESCRIPTIONS, **self.split_descriptions}.get(name, "")

    def verify(self) -> dict[str, bool]:
        """Check bundled files against the card's sha256 (``{file: ok}``); empty if none."""
        return {}
