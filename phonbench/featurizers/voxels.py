"""Voxel featurizer: Gaussian-smeared atomic-number and mass densities on a grid over the cell.

For a structure with lattice rows ``a1, a2, a3`` (Å) and atoms at ``r_i``, two channels are sampled
at the ``n × n × n`` grid points ``r(i, j, k) = ((i, j, k) / n + s) @ L`` (``s`` = origin shift,
fractional)::

    ρ_Z(r) = Σ_i Σ_T Z_i exp(-|r - r_i - T|²)      ρ_m(r) = Σ_i Σ_T m_i exp(-|r - r_i - T|²)

with ``|·|`` in Å, ``Z_i`` the atomic number, ``m_i`` the atomic mass (amu) and ``T`` running over
the 27 lattice translations ``{-1, 0, 1}³`` of the atoms wrapped into the cell (Chen et al. 2021,
supplement). Disordered sites use occupancy-weighted ``Z`` and ``m``. Truncating at the 3×3×3
images drops contributions from atoms more than one cell away, which is below 1e-9 of the peak for
cells whose perpendicular widths exceed ~4.5 Å; smaller cells are slightly under-counted.

The computation is vectorised over voxels and image atoms (``|g - p|² = |g|² + |p|² - 2 g·p`` as
one matrix product, then ``exp`` and a weights product) in float64 and stored as float32.

Shapes: :func:`voxel_grid` returns ``(2, n, n, n)`` (channel 0 = ρ_Z, channel 1 = ρ_m; axes follow
the lattice vectors a1, a2, a3); :func:`voxelize` returns ``(n_structures, 2, n, n, n)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from phonbench.exceptions import ConfigError, DataError
from phonbench.structures import check_featurizable

#: bump when the computed grids change (invalidates cached grids)
FEATURIZER_VERSION = "1"
N_CHANNELS = 2
_IMAGES = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=np.float64)
_CHUNK = 256  # image atoms per matrix block (memory ~ n³ × _CHUNK × 8 bytes)


check_structure = check_featurizable  # kept as a public name of this module


def site_weights(structure: Any) -> np.ndarray:
    """Per-site ``(Z, mass)`` weights, occupancy-averaged for disordered sites.

    Returns:
        ``(n_sites, 2)`` float64: atomic number and atomic mass in amu.

    Raises:
        DataError: empty structure.
    """
    if len(structure) == 0:
        raise DataError("cannot voxelize an empty structure (no sites)", "drop it from the data")
    w = np.zeros((len(structure), 2), dtype=np.float64)
    for i, site in enumerate(structure):
        for sp, occ in site.species.items():
            z = getattr(sp, "Z", None)
            if z is None:  # dummy species / vacancy: contributes nothing
                continue
            w[i, 0] += occ * float(z)
            w[i, 1] += occ * float(sp.atomic_mass)
    return w


def _check_shift(origin_shift: Sequence[float] | None) -> np.ndarray:
    shift = np.zeros(3) if origin_shift is None else np.asarray(origin_shift, dtype=np.float64)
    if shift.shape != (3,) or not np.isfinite(shift).all():
        raise ConfigError(f"origin_shift={origin_shift!r} must be three finite fractional numbers")
    return shift


def density_at(structure: Any, points: np.ndarray, origin_shift: Sequence[float] | None = None) -> np.ndarray:
    """ρ_Z and ρ_m at arbitrary Cartesian points (Å), using the 3×3×3 images of the wrapped atoms.

    Args:
        structure: pymatgen ``Structure``.
        points: ``(m, 3)`` Cartesian coordinates in Å (not wrapped into the cell).
        origin_shift: fractional shift ``s``; atoms are moved by ``-s`` before wrapping, so the
            density at ``r`` equals the unshifted density at ``r + s @ L``.

    Returns:
        ``(m, 2)`` float64 (ρ_Z, ρ_m) in units of Z and amu (per Gaussian of unit height).
    """
    shift = _check_shift(origin_shift)
    weights = site_weights(structure)
    lattice = np.asarray(structure.lattice.matrix, dtype=np.float64)
    frac = np.mod(np.asarray(structure.frac_coords, dtype=np.float64) - shift, 1.0)
    image_frac = (frac[None, :, :] + _IMAGES[:, None, :]).reshape(-1, 3)  # (27 N, 3)
    image_cart = image_frac @ lattice
    image_w = np.tile(weights, (len(_IMAGES), 1))  # (27 N, 2), same order as image_cart
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    g2 = np.einsum("ij,ij->i", points, points)[:, None]
    out = np.zeros((len(points), N_CHANNELS), dtype=np.float64)
    for start in range(0, len(image_cart), _CHUNK):
        p = image_cart[start : start + _CHUNK]
        d2 = g2 + np.einsum("ij,ij->i", p, p)[None, :] - 2.0 * (points @ p.T)
        np.maximum(d2, 0.0, out=d2)
        np.exp(-d2, out=d2)
        out += d2 @ image_w[start : start + _CHUNK]
    return out


def grid_points(structure: Any, n_grid: int = 32, origin_shift: Sequence[float] | None = None) -> np.ndarray:
    """Cartesian grid points ``(n³, 3)`` (Å), C-ordered over (i, j, k) along (a1, a2, a3)."""
    shift = _check_shift(origin_shift)
    ticks = np.arange(n_grid, dtype=np.float64) / n_grid
    fi, fj, fk = np.meshgrid(ticks, ticks, ticks, indexing="ij")
    frac = np.stack([fi.ravel(), fj.ravel(), fk.ravel()], axis=1) + shift
    return frac @ np.asarray(structure.lattice.matrix, dtype=np.float64)


def voxel_grid(structure: Any, n_grid: int = 32, origin_shift: Sequence[float] | None = None) -> np.ndarray:
    """Two-channel density grid of one structure.

    Args:
        structure: pymatgen ``Structure`` (ordered or disordered).
        n_grid: voxels per lattice direction.
        origin_shift: fractional shift of the grid origin (augmentation); a whole-cell shift gives
            the identical grid, a shift of ``(1/n, 0, 0)`` rolls it by one voxel along a1.

    Returns:
        ``(2, n_grid, n_grid, n_grid)`` float32 (ρ_Z, ρ_m).

    Raises:
        DataError: empty structure, NaN/inf coordinates, zero-volume cell.
        ConfigError: bad ``n_grid`` or ``origin_shift``.
    """
    _check_grid(n_grid)
    check_structure(structure)
    shift = _check_shift(origin_shift)
    frac_shift = np.mod(shift, 1.0)
    # evaluate at the unshifted grid with atoms moved by -shift: identical to the shifted grid
    points = grid_points(structure, n_grid)
    rho = density_at(structure, points, frac_shift)
    return rho.T.reshape(N_CHANNELS, n_grid, n_grid, n_grid).astype(np.float32)


def _check_grid(n_grid: int) -> None:
    if isinstance(n_grid, bool) or not isinstance(n_grid, (int, np.integer)) or n_grid < 2:
        raise ConfigError(f"n_grid={n_grid!r} must be an integer >= 2")


def voxelize(
    structures: Sequence[Any],
    n_grid: int = 32,
    origin_shift: Sequence[float] | None = None,
    *,
    cache: bool = True,
) -> np.ndarray:
    """Voxel grids of many structures, each cached on disk (``voxels/<key>.npz``).

    Each structure has its own cache entry (key = structure fingerprint, grid size, origin shift,
    featurizer version), so train/valid/test subsets of one dataset share entries.

    Returns:
        ``(len(structures), 2, n_grid, n_grid, n_grid)`` float32.
    """
    from phonbench.cache import cache_key, cached_arrays, structures_fingerprint

    _check_grid(n_grid)
    shift = [float(x) for x in np.mod(_check_shift(origin_shift), 1.0)]
    out = np.empty((len(structures), N_CHANNELS, n_grid, n_grid, n_grid), dtype=np.float32)
    for i, s in enumerate(structures):
        check_structure(s, i)
        if not cache:
            out[i] = voxel_grid(s, n_grid, shift)
            continue
        key = cache_key(structures_fingerprint([s]), {"n_grid": n_grid, "origin_shift": shift}, FEATURIZER_VERSION)
        arrays = cached_arrays("voxels", key, lambda s=s: {"grid": voxel_grid(s, n_grid, shift)})
        out[i] = arrays["grid"]
    return out
