"""Composition features: matminer's Magpie element-property statistics (+ stoichiometry norms).

Features depend only on the *fractional* composition of a material, so NaCl at two lattice
constants (or Na2Cl2) gives identical rows. They are computed once per unique composition and the
table of unique compositions is cached on disk with :func:`phonbench.cache.cached_arrays`.
Disordered (fractionally occupied) sites are handled through pymatgen's ``Structure.composition``,
which sums occupancies, e.g. ``Mg3Bi1.5Sb0.5``.

Shapes: :func:`composition_features` returns ``(n_materials, n_features)`` float64 with
``n_features = 132`` (Magpie) ``+ 6`` (stoichiometry p-norms, when enabled).
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any, Sequence

import numpy as np

from phonbench.cache import cache_key, cached_arrays
from phonbench.exceptions import DataError

#: bump when the computed features change (invalidates cached tables)
FEATURIZER_VERSION = "1"
#: significant digits of element fractions in the canonical composition string
_FRACTION_DIGITS = 8
#: in-process memo {params key: {canonical composition: feature row}} so that the many subsets of
#: one dataset (folds, seeds, tuning trials) featurize each composition once per process
_MEMO: dict[str, dict[str, np.ndarray]] = {}


def _composition_of(item: Any, index: int) -> Any:
    """pymatgen ``Composition`` of a Structure/Molecule, Composition or formula string."""
    from pymatgen.core import Composition

    if isinstance(item, Composition):
        comp = item
    elif isinstance(item, str):
        try:
            comp = Composition(item)
        except Exception as exc:  # pymatgen raises ValueError/KeyError variants
            raise DataError(f"material {index}: cannot parse formula {item!r} ({exc})") from exc
    elif hasattr(item, "composition"):
        if len(item) == 0:
            raise DataError(f"material {index} has an empty structure (no sites)", "drop it from the data")
        comp = item.composition
    else:
        raise DataError(
            f"material {index}: cannot take a composition from {type(item).__name__}",
            "pass pymatgen Structures, Compositions or formula strings",
        )
    if comp.num_atoms <= 0:
        raise DataError(f"material {index} has an empty composition", "drop it from the data")
    return comp


def canonical_composition(item: Any, index: int = 0) -> str:
    """Canonical string of the fractional composition, e.g. ``"Cl0.5 Na0.5"``.

    Elements are sorted by symbol and fractions rounded to 8 digits, so structures of one
    composition (any cell size, any lattice constant) map to the same string.

    Raises:
        DataError: empty structure, unparsable formula or unsupported object.
    """
    comp = _composition_of(item, index)
    frac = comp.fractional_composition.element_composition
    parts = sorted((str(el), round(float(x), _FRACTION_DIGITS)) for el, x in frac.items())
    return " ".join(f"{sym}{x:.{_FRACTION_DIGITS}g}" for sym, x in parts if x > 0)


def feature_labels(stoichiometry: bool = True) -> list[str]:
    """Names of the feature columns (Magpie first, then stoichiometry norms)."""
    from matminer.featurizers.composition import ElementProperty, Stoichiometry

    labels = list(ElementProperty.from_preset("magpie").feature_labels())
    if stoichiometry:
        labels += list(Stoichiometry().feature_labels())
    return labels


def _compute_table(keys: Sequence[str], stoichiometry: bool) -> np.ndarray:
    """Features of unique canonical compositions, shape ``(len(keys), n_features)``."""
    from matminer.featurizers.composition import ElementProperty, Stoichiometry
    from pymatgen.core import Composition

    featurizers = [ElementProperty.from_preset("magpie")]
    if stoichiometry:
        featurizers.append(Stoichiometry())
    n_features = sum(len(f.feature_labels()) for f in featurizers)
    table = np.empty((len(keys), n_features), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matminer/pymatgen chatter about missing element data
        for i, key in enumerate(keys):
            comp = Composition(key)
            row: list[float] = []
            for feat in featurizers:
                row.extend(float(v) for v in feat.featurize(comp))
            table[i] = row
    return table


def composition_features(
    items: Sequence[Any], *, stoichiometry: bool = True, cache: bool = True
) -> np.ndarray:
    """Magpie (+ stoichiometry) features of each material.

    Args:
        items: pymatgen Structures (ordered or disordered), Compositions or formula strings.
        stoichiometry: append matminer ``Stoichiometry`` p-norms (6 columns).
        cache: read/write the on-disk feature cache.

    Returns:
        ``(len(items), n_features)`` float64 array; missing element data (NaN) is set to 0.

    Raises:
        DataError: an empty structure or unusable item.
    """
    keys = [canonical_composition(item, i) for i, item in enumerate(items)]
    unique = sorted(set(keys))
    n_features = 132 + (6 if stoichiometry else 0)
    if not unique:
        return np.zeros((0, n_features), dtype=np.float64)
    digest = hashlib.sha256("\n".join(unique).encode()).hexdigest()
    params = {"preset": "magpie", "stoichiometry": bool(stoichiometry)}
    memo = _MEMO.setdefault(cache_key(params, FEATURIZER_VERSION), {})

    def compute() -> dict[str, np.ndarray]:
        missing = [k for k in unique if k not in memo]
        if missing:
            memo.update(zip(missing, _compute_table(missing, stoichiometry)))
        return {"keys": np.array(unique, dtype=str), "features": np.stack([memo[k] for k in unique])}

    if cache:
        arrays = cached_arrays("composition", cache_key(digest, params, FEATURIZER_VERSION), compute)
    else:
        arrays = compute()
    stored = [str(k) for k in arrays["keys"]]
    if stored != unique or arrays["features"].shape != (len(unique), n_features):
        arrays = compute()  # hash collision or a foreign file: never trust it
    memo.update(zip(unique, np.asarray(arrays["features"], dtype=np.float64)))
    table = np.nan_to_num(np.asarray(arrays["features"], dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    row_of = {k: i for i, k in enumerate(unique)}
    return table[[row_of[k] for k in keys]]
