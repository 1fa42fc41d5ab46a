"""Statistics for leaderboards: mean ± std, paired tests, paired bootstrap, per-material errors, tiers.

Two ways to decide whether a model is statistically tied with a better one:

* :func:`paired_test` — the runs pair up (same data content hash, split, fold and seed): a two-sided
  paired t-test on the per-run primary metric (``scipy.stats.ttest_rel``); tied if ``p ≥ alpha``.
* :func:`paired_bootstrap` — otherwise, over the test materials both models predicted: resample the
  per-material error difference with replacement (default 1000 times, fixed seed) and call the
  models tied when the 95 % percentile interval of the mean difference contains 0.

:func:`assign_tiers` turns either test into tiers: tier 1 is the best row plus every row tied with
it; the best remaining row starts tier 2, and so on. No multiple-comparison correction is applied.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from phonbench.datasets.base import Task

#: resamples of the paired bootstrap
N_RESAMPLES = 1000
#: significance level of the tie tests (two-sided)
ALPHA = 0.05


@dataclass(frozen=True)
class TieTest:
    """Outcome of comparing a candidate with a reference row (difference = candidate − reference).

    Attributes:
        method: ``"paired_t"``, ``"bootstrap"`` or ``"none"`` (no test possible).
        n: number of pairs (runs for ``paired_t``, materials for ``bootstrap``).
        mean_diff: mean difference of the compared quantity (metric for ``paired_t``, per-material
            error for ``bootstrap``; in the metric's unit).
        tied: whether the difference is not significant.
        p_value: two-sided p-value (``paired_t`` only).
        ci_low, ci_high: percentile confidence interval of ``mean_diff`` (``bootstrap`` only).
    """

    method: str
    n: int
    mean_diff: float
    tied: bool
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        """Short human description, e.g. ``paired t, n=5, p=0.41``."""
        if self.method == "paired_t":
            return f"paired t, n={self.n}, p={_fmt(self.p_value)}"
        if self.method == "bootstrap":
            return f"bootstrap, n={self.n}, 95% CI [{_fmt(self.ci_low)}, {_fmt(self.ci_high)}]"
        return "no paired data"


def _fmt(x: float | None) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.3g}"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value) of finite ``values``.

    Returns ``(nan, nan)`` when no value is finite.
    """
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def paired_test(candidate: Sequence[float], reference: Sequence[float], alpha: float = ALPHA) -> TieTest:
    """Two-sided paired t-test of per-run scores (same order = same pairing), shape ``(n,)`` each.

    Identical scores give ``p = 1`` (tied); a constant non-zero difference (relative spread below
    1e-9) gives ``p = 0``.

    Raises:
        ValueError: lengths differ or fewer than 2 pairs.
    """
    a = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"paired_test needs two equal-length 1-d arrays of >= 2 values, got {a.shape}, {b.shape}")
    d = a - b
    mean = float(d.mean())
    if np.allclose(d, 0.0, rtol=0.0, atol=1e-12 * max(1.0, float(np.abs(b).max()))):
        p = 1.0
    elif float(d.std(ddof=1)) <= 1e-9 * abs(mean):  # constant shift (up to rounding): no spread to test
        p = 0.0
    else:
        from scipy import stats

        p = float(stats.ttest_rel(a, b).pvalue)
    return TieTest("paired_t", int(a.size), mean, bool(p >= alpha), p_value=p)


def paired_bootstrap(
    err_candidate: Sequence[float],
    err_reference: Sequence[float],
    n_resamples: int = N_RESAMPLES,
    confidence: float = 1.0 - ALPHA,
    seed: int = 0,
) -> TieTest:
    """Paired bootstrap of the mean per-material error difference (candidate − reference).

    Args:
        err_candidate, err_reference: per-material errors on the same materials in the same
            order, shape ``(n,)``, oriented so that lower is better (see :func:`per_material_error`).
        n_resamples: bootstrap resamples.
        confidence: level of the percentile interval.
        seed: seed of the resampling (fixed, so leaderboards are reproducible).

    Raises:
        ValueError: lengths differ or no material.
    """
    a = np.asarray(err_candidate, dtype=np.float64)
    b = np.asarray(err_reference, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired_bootstrap needs two equal-length non-empty 1-d arrays, got {a.shape}, {b.shape}")
    d = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_resamples, d.size))
    means = d[idx].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = (float(x) for x in np.percentile(means, [tail, 100.0 - tail]))
    return TieTest("bootstrap", int(d.size), float(d.mean()), bool(lo <= 0.0 <= hi), ci_low=lo, ci_high=hi)


def per_material_error(
    metric: str, y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None, task: Task | None
) -> np.ndarray:
    """Per-material error matching ``metric``, oriented so that lower is better, shape ``(n,)``.

    ``mae`` → mean |error| over real entries; ``mse``, ``rmse``, ``r2_aggregated`` → mean squared
    error (R² over a fixed set of true values falls as the squared error grows);
    ``r2_per_sample`` → minus the material's R²; ``mean_frequency_error`` → |ω̄_true − ω̄_pred|.
    Any other (plugin) metric is evaluated on each material alone and negated if it is maximised;
    metrics that need per-material extras (``Metric.needs``) fall back to the squared error.
    Materials where the error is undefined are NaN.

    Args:
        y_true, y_pred: ``(n, d)`` arrays in the task's unit.
        mask: ``(n, d)`` bool, True = real entry; ``None`` = all real.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.ndim == 1:
        y, p = y[:, None], p[:, None]
    m = np.ones(y.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    counts = m.sum(axis=1)
    safe = np.maximum(counts, 1)
    err = np.where(m, y - p, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "mae":
            out = np.abs(err).sum(axis=1) / safe
        elif metric in ("mse", "rmse", "r2_aggregated"):
            out = (err**2).sum(axis=1) / safe
        elif metric == "r2_per_sample":
            mean = np.where(m, y, 0.0).sum(axis=1, keepdims=True) / safe[:, None]
            ss_tot = (np.where(m, y - mean, 0.0) ** 2).sum(axis=1)
            out = np.where((ss_tot > 0) & (counts >= 2), (err**2).sum(axis=1) / ss_tot - 1.0, np.nan)
        elif metric == "mean_frequency_error":
            from phonbench.metrics import mean_frequencies

            out = np.abs(mean_frequencies(y, m, task) - mean_frequencies(p, m, task))
        else:
            out = _generic_error(metric, y, p, m, task)
    return np.where(counts > 0, out, np.nan)


def _generic_error(metric: str, y: np.ndarray, p: np.ndarray, m: np.ndarray, task: Task | None) -> np.ndarray:
    from phonbench.registry import METRICS

    fn = METRICS.get(metric)
    if getattr(fn, "needs", ()):  # needs per-material extras (e.g. n_atoms) that predictions lack
        return (np.where(m, y - p, 0.0) ** 2).sum(axis=1) / np.maximum(m.sum(axis=1), 1)
    sign = -1.0 if fn.direction == "maximize" else 1.0
    out = np.full(len(y), np.nan)
    for i in range(len(y)):
        try:
            out[i] = sign * fn(y[i : i + 1], p[i : i + 1], m[i : i + 1], task)
        except Exception:  # undefined on one material (e.g. no real entry)
            continue
    return out


def assign_tiers(order: Sequence[int], tied: Callable[[int, int], bool]) -> dict[int, int]:
    """Tiers of rows already sorted best first.

    Args:
        order: row indices, best first (rows without a score left out).
        tied: ``tied(candidate, head)`` — whether ``candidate`` is statistically tied with ``head``.

    Returns:
        ``{row: tier}``: the head of a tier is the best row not yet placed; every later unplaced
        row tied with the head joins its tier. Tiers count from 1.
    """
    tiers: dict[int, int] = {}
    tier = 0
    for head in order:
        if head in tiers:
            continue
        tier += 1
        tiers[head] = tier
        for other in order:
            if other not in tiers and tied(other, head):
                tiers[other] = tier
    return tiers
