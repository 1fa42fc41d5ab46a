"""Tests of periodic graph featurisation (:mod:`phonbench.featurizers.graphs`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.core.periodic_table import Element

from phonbench.exceptions import ConfigError, DataError
from phonbench.featurizers.graphs import graph_arrays, periodic_graphs


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PHONBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PHONBENCH_NO_CACHE", raising=False)


def rocksalt(a: float = 5.64) -> Structure:
    conventional = Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return conventional.get_primitive_structure()


def perovskite() -> Structure:
    return Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def test_rocksalt_first_shell():
    s = rocksalt()
    (g,) = periodic_graphs([s], cutoff=3.0)
    assert g.num_nodes == 2 and g.edge_index.shape == (2, 12)
    # every atom has 6 unlike neighbours at a/2
    assert torch.bincount(g.edge_index[1]).tolist() == [6, 6]
    assert (g.z[g.edge_index[0]] != g.z[g.edge_index[1]]).all()
    np.testing.assert_allclose(g.edge_len.numpy(), 2.82, atol=1e-5)
    src, dst = g.edge_index
    np.testing.assert_allclose((g.pos[src] + g.edge_shift - g.pos[dst]).numpy(), g.edge_vec.numpy(), atol=1e-5)
    np.testing.assert_allclose(g.edge_vec.norm(dim=1).numpy(), g.edge_len.numpy(), atol=1e-5)
    assert g.lattice.shape == (1, 3, 3) and g.x_species.shape == (2, 118)


def test_matches_pymatgen_get_all_neighbors():
    s = perovskite()
    (g,) = periodic_graphs([s], cutoff=4.5)
    ours = sorted((int(d), int(j), round(float(r), 4)) for j, d, r in zip(*g.edge_index.tolist(), g.edge_len.tolist()))
    ref = sorted(
        (i, nb.index, round(float(nb.nn_distance), 4)) for i, nbs in enumerate(s.get_all_neighbors(4.5)) for nb in nbs
    )
    assert ours == ref
    # edges sorted by target then distance
    dst = g.edge_index[1].numpy()
    assert (np.diff(dst) >= 0).all()
    for t in range(5):
        lengths = g.edge_len.numpy()[dst == t]
        assert (np.diff(lengths) >= -1e-6).all()


def test_max_neighbors_keeps_nearest():
    s = perovskite()
    (full,) = periodic_graphs([s], cutoff=5.0)
    (knn,) = periodic_graphs([s], cutoff=5.0, max_neighbors=4)
    for t in range(5):
        all_len = np.sort(full.edge_len.numpy()[full.edge_index[1].numpy() == t])
        kept = np.sort(knn.edge_len.numpy()[knn.edge_index[1].numpy() == t])
        # the 4 nearest plus every neighbour tied with the 4th (perovskite shells are degenerate)
        expected = all_len[all_len <= all_len[3] + 1e-4]
        assert len(kept) >= 4
        np.testing.assert_allclose(kept, expected)


def test_max_neighbors_does_not_depend_on_atom_order():
    s = perovskite()
    order = list(range(len(s)))[::-1]
    flipped = Structure(s.lattice, [s.species[i] for i in order], s.frac_coords[order])
    (a,) = periodic_graphs([s], cutoff=8.0, max_neighbors=12)
    (b,) = periodic_graphs([flipped], cutoff=8.0, max_neighbors=12)
    for i in range(len(s)):
        k = order.index(i)  # atom i of `s` is atom k of `flipped`
        la = np.sort(a.edge_len.numpy()[a.edge_index[1].numpy() == i])
        lb = np.sort(b.edge_len.numpy()[b.edge_index[1].numpy() == k])
        np.testing.assert_allclose(la, lb, atol=1e-5)


def test_species_encoding_and_masses():
    (g,) = periodic_graphs([perovskite()], cutoff=4.0)
    assert g.z.tolist() == [38, 22, 8, 8, 8]
    assert g.x_species.sum(dim=1).tolist() == [1.0] * 5
    assert g.x_species.argmax(dim=1).tolist() == [37, 21, 7, 7, 7]
    expected = [float(Element("Sr").atomic_mass), float(Element("Ti").atomic_mass)]
    np.testing.assert_allclose(g.mass.numpy()[:2], expected, rtol=1e-6)

    alloy = Structure(Lattice.cubic(4.2), [{"Mg": 0.75, "Ca": 0.25}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    (ga,) = periodic_graphs([alloy], cutoff=4.0)
    assert ga.z.tolist() == [12, 8]
    assert ga.x_species[0, 11].item() == pytest.approx(0.75) and ga.x_species[0, 19].item() == pytest.approx(0.25)
    expected = 0.75 * float(Element("Mg").atomic_mass) + 0.25 * float(Element("Ca").atomic_mass)
    assert ga.mass[0].item() == pytest.approx(expected, rel=1e-6)


def test_cache_hit_and_parameter_change(tmp_path):
    structures = [rocksalt(), perovskite()]
    first = periodic_graphs(structures, cutoff=4.0)
    files = list((tmp_path / "cache" / "graphs").glob("*.npz"))
    assert len(files) == 1
    again = periodic_graphs(structures, cutoff=4.0)
    for a, b in zip(first, again):
        assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.edge_vec, b.edge_vec)
    other = periodic_graphs(structures, cutoff=3.0)  # changed parameter: new entry, fewer edges
    assert len(list((tmp_path / "cache" / "graphs").glob("*.npz"))) == 2
    assert other[1].edge_index.shape[1] < first[1].edge_index.shape[1]
    uncached = periodic_graphs(structures, cutoff=4.0, cache=False)
    assert torch.equal(uncached[1].edge_len, first[1].edge_len)


def test_isolated_atom_and_arrays_layout():
    lonely = Structure(Lattice.cubic(10.0), ["Ar"], [[0, 0, 0]])
    arrays = graph_arrays([lonely, rocksalt()], cutoff=3.0)
    assert arrays["n_atoms"].tolist() == [1, 2] and arrays["n_edges"].tolist() == [0, 12]
    assert arrays["edge_image"].dtype == np.int32 and arrays["pos"].shape == (3, 3)
    (g,) = periodic_graphs([lonely], cutoff=3.0)
    assert g.edge_index.shape == (2, 0) and g.num_nodes == 1


def test_bad_inputs():
    with pytest.raises(DataError, match="empty"):
        periodic_graphs([rocksalt(), Structure(Lattice.cubic(3.0), [], [])])
    bad = Structure(Lattice.cubic(3.0), ["Na", "Cl"], [[np.nan, 0.0, 0.0], [0.5, 0.5, 0.5]])
    with pytest.raises(DataError, match="NaN"):
        periodic_graphs([bad])
    with pytest.raises(ConfigError):
        periodic_graphs([rocksalt()], cutoff=0.0)
    with pytest.raises(ConfigError):
        periodic_graphs([rocksalt()], max_neighbors=0)
    with pytest.raises(DataError):
        periodic_graphs(["not a structure"])
    assert periodic_graphs([]) == []
