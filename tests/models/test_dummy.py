"""The dummy baseline: masked per-output training mean."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_data

from phonbench.exceptions import ConfigError, ModelError
from phonbench.models.dummy import DummyModel


def test_masked_mean_ignores_padding():
    data = make_data("modes")
    model = DummyModel().fit(data)
    mask = data.mask
    col = int(np.argmin(mask.all(axis=0)))  # first column that is padding for some materials
    expected = data.targets[mask[:, col], col].mean()
    assert model.predict(data)[0, col] == pytest.approx(expected)
    assert model.predict(data).shape == data.targets.shape


def test_save_load_round_trip(tmp_path, tiny_data):
    model = DummyModel(seed=4).fit(tiny_data)
    model.save(tmp_path)
    again = DummyModel.load(tmp_path)
    np.testing.assert_array_equal(again.predict(tiny_data), model.predict(tiny_data))
    assert again.task == tiny_data.task and again.seed == 4


def test_errors():
    with pytest.raises(ModelError, match="not fitted"):
        DummyModel().predict(make_data("scalar"))
    with pytest.raises(ConfigError, match="unknown parameter"):
        DummyModel({"depth": 3})
    with pytest.raises(ModelError, match="empty training set"):
        DummyModel().fit(make_data("scalar").subset([]))
