"""Tests of the Magpie composition featurizer."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from phonbench.exceptions import DataError
from phonbench.featurizers.composition import canonical_composition, composition_features, feature_labels


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PHONBENCH_CACHE_DIR", str(tmp_path / "cache"))


def rocksalt(a: float) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_same_composition_gives_identical_features():
    conv = rocksalt(5.64)
    prim = rocksalt(6.10).get_primitive_structure()
    assert len(conv) == 8 and len(prim) == 2
    x = composition_features([conv, prim, "NaCl", Composition("Na2Cl2")])
    assert x.shape == (4, 138)
    for row in x[1:]:
        np.testing.assert_array_equal(row, x[0])


def test_known_magpie_values_and_labels():
    labels = feature_labels()
    x = composition_features(["NaCl"], stoichiometry=True)[0]
    assert len(labels) == 138
    col = {name: i for i, name in enumerate(labels)}
    # Z of Na = 11, Cl = 17
    assert x[col["MagpieData minimum Number"]] == 11.0
    assert x[col["MagpieData maximum Number"]] == 17.0
    assert x[col["MagpieData mean Number"]] == pytest.approx(14.0)
    assert x[col["0-norm"]] == 2.0
    assert x[col["2-norm"]] == pytest.approx(np.sqrt(0.5))
    assert composition_features(["NaCl"], stoichiometry=False).shape == (1, 132)


def test_disordered_structure_uses_fractional_composition():
    alloy = Structure(Lattice.cubic(4.0), [{"Bi": 0.75, "Sb": 0.25}, "Mg"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert canonical_composition(alloy) == canonical_composition("Mg4Bi3Sb")
    x = composition_features([alloy, "Mg4Bi3Sb"])
    np.testing.assert_array_equal(x[0], x[1])
    # mean atomic number of Mg0.5 Bi0.375 Sb0.125
    col = feature_labels().index("MagpieData mean Number")
    assert x[0, col] == pytest.approx(0.5 * 12 + 0.375 * 83 + 0.125 * 51)


def test_cache_roundtrip_and_row_order(tmp_path):
    items = ["NaCl", "MgO", "NaCl", "GaAs"]
    first = composition_features(items)
    assert list((tmp_path / "cache" / "composition").glob("*.npz"))
    second = composition_features(items)  # read back from the cache
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[0], first[2])
    assert not np.array_equal(first[0], first[1])
    np.testing.assert_array_equal(composition_features(["GaAs"], cache=False)[0], first[3])


def test_empty_structure_raises():
    empty = Structure(Lattice.cubic(3.0), [], [])
    with pytest.raises(DataError, match="empty"):
        composition_features([rocksalt(5.6), empty])
    with pytest.raises(DataError):
        composition_features([42])
