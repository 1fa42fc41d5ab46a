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


# ---------------------------------------------------------------------- thermodynamics and distances
def _heat_capacity_kernel(x: np.ndarray) -> np.ndarray:
    """Einstein function x² eˣ / (eˣ − 1)², written with e⁻ˣ so that large x gives 0 (not NaN); 1 at x = 0."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(-x)
        value = x * x * e / np.expm1(-x) ** 2
    return np.where(x > 1e-8, np.nan_to_num(value, nan=0.0, posinf=0.0), 1.0)


def heat_capacity(grid_cm1: np.ndarray, g: np.ndarray, temperatures_K: np.ndarray | float) -> np.ndarray:
    """Harmonic phonon heat capacity from a DoS (Chen et al. 2021, eq. 2).

    C_V(T) = R ∫ g(ω) x² eˣ / (eˣ − 1)² dω with x = hcω / (k_B T), integrated with the trapezoid rule
    over ``grid_cm1``. With ``g`` normalised to ∫ g dω = 3N states per cell, C_V is per mole of unit
    cells and tends to 3NR (Dulong–Petit) at high temperature.

    Negative frequencies (imaginary modes) are ignored: their weight is set to zero, so a DoS with
    imaginary modes gives C_V below 3NR at high T. Normalise ``g`` before calling if that matters.

    Args:
        grid_cm1: ``(n_grid,)`` increasing frequencies in cm⁻¹ (need not be uniform).
        g: ``(n_grid,)`` or ``(n, n_grid)`` DoS in states per cm⁻¹ per cell.
        temperatures_K: scalar or ``(n_T,)`` temperatures in K (all > 0).

    Returns:
        ``(n_T,)`` for a single DoS or ``(n, n_T)``, in J/(K·mol of cells).

    Raises:
        ValueError: on a non-positive temperature or mismatched shapes.
    """
    grid = np.asarray(grid_cm1, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    temps = np.atleast_1d(np.asarray(temperatures_K, dtype=np.float64))
    if temps.ndim != 1 or not (temps > 0).all() or not np.isfinite(temps).all():
        raise ValueError(f"temperatures must be positive finite kelvin values, got {temps.tolist()}")
    if g.shape[-1] != grid.shape[0]:
        raise ValueError(f"DoS has {g.shape[-1]} points per row but the grid has {grid.shape[0]}")
    omega = np.clip(grid, 0.0, None)
    x = (H_PLANCK * C_LIGHT_CM / K_B) * omega[None, :] / temps[:, None]  # (n_T, n_grid)
    weight = _heat_capacity_kernel(x) * (grid >= 0.0)[None, :]
    integrand = g[..., None, :] * weight  # (..., n_T, n_grid)
    return R_GAS * dos_integral(integrand, grid)


def heat_capacity_per_kg(cv_mol: np.ndarray | float, cell_mass_amu: np.ndarray | float) -> np.ndarray:
    """Convert C_V per mole of cells to per kilogram.

    The molar mass of the cell in g/mol equals its mass in amu, so C [J/(kg·K)] = C [J/(K·mol)] /
    (M [amu] × 10⁻³ kg/g).

    Args:
        cv_mol: C_V in J/(K·mol of cells), any shape; a leading ``(n,)`` axis matches ``cell_mass_amu``.
        cell_mass_amu: total mass of the cell in amu, scalar or ``(n,)``.

    Returns:
        C_V in J/(kg·K), shaped like ``cv_mol``.
    """
    cv = np.asarray(cv_mol, dtype=np.float64)
    mass = np.asarray(cell_mass_amu, dtype=np.float64) * 1e-3
    if mass.ndim == 1 and cv.ndim > 1:
        mass = mass.reshape((-1,) + (1,) * (cv.ndim - 1))
    return cv / mass


def dos_wasserstein(grid: np.ndarray, g_true: np.ndarray, g_pred: np.ndarray) -> np.ndarray:
    """Earth mover's (Wasserstein-1) distance between DoS rows normalised to unit weight on the grid.

    Each row is clipped at zero and treated as a discrete distribution with weights ``g`` at the grid
    points (``scipy.stats.wasserstein_distance``, which normalises the weights). A predicted row with
    no positive weight gets the largest possible distance, ``grid[-1] − grid[0]``.

    Args:
        grid: ``(n_grid,)`` frequencies; the distance is in this unit.
        g_true: ``(n_grid,)`` or ``(n, n_grid)`` reference DoS.
        g_pred: same shape as ``g_true``.

    Returns:
        ``(n,)`` distances (or a 0-d array for single rows).

    Raises:
        ValueError: on mismatched shapes or a reference row with no positive weight.
    """
    from scipy.stats import wasserstein_distance

    grid = np.asarray(grid, dtype=np.float64)
    true = np.clip(np.asarray(g_true, dtype=np.float64), 0.0, None)
    pred = np.clip(np.asarray(g_pred, dtype=np.float64), 0.0, None)
    if true.shape != pred.shape or true.shape[-1] != grid.shape[0]:
        raise ValueError(f"DoS shapes {true.shape} and {pred.shape} do not match a grid of {grid.shape[0]} points")
    single = true.ndim == 1
    true, pred = np.atleast_2d(true), np.atleast_2d(pred)
    out = np.empty(len(true))
    for i, (u, v) in enumerate(zip(true, pred)):
        if u.sum() <= 0:
            raise ValueError(f"reference DoS row {i} has no positive weight")
        out[i] = wasserstein_distance(grid, grid, u, v) if v.sum() > 0 else grid[-1] - grid[0]
    return out[0] if single else out


#: spellings of frequency units → cm⁻¹ per unit (lower case, spaces removed)
_CM1_PER_UNIT = {
    "cm^-1": 1.0, "cm-1": 1.0, "1/cm": 1.0, "cm⁻¹": 1.0, "invcm": 1.0,
    "thz": CM1_PER_THZ, "mev": CM1_PER_MEV, "ev": CM1_PER_EV,
}


def frequency_to_cm1(values: np.ndarray | float, unit: str | None) -> np.ndarray:
    """Convert frequencies in ``unit`` (cm^-1, THz, meV or eV; ``None`` means cm⁻¹) to cm⁻¹.

    Raises:
        ConfigError: an unknown unit.
    """
    from phonbench.exceptions import ConfigError

    key = "cm^-1" if unit is None else str(unit).strip().lower().replace(" ", "")
    if key not in _CM1_PER_UNIT:
        raise ConfigError(f"unknown frequency unit {unit!r}", "use cm^-1, THz, meV or eV")
    return np.asarray(values, dtype=np.float64) * _CM1_PER_UNIT[key]
