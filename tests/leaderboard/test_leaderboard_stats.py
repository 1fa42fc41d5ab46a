"""Leaderboard statistics on constructed cases: clearly different → separate tiers; identical → tied."""

from __future__ import annotations

import math

import numpy as np
import pytest

from phonbench.datasets.base import Task
from phonbench.leaderboard.stats import (
    TieTest,
    assign_tiers,
    mean_std,
    paired_bootstrap,
    paired_test,
    per_material_error,
)


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)  # sample std (ddof=1)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert mean_std([1.0, float("nan"), 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    mean, std = mean_std([float("nan")])
    assert math.isnan(mean) and math.isnan(std)


def test_paired_t_separates_clearly_different_scores():
    rng = np.random.default_rng(0)
    best = 0.10 + 0.01 * rng.random(5)
    worse = best + 0.05 + 0.002 * rng.normal(size=5)
    test = paired_test(worse, best)
    assert test.method == "paired_t" and test.n == 5 and not test.tied
    assert test.p_value < 1e-4 and test.mean_diff == pytest.approx(np.mean(worse - best))
    # scipy agrees
    from scipy import stats

    assert test.p_value == pytest.approx(stats.ttest_rel(worse, best).pvalue)


def test_paired_t_ties_identical_and_noisy_equal_scores():
    a = np.array([0.3, 0.2, 0.25, 0.4])
    same = paired_test(a, a.copy())
    assert same.tied and same.p_value == 1.0 and same.mean_diff == 0.0
    jitter = a + np.array([0.01, -0.012, 0.008, -0.009])  # differences average ~0
    assert paired_test(jitter, a).tied
    constant = paired_test(a + 0.1, a)  # zero-variance non-zero difference: certainly different
    assert not constant.tied and constant.p_value == 0.0
    with pytest.raises(ValueError):
        paired_test([1.0], [2.0])


def test_paired_bootstrap_on_constructed_errors():
    rng = np.random.default_rng(1)
    best = rng.random(200)
    different = paired_bootstrap(best + 0.2 + 0.05 * rng.normal(size=200), best)
    assert different.method == "bootstrap" and different.n == 200 and not different.tied
    assert 0.18 < different.ci_low < different.mean_diff < different.ci_high < 0.22
    identical = paired_bootstrap(best, best)
    assert identical.tied and identical.ci_low == identical.ci_high == 0.0
    noise = rng.normal(scale=0.3, size=200)
    noisy_equal = paired_bootstrap(best + noise - noise.mean(), best)  # same mean error
    assert noisy_equal.tied and noisy_equal.ci_low < 0 < noisy_equal.ci_high
    # reproducible: fixed seed
    assert paired_bootstrap(best + noise, best) == paired_bootstrap(best + noise, best)
    with pytest.raises(ValueError):
        paired_bootstrap([], [])


def test_per_material_error_matches_metrics_and_respects_mask():
    y = np.array([[1.0, 2.0, 0.0], [3.0, 1.0, 2.0]])
    p = np.array([[2.0, 2.0, 9.0], [1.0, 1.0, 2.0]])
    mask = np.array([[True, True, False], [True, True, True]])
    np.testing.assert_allclose(per_material_error("mae", y, p, mask, None), [0.5, 2 / 3])
    np.testing.assert_allclose(per_material_error("mse", y, p, mask, None), [0.5, 4 / 3])
    np.testing.assert_allclose(per_material_error("r2_aggregated", y, p, mask, None), [0.5, 4 / 3])
    # r2_per_sample: minus the per-material R² (lower is better); material 0: R² = 1 - 1/0.5 = -1
    np.testing.assert_allclose(per_material_error("r2_per_sample", y, p, mask, None), [1.0, -(1 - 4 / 2)])
    task = Task("modes", 3, "THz")
    np.testing.assert_allclose(per_material_error("mean_frequency_error", y, p, mask, task), [0.5, 2 / 3])
    # a material without real entries has no error
    assert np.isnan(per_material_error("mae", y, p, np.zeros_like(mask), None)).all()


def test_assign_tiers_chains_heads():
    # rows 0..4 best first; 1 tied with 0; 2 not tied with 0 but 3 tied with 2; 4 alone
    ties = {(1, 0), (3, 2), (3, 0)}
    tiers = assign_tiers([0, 1, 2, 3, 4], lambda c, h: (c, h) in ties)
    assert tiers == {0: 1, 1: 1, 3: 1, 2: 2, 4: 3}
    assert assign_tiers([], lambda c, h: True) == {}


def test_tie_test_description():
    assert TieTest("paired_t", 5, 0.1, False, p_value=0.0123).describe() == "paired t, n=5, p=0.0123"
    assert TieTest("bootstrap", 8, 0.0, True, ci_low=-0.01, ci_high=0.02).describe() == (
        "bootstrap, n=8, 95% CI [-0.01, 0.02]")
    assert TieTest("none", 0, math.nan, False).describe() == "no paired data"
