"""Bundled ``matbench_phonons``: counts, official folds, MAD, structures, checksums."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from phonbench.datasets.bundled import package_data_dir
from phonbench.datasets.matbench import MATBENCH_MAD_CM1, MatbenchPhononsDataset
from phonbench.exceptions import ChecksumError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
FOLDS = SHARED / "matbench_phonons" / "matbench_v0.1_validation_phonons_only.json"
META = SHARED / "matbench_phonons" / "raw" / "matbench_v0.1_dataset_metadata.json"


@pytest.fixture(scope="module")
def ds():
    return MatbenchPhononsDataset()


@pytest.fixture(scope="module")
def data(ds):
    return ds.load()


@pytest.fixture
def raw() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


def test_counts_ids_and_targets(data):
    assert len(data) == 1265 and data.targets.shape == (1265, 1)
    assert data.task.kind == "scalar" and data.task.unit == "cm^-1" and data.task.target == "last_phdos_peak"
    assert data.ids[0] == "mb-phonons-0001" and data.ids[-1] == "mb-phonons-1265"
    assert data.ids == [f"mb-phonons-{i:04d}" for i in range(1, 1266)]
    assert data.extras["mp_id"][0] == "mp-1000"
    assert data.targets[0, 0] == pytest.approx(98.58577122703691, abs=1e-12)
    assert len(set(data.extras["mp_id"].tolist())) == 1265


def test_mad_matches_official(data):
    y = data.targets[:, 0]
    mad = np.abs(y - y.mean()).mean()
    assert mad == pytest.approx(MATBENCH_MAD_CM1, rel=1e-12)
    assert round(mad, 3) == 323.787


def test_pbe_structures(data):
    bate = data.structures[0]
    assert bate.composition.reduced_formula == "BaTe"
    assert bate.volume == pytest.approx(89.09108390126052, rel=1e-9)  # MP PBE cell, not PBEsol
    np.testing.assert_array_equal(data.structures.n_sites(), data.extras["n_atoms"])
    assert data.extras["n_atoms"].min() >= 2


def test_matbench_split_folds(ds, data):
    split = ds.split()
    assert split.name == "matbench" and len(split.folds) == 5
    tests = np.concatenate([f.test for f in split.folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(1265))
    for fold in split.folds:
        assert fold.sizes() == {"train": 911, "valid": 101, "test": 253}
        joined = np.concatenate([fold.train, fold.valid, fold.test])
        np.testing.assert_array_equal(np.sort(joined), np.arange(1265))
    other = ds.split("matbench", seed=1)
    np.testing.assert_array_equal(other.folds[2].test, split.folds[2].test)
    assert not np.array_equal(other.folds[2].valid, split.folds[2].valid)
    for name in ("random", "kfold5"):
        for fold in ds.split(name, seed=0).folds:
            assert len(np.unique(np.concatenate([fold.train, fold.valid, fold.test]))) == 1265


@pytest.mark.needs_shared
def test_folds_identical_to_official_file(ds, data, raw):
    official = json.loads(FOLDS.read_text())["splits"]["matbench_phonons"]
    ids = np.array(data.ids)
    for k, fold in enumerate(ds.split().folds):
        assert sorted(ids[fold.test]) == sorted(official[f"fold_{k}"]["test"])
        assert sorted(ids[np.concatenate([fold.train, fold.valid])]) == sorted(official[f"fold_{k}"]["train"])
    meta = json.loads(META.read_text())["matbench_phonons"]
    assert meta["n_samples"] == len(data) and meta["mad"] == pytest.approx(MATBENCH_MAD_CM1, rel=1e-15)


def test_card():
    card = MatbenchPhononsDataset.card
    assert card.default_split == "matbench" and card.primary_metric == "mae"
    assert card.default_metrics == ("mae", "rmse", "r2_aggregated") and card.size == 1265
    assert set(card.files) == {"matbench_phonons.npz"}
    assert "1223" in card.notes and "PBE" in card.notes


def test_corrupted_matbench_file(tmp_path):
    shutil.copy(package_data_dir() / "matbench_phonons.npz", tmp_path / "matbench_phonons.npz")
    with open(tmp_path / "matbench_phonons.npz", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(ChecksumError, match="matbench_phonons.npz"):
        MatbenchPhononsDataset(data_dir=str(tmp_path)).load()
