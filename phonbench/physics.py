"""Physical constants, unit conversions and phonon-DoS helpers.

Frequencies are in cm⁻¹ unless a name says otherwise (1 THz = 33.35641 cm⁻¹, 1 meV = 8.0655 cm⁻¹).
"""

from __future__ import annotations

import numpy as np

CM1_PER_THZ = 33.35641  #: cm⁻¹ per THz
CM1_PER_MEV = 8.065544  #: cm⁻¹ per meV
CM1_PER_EV = 8065.544  #: cm⁻¹ per eV
THZ_PER_CM1 = 1.0 / CM1_PER_THZ
K_B = 1.380649e-23  #: Boltzmann constant, J/K
H_PLANCK = 6.62607015e-34  #: Planck constant, J s
C_LIGHT_CM = 2.99792458e10  #: speed of light, cm/s
N_AVOGADRO = 6.02214076e23  #: 1/mol
R_GAS = K_B * N_AVOGADRO  #: J/(K mol)
AMU_KG = 1.66053906660e-27  #: kg per atomic mass unit
EV_J = 1.602176634e-19  #: J per eV
ANGSTROM_M = 1e-10

#: 51-point grid of Chen et al. 2021: 0, 20, ..., 1000 cm⁻¹
CHEN_GRID_CM1 = np.linspace(0.0, 1000.0, 51)


def thz_to_cm1(f: np.ndarray | float) -> np.ndarray | float:
    """THz → cm⁻¹."""
    return np.asarray(f) * CM1_PER_THZ


def cm1_to_thz(f: np.ndarray | float) -> np.ndarray | float:
    """cm⁻¹ → THz."""
    return np.asarray(f) / CM1_PER_THZ


def cm1_to_mev(f: np.ndarray | float) -> np.ndarray | float:
    """cm⁻¹ → meV."""
    return np.asarray(f) / CM1_PER_MEV


# ---------------------------------------------------------------------- phonon DoS processing
#: Savitzky–Golay window (points of the raw 1 cm⁻¹ grid) and polynomial order of Chen et al. 2021
CHEN_SAVGOL_WINDOW = 101
CHEN_SAVGOL_ORDER = 3


def savgol_window(n_points: int, window: int = CHEN_SAVGOL_WINDOW, order: int = CHEN_SAVGOL_ORDER) -> int:
    """Savitzky–Golay window length usable on ``n_points`` samples.

    ``window`` itself when the data is long enough, otherwise the largest odd length ``<= n_points``
    (this shrunken window reproduces the e3nn-tutorial target of mp-2667, whose raw DoS has 94 points).

    Raises:
        ValueError: if ``n_points`` is too short for a window longer than ``order``.
    """
    if n_points >= window:
        return window
    w = n_points if n_points % 2 == 1 else n_points - 1
    if w <= order:
        raise ValueError(f"{n_points} DoS points are too few for a Savitzky–Golay filter of order {order}")
    return w


def smooth_dos(dos: np.ndarray, window: int = CHEN_SAVGOL_WINDOW, order: int = CHEN_SAVGOL_ORDER) -> np.ndarray:
    """Savitzky–Golay smoothing (scipy, ``mode="interp"``) of a DoS on a uniform grid.

    Args:
        dos: ``(n_points,)`` DoS values on a uniform frequency grid.
        window: window length in grid points (shrunk by :func:`savgol_window` for short data).
        order: polynomial order.

    Returns:
        ``(n_points,)`` smoothed DoS (may contain small negative values).
    """
    from scipy.signal import savgol_filter

    dos = np.asarray(dos, dtype=np.float64)
    return savgol_filter(dos, savgol_window(len(dos), window, order), order)


def dos_on_grid(freqs: np.ndarray, dos: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``dos(freqs)`` onto ``grid``; zero outside ``[freqs[0], freqs[-1]]``.

    Args:
        freqs: ``(n_points,)`` increasing frequencies (any unit, same as ``grid``).
        dos: ``(n_points,)`` DoS values.
        grid: ``(n_grid,)`` target frequencies.
    """
    return np.interp(np.asarray(grid, dtype=np.float64), freqs, dos, left=0.0, right=0.0)


def chen_dos_target(
    freqs_cm1: np.ndarray,
    dos: np.ndarray,
    grid_cm1: np.ndarray = CHEN_GRID_CM1,
    window: int = CHEN_SAVGOL_WINDOW,
    order: int = CHEN_SAVGOL_ORDER,
) -> tuple[np.ndarray, float]:
    """Chen et al. (2021) DoS target: smooth, interpolate, clip negatives, divide by the maximum.

    Args:
        freqs_cm1: ``(n_points,)`` uniform raw frequency grid in cm⁻¹ (Petretto: 1 cm⁻¹ step).
        dos: ``(n_points,)`` raw DoS on that grid (any per-frequency unit).
        grid_cm1: ``(n_grid,)`` output grid in cm⁻¹ (default 0, 20, …, 1000).
        window: Savitzky–Golay window in raw grid points.
        order: Savitzky–Golay polynomial order.

    Returns:
        ``(target, scale)``: ``target`` of shape ``(n_grid,)`` with maximum 1, and ``scale``, the
        maximum of the smoothed, clipped DoS on the grid in the unit of ``dos`` (so ``target * scale``
        is the smoothed DoS on the grid).

    Raises:
        ValueError: if the smoothed DoS is zero everywhere on the grid.
    """
    g = np.clip(dos_on_grid(freqs_cm1, smooth_dos(dos, window, order), grid_cm1), 0.0, None)
    scale = float(g.max())
    if scale <= 0.0:
        raise ValueError("the smoothed DoS is zero everywhere on the grid")
    return g / scale, scale


def dos_integral(g: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Trapezoidal integral ∫ g dω over ``grid`` along the last axis.

    Args:
        g: ``(..., n_grid)`` DoS values.
        grid: ``(n_grid,)`` frequencies; the result is in ``unit(g) × unit(grid)``.
    """
    g = np.asarray(g, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    return 0.5 * ((g[..., 1:] + g[..., :-1]) * np.diff(grid)).sum(axis=-1)


def physical_dos(target: np.ndarray, n_atoms: np.ndarray | int, grid: np.ndarray = CHEN_GRID_CM1) -> np.ndarray:
    """Rescale max-normalised DoS rows so that ∫ g dω = 3N over ``grid`` (states per grid unit per cell).

    Args:
        target: ``(n, n_grid)`` or ``(n_grid,)`` normalised DoS.
        n_atoms: atoms per cell, scalar or ``(n,)``.
        grid: ``(n_grid,)`` frequencies (default 0, 20, …, 1000 cm⁻¹).

    Returns:
        Array shaped like ``target``; rows that integrate to zero stay zero.
    """
    target = np.asarray(target, dtype=np.float64)
    norm = np.asarray(dos_integral(target, grid))
    three_n = 3.0 * np.asarray(n_atoms, dtype=np.float64)
    factor = np.where(norm > 0, three_n / np.where(norm > 0, norm, 1.0), 0.0)
    return target * np.asarray(factor)[..., None]
