"""Physics-aware metrics for phonon DoS (``spectrum``) tasks.

* ``wasserstein``: earth mover's distance between true and predicted DoS, both normalised to unit
  weight on the grid, averaged over materials (cm⁻¹). It rewards getting peaks at the right
  frequency even when their shapes differ, which pointwise errors (MSE) do not.
* ``heat_capacity_error``: MAE of the harmonic heat capacity C_V(300 K) (J/(K·mol of cells))
  computed from true and predicted DoS, each rescaled to ∫ g dω = 3N states per cell (Chen et al.
  2021, eq. 2). It needs the atom count per cell and declares it with ``Metric.needs``: scoring
  data without the ``n_atoms`` extra raises :class:`~phonbench.exceptions.ConfigError` (a silent
  per-atom fallback would change the unit of a leaderboard column).

Both read the task grid in its ``grid_unit`` (cm⁻¹, THz, meV; missing = cm⁻¹) and convert to cm⁻¹.
Negative predicted values are clipped to zero; masked-out grid points (if any) get zero weight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np

from phonbench.exceptions import ConfigError, DataError
from phonbench.metrics import Metric
from phonbench.physics import dos_wasserstein, frequency_to_cm1, heat_capacity, physical_dos

if TYPE_CHECKING:
    from phonbench.datasets.base import Task

#: temperature of the registered ``heat_capacity_error`` metric (K)
CV_TEMPERATURE_K = 300.0


def task_grid_cm1(task: Task | None, name: str) -> np.ndarray:
    """The spectrum grid of ``task`` in cm⁻¹, shape ``(n_outputs,)``.

    Raises:
        ConfigError: no task (the metric ``name`` needs its grid) or an unknown grid unit.
    """
    if task is None or task.grid is None:
        raise ConfigError(f"metric {name!r} needs a spectrum task with a frequency grid",
                          "score through phonbench.metrics.score() or pass task=")
    return frequency_to_cm1(task.grid_array(), task.grid_unit)


def _masked_clipped(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, np.clip(values, 0.0, None), 0.0)


def _wasserstein(y: np.ndarray, p: np.ndarray, m: np.ndarray, task: Task | None) -> float:
    grid = task_grid_cm1(task, "wasserstein")
    true = _masked_clipped(y, m)
    empty = true.sum(axis=1) <= 0
    if empty.any():
        raise DataError(f"{int(empty.sum())} reference DoS rows have no positive weight",
                        "drop materials whose true DoS is zero on the grid")
    return float(np.mean(dos_wasserstein(grid, true, _masked_clipped(p, m))))


def heat_capacity_errors(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_atoms: np.ndarray,
    grid_cm1: np.ndarray,
    temperature_K: float = CV_TEMPERATURE_K,
) -> np.ndarray:
    """Per-material |C_V(true) − C_V(pred)| at one temperature.

    Args:
        y_true, y_pred: ``(n, n_grid)`` DoS in any per-frequency scale (each row is rescaled to
            ∫ g dω = 3N over the grid; negatives clipped).
        n_atoms: ``(n,)`` atoms per cell.
        grid_cm1: ``(n_grid,)`` frequencies in cm⁻¹.
        temperature_K: temperature in K.

    Returns:
        ``(n,)`` absolute errors in J/(K·mol of cells). A predicted row without positive weight
        counts as C_V = 0.
    """
    n_atoms = np.asarray(n_atoms, dtype=np.float64)
    if not (np.isfinite(n_atoms).all() and (n_atoms > 0).all()):
        raise DataError("n_atoms must be positive for every material", "check the dataset's n_atoms extra")
    true = physical_dos(np.clip(y_true, 0.0, None), n_atoms, grid_cm1)
    pred = physical_dos(np.clip(y_pred, 0.0, None), n_atoms, grid_cm1)
    cv_true = heat_capacity(grid_cm1, true, temperature_K)[:, 0]
    cv_pred = heat_capacity(grid_cm1, pred, temperature_K)[:, 0]
    return np.abs(cv_true - cv_pred)


def make_heat_capacity_error(temperature_K: float = CV_TEMPERATURE_K, name: str | None = None) -> Metric:
    """A ``heat_capacity_error`` metric at ``temperature_K`` (for plugins wanting other temperatures).

    Args:
        temperature_K: temperature in K.
        name: registry name (default ``heat_capacity_error`` at 300 K, else ``heat_capacity_error_<T>k``).
    """
    if name is None:
        name = "heat_capacity_error" if temperature_K == CV_TEMPERATURE_K else f"heat_capacity_error_{temperature_K:g}k"

    def fn(y: np.ndarray, p: np.ndarray, m: np.ndarray, task: Task | None,
           extras: Mapping[str, np.ndarray] | None = None) -> float:
        grid = task_grid_cm1(task, name)
        n_atoms = (extras or {})["n_atoms"]
        return float(heat_capacity_errors(np.where(m, y, 0.0), np.where(m, p, 0.0), n_atoms, grid,
                                          temperature_K).mean())

    return Metric(
        name, fn, "minimize", "J/(K mol)", ("spectrum",),
        description=f"MAE of the harmonic heat capacity C_V({temperature_K:g} K) per mole of cells from "
        "true vs predicted DoS, each rescaled to 3N states (needs the n_atoms extra)",
        needs=("n_atoms",),
    )


WASSERSTEIN = Metric(
    "wasserstein", _wasserstein, "minimize", "cm^-1", ("spectrum",),
    description="mean earth mover's distance between true and predicted DoS normalised to unit weight",
)
HEAT_CAPACITY_ERROR = make_heat_capacity_error()
