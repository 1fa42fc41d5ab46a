"""wasserstein and heat_capacity_error metrics, and the Metric.needs / extras contract."""

from __future__ import annotations

import numpy as np
import pytest

from phonbench.datasets.base import Task
from phonbench.exceptions import ConfigError
from phonbench.metrics import MAE, Metric, score
from phonbench.physics import R_GAS, heat_capacity, physical_dos
from phonbench.physics_metrics import (
    HEAT_CAPACITY_ERROR,
    WASSERSTEIN,
    heat_capacity_errors,
    make_heat_capacity_error,
)

GRID = np.linspace(0.0, 1000.0, 51)
TASK_CM1 = Task("spectrum", 51, "a.u.", "dos", tuple(GRID), "cm^-1")
TASK_THZ = Task("spectrum", 51, "a.u.", "dos", tuple(GRID / 33.35641), "THz")


def _peaks(centres):
    return np.stack([np.exp(-0.5 * ((GRID - c) / 30.0) ** 2) for c in centres])


def test_wasserstein_by_hand_and_thz_grid():
    y = _peaks([300.0, 400.0])
    p = _peaks([350.0, 400.0]) * 3.0  # scale does not matter, shift of 50 on the first row
    assert WASSERSTEIN(y, p, None, TASK_CM1) == pytest.approx(25.0, rel=1e-6)
    assert WASSERSTEIN(y, p, None, TASK_THZ) == pytest.approx(25.0, rel=1e-6)  # still in cm^-1
    assert WASSERSTEIN(y, y, None, TASK_CM1) == pytest.approx(0.0, abs=1e-9)
    assert WASSERSTEIN.unit_for(TASK_CM1) == "cm^-1" and WASSERSTEIN.direction == "minimize"


def test_wasserstein_needs_task_and_spectrum():
    y = _peaks([300.0])
    with pytest.raises(ConfigError, match="grid"):
        WASSERSTEIN(y, y, None, None)
    with pytest.raises(ConfigError, match="does not apply"):
        WASSERSTEIN(y[:, :1], y[:, :1], None, Task("scalar", 1, "cm^-1"))


def test_heat_capacity_error_by_hand():
    y = _peaks([200.0, 600.0])
    p = _peaks([250.0, 600.0])
    n_atoms = np.array([2, 5])
    cv_true = heat_capacity(GRID, physical_dos(y, n_atoms, GRID), 300.0)[:, 0]
    cv_pred = heat_capacity(GRID, physical_dos(p, n_atoms, GRID), 300.0)[:, 0]
    assert np.all(cv_true < 3 * n_atoms * R_GAS) and cv_true[0] > 0.9 * 6 * R_GAS
    expected = np.abs(cv_true - cv_pred).mean()
    assert expected > 0.1
    value = HEAT_CAPACITY_ERROR(y, p * 10.0, None, TASK_CM1, extras={"n_atoms": n_atoms, "other": [1, 2]})
    assert value == pytest.approx(expected)
    assert HEAT_CAPACITY_ERROR(y, y, None, TASK_CM1, extras={"n_atoms": n_atoms}) == pytest.approx(0.0, abs=1e-12)
    # the THz grid gives the same physical answer
    assert HEAT_CAPACITY_ERROR(y, p, None, TASK_THZ, extras={"n_atoms": n_atoms}) == pytest.approx(expected)
    np.testing.assert_allclose(heat_capacity_errors(y, p, n_atoms, GRID), np.abs(cv_true - cv_pred))


def test_heat_capacity_error_scales_with_atoms_and_other_temperatures():
    y, p = _peaks([200.0]), _peaks([300.0])
    one = HEAT_CAPACITY_ERROR(y, p, None, TASK_CM1, extras={"n_atoms": [1]})
    four = HEAT_CAPACITY_ERROR(y, p, None, TASK_CM1, extras={"n_atoms": [4]})
    assert four == pytest.approx(4 * one)
    hot = make_heat_capacity_error(5000.0)
    assert hot.name == "heat_capacity_error_5000k"
    assert hot(y, p, None, TASK_CM1, extras={"n_atoms": [1]}) < 0.01 * one  # both near 3R when hot


def test_missing_n_atoms_is_a_config_error():
    y = _peaks([200.0])
    with pytest.raises(ConfigError, match="n_atoms"):
        HEAT_CAPACITY_ERROR(y, y, None, TASK_CM1)
    with pytest.raises(ConfigError, match="n_atoms"):
        HEAT_CAPACITY_ERROR(y, y, None, TASK_CM1, extras={"dos_norm": [1.0]})


def test_score_passes_extras_only_to_metrics_that_need_them(monkeypatch):
    from phonbench import registry

    seen = {}

    def needs_fn(y, p, m, task, extras=None):
        seen.update(extras)
        return float(extras["n_atoms"].sum())

    custom = Metric("needs_atoms", needs_fn, "minimize", "1", needs=("n_atoms",))
    lookup = {"needs_atoms": custom, "mae": MAE}
    monkeypatch.setattr(registry.METRICS, "get", lambda name: lookup[name])
    y = _peaks([200.0, 300.0])
    out = score(["mae", "needs_atoms"], y, y, None, TASK_CM1, extras={"n_atoms": np.array([2, 3]), "x": [0, 0]})
    assert out == {"mae": 0.0, "needs_atoms": 5.0}
    assert set(seen) == {"n_atoms"}
    with pytest.raises(ConfigError, match="needs_atoms"):
        score(["needs_atoms"], y, y, None, TASK_CM1)


def test_metrics_on_dummy_predictions_of_tiny_data():
    from phonbench.datasets.base import PhononData
    from phonbench.models.dummy import DummyModel

    rng = np.random.default_rng(0)
    y = rng.random((6, 51))
    data = PhononData([f"m{i}" for i in range(6)], [None] * 6, y / y.max(1, keepdims=True), TASK_CM1,
                      extras={"n_atoms": np.array([2, 2, 3, 5, 8, 1])})
    pred = DummyModel().fit(data).predict(data)
    w = WASSERSTEIN(data.targets, pred, None, data.task)
    c = HEAT_CAPACITY_ERROR(data.targets, pred, None, data.task, extras=data.extras)
    assert 0.0 < w < 1000.0 and 0.0 < c < 3 * data.extras["n_atoms"].max() * R_GAS
