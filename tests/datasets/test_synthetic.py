"""The ``synthetic`` dataset: cards, shapes, determinism, physics of the labels, options."""

from __future__ import annotations

import numpy as np
import pytest

from phonbench import lattice_dynamics as ld
from phonbench.datasets.synthetic import MAX_ATOMS, PROTOTYPE_NAMES, SyntheticDataset
from phonbench.exceptions import ConfigError
from phonbench.physics import CHEN_GRID_CM1, CM1_PER_THZ
from phonbench.registry import DATASETS


@pytest.fixture(scope="module")
def modes():
    return SyntheticDataset(size=300, seed=0).load()


@pytest.fixture(scope="module")
def spectrum():
    return SyntheticDataset(task="spectrum", size=60, seed=0, mesh=3).load()


def test_registry_and_cards():
    cls = DATASETS.get("synthetic")
    assert cls is SyntheticDataset
    card = cls.card  # class level, without instantiating
    assert card.name == "synthetic" and card.task.kind == "modes" and card.size == 1000
    assert card.default_metrics == ("mae", "r2_aggregated", "mean_frequency_error", "mse")
    assert card.primary_metric == "mae" and card.license == "CC0 (generated)"
    assert card.splits == ("random", "kfold5", "chemsys", "cluster", "element") and card.default_split == "random"
    assert card.task.n_outputs == 3 * MAX_ATOMS == 24 and card.task.unit == "THz"
    spec = cls(task="spectrum", size=10).card
    assert spec.task.kind == "spectrum" and spec.primary_metric == "mse" and spec.size == 10
    assert spec.default_metrics == ("mse", "mae", "r2_aggregated", "mean_frequency_error")
    assert spec.task.grid_array() == pytest.approx(CHEN_GRID_CM1) and spec.task.grid_unit == "cm^-1"
    assert cls(size=5).name == "synthetic"


def test_modes_shapes_mask_and_extras(modes):
    n_atoms = modes.extras["n_atoms"]
    assert modes.targets.shape == modes.mask.shape == (300, 24)
    assert (modes.mask.sum(axis=1) == 3 * n_atoms).all()
    assert set(np.unique(n_atoms).tolist()) == {2, 3, 4, 5, 6, 8}
    assert set(modes.extras["prototype"].tolist()) == set(range(len(PROTOTYPE_NAMES)))
    assert (modes.targets[~modes.mask] == 0).all()
    assert len(set(modes.ids)) == 300 and modes.ids[0] == "syn-s0-000000"
    real = np.where(modes.mask, modes.targets, -1e9)
    assert (np.diff(real, axis=1)[modes.mask[:, 1:]] <= 1e-9).all()  # descending within real modes
    for i in (0, 7, 123):
        s = modes.structures[i]
        assert type(s).__name__ == "Structure" and len(s) == n_atoms[i]
        assert modes.extras["total_mass"][i] == pytest.approx(float(s.composition.weight))


def test_gamma_acoustic_modes_vanish_and_optical_ones_do_not(modes):
    n3 = 3 * modes.extras["n_atoms"]
    rows = np.arange(len(modes))
    top = modes.targets[:, 0]
    acoustic = np.stack([modes.targets[rows, n3 - j] for j in (1, 2, 3)], axis=1)
    assert (np.abs(acoustic) < 1e-6 * top[:, None]).all()
    assert (modes.targets[rows, n3 - 4] > 1e-3 * top).all()


def test_frequencies_span_a_realistic_range(modes):
    top_cm1 = modes.targets[:, 0] * CM1_PER_THZ
    assert 150 < np.median(top_cm1) < 500
    assert np.percentile(top_cm1, 5) > 50 and np.percentile(top_cm1, 95) < 1000


def test_labels_match_the_structure_level_model(modes):
    for i in (3, 42, 250):
        f = ld.structure_frequencies(modes.structures[i], [[0, 0, 0]])[0, ::-1]
        n3 = 3 * modes.extras["n_atoms"][i]
        assert modes.targets[i, :n3] == pytest.approx(f, rel=1e-8, abs=1e-6)


def test_determinism_seed_and_prefix():
    a = SyntheticDataset(size=120, seed=3).load()
    b = SyntheticDataset(size=120, seed=3).load()
    c = SyntheticDataset(size=120, seed=4).load()
    big = SyntheticDataset(size=1100, seed=3).load()  # crosses a generator block
    assert np.array_equal(a.targets, b.targets) and np.array_equal(a.mask, b.mask)
    assert np.array_equal(a.structures[5].lattice.matrix, b.structures[5].lattice.matrix)
    assert not np.allclose(a.targets, c.targets)
    assert np.array_equal(big.targets[:120], a.targets)
    assert big.extras["n_atoms"][1024:].min() >= 2


def test_spectrum_targets(spectrum):
    y = spectrum.targets
    assert y.shape == (60, 51) and spectrum.mask is None
    assert y.max(axis=1) == pytest.approx(np.ones(60)) and (y >= 0).all()
    assert (y[:, 0] == 0).all()  # g(0) = 0
    peak = CHEN_GRID_CM1[y.argmax(axis=1)]
    assert 40 <= np.median(peak) <= 600
    modes = SyntheticDataset(size=60, seed=0).load()  # same crystals, same highest mode
    top_cm1 = modes.targets[:, 0] * CM1_PER_THZ
    last = np.array([CHEN_GRID_CM1[np.nonzero(row > 0.01)[0].max()] for row in y])
    assert (last >= 0.6 * np.minimum(top_cm1, 1000)).all()
    assert spectrum.extras["n_atoms"] == pytest.approx(modes.extras["n_atoms"])


def test_splits():
    ds = SyntheticDataset(size=50)
    fold = ds.split().folds[0]
    assert fold.sizes() == {"train": 40, "valid": 5, "test": 5}
    assert len(ds.split("kfold5").folds) == 5
    with pytest.raises(ConfigError):
        ds.split("scaffold")


@pytest.mark.parametrize(
    "options, match",
    [
        ({"task": "bands"}, "task"),
        ({"size": 0}, "size"),
        ({"size": "many"}, "size"),
        ({"seed": -1}, "seed"),
        ({"sigma": -5}, "sigma"),
        ({"mesh": 2.5}, "mesh"),
        ({"shells": 3}, "shells"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_options_raise_config_error(options, match):
    with pytest.raises(ConfigError, match=match):
        SyntheticDataset(**options)


def test_cli_style_string_options_are_accepted():
    ds = SyntheticDataset(task="Spectrum", size="20", seed="1", mesh=2)
    assert ds.task == "spectrum" and ds.size == 20 and ds.seed == 1
    assert ds.load().targets.shape == (20, 51)
