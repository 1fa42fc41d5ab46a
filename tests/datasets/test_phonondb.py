"""phonondb: archive parsing, phonopy targets, resumable build, packing, checksums and datasets.

Runs the real build on the five small archives in ``tests/data/phonondb/`` (one worker, a coarse
20 Å mesh to stay fast), once per module.
"""

from __future__ import annotations

import io
import json
import lzma
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from phonbench.datasets import phonondb_build as B
from phonbench.datasets.base import TASK_KINDS
from phonbench.datasets.bundled import MANIFEST_NAME, load_npz
from phonbench.datasets.phonondb import (
    GAMMA_GAP,
    PhonondbDosDataset,
    PhonondbGammaDataset,
    PhonondbThermoDataset,
    petretto_ids,
)
from phonbench.datasets.phonondb_calc import parse_conf, read_archive
from phonbench.datasets.phonondb_pack import DOS_1CM, FAILURES, FILES
from phonbench.exceptions import ChecksumError, ConfigError, DataError
from phonbench.physics import CHEN_GRID_CM1, R_GAS, chen_dos_target, dos_integral

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "phonondb"
IDS = ["mp-149", "mp-22862", "mp-22865", "mp-23155", "mp-754826"]
MESH = 20.0


def _blob(mp_id: str) -> bytes:
    return next(FIXTURES.glob(f"materials-id-{mp_id[3:]}-*.tar.lzma")).read_bytes()


def _rezip(blob: bytes, drop: str) -> bytes:
    """The archive ``blob`` without the member whose base name is ``drop``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(blob))) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for m in src.getmembers():
            if m.name.rpartition("/")[2] != drop:
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    return lzma.compress(buf.getvalue(), format=lzma.FORMAT_ALONE)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("phonondb")
    report = B.build(FIXTURES, root / "cache", root / "out", workers=1, mesh=MESH, stream=io.StringIO())
    return root, report


# ---------------------------------------------------------------------- parsing
def test_list_and_read_archives():
    refs = B.list_archives(FIXTURES)
    assert [r.mp_id for r in refs] == IDS  # numeric order: mp-149 before mp-22862
    nacl = read_archive(_blob("mp-22862"))
    assert nacl.mp_id == "mp-22862" and nacl.version == "20180417"
    assert set(nacl.files) == {"POSCAR-unitcell", "FORCE_SETS", "phonopy.conf", "BORN"}
    assert "BORN" not in read_archive(_blob("mp-754826")).files


def test_parse_conf():
    smat, pmat = parse_conf("DIM = 2 0 0 0 2 0 0 0 2\nPRIMITIVE_AXIS = 0 1/2 1/2 1/2 0 1/2 1/2 1/2 0\n")
    np.testing.assert_array_equal(smat, 2 * np.eye(3))
    assert pmat[0, 1] == 0.5 and abs(np.linalg.det(pmat)) == pytest.approx(0.25)
    smat, pmat = parse_conf("DIM = 3 3 2")
    np.testing.assert_array_equal(np.diag(smat), [3, 3, 2])
    np.testing.assert_array_equal(pmat, np.eye(3))
    with pytest.raises(DataError, match="DIM"):
        parse_conf("PRIMITIVE_AXIS = 1 0 0 0 1 0 0 0 1")


def test_bad_archives_raise_one_line_errors():
    with pytest.raises(DataError, match="missing FORCE_SETS"):
        read_archive(_rezip(_blob("mp-149"), "FORCE_SETS"), "x.tar.lzma")
    with pytest.raises(DataError, match="unreadable archive") as err:
        read_archive(b"not an archive", "x.tar.lzma")
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------- targets
def test_dos_integrates_to_3n_and_matches_the_dos_target(built):
    root, _ = built
    dos1 = load_npz(root / "cache" / DOS_1CM)
    dos51 = load_npz(root / "out" / "phonondb_dos.npz")
    assert dos1["ids"].tolist() == IDS
    for i, n in enumerate(dos51["n_atoms"]):
        values = dos1["values"][dos1["offsets"][i]:dos1["offsets"][i + 1]].astype(np.float64)
        freqs = dos1["dos_start"][i] + np.arange(len(values), dtype=np.float64)  # 1 cm^-1 grid
        assert dos_integral(values, freqs) == pytest.approx(3 * n, rel=1e-5)
        target, scale = chen_dos_target(freqs, values)  # the same function as the dos build
        np.testing.assert_allclose(dos51["targets"][i], target, atol=1e-6)
        assert dos51["dos_scale"][i] == pytest.approx(scale, rel=1e-5)
    np.testing.assert_array_equal(dos51["grid"], CHEN_GRID_CM1)


def test_gamma_modes_acoustic_zeros_and_lo_to(built):
    root, _ = built
    data = PhonondbGammaDataset(data_dir=str(root / "out")).load()
    assert data.targets.shape == (5, GAMMA_GAP) and data.task.kind == "modes"
    np.testing.assert_array_equal(data.mask.sum(axis=1), 3 * data.extras["n_atoms"])
    for row, mask in zip(data.targets, data.mask):
        modes = row[mask]
        assert (np.diff(modes) <= 0).all()  # sorted descending
        assert (np.abs(modes) < 0.05).sum() == 3  # three acoustic zeros (THz)
    nacl = data.ids.index("mp-22862")
    assert data.targets[nacl, 0] > data.targets[nacl, 1] + 2.0  # LO above TO with NAC along a*
    assert data.extras["lo_to_splitting"][nacl] > 2.0 and data.extras["has_born"][nacl]
    cssco2 = data.ids.index("mp-754826")
    assert data.extras["has_imaginary"][cssco2] and not data.extras["has_born"][cssco2]


def test_thermo_targets_and_units(built):
    root, _ = built
    out = str(root / "out")
    cv = PhonondbThermoDataset(data_dir=out).load()
    assert cv.task.kind == "scalar" and cv.task.unit == "J/(K mol of atoms)"
    assert ((cv.targets > 0) & (cv.targets < 3 * R_GAS)).all()
    assert cv.targets[cv.ids.index("mp-23155"), 0] == pytest.approx(3 * R_GAS, rel=0.01)  # Ar at 300 K
    ds = PhonondbThermoDataset(data_dir=out, target="omega_max")
    assert ds.card.task.unit == "cm^-1" and PhonondbThermoDataset.card.task.target == "heat_capacity_300K"
    assert (ds.load().targets > 0).all()
    with pytest.raises(ConfigError, match="target"):
        PhonondbThermoDataset(target="enthalpy")
    with pytest.raises(ConfigError, match="unknown option"):
        PhonondbThermoDataset(colour="red")


# ---------------------------------------------------------------------- datasets, splits, checksums
def test_datasets_load_with_structures_and_splits(built):
    root, report = built
    out = str(root / "out")
    assert report["n_materials"] == 5 and report["n_failed"] == 0 and report["todo"] == 0
    dos = PhonondbDosDataset(data_dir=out)
    data = dos.load()
    assert data.ids == IDS and data.targets.shape == (5, 51)
    np.testing.assert_allclose(data.targets.max(axis=1), 1.0)
    assert [len(s) for s in data.structures] == data.extras["n_atoms"].tolist() == [2, 2, 2, 1, 8]
    assert data.structures[1].composition.reduced_formula == "NaCl"
    fold = dos.split("petretto_holdout", seed=0).folds[0]
    assert {data.ids[i] for i in fold.test} == petretto_ids() & set(IDS)
    assert not {data.ids[i] for i in np.concatenate([fold.train, fold.valid])} & petretto_ids()
    assert set(PhonondbDosDataset.card.splits) == {"random", "petretto_holdout", "kfold5"}
    for cls in (PhonondbDosDataset, PhonondbGammaDataset, PhonondbThermoDataset):
        card = cls.card
        assert card.version == "2018-04-17" and "CC BY 4.0" in card.license and "Togo" in card.citation
        assert card.task.kind in TASK_KINDS
    assert dos.verify() == {"phonondb_structures.npz": True, "phonondb_dos.npz": True}


def test_missing_and_corrupted_files(built, tmp_path):
    root, _ = built
    with pytest.raises(DataError, match="phonondb files not built") as err:
        PhonondbDosDataset(data_dir=str(tmp_path)).load()
    assert "phonondb_build" in str(err.value) and "\n" not in str(err.value)
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    blob = bytearray((out / "phonondb_gamma.npz").read_bytes())
    blob[-10] ^= 0xFF
    (out / "phonondb_gamma.npz").write_bytes(bytes(blob))
    with pytest.raises(ChecksumError, match="sha256") as err:
        PhonondbGammaDataset(data_dir=str(out)).load()
    assert "phonondb_build" in str(err.value)
    PhonondbDosDataset(data_dir=str(out)).load()  # the other files still verify


def test_pack_is_deterministic_and_keeps_other_manifest_entries(built, tmp_path):
    root, _ = built
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).write_text(json.dumps({"format": 1, "files": {"dos.npz": "abc"}, "checks": {"x": 1}}))
    B.build(FIXTURES, root / "cache", out, workers=1, mesh=MESH, stream=io.StringIO())
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["files"]["dos.npz"] == "abc" and manifest["checks"] == {"x": 1}
    first = json.loads((root / "out" / MANIFEST_NAME).read_text())
    for name in FILES:
        assert manifest["files"][name] == first["files"][name]
    assert manifest["phonondb"]["checks"]["n_materials"] == 5


# ---------------------------------------------------------------------- resume and failures
def test_interrupted_build_resumes_only_the_rest(built, tmp_path):
    root, _ = built
    cache = tmp_path / "cache"
    shutil.copytree(root / "cache", cache)
    redo = ["mp-149", "mp-22862", "mp-23155"]
    kept = {p.name: p.stat().st_mtime_ns for p in (cache / "materials").iterdir() if p.stem not in redo}
    for mp_id in redo:
        B.cache_paths(cache, mp_id)[0].unlink()
    refs = B.list_archives(FIXTURES)
    seen: list[str] = []

    def interrupt(mp_id: str, ok: bool) -> None:
        seen.append(mp_id)
        raise KeyboardInterrupt  # as if the build were stopped after one material

    with pytest.raises(KeyboardInterrupt):
        B.compute_all(FIXTURES, cache, refs, workers=1, mesh=MESH, stream=io.StringIO(), on_result=interrupt)
    assert len(seen) == 1 and B.cache_paths(cache, seen[0])[0].is_file()
    assert not list((cache / "materials").glob(".*.tmp"))  # atomic writes leave no partial files
    second: list[str] = []
    counts = B.compute_all(FIXTURES, cache, refs, workers=1, mesh=MESH, stream=io.StringIO(),
                           on_result=lambda m, ok: second.append(m))
    assert sorted(second) == sorted(set(redo) - set(seen))
    assert counts == {"done": 5, "failed": 0, "todo": 0, "computed": 2}
    assert {p.name: p.stat().st_mtime_ns for p in (cache / "materials").iterdir() if p.stem not in redo} == kept


def test_failures_are_recorded_and_not_retried(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(next(FIXTURES.glob("materials-id-23155-*")), mirror)
    (mirror / "materials-id-7-broken-p1-1.tar.lzma").write_bytes(_rezip(_blob("mp-149"), "FORCE_SETS"))
    report = B.build(mirror, tmp_path / "cache", tmp_path / "out", workers=1, mesh=MESH, stream=io.StringIO())
    assert report["n_materials"] == 1 and report["n_failed"] == 1
    failures = json.loads((tmp_path / "cache" / FAILURES).read_text())
    assert failures[0]["mp_id"] == "mp-7" and "missing FORCE_SETS" in failures[0]["reason"]
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert "missing FORCE_SETS" in manifest["phonondb"]["failed"]["mp-7"]
    again = B.build(mirror, tmp_path / "cache", tmp_path / "out", workers=1, mesh=MESH, stream=io.StringIO())
    assert again["computed"] == 0
    retry = B.build(mirror, tmp_path / "cache", tmp_path / "out", workers=1, mesh=MESH, retry_failed=True,
                    stream=io.StringIO())
    assert retry["computed"] == 1 and retry["n_failed"] == 1


def test_cache_with_other_settings_is_refused(built):
    root, _ = built
    with pytest.raises(DataError, match="use another --cache"):
        B.open_cache(root / "cache", mesh=MESH + 1)


def test_progress_line():
    stream = io.StringIO()
    progress = B.Progress(total=10, already=4, stream=stream, every=0.0)
    progress.update(ok=True)
    progress.update(ok=False)
    line = stream.getvalue().splitlines()[-1]
    assert line.startswith("[phonondb] 6/10 (1 failed this run)") and "materials/s" in line and "ETA" in line


def test_broken_force_sets_are_excluded():
    from phonbench.datasets.phonondb_pack import exclusion_reason

    assert exclusion_reason({"omega_min": np.array([-734.0])}) is None  # a real (strong) instability
    assert "no usable phonon spectrum" in exclusion_reason({"omega_min": np.array([-6743.0])})


def test_shipped_package_files():
    from phonbench.datasets.bundled import card_files, package_data_dir, read_manifest

    section = read_manifest(None).get("phonondb")
    if not section or not (package_data_dir() / "phonondb_dos.npz").is_file():
        pytest.skip("phonondb package files not built")
    assert section["checks"]["n_materials"] + section["checks"]["n_excluded"] + section["checks"]["n_failed"] == 10034
    for cls in (PhonondbDosDataset, PhonondbGammaDataset, PhonondbThermoDataset):
        ds = cls()
        assert all(ds.verify().values()) and set(card_files(cls.bundled_files)) == set(cls.bundled_files)
        assert len(ds.load()) == cls.card.size == section["checks"]["n_materials"]
    gamma = PhonondbGammaDataset().load()
    np.testing.assert_array_equal(gamma.mask.sum(axis=1), 3 * gamma.extras["n_atoms"])
    assert sum((package_data_dir() / f).stat().st_size for f in FILES) < 15_000_000


def test_label_agreement_with_petretto_is_a_floor_far_below_the_dummy():
    from phonbench.datasets.label_agreement import label_agreement

    dos = label_agreement("dos")
    assert dos["n_shared"] >= 1200 and dos["n_compared"] == dos["n_shared"]
    assert dos["metrics"]["mse"] < 0.1 * 0.0452  # the dos dummy's test MSE
    assert dos["test_split"] == "tutorial" and 0 < dos["n_test"] <= 189
    gamma = label_agreement("gamma")
    assert gamma["metrics"]["mae"] < 0.5 and gamma["metrics"]["mae_optical"] >= gamma["metrics"]["mae"] * 0.9


def test_label_agreement_leaves_out_cells_with_other_mode_counts():
    from phonbench.datasets.base import PhononData, Task
    from phonbench.datasets.label_agreement import _aligned

    task = Task("modes", 6, "THz")
    mask = np.array([[True] * 3 + [False] * 3, [True] * 6])
    petretto = PhononData(["a", "b"], [None, None], np.zeros((2, 6)), task, mask=mask)
    other = PhononData(["b", "a", "c"], [None] * 3, np.zeros((3, 6)), task, mask=np.array([mask[1], mask[1], mask[1]]))
    a, b, dropped = _aligned(petretto, other)
    assert a.tolist() == [1] and b.tolist() == [0] and dropped == 1
