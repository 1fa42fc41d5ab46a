"""Metrics against hand-computed values; padding is never scored."""

from __future__ import annotations

import math

import numpy as np
import pytest

from phonbench.datasets.base import Task
from phonbench.exceptions import DataError
from phonbench.metrics import MAE, MEAN_FREQUENCY_ERROR, MSE, R2_AGGREGATED, R2_PER_SAMPLE, RMSE, score

Y = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])
P = np.array([[2.0, 2.0, 1.0], [4.0, 7.0, 100.0]])
M = np.array([[True, True, True], [True, True, False]])  # last entry is padding
MODES = Task("modes", 3, "THz")


def test_mae_mse_rmse_by_hand():
    # real errors: 1, 0, 2, 0, 2
    assert MAE(Y, P, M) == pytest.approx(5 / 5)
    assert MSE(Y, P, M) == pytest.approx(9 / 5)
    assert RMSE(Y, P, M) == pytest.approx(math.sqrt(9 / 5))


def test_padding_does_not_change_scores():
    p2 = P.copy()
    p2[1, 2] = -1e6
    for metric in (MAE, MSE, RMSE, R2_AGGREGATED, R2_PER_SAMPLE):
        assert metric(Y, P, M, MODES) == metric(Y, p2, M, MODES)


def test_r2_aggregated_by_hand():
    # real y: 1,2,3,4,5 mean 3 -> ss_tot 10; ss_res 9
    assert R2_AGGREGATED(Y, P, M) == pytest.approx(1 - 9 / 10)


def test_r2_per_sample_by_hand():
    # sample 0: y 1,2,3 (ss_tot 2), res 1+0+4=5 -> -1.5; sample 1: y 4,5 (ss_tot .5), res 0+4 -> -7
    assert R2_PER_SAMPLE(Y, P, M, MODES) == pytest.approx((-1.5 + -7.0) / 2)


def test_mean_frequency_error_modes_by_hand():
    # means: true (2, 4.5), pred (5/3, 5.5) -> |diffs| 1/3, 1 -> 2/3
    assert MEAN_FREQUENCY_ERROR(Y, P, M, MODES) == pytest.approx(2 / 3)


def test_mean_frequency_error_spectrum_uses_grid():
    task = Task("spectrum", 3, "a.u.", "dos", (0.0, 100.0, 200.0), "cm^-1")
    y = np.array([[0.0, 1.0, 0.0]])  # ω̄ = 100
    p = np.array([[0.0, 1.0, 1.0]])  # ω̄ = 150
    assert MEAN_FREQUENCY_ERROR(y, p, None, task) == pytest.approx(50.0)
    assert MEAN_FREQUENCY_ERROR.unit_for(task) == "cm^-1"


def test_perfect_prediction():
    assert R2_AGGREGATED(Y, Y, M) == 1.0 and MAE(Y, Y, M) == 0.0


def test_bad_shapes_and_nan_give_data_errors():
    with pytest.raises(DataError, match="shape"):
        MAE(Y, P[:, :2])
    bad = P.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        MAE(Y, bad, M)
    bad_pad = P.copy()
    bad_pad[1, 2] = np.nan  # NaN in padding is fine
    assert MAE(Y, bad_pad, M) == 1.0


def test_score_skips_metrics_that_do_not_apply():
    task = Task("scalar", 1, "cm^-1")
    out = score(["mae", "mean_frequency_error"], Y[:, :1], P[:, :1], None, task)
    assert set(out) == {"mae"} and out["mae"] == pytest.approx(0.5)


def test_metric_metadata():
    assert MSE.direction == "minimize" and R2_AGGREGATED.direction == "maximize"
    assert MAE.unit_for(MODES) == "THz" and MSE.unit_for(MODES) == "(THz)^2"
    assert MSE.better(1.0, 2.0) and R2_AGGREGATED.better(0.9, 0.5)


def test_optical_mae_leaves_out_the_three_modes_nearest_zero():
    from phonbench.metrics import MAE_OPTICAL, optical_mask

    task = Task("modes", 6, "THz", "gamma_frequencies")
    y = np.array([[9.0, 5.0, 0.1, -0.2, 0.0, 0.0], [0.0, 0.0, 0.0, 7.0, 8.0, 9.0]])
    m = np.array([[True, True, True, True, True, False], [True, True, True, True, True, True]])
    assert optical_mask(y, m).tolist() == [[True, True, False, False, False, False],
                                           [False, False, False, True, True, True]]
    p = y + np.array([[1.0, 1.0, 50.0, 50.0, 50.0, 50.0], [50.0, 50.0, 50.0, 2.0, 2.0, 2.0]])
    assert MAE_OPTICAL(y, p, m, task) == pytest.approx((1 + 1 + 2 + 2 + 2) / 5)
    with pytest.raises(DataError, match="no optical modes"):
        MAE_OPTICAL(y[:, :3], p[:, :3], np.ones((2, 3), bool), Task("modes", 3, "THz"))
