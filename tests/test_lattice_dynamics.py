"""Physics checks of the central-spring lattice dynamics (analytic dispersions, sum rules, scaling)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from phonbench import lattice_dynamics as ld
from phonbench.exceptions import DataError

CONV = ld.THZ_PER_SQRT_EV_A2_AMU
FCC = 0.5 * np.array([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]])


def _omega2(bonds, k, masses, q):
    """Eigenvalues ω² in eV/Å²/amu (ascending) at one q-point."""
    f = ld.frequencies(bonds, np.atleast_2d(k), np.atleast_2d(masses), np.atleast_2d(q))[0, 0]
    return np.sign(f) * (f / CONV) ** 2


def test_unit_conversion_from_si_constants():
    # k = 1 eV/Å² = 1.602176634e-19 J / 1e-20 m² = 16.02176634 N/m, m = 1 amu
    omega = math.sqrt(16.02176634 / 1.66053906660e-27)  # rad/s
    assert CONV == pytest.approx(omega / (2 * math.pi) / 1e12, rel=1e-12)
    assert CONV == pytest.approx(15.63330, abs=1e-4)


def test_simple_cubic_chain_dispersion_is_analytic():
    a, k, m = 2.5, 1.7, 12.0
    bonds = ld.find_bonds(np.eye(3) * a, [[0, 0, 0]], shells=1)
    assert len(bonds) == 3 and np.allclose(bonds.length, a)
    for qx in (0.1, 0.25, 0.5):
        w2 = _omega2(bonds, np.full(3, k), [m], [qx, 0, 0])
        # longitudinal: ω² = 2k/m (1 - cos qa); transverse modes have no nearest-neighbour stretch
        assert w2 == pytest.approx([0, 0, 2 * k / m * (1 - math.cos(2 * math.pi * qx))], abs=1e-12)
    f_max = ld.frequencies(bonds, np.full((1, 3), k), [[m]], [[0.5, 0, 0]])[0, 0, -1]
    assert f_max == pytest.approx(2 * math.sqrt(k / m) * CONV, rel=1e-12)


def test_fcc_monatomic_x_point_in_skewed_primitive_cell():
    a, k, m = 3.6, 2.0, 27.0
    lattice = a * FCC
    bonds = ld.find_bonds(lattice, [[0, 0, 0]], shells=1)
    assert len(bonds) == 6 and np.allclose(bonds.length, a / math.sqrt(2))
    q_cart = 2 * math.pi / a * np.array([1.0, 0, 0])
    q_frac = lattice @ q_cart / (2 * math.pi)
    w2 = _omega2(bonds, np.full(6, k), [m], q_frac)
    assert w2 == pytest.approx([4 * k / m, 4 * k / m, 8 * k / m], rel=1e-12)


def test_rocksalt_gamma_optical_mode_is_reduced_mass_formula():
    k, m1, m2 = 1.3, 23.0, 35.5
    bonds = ld.find_bonds(5.6 * FCC, [[0, 0, 0], [0.5, 0.5, 0.5]], shells=1)
    assert np.bincount(np.r_[bonds.i, bonds.j]).tolist() == [6, 6]
    w2 = _omega2(bonds, np.full(len(bonds), k), [m1, m2], [0, 0, 0])
    assert w2[:3] == pytest.approx([0, 0, 0], abs=1e-12)
    assert w2[3:] == pytest.approx([2 * k * (1 / m1 + 1 / m2)] * 3, rel=1e-12)


@pytest.fixture
def perovskite():
    frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return ld.find_bonds(np.eye(3) * 3.9, frac, shells=2)


def test_acoustic_sum_rule_and_positive_optical_modes(perovskite):
    rng = np.random.default_rng(1)
    k = rng.uniform(0.5, 5.0, (4, len(perovskite)))
    m = rng.uniform(10, 200, (4, 5))
    f = ld.frequencies(perovskite, k, m, [[0, 0, 0]])[:, 0]  # ascending
    assert np.abs(f[:, :3]).max() < 1e-6 * f.max()
    assert (f[:, 3:] > 0.05).all()


def test_frequencies_scale_as_sqrt_k_over_m(perovskite):
    rng = np.random.default_rng(2)
    k = rng.uniform(0.5, 5.0, (1, len(perovskite)))
    m = rng.uniform(10, 200, (1, 5))
    q = [[0.1, 0.2, 0.3], [0.5, 0.0, 0.25]]
    f = ld.frequencies(perovskite, k, m, q)
    assert ld.frequencies(perovskite, 2 * k, m, q) == pytest.approx(math.sqrt(2) * f, rel=1e-9, abs=1e-9)
    assert ld.frequencies(perovskite, k, 2 * m, q) == pytest.approx(f / math.sqrt(2), rel=1e-9, abs=1e-9)


def test_dynamical_matrix_is_hermitian_and_time_reversal_symmetric(perovskite):
    rng = np.random.default_rng(3)
    k = rng.uniform(0.5, 5.0, (2, len(perovskite)))
    m = rng.uniform(10, 200, (2, 5))
    q = np.array([[0.13, -0.27, 0.31]])
    d = ld.dynamical_matrices(perovskite, k, m, q)
    assert d.shape == (2, 1, 15, 15) and np.iscomplexobj(d)
    assert np.allclose(d, np.conj(np.swapaxes(d, -1, -2)))
    assert np.allclose(ld.dynamical_matrices(perovskite, k, m, -q), d.conj())
    assert np.linalg.eigvalsh(d).min() > -1e-12  # springs without pre-stress: positive semidefinite
    assert not np.iscomplexobj(ld.dynamical_matrices(perovskite, k, m, [[0, 0, 0]]))


def test_first_shell_only_leaves_tetrahedral_cells_floppy():
    hexa = np.array([[1.0, 0, 0], [-0.5, math.sqrt(3) / 2, 0], [0, 0, math.sqrt(8 / 3)]]) * 3.2
    frac = [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.375], [2 / 3, 1 / 3, 0.875]]
    zeros = {}
    for shells in (1, 2):
        bonds = ld.find_bonds(hexa, frac, shells=shells)
        f = ld.frequencies(bonds, np.ones((1, len(bonds))), np.ones((1, 4)), [[0, 0, 0]])[0, 0]
        zeros[shells] = int((np.abs(f) < 1e-6 * f.max()).sum())
    assert zeros == {1: 5, 2: 3}


def test_bonds_are_invariant_under_translation_and_scale_with_lattice():
    frac = np.array([[0, 0, 0], [0.25, 0.25, 0.25], [0.75, 0.75, 0.75]])  # fluorite
    ref = ld.find_bonds(5.0 * FCC, frac, shells=2)
    moved = ld.find_bonds(5.0 * FCC, frac + [0.37, -0.11, 0.9], shells=2)
    scaled = ld.find_bonds(7.5 * FCC, frac, shells=2)
    assert np.sort(moved.length) == pytest.approx(np.sort(ref.length))
    assert np.sort(scaled.length) == pytest.approx(1.5 * np.sort(ref.length))
    assert np.bincount(np.r_[ref.i, ref.j]).tolist() == [20, 10, 10]
    first = ld.find_bonds(5.0 * FCC, frac, shells=1)
    assert np.bincount(np.r_[first.i, first.j]).tolist() == [8, 4, 4]
    assert (first.shell == 1).all() and set(ref.shell.tolist()) == {1, 2}


def test_find_bonds_rejects_bad_input():
    with pytest.raises(DataError, match="shells=3"):
        ld.find_bonds(np.eye(3), [[0, 0, 0]], shells=3)
    with pytest.raises(DataError, match="overlap"):
        ld.find_bonds(np.eye(3), [[0, 0, 0], [0, 0, 0]])
    with pytest.raises(DataError, match="linearly dependent"):
        ld.find_bonds(np.zeros((3, 3)), [[0, 0, 0]])


@pytest.mark.parametrize("mesh", [3, 4])
def test_monkhorst_pack_time_reversal_reduction(mesh):
    q_full, w_full = ld.monkhorst_pack(mesh, time_reversal=False)
    q, w = ld.monkhorst_pack(mesh)
    assert len(q_full) == mesh**3 and w_full.sum() == pytest.approx(1.0) and w.sum() == pytest.approx(1.0)
    assert len(q) == (mesh**3 + 1) // 2
    rebuilt = {tuple(np.round(x, 9)) for x in np.vstack([q, -q])}
    assert rebuilt == {tuple(np.round(x, 9)) for x in q_full}


def test_gaussian_dos_integrates_to_3n_and_vanishes_at_zero():
    freqs = np.array([[[150.0, 300.0, 420.0], [180.0, 310.0, 400.0]]])  # (1, Q=2, 3N=3)
    grid = np.linspace(0, 1000, 2001)
    g = ld.gaussian_dos(freqs, np.array([0.5, 0.5]), grid, 20.0, reflect=False)
    assert np.trapezoid(g[0], grid) == pytest.approx(3.0, rel=1e-6)
    low = ld.gaussian_dos(np.array([[[10.0, 30.0, 500.0]]]), np.ones(1), grid, 20.0)
    assert low[0, 0] == 0.0 and (low >= 0).all()


def test_spring_model_constants_and_bad_elements():
    k_o, k_cs = ld.element_stiffness([8, 55])
    assert k_o == pytest.approx(ld.STIFFNESS_SCALE * 3.44 / 0.6**2)
    assert k_o > 20 * k_cs  # small electronegative atoms are stiff, large alkali atoms soft
    bonds = ld.find_bonds(4.2 * FCC, [[0, 0, 0], [0.5, 0.5, 0.5]], shells=1)  # MgO at d = d0
    k = ld.spring_constants(bonds, np.array([12, 8]), scale=(1.5 + 0.6) / 2.1)
    assert k == pytest.approx(np.full(6, math.sqrt(ld.element_stiffness([12])[0] * k_o)))
    assert ld.spring_constants(bonds, np.array([[12, 8]]), scale=[1.1]) == pytest.approx(k[None] / 1.1**6)
    with pytest.raises(DataError, match="Ar"):
        ld.element_stiffness([18])


def test_structure_frequencies_of_pymatgen_structure():
    from pymatgen.core import Lattice, Structure

    nacl = Structure(Lattice(5.64 * FCC), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    f = ld.structure_frequencies(nacl, [[0, 0, 0], [0.5, 0.5, 0]], shells=1)
    assert f.shape == (2, 6)
    k = ld.spring_constants(ld.find_bonds(nacl.lattice.matrix, nacl.frac_coords, 1), np.array([11, 17]))[0]
    mu = 1 / (1 / 22.98976928 + 1 / 35.453)
    assert f[0, 3:] == pytest.approx([math.sqrt(2 * k / mu) * CONV] * 3, rel=1e-6)
