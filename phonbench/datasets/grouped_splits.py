"""Grouped (out-of-distribution) split protocols: ``chemsys``, ``cluster`` and ``element``.

Each protocol keeps whole groups of related materials in one part of every fold, so test
materials are never near-duplicates of training ones:

* ``chemsys`` — 5-fold grouped K-fold on the chemical system (sorted element set, ``"Mg-O"``).
* ``cluster`` — leave-one-cluster-out over k = 5 k-means clusters (scikit-learn ``KMeans``,
  ``n_init=10``, ``random_state=seed``) of the standardised 132 Magpie composition features of
  :func:`phonbench.featurizers.composition.composition_features` (cached on disk). Clusters are
  numbered by size, largest first; fold ``clusterK`` tests cluster ``K``.
* ``element`` — for each of the 6 elements (oxygen excluded) found in most materials (ties
  alphabetical), a fold named by the symbol that tests every material containing it and trains
  on the materials without it.

In every protocol the validation part is carved from the fold's training part as whole chemical
systems drawn in seeded order until they hold about 10 % of its rows, so train and valid never
share a chemical system either. :attr:`Split.groups <phonbench.datasets.base.Split.groups>` holds
one label per material that never occurs in two parts of a fold: the chemical system for
``chemsys`` and ``element`` (a chemical system either contains the fold's element or not), and
``"cluster{K}:{chemsys}"`` for ``cluster``. All protocols are deterministic: the same items and
seed give byte-identical folds (sorted int64 row indices).

Items are pymatgen Structures (ordered or disordered), Compositions or formula strings.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Sequence

import numpy as np

from phonbench.datasets.base import GROUPED_SPLITS, Fold, Split
from phonbench.exceptions import DataError

__all__ = [
    "GROUPED_SPLITS", "GROUP_LABELS", "chemsys_split", "cluster_split", "element_split", "grouped_split", "describe",
]
N_FOLDS = 5  #: folds of ``chemsys``
N_CLUSTERS = 5  #: k of ``cluster``
KMEANS_N_INIT = 10  #: k-means restarts of ``cluster``
N_ELEMENTS = 6  #: folds of ``element``
EXCLUDED_ELEMENTS: tuple[str, ...] = ("O",)  #: never a held-out element (in most oxides' test sets)
VALID_FRACTION = 0.1  #: target fraction of each fold's training rows that becomes valid
#: what one label of ``Split.groups`` is, per protocol (shown by ``phonbench data info``)
GROUP_LABELS: dict[str, str] = {
    "chemsys": "chemical systems",
    "cluster": "cluster:chemsys pairs",
    "element": "chemical systems",
}
_SYMBOL = re.compile(r"[A-Z][a-z]*")
_FIX = "use --split random (or kfold5) for a dataset this small, or add materials"


def material_elements(items: Sequence[Any]) -> list[tuple[str, ...]]:
    """Sorted element symbols of each item, e.g. ``("Mg", "O")``.

    Raises:
        DataError: an empty structure, unparsable formula or unsupported object.
    """
    from phonbench.featurizers.composition import canonical_composition

    # canonical strings are "Sym0.5 Sym0.5": one part per element (fraction > 0), symbols sorted
    keys = [canonical_composition(item, i).split() for i, item in enumerate(items)]
    return [tuple(_SYMBOL.match(part).group() for part in parts) for parts in keys]  # type: ignore[union-attr]


def chemical_systems(items: Sequence[Any]) -> list[str]:
    """Chemical system of each item: sorted element symbols joined by ``-`` (``"Mg-O"``)."""
    return ["-".join(elements) for elements in material_elements(items)]


def most_common_elements(
    items: Sequence[Any], n: int = N_ELEMENTS, exclude: Sequence[str] = EXCLUDED_ELEMENTS
) -> list[tuple[str, int]]:
    """The ``n`` elements contained in most items, with their material counts.

    Ties are broken alphabetically; elements in ``exclude`` are skipped.
    """
    return _rank(material_elements(items), n, exclude)


def _rank(elements: Sequence[tuple[str, ...]], n: int, exclude: Sequence[str]) -> list[tuple[str, int]]:
    counts = Counter(el for material in elements for el in material)
    ranked = sorted((kv for kv in counts.items() if kv[0] not in exclude), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:n]


def _codes(labels: Sequence[str]) -> np.ndarray:
    """``(n,)`` int64 index of each label among the sorted distinct labels."""
    return np.unique(np.asarray(labels, dtype=str), return_inverse=True)[1].astype(np.int64).ravel()


def carve_valid(
    pool: np.ndarray, codes: np.ndarray, rng: np.random.Generator, fraction: float = VALID_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows ``pool`` into (train, valid) by whole groups.

    Groups (``codes``, one int per dataset row) are drawn in seeded order; the number drawn makes
    valid's row count closest to ``fraction * len(pool)`` while leaving at least one group in
    train. With fewer than two groups in ``pool``, valid is empty.

    Returns:
        sorted int64 ``train`` and ``valid`` row indices.
    """
    pool = np.asarray(pool, dtype=np.int64)
    pool_codes = codes[pool]
    distinct = np.unique(pool_codes)
    if len(distinct) < 2:
        return np.sort(pool), np.zeros(0, dtype=np.int64)
    order = rng.permutation(distinct)
    sizes = np.bincount(pool_codes, minlength=int(codes.max()) + 1)[order]
    cumulative = np.cumsum(sizes)[:-1]
    n_groups = int(np.argmin(np.abs(cumulative - fraction * len(pool)))) + 1
    in_valid = np.isin(pool_codes, order[:n_groups])
    return np.sort(pool[~in_valid]), np.sort(pool[in_valid])


def _fold(test: np.ndarray, n: int, codes: np.ndarray, rng: np.random.Generator, name: str) -> Fold:
    test = np.sort(np.asarray(test, dtype=np.int64))
    train, valid = carve_valid(np.setdiff1d(np.arange(n, dtype=np.int64), test), codes, rng)
    return Fold(train, valid, test, name)


def _checked(split: Split, dataset: str, what: str) -> Split:
    """``split``, or a :class:`DataError` naming the first fold with an empty part."""
    for fold in split.folds:
        sizes = fold.sizes()
        if min(sizes.values()) == 0:
            empty = ", ".join(part for part, size in sizes.items() if size == 0)
            where = f" of dataset {dataset!r}" if dataset else ""
            raise DataError(
                f"split {split.name!r} fold {fold.name!r}{where} has no {empty} rows "
                f"({sizes['train']}/{sizes['valid']}/{sizes['test']} train/valid/test; {what})",
                _FIX,
            )
    return split


def chemsys_split(items: Sequence[Any], seed: int, dataset: str = "") -> Split:
    """5-fold grouped K-fold on the chemical system (folds ``"0"`` … ``"4"``).

    Chemical systems are dealt, largest first (ties in seeded order), to the fold with the fewest
    rows so far, which balances fold sizes.

    Raises:
        DataError: a fold without train, valid or test rows (fewer chemical systems than needed).
    """
    systems = chemical_systems(items)
    codes = _codes(systems)
    rng = np.random.default_rng(seed)
    sizes = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)
    order = rng.permutation(len(sizes))
    order = order[np.argsort(-sizes[order], kind="stable")]
    k = N_FOLDS
    load = np.zeros(k, dtype=np.int64)
    fold_of = np.empty(len(sizes), dtype=np.int64)
    for group in order:
        fold_of[group] = int(np.argmin(load))
        load[fold_of[group]] += sizes[group]
    n = len(items)
    folds = tuple(_fold(np.flatnonzero(fold_of[codes] == i), n, codes, rng, str(i)) for i in range(k))
    split = Split("chemsys", folds, seed, groups=tuple(systems), group_kind="chemsys",
                  description=describe("chemsys", items, seed))
    return _checked(split, dataset, f"{len(sizes)} chemical systems for {k} folds")


def cluster_labels(items: Sequence[Any], seed: int, k: int = N_CLUSTERS) -> np.ndarray:
    """``(n,)`` int64 k-means cluster of each item, clusters numbered by size (largest first).

    Features: the 132 Magpie columns of ``composition_features`` (disk cache), standardised to zero
    mean and unit variance; ``KMeans(k, n_init=10, random_state=seed)``.

    Raises:
        DataError: fewer than ``k`` distinct compositions.
    """
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    from phonbench.featurizers.composition import composition_features

    features = composition_features(items, stoichiometry=False)
    distinct = len(np.unique(features, axis=0))
    if distinct < k:
        raise DataError(f"split 'cluster' needs at least {k} distinct compositions for k={k} clusters, "
                        f"the data has {distinct}", _FIX)
    x = StandardScaler().fit_transform(features)
    raw = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed).fit_predict(x)
    sizes = np.bincount(raw, minlength=k)
    first = [int(np.flatnonzero(raw == c)[0]) if sizes[c] else len(raw) for c in range(k)]
    ranking = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
    relabel = np.empty(k, dtype=np.int64)
    relabel[ranking] = np.arange(k)
    return relabel[raw]


def cluster_split(items: Sequence[Any], seed: int, dataset: str = "") -> Split:
    """Leave-one-cluster-out over :func:`cluster_labels` (folds ``"cluster0"`` … ``"cluster4"``).

    Raises:
        DataError: fewer than 5 distinct compositions, or a fold with an empty part.
    """
    k = N_CLUSTERS
    labels = cluster_labels(items, seed, k)
    systems = chemical_systems(items)
    codes = _codes(systems)  # valid is carved by chemical system inside the training clusters
    rng = np.random.default_rng(seed)
    n = len(items)
    folds = tuple(_fold(np.flatnonzero(labels == c), n, codes, rng, f"cluster{c}") for c in range(k))
    groups = tuple(f"cluster{c}:{s}" for c, s in zip(labels, systems))
    split = Split("cluster", folds, seed, groups=groups, group_kind="cluster",
                  description=describe("cluster", items, seed))
    return _checked(split, dataset, f"{k} clusters")


def element_split(items: Sequence[Any], seed: int, dataset: str = "") -> Split:
    """Leave-one-element-out for :func:`most_common_elements` (folds named by the symbol).

    Raises:
        DataError: no element to hold out, or a fold with an empty part (e.g. an element present
            in every material).
    """
    elements = material_elements(items)
    chosen = _rank(elements, N_ELEMENTS, EXCLUDED_ELEMENTS)
    if not chosen:
        raise DataError("split 'element' found no element to hold out (only oxygen or no materials)", _FIX)
    systems = ["-".join(e) for e in elements]
    codes = _codes(systems)
    rng = np.random.default_rng(seed)
    n = len(items)
    folds = tuple(
        _fold(np.array([i for i, e in enumerate(elements) if symbol in e], dtype=np.int64), n, codes, rng, symbol)
        for symbol, _ in chosen
    )
    split = Split("element", folds, seed, groups=tuple(systems), group_kind="element",
                  description=describe("element", items, seed, chosen))
    return _checked(split, dataset, f"{len(set(systems))} chemical systems")


def grouped_split(name: str, items: Sequence[Any], seed: int, dataset: str = "") -> Split:
    """The grouped protocol ``name`` (one of :data:`GROUPED_SPLITS`) of ``items``."""
    makers = {"chemsys": chemsys_split, "cluster": cluster_split, "element": element_split}
    if name not in makers:
        raise DataError(f"{name!r} is not a grouped split", f"use one of: {', '.join(GROUPED_SPLITS)}")
    return makers[name](items, seed, dataset=dataset)


def describe(
    name: str, items: Sequence[Any], seed: int, elements: list[tuple[str, int]] | None = None
) -> str:
    """One-sentence description of grouped protocol ``name`` (element counts computed from ``items``)."""
    valid = f"valid = whole chemical systems drawn with seed {seed} from each fold's train part (~10% of its rows)"
    if name == "cluster":
        valid = valid.replace("train part", "training clusters")
    if name == "chemsys":
        return (f"{N_FOLDS}-fold grouped K-fold on the chemical system (sorted element set, e.g. Mg-O): "
                f"no chemical system is in two of train/valid/test of a fold; {valid}.")
    if name == "cluster":
        return (f"Leave-one-cluster-out over k={N_CLUSTERS} k-means clusters (scikit-learn KMeans, "
                f"n_init={KMEANS_N_INIT}, random_state={seed}) of the standardised 132 Magpie composition "
                f"features, numbered largest first (fold clusterK tests cluster K); {valid}.")
    if name == "element":
        chosen = most_common_elements(items) if elements is None else elements
        counts = ", ".join(f"{symbol} {count}" for symbol, count in chosen)
        return (f"Leave-one-element-out for the {N_ELEMENTS} elements (except O) in most materials, "
                f"ties alphabetical: fold X tests every material containing X ({counts} materials) and "
                f"trains on those without it; {valid}.")
    raise DataError(f"{name!r} is not a grouped split", f"use one of: {', '.join(GROUPED_SPLITS)}")
