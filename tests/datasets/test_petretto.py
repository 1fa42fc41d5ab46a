"""Bundled ``dos`` and ``gamma`` datasets: counts, shapes, masks, splits, checksums, load time."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from phonbench.datasets.bundled import MANIFEST_NAME, package_data_dir
from phonbench.datasets.info import dataset_info
from phonbench.datasets.petretto import DosDataset, GammaDataset
from phonbench.exceptions import ChecksumError, ConfigError
from phonbench.physics import CHEN_GRID_CM1, R_GAS, dos_integral, physical_dos

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
UNION = SHARED / "petretto2018_dfpt_phonons" / "e3nn_tutorial_51grid" / "data_union.csv"


@pytest.fixture(scope="module")
def dos():
    return DosDataset().load()


@pytest.fixture(scope="module")
def gamma():
    return GammaDataset().load()


@pytest.fixture
def raw() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


def _assert_partition(fold, n):
    parts = [fold.train, fold.valid, fold.test]
    joined = np.concatenate(parts)
    assert len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))
    for part in parts:
        assert len(part) > 0


# ---------------------------------------------------------------------- dos
def test_dos_counts_shapes_and_ids(dos):
    assert len(dos) == 1522 and DosDataset.card.size == 1522
    assert dos.targets.shape == (1522, 51)
    assert dos.mask is None
    assert dos.ids[0] == "mp-1000" and dos.ids[-1] == "tutorial-Mg3Bi2"
    assert dos.ids[:-1] == sorted(dos.ids[:-1]) and len(set(dos.ids)) == 1522
    np.testing.assert_allclose(dos.targets.max(axis=1), 1.0)
    assert dos.targets.min() == 0.0
    np.testing.assert_array_equal(dos.task.grid_array(), CHEN_GRID_CM1)
    assert dos.task.kind == "spectrum" and dos.task.unit == "a.u." and dos.task.grid_unit == "cm^-1"
    for key in ("n_atoms", "total_mass", "dos_norm", "dos_scale", "cv_300K", "has_neg_fr"):
        assert dos.extras[key].shape == (1522,)


def test_dos_structures_lazy_and_consistent(dos):
    first = dos.structures[0]
    assert first.composition.reduced_formula == "BaTe" and len(first) == 2
    assert first.lattice.a == pytest.approx(4.91729406, abs=1e-7)
    mg3bi2 = dos.structures[1521]
    assert mg3bi2.composition.reduced_formula == "Mg3Bi2"
    n_sites = dos.structures.n_sites()
    np.testing.assert_array_equal(n_sites, dos.extras["n_atoms"])
    assert n_sites.min() == 2 and n_sites.max() == 40 and n_sites.sum() == 11228 + 5
    sub = dos.subset([1521, 0])
    assert sub.ids == ["tutorial-Mg3Bi2", "mp-1000"] and len(sub.structures[1]) == 2
    assert sum(site.specie.atomic_mass for site in first) == pytest.approx(dos.extras["total_mass"][0])


def test_dos_physical_scale(dos):
    np.testing.assert_allclose(dos.extras["dos_norm"], dos_integral(dos.targets, CHEN_GRID_CM1))
    phys = physical_dos(dos.targets, dos.extras["n_atoms"])
    np.testing.assert_allclose(dos_integral(phys, CHEN_GRID_CM1), 3 * dos.extras["n_atoms"])
    # target * dos_scale is the physical DoS (states / cm^-1 / cell): integral ≈ 3N within the grid
    ratio = dos.extras["dos_scale"] * dos.extras["dos_norm"] / (3 * dos.extras["n_atoms"])
    assert np.isnan(ratio[-1]) and np.isfinite(ratio[:-1]).all()
    assert np.median(ratio[:-1]) == pytest.approx(1.0, abs=0.01)


def test_dos_heat_capacity_extras(dos):
    cv, n = dos.extras["cv_300K"], dos.extras["n_atoms"]
    finite = np.isfinite(cv)
    assert finite.sum() == 1245
    np.testing.assert_array_equal(~finite[:-1], dos.extras["has_neg_fr"][:-1])
    for key in ("cv_100K", "cv_300K", "cv_800K"):
        values = dos.extras[key][finite]
        assert (values > 0).all() and (values <= 3 * n[finite] * R_GAS * (1 + 1e-9)).all()
    assert (dos.extras["cv_100K"][finite] < dos.extras["cv_800K"][finite]).all()


def test_dos_tutorial_split():
    ds = DosDataset()
    split = ds.split()
    assert split.name == "tutorial" and len(split.folds) == 1
    fold = split.folds[0]
    assert fold.sizes() == {"train": 1192, "valid": 141, "test": 189}
    _assert_partition(fold, 1522)
    assert 1521 in fold.train  # Mg3Bi2 is a training material in the tutorial
    again = ds.split("tutorial", seed=7).folds[0]
    np.testing.assert_array_equal(again.test, fold.test)


@pytest.mark.parametrize("cls", [DosDataset, GammaDataset])
def test_seeded_splits(cls):
    ds = cls()
    n = len(ds.load())
    a, b, c = ds.split("random", seed=1), ds.split("random", seed=1), ds.split("random", seed=2)
    _assert_partition(a.folds[0], n)
    np.testing.assert_array_equal(a.folds[0].test, b.folds[0].test)
    assert not np.array_equal(a.folds[0].test, c.folds[0].test)
    k = ds.split("kfold5", seed=0)
    assert len(k.folds) == 5
    for fold in k.folds:
        _assert_partition(fold, n)
    tests = np.concatenate([f.test for f in k.folds])
    assert np.array_equal(np.sort(tests), np.arange(n))
    with pytest.raises(ConfigError, match="matbench"):
        ds.split("matbench")


def test_dos_load_time():
    start = time.perf_counter()
    data = DosDataset().load()
    elapsed = time.perf_counter() - start
    assert len(data) == 1522 and elapsed < 2.0


@pytest.mark.needs_shared
def test_dos_reproduces_tutorial_rows(dos, raw):
    import pandas as pd

    union = pd.read_csv(UNION, usecols=["phdos"], nrows=1522)
    ref = np.array([json.loads(s) for s in union["phdos"]])
    diff = np.abs(dos.targets - ref).max(axis=1)
    assert (diff <= 1e-6).sum() == 1522  # all 1521 Petretto rows (mp-2667 incl.) and Mg3Bi2
    assert diff.max() < 1e-13
    assert dos.ids.index("mp-2667") == 477 and diff[477] < 1e-13


# ---------------------------------------------------------------------- gamma
def test_gamma_counts_shapes_and_mask(gamma, dos):
    assert len(gamma) == 1521 and gamma.targets.shape == (1521, 120)
    assert gamma.task.kind == "modes" and gamma.task.unit == "THz"
    assert gamma.ids == dos.ids[:-1]
    np.testing.assert_array_equal(gamma.extras["n_atoms"], dos.extras["n_atoms"][:-1])
    np.testing.assert_array_equal(gamma.mask.sum(axis=1), 3 * gamma.extras["n_atoms"])
    assert (gamma.targets[~gamma.mask] == 0).all()
    masked = np.where(gamma.mask, gamma.targets, -1e9)
    assert (np.diff(masked, axis=1)[gamma.mask[:, 1:]] <= 0).all()  # descending within real modes
    assert gamma.structures[5].composition == dos.structures[5].composition


def test_gamma_values(gamma):
    bate = gamma.targets[0, :6]
    np.testing.assert_allclose(bate[:3], [4.078055, 2.866600, 2.866600], atol=1e-5)
    np.testing.assert_allclose(bate[3:], 0.0, atol=1e-3)  # acoustic modes
    # three acoustic modes near zero for every material (ASR imposed)
    abs_real = np.sort(np.abs(np.where(gamma.mask, gamma.targets, np.inf)), axis=1)
    assert abs_real[:, :3].max() < 0.01
    assert gamma.targets.min() < 0  # imaginary modes kept as negative values
    assert (gamma.extras["lo_to_spread"] > 1e-3 / 33.35641).sum() == 1048


# ---------------------------------------------------------------------- checksums and info
def _copy_bundle(tmp_path: Path, names: tuple[str, ...], manifest: bool) -> Path:
    for name in names + ((MANIFEST_NAME,) if manifest else ()):
        shutil.copy(package_data_dir() / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("with_manifest", [False, True])
def test_corrupted_file_raises_checksum_error(tmp_path, with_manifest):
    d = _copy_bundle(tmp_path, DosDataset.bundled_files, with_manifest)
    assert DosDataset(data_dir=str(d)).load().targets.shape == (1522, 51)  # intact copy loads
    blob = bytearray((d / "dos.npz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (d / "dos.npz").write_bytes(bytes(blob))
    ds = DosDataset(data_dir=str(d))
    with pytest.raises(ChecksumError, match=r"dos\.npz.*python -m phonbench\.datasets\.build") as err:
        ds.load()
    assert "\n" not in str(err.value)
    assert ds.verify() == {"petretto_structures.npz": True, "dos.npz": False}
    info = dataset_info(ds)
    assert info["checksums"]["verdict"] == "mismatch" and info["counts"] is None
    assert "dos.npz" in info["error"]


def test_missing_file_raises_checksum_error(tmp_path):
    d = _copy_bundle(tmp_path, ("gamma.npz",), manifest=False)
    with pytest.raises(ChecksumError, match="petretto_structures.npz.*missing"):
        GammaDataset(data_dir=str(d)).load()


def test_card_records_sha256_and_provenance():
    manifest = json.loads((package_data_dir() / MANIFEST_NAME).read_text())
    for cls in (DosDataset, GammaDataset):
        assert set(cls.card.files) == set(cls.bundled_files)
        for name, digest in cls.card.files.items():
            assert manifest["files"][name] == digest
        assert "10.1038/sdata.2018.65" in cls.card.citation and "CC BY 4.0" in cls.card.license
        assert "10.6084/m9.figshare.c.3938023" in cls.card.source
    assert DosDataset.card.primary_metric == "mse" and GammaDataset.card.primary_metric == "mae"
    assert "mp-2667" in DosDataset.card.notes


def test_dataset_info(dos):
    info = dataset_info(DosDataset())
    assert info["counts"] == {"materials": 1522, "outputs": 51, "real_entries": 1522 * 51}
    assert info["split"]["folds"] == [{"name": "0", "train": 1192, "valid": 141, "test": 189}]
    stats = info["target_stats"]
    assert stats["min"] == 0.0 and stats["max"] == 1.0 and stats["mask_fraction"] == 1.0
    assert stats["mean"] == pytest.approx(dos.targets.mean())
    assert info["checksums"]["verdict"] == "ok" and info["error"] is None
    json.dumps(info)  # clean, serialisable dict
    g = dataset_info("gamma", split="kfold5", seed=3)
    assert g["counts"]["real_entries"] == 33684
    assert g["target_stats"]["mask_fraction"] == pytest.approx(33684 / (1521 * 120))
    assert len(g["split"]["folds"]) == 5 and g["split"]["seed"] == 3


def test_registry_entry_points():
    from phonbench.registry import DATASETS

    assert DATASETS.get("dos") is DosDataset and DATASETS.get("GAMMA") is GammaDataset
