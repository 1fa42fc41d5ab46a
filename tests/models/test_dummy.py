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


class _KindAwareDummy(DummyModel):
    """A dummy with a parameter whose default depends on the task kind (Model.task_defaults)."""

    name = "kind_aware_dummy"
    default_params = {"flavour": "plain", "depth": 1}
    task_defaults = {"scalar": {"flavour": "scalar-tuned"}, "modes": {"flavour": "modes-tuned", "depth": 3}}


def test_task_defaults_apply_to_unset_params_only(tmp_path):
    model = _KindAwareDummy()
    assert model.params == {"flavour": "plain", "depth": 1}
    model.fit(make_data("scalar"))
    assert model.params == {"flavour": "scalar-tuned", "depth": 1}
    model.fit(make_data("modes"))  # refitting on another kind takes that kind's defaults
    assert model.params == {"flavour": "modes-tuned", "depth": 3}
    model.fit(make_data("spectrum"))  # no overrides for spectra: back to default_params
    assert model.params == {"flavour": "plain", "depth": 1}
    given = _KindAwareDummy({"flavour": "mine"}).fit(make_data("modes"))
    assert given.params == {"flavour": "mine", "depth": 3}  # a passed value always wins
    model.fit(make_data("scalar")).save(tmp_path)
    assert _KindAwareDummy.load(tmp_path).params == {"flavour": "scalar-tuned", "depth": 1}


def test_builtin_task_defaults_name_known_params():
    from phonbench.registry import MODELS

    for name, cls in MODELS.items():
        for kind, overrides in cls.task_defaults.items():
            assert kind in cls.task_kinds, (name, kind)
            assert set(overrides) <= set(cls.default_params), (name, kind)
