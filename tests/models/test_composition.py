"""Contract tests of the ``composition`` model (Magpie features + scikit-learn)."""

from __future__ import annotations

import operator
import zipfile

import numpy as np
import optuna
import pytest
from conftest import make_data
from pymatgen.core import Lattice, Structure

from phonbench.datasets.base import PhononData
from phonbench.exceptions import ConfigError, DataError, ModelError
from phonbench.metrics import score
from phonbench.models.composition import ESTIMATORS, CompositionModel
from phonbench.registry import MODELS

FAST = {"n_estimators": 10, "n_jobs": 1}
_DATA: dict[tuple[str, int], PhononData] = {}


def data_of(kind: str, n_repeat: int = 2) -> PhononData:
    """``conftest.make_data`` memoised per module (building the crystals costs ~1 s)."""
    if (kind, n_repeat) not in _DATA:
        _DATA[kind, n_repeat] = make_data(kind, n_repeat=n_repeat)
    return _DATA[kind, n_repeat]


@pytest.fixture(params=["spectrum", "modes", "scalar"])
def kind_data(request) -> PhononData:
    return data_of(request.param)


def test_registered():
    assert MODELS.get("composition") is CompositionModel


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_output_shapes_for_every_task_kind(kind_data, estimator):
    params = {**FAST, "estimator": estimator, "n_neighbors": 3}
    pred = CompositionModel(params, seed=0).fit(kind_data).predict(kind_data)
    assert pred.shape == (len(kind_data), kind_data.task.n_outputs)
    assert pred.dtype == np.float64 and np.isfinite(pred).all()


def test_forest_reproduces_training_targets_of_distinct_compositions():
    data = data_of("scalar", 1)  # 8 distinct compositions, one row each
    model = CompositionModel({"n_estimators": 50, "n_jobs": 1, "max_features": 1.0}, seed=0).fit(data)
    pred = model.predict(data)
    # bootstrap trees memorise most rows: far better than the spread of the targets
    assert np.abs(pred - data.targets).mean() < 0.5 * np.abs(data.targets - data.targets.mean()).mean()


def test_padding_predictions_never_affect_the_score():
    data = data_of("modes")
    model = CompositionModel(FAST, seed=0).fit(data)
    pred = model.predict(data)
    names = ["mae", "rmse", "r2_aggregated", "mean_frequency_error"]
    before = score(names, data.targets, pred, data.mask, data.task)
    garbage = np.where(data.mask, pred, 1e6)
    assert score(names, data.targets, garbage, data.mask, data.task) == before
    assert (~data.mask).any()


def test_deterministic_with_seed():
    data = data_of("spectrum")
    a = CompositionModel(FAST, seed=7).fit(data).predict(data)
    b = CompositionModel(FAST, seed=7).fit(data).predict(data)
    c = CompositionModel(FAST, seed=8).fit(data).predict(data)
    np.testing.assert_array_equal(a, b)
    # threads do not change the trees, and predictions are summed on one thread: bit-identical
    two = CompositionModel({**FAST, "n_jobs": 2}, seed=7).fit(data)
    np.testing.assert_array_equal(two.predict(data), a)
    np.testing.assert_array_equal(two.predict(data), two.predict(data))
    assert not np.array_equal(a, c)


def test_same_composition_same_prediction():
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    big = nacl.copy()
    big.scale_lattice(nacl.volume * 1.3)
    data = data_of("scalar")
    model = CompositionModel(FAST, seed=0).fit(data)
    task = data.task
    probe = PhononData(["a", "b"], [nacl, big.get_primitive_structure()], np.zeros((2, 1)), task)
    pred = model.predict(probe)
    assert pred[0, 0] == pred[1, 0]
    # with cell descriptors switched on the two cells are told apart
    model2 = CompositionModel({**FAST, "structure_features": True}, seed=0).fit(data)
    assert model2.predict(probe).shape == (2, 1)
    assert model2.n_features_ == model.n_features_ + 3


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_save_load_roundtrip(tmp_path, estimator):
    data = data_of("modes")
    model = CompositionModel({**FAST, "estimator": estimator, "n_neighbors": 3}, seed=1).fit(data)
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.json").exists()
    loaded = CompositionModel.load(tmp_path / "m")
    assert loaded.params == model.params and loaded.task == model.task
    np.testing.assert_array_equal(loaded.predict(data), model.predict(data))


def test_load_refuses_untrusted_types(tmp_path):
    import skops.io as sio
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    data = data_of("scalar")
    model = CompositionModel({**FAST, "estimator": "ridge"}, seed=0).fit(data)
    model.save(tmp_path)
    evil = make_pipeline(FunctionTransformer(func=operator.neg), Ridge()).fit(np.ones((4, 2)), np.arange(4.0))
    sio.dump(evil, tmp_path / "estimator.skops", compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ModelError, match="does not trust"):
        CompositionModel.load(tmp_path)
    (tmp_path / "estimator.skops").write_bytes(b"not a zip")
    with pytest.raises(ModelError):
        CompositionModel.load(tmp_path)


def test_bad_inputs():
    with pytest.raises(ConfigError, match="estimator"):
        CompositionModel({"estimator": "svm"})
    with pytest.raises(ConfigError):
        CompositionModel({"n_trees": 3})
    with pytest.raises(ConfigError):
        CompositionModel({"max_features": 0.0})
    with pytest.raises(ModelError):
        CompositionModel().predict(data_of("scalar"))
    data = data_of("scalar")
    structures = list(data.structures)
    structures[3] = Structure(Lattice.cubic(3.0), [], [])
    broken = PhononData(data.ids, structures, data.targets, data.task)
    with pytest.raises(DataError, match="empty"):
        CompositionModel(FAST).fit(broken)
    with pytest.raises(ConfigError, match="n_neighbors"):
        CompositionModel({"estimator": "knn", "n_neighbors": 50}).fit(data)


def test_search_space_builds_valid_models():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        params = CompositionModel.search_space(trial)
        assert set(params) <= set(CompositionModel.default_params)
        CompositionModel(params)  # validates
        seen.add(params["estimator"])
        study.tell(trial, 0.0)
    assert len(seen) >= 3


def test_n_parameters():
    data = data_of("scalar")
    assert CompositionModel().n_parameters() is None
    ridge = CompositionModel({"estimator": "ridge"}).fit(data)
    assert ridge.n_parameters() == ridge.n_features_ + 1
    assert CompositionModel(FAST).fit(data).n_parameters() > 10


def test_quantile_resampling_roundtrip():
    from phonbench.models.composition import modes_to_quantiles, quantiles_to_modes

    values = np.array([[9.0, 6.0, 3.0, 0.0, 0.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.5], [0.0] * 6])
    counts = np.array([3, 6, 0])
    q = modes_to_quantiles(values, counts, 6)
    # row 0: modes at positions 1/6, 3/6, 5/6 read at 1/12, 3/12, ..., 11/12 (flat beyond the ends)
    np.testing.assert_allclose(q[0], [9.0, 8.25, 6.75, 5.25, 3.75, 3.0])
    np.testing.assert_allclose(q[1], values[1])  # 6 modes on a 6-point grid: unchanged
    np.testing.assert_array_equal(q[2], 0.0)
    back = quantiles_to_modes(q, counts, 6)
    np.testing.assert_allclose(back[1], values[1])
    np.testing.assert_array_equal(back[:, 3:][[0, 2]], 0.0)  # padding stays 0
    # on a fine grid the round trip is exact up to the flat end cells
    fine = quantiles_to_modes(modes_to_quantiles(values, counts, 120), counts, 6)
    np.testing.assert_allclose(fine[0, :3], [9.0, 6.0, 3.0], atol=0.05)


def test_modes_targets_quantile_and_padded():
    data = data_of("modes")
    quant = CompositionModel(FAST, seed=0).fit(data).predict(data)
    padded = CompositionModel({**FAST, "modes_target": "padded"}, seed=0).fit(data).predict(data)
    for pred in (quant, padded):
        assert pred.shape == data.targets.shape
    # the quantile form predicts exactly 3 x n_sites modes and zero padding
    np.testing.assert_array_equal(quant[~data.mask], 0.0)
    assert (quant[:, 0] > 0).all()  # every material's highest mode is predicted (targets end in 3 zeros)
    assert not np.allclose(quant, padded)
    # a mask that does not match the structures' atom counts is refused for the quantile form
    mask = data.mask.copy()
    mask[0, 0] = False
    odd = PhononData(data.ids, data.structures, data.targets, data.task, mask=mask)
    with pytest.raises(ModelError, match="modes_target"):
        CompositionModel(FAST).fit(odd)
    assert CompositionModel({**FAST, "modes_target": "padded"}).fit(odd).predict(odd).shape == mask.shape
    with pytest.raises(ConfigError, match="modes_target"):
        CompositionModel({"modes_target": "sorted"})
