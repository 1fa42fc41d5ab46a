"""Contract tests of the ``cnn3d`` voxel CNN (Chen et al. 2021 baseline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_data
from pymatgen.core import Lattice, Structure

from phonbench.datasets.base import PhononData
from phonbench.exceptions import ConfigError, DataError, ModelError
from phonbench.metrics import score
from phonbench.models.cnn3d import CNN3DModel, build_cnn3d
from phonbench.registry import MODELS

FAST = {"n_grid": 16, "epochs": 2, "batch_size": 8}
_DATA: dict[str, PhononData] = {}


def data_of(kind: str) -> PhononData:
    """``conftest.make_data`` memoised per module (building the crystals costs ~1 s)."""
    if kind not in _DATA:
        _DATA[kind] = make_data(kind)
    return _DATA[kind]


@pytest.fixture(params=["spectrum", "modes", "scalar"])
def kind_data(request) -> PhononData:
    return data_of(request.param)


def test_registered():
    assert MODELS.get("cnn3d") is CNN3DModel


def test_paper_architecture_shapes_and_size():
    """32³ → 16³ → 8³ → 4³ → 2³ with channels 1/2/4/8: 64 flattened features."""
    net = build_cnn3d(51)
    x = torch.zeros(3, 2, 32, 32, 32)
    sizes = []
    h = x
    for layer in net.convs:
        h = layer(h)
        if isinstance(layer, torch.nn.Conv3d):
            sizes.append(tuple(h.shape[1:]))
    assert sizes == [(1, 16, 16, 16), (2, 8, 8, 8), (4, 4, 4, 4), (8, 2, 2, 2)]
    assert net(x).shape == (3, 51)
    n_params = sum(p.numel() for p in net.parameters())
    conv = (2 * 125 + 1) + (1 * 27 * 2 + 2) + (2 * 27 * 4 + 4) + (4 * 27 * 8 + 8)
    assert n_params == conv + (64 * 64 + 64) + (64 * 51 + 51)
    assert build_cnn3d(1, width=2)(x).shape == (3, 1)


def test_output_shapes_for_every_task_kind(kind_data):
    model = CNN3DModel(FAST, seed=0, device="cpu").fit(kind_data, kind_data)
    pred = model.predict(kind_data)
    assert pred.shape == (len(kind_data), kind_data.task.n_outputs)
    assert np.isfinite(pred).all()
    assert len(model.history) == 2 and "valid_loss" in model.history[0]
    if kind_data.task.kind == "spectrum":  # sigmoid head
        assert (pred > 0).all() and (pred < 1).all()


def test_relu_max_head_is_max_normalised():
    data = data_of("spectrum")
    pred = CNN3DModel({**FAST, "spectrum_head": "relu_max"}, seed=0, device="cpu").fit(data).predict(data)
    assert pred.min() >= 0.0
    np.testing.assert_allclose(pred.max(axis=1), 1.0, rtol=1e-5)


def test_padding_predictions_never_affect_the_score():
    data = data_of("modes")
    pred = CNN3DModel(FAST, seed=0, device="cpu").fit(data).predict(data)
    names = ["mae", "r2_aggregated", "mean_frequency_error"]
    before = score(names, data.targets, pred, data.mask, data.task)
    assert score(names, data.targets, np.where(data.mask, pred, -1e6), data.mask, data.task) == before


def test_deterministic_with_seed():
    data = data_of("scalar")
    a = CNN3DModel(FAST, seed=3, device="cpu").fit(data).predict(data)
    b = CNN3DModel(FAST, seed=3, device="cpu").fit(data).predict(data)
    c = CNN3DModel(FAST, seed=4, device="cpu").fit(data).predict(data)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_save_load_roundtrip(tmp_path):
    data = data_of("modes")
    model = CNN3DModel(FAST, seed=1, device="cpu").fit(data)
    model.save(tmp_path)
    loaded = CNN3DModel.load(tmp_path, device="cpu")
    assert loaded.config_ == model.config_ and loaded.n_parameters() == model.n_parameters()
    np.testing.assert_array_equal(loaded.predict(data), model.predict(data))


def test_augmentation_rolls_grids_with_fixed_shifts():
    data = data_of("scalar")
    model = CNN3DModel({**FAST, "augment_shifts": 4}, seed=0)
    items = model.featurize(data)[:4]
    seen: dict[int, set[bytes]] = {i: set() for i in range(4)}
    rng = np.random.default_rng(0)
    for _ in range(40):
        for (grid, row), (orig, _) in zip(model.augment(items, rng), items):
            # a roll keeps every voxel value: same sorted content
            assert torch.equal(grid.flatten().sort().values, orig.flatten().sort().values)
            seen[row].add(grid.numpy().tobytes())
    assert all(2 <= len(v) <= 5 for v in seen.values())  # original + at most 4 fixed shifts
    off = CNN3DModel({**FAST, "augment_shifts": 0}, seed=0)
    assert off.augment(items, rng) is items


def test_channel_standardisation_config():
    data = data_of("scalar")
    model = CNN3DModel(FAST, seed=0)
    items = model.featurize(data)
    config = model.infer_config(data.task, items)
    grids = torch.stack([g for g, _ in items]).double()
    np.testing.assert_allclose(config["channel_mean"], grids.mean(dim=(0, 2, 3, 4)).numpy(), rtol=1e-9)
    np.testing.assert_allclose(
        config["channel_std"], grids.transpose(0, 1).reshape(2, -1).std(dim=1, unbiased=False).numpy(), rtol=1e-6
    )


def test_bad_inputs():
    with pytest.raises(ConfigError, match="n_grid"):
        CNN3DModel({"n_grid": 20})
    with pytest.raises(ConfigError, match="spectrum_head"):
        CNN3DModel({"spectrum_head": "softmax"})
    with pytest.raises(ConfigError, match="padding_mode"):
        CNN3DModel({"padding_mode": "reflect"})
    with pytest.raises(ConfigError):
        CNN3DModel({"augment_shifts": -1})
    with pytest.raises(ModelError):
        CNN3DModel(FAST).predict(data_of("scalar"))
    data = data_of("scalar")
    structures = list(data.structures)
    structures[0] = Structure(Lattice.cubic(3.0), [], [])
    broken = PhononData(data.ids, structures, data.targets, data.task)
    with pytest.raises(DataError, match="empty"):
        CNN3DModel(FAST, device="cpu").fit(broken)
