"""Harmonic lattice dynamics of central-force spring models (labels of the ``synthetic`` dataset).

Model: every bond ``b = (i, j, n)`` joins atom ``i`` in the home cell to atom ``j`` in the cell
shifted by the integer lattice translation ``n``. Its energy is ``½ k_b [ê_b · (u_j(n) - u_i(0))]²``
(a central spring of stiffness ``k_b`` in eV/Å² along the unit bond vector ``ê_b``, no pre-stress).
The mass-weighted dynamical matrix ``D(q)`` (``3N × 3N``, eV/Å²/amu) is

    D_ii += k ê⊗ê / m_i,   D_jj += k ê⊗ê / m_j,
    D_ij -= k ê⊗ê e^{2πi q·n} / √(m_i m_j),   D_ji = D_ij^†

summed over bonds, with ``q`` in fractional (reduced) reciprocal coordinates. Its eigenvalues ``λ``
are ``ω²``; a frequency in THz is ``f = √λ · THZ_PER_SQRT_EV_A2_AMU`` (negative ``λ`` gives a
negative, i.e. imaginary, frequency; the spring model never has any beyond round-off).

Bonds come from :func:`find_bonds`: per-atom coordination shells (distances within a relative
tolerance of an atom's nearest, or next-nearest, neighbour distance; periodic images included).
Spring constants come from :func:`spring_constants`: ``k_ij = √(k_i k_j) (d0_ij / d)^p`` with a
per-element stiffness ``k_i`` (:func:`element_stiffness`), ``d0_ij`` the sum of the atomic radii
and ``d`` the bond length.

Everything is batched: many crystals that share one bond topology (same prototype) are handled as
stacks ``(B, ...)`` and diagonalised with one ``numpy.linalg.eigvalsh`` call per chunk.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from phonbench.exceptions import DataError
from phonbench.physics import AMU_KG, ANGSTROM_M, EV_J

#: f [THz] = √(λ [eV/Å²/amu]) × this: √(eV/(Å² amu)) in rad/s, divided by 2π and 10¹² (≈ 15.633302)
THZ_PER_SQRT_EV_A2_AMU = math.sqrt(EV_J / (ANGSTROM_M**2 * AMU_KG)) / (2.0 * math.pi) / 1e12
#: scale of :func:`element_stiffness`, eV/Å² (chosen so typical maxima fall at ~100–700 cm⁻¹)
STIFFNESS_SCALE = 3.0
#: exponent ``p`` of the bond-length dependence ``(d0/d)^p`` of spring constants
LENGTH_EXPONENT = 6.0
#: matrices diagonalised per ``eigvalsh`` call (bounds memory: 16k × 24 × 24 complex ≈ 150 MB)
CHUNK_MATRICES = 16384


@dataclass(frozen=True)
class Bonds:
    """Bonds of one periodic structure, each listed once.

    Attributes:
        n_atoms: atoms ``N`` in the cell.
        i: ``(P,)`` first atom (home cell).
        j: ``(P,)`` second atom (``i <= j``).
        image: ``(P, 3)`` int lattice translation of the cell holding ``j``.
        vector: ``(P, 3)`` Cartesian bond vector ``r_j + n·L - r_i`` in Å.
        shell: ``(P,)`` smallest coordination shell (1 or 2) of ``i`` or ``j`` containing the bond.
    """

    n_atoms: int
    i: np.ndarray
    j: np.ndarray
    image: np.ndarray
    vector: np.ndarray
    shell: np.ndarray

    @property
    def length(self) -> np.ndarray:
        """``(P,)`` bond lengths in Å."""
        return np.linalg.norm(self.vector, axis=1)

    def __len__(self) -> int:
        return len(self.i)


def find_bonds(lattice: np.ndarray, frac_coords: np.ndarray, shells: int = 1, tol: float = 0.1) -> Bonds:
    """Per-atom coordination shells of a periodic structure, periodic images included.

    Atom ``i``'s first shell holds the neighbours at distances ``<= (1 + tol) d1_i`` (``d1_i`` its
    nearest-neighbour distance); its second shell those beyond it up to ``(1 + tol) d2_i``, where
    ``d2_i`` is the nearest distance outside the first shell. A pair is bonded when it lies within
    ``shells`` shells of either atom, so bonds are symmetric.

    Args:
        lattice: ``(3, 3)`` lattice vectors (rows) in Å.
        frac_coords: ``(N, 3)`` fractional coordinates.
        shells: 1 (nearest neighbours only) or 2 (also next-nearest).
        tol: relative distance tolerance of a shell.

    Raises:
        DataError: bad shapes, overlapping atoms or ``shells`` not 1 or 2.
    """
    lattice = np.asarray(lattice, dtype=np.float64)
    frac = np.asarray(frac_coords, dtype=np.float64)
    if lattice.shape != (3, 3) or frac.ndim != 2 or frac.shape[1] != 3 or len(frac) == 0:
        raise DataError(f"lattice {lattice.shape} / coordinates {frac.shape} are not (3, 3) / (N, 3)")
    if shells not in (1, 2):
        raise DataError(f"shells={shells!r} is not supported", "use shells=1 or shells=2")
    frac = frac - np.floor(frac)
    n = len(frac)
    volume = abs(np.linalg.det(lattice))
    if volume < 1e-8:
        raise DataError("lattice vectors are linearly dependent", "give a non-degenerate lattice")
    cutoff = 2.0 * (volume / n) ** (1.0 / 3.0)
    recip_norms = np.linalg.norm(np.linalg.inv(lattice), axis=0)  # |b_k| / 2π
    for _ in range(8):
        reach = np.ceil(cutoff * recip_norms).astype(int) + 1
        ranges = [np.arange(-r, r + 1) for r in reach]
        images = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
        delta = frac[None, :, None, :] + images[None, None, :, :] - frac[:, None, None, :]
        vec = delta @ lattice  # (N, N, M, 3)
        dist = np.linalg.norm(vec, axis=-1)
        if (dist < 1e-6).sum() > n:
            raise DataError("two atoms of the structure overlap", "remove duplicate sites")
        inside = (dist > 1e-6) & (dist <= cutoff)
        radius = _shell_radii(np.where(inside, dist, np.inf), shells, tol)
        if np.isfinite(radius).all():
            break
        cutoff *= 1.6
    else:  # pragma: no cover - only for pathological cells
        raise DataError("no neighbour shells found within a reasonable cutoff", "check the lattice")
    shell_of = np.zeros(dist.shape, dtype=np.int64)  # 0 = not bonded
    for s in range(shells, 0, -1):
        within = inside & ((dist <= radius[:, None, None, s - 1]) | (dist <= radius[None, :, None, s - 1]))
        shell_of[within] = s
    ii, jj, mm = np.nonzero(shell_of)
    img = images[mm]
    first_nonzero = np.take_along_axis(img, np.argmax(img != 0, axis=1)[:, None], axis=1)[:, 0]
    keep = (ii < jj) | ((ii == jj) & (first_nonzero > 0))
    ii, jj, mm = ii[keep], jj[keep], mm[keep]
    return Bonds(n, ii, jj, images[mm].astype(np.int64), vec[ii, jj, mm], shell_of[ii, jj, mm])


def _shell_radii(dist: np.ndarray, shells: int, tol: float) -> np.ndarray:
    """``(N, shells)`` outer radius of each atom's shells (inf when a shell is beyond the cutoff)."""
    flat = dist.reshape(len(dist), -1)
    radii = np.full((len(dist), shells), np.inf)
    d1 = flat.min(axis=1)
    radii[:, 0] = (1.0 + tol) * d1
    if shells == 2:
        d2 = np.where(flat > radii[:, :1], flat, np.inf).min(axis=1)
        radii[:, 1] = (1.0 + tol) * d2
    return radii


def element_stiffness(numbers: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per-element spring stiffness ``k_i = STIFFNESS_SCALE · χ_i / r_i²`` in eV/Å².

    ``χ`` is the Pauling electronegativity and ``r`` the (Slater) atomic radius in Å, both from
    pymatgen: small, electronegative atoms (O, F, N) are stiff, large electropositive ones (Cs, Rb)
    soft.

    Args:
        numbers: ``(N,)`` atomic numbers.

    Raises:
        DataError: an element without electronegativity or atomic radius in pymatgen.
    """
    props = _element_props(tuple(int(z) for z in np.unique(np.asarray(numbers, dtype=np.int64))))
    return np.array([props[int(z)][2] for z in np.asarray(numbers).ravel()]).reshape(np.shape(numbers))


def atomic_radii(numbers: Sequence[int] | np.ndarray) -> np.ndarray:
    """Atomic radii (pymatgen ``Element.atomic_radius``, Å) of ``numbers``, same shape."""
    props = _element_props(tuple(int(z) for z in np.unique(np.asarray(numbers, dtype=np.int64))))
    return np.array([props[int(z)][1] for z in np.asarray(numbers).ravel()]).reshape(np.shape(numbers))


def atomic_masses(numbers: Sequence[int] | np.ndarray) -> np.ndarray:
    """Atomic masses (pymatgen, amu) of ``numbers``, same shape."""
    props = _element_props(tuple(int(z) for z in np.unique(np.asarray(numbers, dtype=np.int64))))
    return np.array([props[int(z)][0] for z in np.asarray(numbers).ravel()]).reshape(np.shape(numbers))


_PROPS: dict[int, tuple[float, float, float]] = {}


def _element_props(numbers: tuple[int, ...]) -> dict[int, tuple[float, float, float]]:
    """``{Z: (mass amu, radius Å, stiffness eV/Å²)}`` for ``numbers`` (memoised)."""
    missing = [z for z in numbers if z not in _PROPS]
    if missing:
        from pymatgen.core import Element

        for z in missing:
            el = Element.from_Z(z)
            with warnings.catch_warnings():  # pymatgen warns before returning NaN for noble gases
                warnings.simplefilter("ignore")
                radius, chi = el.atomic_radius, el.X
            if radius is None or not np.isfinite(chi) or chi <= 0:
                raise DataError(
                    f"element {el.symbol} has no atomic radius or electronegativity in pymatgen",
                    "use elements with both properties (most non-noble-gas elements)",
                )
            r = float(radius)
            _PROPS[z] = (float(el.atomic_mass), r, STIFFNESS_SCALE * float(chi) / r**2)
    return {z: _PROPS[z] for z in numbers}


def spring_constants(bonds: Bonds, numbers: np.ndarray, scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Spring constants ``k = √(k_i k_j) (d0_ij / d)^p`` of the bonds of a batch of crystals.

    Args:
        bonds: shared bond topology (from a template with the crystals' fractional coordinates).
        numbers: ``(B, N)`` or ``(N,)`` atomic numbers of each crystal.
        scale: ``(B,)`` or scalar factor multiplying the bond lengths of ``bonds`` (lattice
            scale of each crystal relative to the template).

    Returns:
        ``(B, P)`` (or ``(P,)`` for 1-D ``numbers``) spring constants in eV/Å².
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    flat = numbers[None] if numbers.ndim == 1 else numbers
    k_el, r_el = element_stiffness(flat), atomic_radii(flat)
    d = bonds.length[None, :] * np.reshape(np.asarray(scale, dtype=np.float64), (-1, 1))
    d0 = r_el[:, bonds.i] + r_el[:, bonds.j]
    k = np.sqrt(k_el[:, bonds.i] * k_el[:, bonds.j]) * (d0 / d) ** LENGTH_EXPONENT
    return k[0] if numbers.ndim == 1 else k


def dynamical_matrices(bonds: Bonds, k: np.ndarray, masses: np.ndarray, qpoints: np.ndarray) -> np.ndarray:
    """Mass-weighted dynamical matrices of a batch of crystals sharing ``bonds``.

    Args:
        bonds: bond topology with ``P`` bonds on ``N`` atoms.
        k: ``(B, P)`` spring constants, eV/Å².
        masses: ``(B, N)`` atomic masses, amu.
        qpoints: ``(Q, 3)`` wave vectors in fractional reciprocal coordinates.

    Returns:
        ``(B, Q, 3N, 3N)`` Hermitian matrices in eV/Å²/amu (real dtype when every phase is real,
        e.g. at Γ).
    """
    k = np.atleast_2d(np.asarray(k, dtype=np.float64))
    masses = np.atleast_2d(np.asarray(masses, dtype=np.float64))
    qpoints = np.atleast_2d(np.asarray(qpoints, dtype=np.float64))
    n, nb, nq = bonds.n_atoms, len(k), len(qpoints)
    if k.shape[1] != len(bonds) or masses.shape != (nb, n):
        raise DataError(f"k {k.shape} / masses {masses.shape} do not match {len(bonds)} bonds on {n} atoms")
    unit = bonds.vector / bonds.length[:, None]
    outer = unit[:, :, None] * unit[:, None, :]  # (P, 3, 3)
    phase = np.exp(2j * np.pi * (qpoints @ bonds.image.T))  # (Q, P)
    real = np.allclose(phase.imag, 0.0, atol=1e-12)
    phase = phase.real if real else phase
    d = np.zeros((nb, nq, n, 3, n, 3), dtype=np.float64 if real else np.complex128)
    kq = k[:, None, :] * phase[None, :, :]  # (B, Q, P)
    for p, (i, j) in enumerate(zip(bonds.i.tolist(), bonds.j.tolist())):
        onsite = k[:, p, None, None] * outer[p]  # (B, 3, 3)
        d[:, :, i, :, i, :] += onsite[:, None]
        d[:, :, j, :, j, :] += onsite[:, None]
        off = kq[:, :, p, None, None] * outer[p]  # (B, Q, 3, 3)
        d[:, :, i, :, j, :] -= off
        d[:, :, j, :, i, :] -= off.conj()
    inv_sqrt_m = np.repeat(1.0 / np.sqrt(masses), 3, axis=1)  # (B, 3N)
    d = d.reshape(nb, nq, 3 * n, 3 * n)
    return d * (inv_sqrt_m[:, None, :, None] * inv_sqrt_m[:, None, None, :])


def frequencies(bonds: Bonds, k: np.ndarray, masses: np.ndarray, qpoints: np.ndarray) -> np.ndarray:
    """Phonon frequencies (THz, ascending per q) of a batch of crystals sharing ``bonds``.

    Args:
        bonds: bond topology with ``P`` bonds on ``N`` atoms.
        k: ``(B, P)`` spring constants, eV/Å².
        masses: ``(B, N)`` masses, amu.
        qpoints: ``(Q, 3)`` fractional reciprocal coordinates.

    Returns:
        ``(B, Q, 3N)`` frequencies in THz; ``sign(λ)√|λ|`` so unstable modes would be negative.
    """
    k = np.atleast_2d(np.asarray(k, dtype=np.float64))
    masses = np.atleast_2d(np.asarray(masses, dtype=np.float64))
    qpoints = np.atleast_2d(np.asarray(qpoints, dtype=np.float64))
    nb, nq, dim = len(k), len(qpoints), 3 * bonds.n_atoms
    out = np.empty((nb, nq, dim))
    step = max(1, CHUNK_MATRICES // nq)
    for lo in range(0, nb, step):
        dm = dynamical_matrices(bonds, k[lo : lo + step], masses[lo : lo + step], qpoints)
        lam = np.linalg.eigvalsh(dm)
        out[lo : lo + step] = np.sign(lam) * np.sqrt(np.abs(lam)) * THZ_PER_SQRT_EV_A2_AMU
    return out


def monkhorst_pack(mesh: Sequence[int] | int, time_reversal: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Monkhorst–Pack q-points ``(2r - n - 1) / 2n`` and their weights.

    Args:
        mesh: ``(n1, n2, n3)`` or one ``n`` for all three directions.
        time_reversal: keep one of each ``±q`` pair with double weight (``ω(q) = ω(-q)``).

    Returns:
        ``(qpoints (Q, 3) fractional, weights (Q,))``, weights summing to 1.
    """
    n = np.broadcast_to(np.asarray(mesh, dtype=np.int64), (3,))
    if (n < 1).any():
        raise DataError(f"Monkhorst-Pack mesh {tuple(n)} has a non-positive size", "use e.g. mesh=4")
    axes = [(2 * np.arange(1, m + 1) - m - 1) / (2.0 * m) for m in n]
    q = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    w = np.ones(len(q))
    if time_reversal:
        key = np.round(q * 2 * n).astype(np.int64)  # integer labels; -q is -key
        first = np.take_along_axis(key, np.argmax(key != 0, axis=1)[:, None], axis=1)[:, 0]
        keep = first >= 0  # first >= 0 keeps Γ (all zero) once and one of each ±q pair
        w = np.where((key == 0).all(axis=1), 1.0, 2.0)[keep]
        q = q[keep]
    return q, w / w.sum()


def gaussian_dos(
    freqs_cm1: np.ndarray, weights: np.ndarray, grid_cm1: np.ndarray, sigma_cm1: float, reflect: bool = True
) -> np.ndarray:
    """Gaussian-broadened phonon DoS on a grid, ``∫ g dω ≈ 3N`` (states per cm⁻¹ per cell).

    Args:
        freqs_cm1: ``(B, Q, 3N)`` frequencies in cm⁻¹.
        weights: ``(Q,)`` q-point weights summing to 1.
        grid_cm1: ``(G,)`` grid in cm⁻¹.
        sigma_cm1: Gaussian standard deviation in cm⁻¹.
        reflect: subtract the mirror Gaussian at ``-f`` so that ``g(0) = 0`` (as a real DoS,
            which vanishes like ω² at zero); it changes ``g`` only within a few σ of zero.

    Returns:
        ``(B, G)`` DoS on the grid.
    """
    grid = np.asarray(grid_cm1, dtype=np.float64)
    out = np.empty((len(freqs_cm1), len(grid)))
    norm = 1.0 / (math.sqrt(2.0 * math.pi) * sigma_cm1)
    step = max(1, 2_000_000 // max(1, freqs_cm1[0].size * len(grid)))
    for lo in range(0, len(freqs_cm1), step):
        f = freqs_cm1[lo : lo + step, ..., None]
        f = np.abs(f) if reflect else f  # reflected: a (round-off) negative f adds nothing negative
        g = np.exp(-0.5 * ((grid - f) / sigma_cm1) ** 2)  # (b, Q, 3N, G)
        if reflect:
            g -= np.exp(-0.5 * ((grid + f) / sigma_cm1) ** 2)
        out[lo : lo + step] = np.einsum("q,bqmg->bg", weights, g) * norm
    return out


def structure_frequencies(structure: Any, qpoints: np.ndarray, shells: int = 2, tol: float = 0.1) -> np.ndarray:
    """Frequencies (THz, ascending) of one pymatgen ``Structure`` under the default spring model.

    Args:
        structure: ordered pymatgen ``Structure``.
        qpoints: ``(Q, 3)`` fractional reciprocal coordinates.
        shells: coordination shells bonded (see :func:`find_bonds`).
        tol: relative shell tolerance.

    Returns:
        ``(Q, 3N)`` frequencies in THz.
    """
    numbers = np.array([site.specie.Z for site in structure])
    bonds = find_bonds(structure.lattice.matrix, structure.frac_coords, shells, tol)
    k = spring_constants(bonds, numbers)
    return frequencies(bonds, k[None], atomic_masses(numbers)[None], qpoints)[0]

