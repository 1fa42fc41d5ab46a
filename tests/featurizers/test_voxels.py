"""Tests of the two-channel Gaussian voxel featurizer."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from phonbench.exceptions import ConfigError, DataError
from phonbench.featurizers.voxels import density_at, grid_points, site_weights, voxel_grid, voxelize

N = 16  # small grid keeps the tests fast; the default is 32


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PHONBENCH_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def nacl() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture
def triclinic() -> Structure:
    lat = Lattice.from_parameters(5.0, 5.5, 6.0, 75, 82, 100)
    return Structure(lat, ["Si", "O", "O"], [[0.1, 0.0, 0.05], [0.33, 0.21, 0.12], [0.71, 0.64, 0.43]])


def test_shape_dtype_and_channels(nacl):
    g = voxel_grid(nacl, N)
    assert g.shape == (2, N, N, N) and g.dtype == np.float32
    # both channels are the same Gaussians with weights Z and m: at an Na site (index 0,0,0) the
    # Na Gaussian dominates, so ρ_m / ρ_Z ≈ m_Na / Z_Na there
    assert g[1, 0, 0, 0] / g[0, 0, 0, 0] == pytest.approx(22.99 / 11, rel=2e-3)
    assert site_weights(nacl)[0].tolist() == pytest.approx([11.0, 22.98977], abs=1e-3)


@pytest.mark.parametrize("fixture", ["nacl", "triclinic"])
def test_integral_equals_weight_sum(fixture, request):
    """Σ voxels × voxel volume = Σ Z_i π^{3/2} (and Σ m_i π^{3/2}).

    Holds to ~1e-6 relative when every cell width exceeds ~4.5 Å (images beyond 3×3×3 add < 1e-9)
    and the voxel spacing is below the Gaussian width (the periodic Riemann sum is then
    spectrally accurate); float32 storage limits the agreement to ~1e-6.
    """
    s = request.getfixturevalue(fixture)
    g = voxel_grid(s, 24).astype(np.float64)
    dv = s.volume / 24**3
    w = site_weights(s).sum(axis=0)
    np.testing.assert_allclose(g.reshape(2, -1).sum(axis=1) * dv, w * np.pi**1.5, rtol=1e-5)


def test_density_is_periodic_across_cell_faces(triclinic):
    """ρ on the face r + a_k (evaluated directly, no wrapping) equals ρ on the opposite face r."""
    pts = grid_points(triclinic, N).reshape(N, N, N, 3)
    lattice = triclinic.lattice.matrix
    faces = [pts[0].reshape(-1, 3), pts[:, 0].reshape(-1, 3), pts[:, :, 0].reshape(-1, 3)]
    for k, face in enumerate(faces):
        here = density_at(triclinic, face)
        there = density_at(triclinic, face + lattice[k])
        np.testing.assert_allclose(there, here, rtol=1e-7, atol=1e-9 * here.max())


def test_whole_cell_origin_shift_is_identity(triclinic):
    g = voxel_grid(triclinic, N)
    np.testing.assert_array_equal(voxel_grid(triclinic, N, origin_shift=(1.0, -2.0, 3.0)), g)


def test_grid_step_shift_and_translation_roll_the_grid(triclinic):
    g = voxel_grid(triclinic, N)
    # moving the origin by +1 voxel along a2 shows the grid one voxel further on
    shifted = voxel_grid(triclinic, N, origin_shift=(0.0, 1.0 / N, 0.0))
    np.testing.assert_allclose(shifted, np.roll(g, -1, axis=2), rtol=1e-5, atol=1e-6)
    # translating every atom by +2 voxels along a3 rolls the grid by +2
    moved = triclinic.copy()
    moved.translate_sites(list(range(len(moved))), [0.0, 0.0, 2.0 / N], frac_coords=True)
    np.testing.assert_allclose(voxel_grid(moved, N), np.roll(g, 2, axis=3), rtol=1e-5, atol=1e-6)
    # a sub-voxel shift is a genuinely different sample of the same density
    half = voxel_grid(triclinic, N, origin_shift=(0.5 / N, 0.0, 0.0))
    assert not np.allclose(half, g, rtol=1e-3)


def test_disordered_site_averages_weights():
    s = Structure(Lattice.cubic(5.0), [{"Bi": 0.5, "Sb": 0.5}], [[0, 0, 0]])
    assert site_weights(s)[0, 0] == pytest.approx(0.5 * 83 + 0.5 * 51)
    g = voxel_grid(s, 8).astype(np.float64)
    assert g[0].sum() * s.volume / 8**3 == pytest.approx(67 * np.pi**1.5, rel=1e-4)


def test_voxelize_caches_per_structure(nacl, triclinic, tmp_path):
    out = voxelize([nacl, triclinic, nacl], N)
    assert out.shape == (3, 2, N, N, N)
    assert len(list((tmp_path / "cache" / "voxels").glob("*.npz"))) == 2
    np.testing.assert_array_equal(out[0], out[2])
    again = voxelize([triclinic], N)  # served from the cache
    np.testing.assert_array_equal(again[0], out[1])
    np.testing.assert_array_equal(voxelize([triclinic], N, cache=False)[0], out[1])


def test_bad_inputs(nacl):
    with pytest.raises(DataError, match="empty"):
        voxelize([nacl, Structure(Lattice.cubic(3.0), [], [])], N)
    bad = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [np.nan, 0.5, 0.5]])
    with pytest.raises(DataError, match="NaN"):
        voxelize([bad], N, cache=False)
    with pytest.raises(DataError, match="NaN"):
        voxelize([bad], N)  # checked before the cache key is computed
    with pytest.raises(DataError, match="Structure"):
        voxelize(["NaCl"], N)
    with pytest.raises(ConfigError):
        voxel_grid(nacl, 1)
    with pytest.raises(ConfigError):
        voxel_grid(nacl, N, origin_shift=(0.0, np.nan, 0.0))
