"""Heat capacity, unit conversion and Wasserstein helpers of phonbench.physics (additions)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from phonbench.exceptions import ConfigError
from phonbench.physics import (
    CM1_PER_THZ,
    C_LIGHT_CM,
    H_PLANCK,
    K_B,
    R_GAS,
    dos_integral,
    dos_wasserstein,
    frequency_to_cm1,
    heat_capacity,
    heat_capacity_per_kg,
)

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PETRETTO_TAR = SHARED / "petretto2018_dfpt_phonons" / "petretto2018_phonon_json.tar.xz"


def _flat_dos(n_atoms: int, top: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
    grid = np.linspace(0.0, top, 501)
    g = np.ones_like(grid)
    return grid, g * 3 * n_atoms / dos_integral(g, grid)


def test_high_temperature_limit_is_dulong_petit():
    grid, g = _flat_dos(5)
    cv = heat_capacity(grid, g, [5000.0, 20000.0])
    assert cv.shape == (2,)
    assert cv[0] == pytest.approx(15 * R_GAS, rel=0.01)
    assert cv[1] == pytest.approx(15 * R_GAS, rel=5e-4)
    assert (cv < 15 * R_GAS).all()


def test_low_temperature_limit_is_zero():
    grid, g = _flat_dos(2)
    g[0] = 0.0  # no weight exactly at ω = 0
    cv = heat_capacity(grid, g, [1e-3, 0.1, 1.0, 300.0])
    assert cv[0] == 0.0 and np.all(np.isfinite(cv))
    assert cv[0] <= cv[1] < 1e-6 < cv[2] < 0.1 < cv[3]


def test_einstein_peak_matches_analytic_formula():
    grid = np.arange(0.0, 1001.0, 10.0)
    n_atoms, omega0 = 3, 300.0
    g = np.zeros_like(grid)
    g[grid == omega0] = 3 * n_atoms / 10.0  # a single grid point: trapezoid integral 3N
    temps = np.array([50.0, 150.0, 300.0, 700.0])
    x = H_PLANCK * C_LIGHT_CM * omega0 / (K_B * temps)
    expected = 3 * n_atoms * R_GAS * x**2 * np.exp(x) / np.expm1(x) ** 2
    np.testing.assert_allclose(heat_capacity(grid, g, temps), expected, rtol=1e-10)


def test_vectorised_shapes_and_negative_frequencies_ignored():
    grid = np.linspace(-100.0, 900.0, 101)
    g = np.ones((4, 101))
    cv = heat_capacity(grid, g, [100.0, 300.0, 500.0])
    assert cv.shape == (4, 3)
    g_pos = np.where(grid >= 0, 1.0, 0.0)  # the imaginary part carries no heat capacity
    np.testing.assert_allclose(cv[0], heat_capacity(grid, g_pos, [100.0, 300.0, 500.0]))
    with pytest.raises(ValueError, match="positive"):
        heat_capacity(grid, g, [0.0])
    with pytest.raises(ValueError, match="points"):
        heat_capacity(grid[:-1], g, 300.0)


def test_per_kg_conversion():
    # 2 atoms of 24.305 + 15.999 amu (MgO): 3NR = 49.9 J/(K mol) -> 49.9 / 0.040304 kg/mol
    cv = np.array([[3 * 2 * R_GAS, R_GAS]])
    out = heat_capacity_per_kg(cv, np.array([40.304]))
    np.testing.assert_allclose(out, cv / 0.040304)
    assert heat_capacity_per_kg(10.0, 100.0) == pytest.approx(100.0)


def test_frequency_units():
    assert frequency_to_cm1(1.0, "THz") == pytest.approx(CM1_PER_THZ)
    assert frequency_to_cm1(2.0, None) == 2.0 and frequency_to_cm1(2.0, "cm^-1") == 2.0
    with pytest.raises(ConfigError, match="furlong"):
        frequency_to_cm1(1.0, "furlong")


def test_wasserstein_shift_and_scale_invariance():
    from scipy.stats import wasserstein_distance

    grid = np.linspace(0.0, 1000.0, 51)
    a = np.exp(-0.5 * ((grid - 300) / 40) ** 2)
    b = np.exp(-0.5 * ((grid - 500) / 40) ** 2)
    assert dos_wasserstein(grid, a, 7.0 * a) == pytest.approx(0.0, abs=1e-9)  # unit weight: scale-free
    assert dos_wasserstein(grid, a, b) == pytest.approx(200.0, rel=1e-6)  # pure shift by 200 cm^-1
    rng = np.random.default_rng(1)
    u, v = rng.random((3, 51)), rng.random((3, 51))
    expected = [wasserstein_distance(grid, grid, x, y) for x, y in zip(u, v)]
    np.testing.assert_allclose(dos_wasserstein(grid, u, v), expected)
    assert dos_wasserstein(grid, a, np.zeros(51)) == 1000.0  # empty prediction: worst case
    with pytest.raises(ValueError, match="no positive weight"):
        dos_wasserstein(grid, np.zeros(51), a)


def _petretto_members(n_files: int):
    """The first ``n_files`` raw JSONs of the tarball (xz is sequential: read in order, stop early)."""
    out = []
    with tarfile.open(PETRETTO_TAR, "r:xz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".json"):
                out.append(json.load(tar.extractfile(member)))
                if len(out) == n_files:
                    break
    return out


@pytest.mark.needs_shared
def test_heat_capacity_matches_petretto_thermo():
    """C_V from the raw 1 cm⁻¹ DoS agrees with the shipped thermo C_v (no imaginary modes).

    The shipped C_v is per mole of *formula units* (reduced formula), not of unit cells: for cells
    holding Z > 1 formula units it is C_V(cell) / Z (e.g. mp-1008559, 4-atom BP: C_v(800 K) ≈ 1.83·3R).
    """
    if not PETRETTO_TAR.is_file():
        pytest.skip(f"shared data not found at {PETRETTO_TAR}")
    from pymatgen.core import Composition

    checked = 0
    for doc in _petretto_members(30):
        if doc["flags"]["has_neg_fr"]:
            continue
        freqs = np.asarray(doc["phonon"]["dos_frequencies"])
        dos = np.asarray(doc["phonon"]["ph_dos"])
        n_atoms = doc["metadata"]["nsites"]
        z = n_atoms / Composition(doc["metadata"]["formula"]).num_atoms
        g = dos * 3 * n_atoms / dos_integral(dos, freqs)
        temps = np.asarray(doc["thermo"]["temperature"])
        ref = np.asarray(doc["thermo"]["C_v"])
        cv = heat_capacity(freqs, g, temps) / z
        warm = temps >= 20.0
        np.testing.assert_allclose(cv[warm], ref[warm], rtol=0.01, err_msg=doc["metadata"]["material_id"])
        np.testing.assert_allclose(cv, ref, atol=0.01, err_msg=doc["metadata"]["material_id"])
        checked += 1
    assert checked >= 20
