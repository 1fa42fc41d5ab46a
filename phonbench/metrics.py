"""Metrics: pure functions ``(y_true, y_pred, mask, task) -> float`` with direction and unit.

All arrays are ``(n, d)``; ``mask`` is an ``(n, d)`` boolean array (True = real entry) or
``None`` (everything real). Padding is never scored. Each metric is a :class:`Metric` object that
is registered through the ``phonbench.metrics`` entry-point group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, Mapping

import numpy as np

from phonbench.exceptions import ConfigError, DataError

if TYPE_CHECKING:
    from phonbench.datasets.base import Task

#: ``fn(y_true, y_pred, mask, task)``; metrics with :attr:`Metric.needs` also take ``extras=``
MetricFn = Callable[..., float]
TARGET_UNIT = "target"  # placeholder: the metric is in the task's target unit


@dataclass(frozen=True)
class Metric:
    """A scoring function with metadata.

    Attributes:
        name: registry name.
        fn: ``fn(y_true, y_pred, mask, task) -> float`` with ``mask`` already a full bool array.
        direction: ``minimize`` or ``maximize``.
        unit: ``"target"`` (the task's unit), ``"target^2"``, ``"frequency"`` (the task's frequency
            unit), ``"1"`` (dimensionless) or a literal unit string.
        task_kinds: task kinds the metric applies to.
        description: one line for ``phonbench list``.
        needs: names of per-material extras the metric reads (e.g. ``("n_atoms",)``). When not
            empty, ``fn`` is called with an extra keyword ``extras={name: (n,) array}`` holding
            exactly these entries; a missing one raises :class:`ConfigError`.
    """

    name: str
    fn: MetricFn
    direction: Literal["minimize", "maximize"]
    unit: str
    task_kinds: tuple[str, ...] = ("spectrum", "modes", "scalar")
    description: str = ""
    needs: tuple[str, ...] = ()

    def __call__(
        self,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        mask: np.ndarray | None = None,
        task: Task | None = None,
        extras: Mapping[str, np.ndarray] | None = None,
    ) -> float:
        y_true, y_pred, mask = _prepare(y_true, y_pred, mask)
        if task is not None and task.kind not in self.task_kinds:
            raise ConfigError(
                f"metric {self.name!r} does not apply to {task.kind!r} tasks",
                f"it applies to: {', '.join(self.task_kinds)}",
            )
        if not self.needs:
            return float(self.fn(y_true, y_pred, mask, task))
        return float(self.fn(y_true, y_pred, mask, task, extras=self._needed(extras, len(y_true))))

    def _needed(self, extras: Mapping[str, np.ndarray] | None, n: int) -> dict[str, np.ndarray]:
        extras = extras or {}
        missing = [k for k in self.needs if k not in extras]
        if missing:
            raise ConfigError(
                f"metric {self.name!r} needs the per-material extra(s) {', '.join(missing)}, "
                f"which the data does not provide",
                "use a dataset that stores them in PhononData.extras, or drop this metric",
            )
        out = {k: np.asarray(extras[k]) for k in self.needs}
        for key, value in out.items():
            if len(value) != n:
                raise DataError(f"extra {key!r} has {len(value)} rows for {n} scored materials")
        return out

    def unit_for(self, task: Task | None) -> str:
        """Concrete unit string of this metric for ``task``."""
        if task is None:
            return self.unit
        return {
            "target": task.unit,
            "target^2": f"({task.unit})^2",
            "frequency": task.frequency_unit,
        }.get(self.unit, self.unit)

    def better(self, a: float, b: float) -> bool:
        """True if score ``a`` is better than ``b``."""
        return a < b if self.direction == "minimize" else a > b


def _prepare(y_true, y_pred, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.shape != y_pred.shape:
        raise DataError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}")
    mask = np.ones(y_true.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != y_true.shape:
        raise DataError(f"mask has shape {mask.shape}, expected {y_true.shape}")
    if not mask.any():
        raise DataError("the mask selects no entries to score")
    if not np.isfinite(y_pred[mask]).all():
        raise DataError("predictions contain NaN or inf on scored entries", "check the model output")
    return y_true, y_pred, mask


# ---------------------------------------------------------------------- functions
def _mae(y, p, m, task) -> float:
    return float(np.abs(y - p)[m].mean())


def _mse(y, p, m, task) -> float:
    return float(((y - p) ** 2)[m].mean())


def _rmse(y, p, m, task) -> float:
    return float(np.sqrt(_mse(y, p, m, task)))


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    ss_res = float(((y - p) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def _r2_aggregated(y, p, m, task) -> float:
    return _r2(y[m], p[m])


def _r2_per_sample(y, p, m, task) -> float:
    scores = [_r2(y[i, m[i]], p[i, m[i]]) for i in range(len(y)) if m[i].sum() >= 2]
    scores = [s for s in scores if np.isfinite(s)]
    return float(np.mean(scores)) if scores else float("nan")


def mean_frequencies(values: np.ndarray, mask: np.ndarray, task: Task | None) -> np.ndarray:
    """Mean frequency ω̄ per material, shape ``(n,)``.

    For spectra ω̄ = Σ g(ω) ω / Σ g(ω) on the task grid (negative g clipped to 0); for modes the
    mean over real modes; for scalars the value itself.
    """
    if task is not None and task.kind == "spectrum":
        grid = task.grid_array()
        g = np.clip(values, 0.0, None)
        norm = g.sum(axis=1)
        safe = np.where(norm > 0, norm, 1.0)
        return np.where(norm > 0, (g * grid).sum(axis=1) / safe, 0.0)
    counts = np.maximum(mask.sum(axis=1), 1)
    return (np.where(mask, values, 0.0)).sum(axis=1) / counts


def _mean_frequency_error(y, p, m, task) -> float:
    if task is None:
        raise ConfigError("mean_frequency_error needs the task (for the spectrum grid)")
    return float(np.abs(mean_frequencies(y, m, task) - mean_frequencies(p, m, task)).mean())


N_ACOUSTIC = 3


def optical_mask(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``m`` without each material's three acoustic modes: the 3 real entries of smallest ``|y_true|``.

    Args:
        y: ``(n, d)`` true Γ frequencies; m: ``(n, d)`` bool mask of real modes.
    Returns:
        ``(n, d)`` bool, True for real optical modes (none for cells of one atom).
    """
    magnitude = np.where(m, np.abs(y), np.inf)
    acoustic = np.argsort(magnitude, axis=1, kind="stable")[:, :N_ACOUSTIC]
    out = m.copy()
    np.put_along_axis(out, acoustic, False, axis=1)
    return out


def _mae_optical(y, p, m, task) -> float:
    optical = optical_mask(y, m)
    if not optical.any():
        raise DataError("no optical modes to score (every material has at most 3 modes)")
    return float(np.abs(y - p)[optical].mean())


MAE = Metric("mae", _mae, "minimize", TARGET_UNIT, description="mean absolute error over real entries")
MSE = Metric("mse", _mse, "minimize", "target^2", description="mean squared error over real entries")
RMSE = Metric("rmse", _rmse, "minimize", TARGET_UNIT, description="root mean squared error")
R2_AGGREGATED = Metric(
    "r2_aggregated", _r2_aggregated, "maximize", "1",
    description="R² over all real entries flattened (Nguyen et al. parity plots)",
)
R2_PER_SAMPLE = Metric(
    "r2_per_sample", _r2_per_sample, "maximize", "1", ("spectrum", "modes"),
    description="mean of per-material R² over real entries",
)
MAE_OPTICAL = Metric(
    "mae_optical", _mae_optical, "minimize", TARGET_UNIT, ("modes",),
    description="MAE over optical Γ modes only (each material's 3 modes nearest 0 excluded)",
)
MEAN_FREQUENCY_ERROR = Metric(
    "mean_frequency_error", _mean_frequency_error, "minimize", "frequency", ("spectrum", "modes"),
    description="MAE of the mean phonon frequency ω̄ (DoS-weighted for spectra, mode mean for modes)",
)


def score(
    names: list[str] | tuple[str, ...],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    mask: np.ndarray | None,
    task: Task,
    extras: Mapping[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Evaluate registered metrics by name; metrics not applicable to ``task.kind`` are skipped.

    ``extras`` are the per-material arrays of the scored rows (``PhononData.extras``); they reach
    only metrics that declare them in :attr:`Metric.needs`.
    """
    from phonbench.registry import METRICS

    out: dict[str, float] = {}
    for name in names:
        metric: Metric = METRICS.get(name)
        if task.kind in metric.task_kinds:
            if getattr(metric, "needs", ()):
                out[metric.name] = metric(y_true, y_pred, mask, task, extras=extras)
            else:
                out[metric.name] = metric(y_true, y_pred, mask, task)
    return out
