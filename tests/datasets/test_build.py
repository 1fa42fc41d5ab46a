"""Build script: safe ASE-dict parsing, deterministic npz, DoS processing, subset builds."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from phonbench.datasets import build as B
from phonbench.datasets.bundled import MANIFEST_NAME, load_npz, npz_bytes, package_data_dir
from phonbench.datasets.matbench import MatbenchPhononsDataset
from phonbench.datasets.petretto import DosDataset, GammaDataset
from phonbench.exceptions import DataError
from phonbench.physics import (
    CHEN_GRID_CM1,
    CM1_PER_THZ,
    chen_dos_target,
    dos_integral,
    physical_dos,
    savgol_window,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture
def raw() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


# ---------------------------------------------------------------------- parsing and writing
def test_parse_ase_dict_handles_numpy_arrays():
    text = (
        "{'numbers': array([12, 83]), 'positions': array([[ 0.  ,  0.5],\n       [ 1.5, -2. ]]), "
        "'cell': [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]], 'pbc': array([ True,  True,  True])}"
    )
    d = B.parse_ase_dict(text)
    assert d["numbers"] == [12, 83] and d["positions"] == [[0.0, 0.5], [1.5, -2.0]]
    assert d["pbc"] == [True, True, True] and d["cell"][2][2] == 2.0


@pytest.mark.parametrize(
    "text", ["{'a': __import__('os').getcwd()}", "{'a': open('x')}", "{'a': array([1]).sum()}"]
)
def test_parse_ase_dict_never_evaluates_code(text):
    with pytest.raises((DataError, ValueError)):
        B.parse_ase_dict(text)


def test_npz_bytes_deterministic_and_pickle_free():
    arrays = {"z": np.arange(5.0), "a": np.array(["mp-1", "mp-22"]), "m": np.eye(2, dtype=bool)}
    blob = npz_bytes(arrays)
    assert blob == npz_bytes(dict(reversed(list(arrays.items()))))
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert zf.namelist() == ["a.npy", "m.npy", "z.npy"]
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    with np.load(io.BytesIO(blob), allow_pickle=False) as f:
        assert f["a"].tolist() == ["mp-1", "mp-22"] and f["m"].dtype == bool
    with pytest.raises(DataError, match="object"):
        npz_bytes({"bad": np.array([{"x": 1}], dtype=object)})


# ---------------------------------------------------------------------- physics helpers
def test_savgol_window():
    assert savgol_window(4408) == 101 and savgol_window(101) == 101
    assert savgol_window(94) == 93 and savgol_window(95) == 95
    with pytest.raises(ValueError, match="too few"):
        savgol_window(4)


def test_chen_dos_target_on_gaussian():
    freqs = np.arange(-2.4, 600.0, 1.0)
    dos = np.exp(-0.5 * ((freqs - 300.0) / 40.0) ** 2)
    target, scale = chen_dos_target(freqs, dos * 7.0)
    assert target.shape == (51,) and target.max() == pytest.approx(1.0) and target.min() >= 0.0
    assert (target[CHEN_GRID_CM1 > 600] == 0).all()  # zero outside the data
    # the cubic Savitzky–Golay window (101 cm^-1) flattens a σ = 40 cm^-1 peak by about 2%
    assert CHEN_GRID_CM1[np.argmax(target)] == 300.0 and scale == pytest.approx(7.0, rel=0.03)
    phys = physical_dos(np.vstack([target, target]), np.array([2, 5]))
    np.testing.assert_allclose(dos_integral(phys, CHEN_GRID_CM1), [6.0, 15.0])


def _fake_doc(qpts, bands, thermo):
    from pymatgen.core import Lattice, Structure

    cif = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")
    freqs = np.arange(-2.4, 400.0, 1.0)
    return {
        "metadata": {"structure": cif, "nsites": 2},
        "phonon": {
            "dos_frequencies": freqs.tolist(),
            "ph_dos": np.exp(-0.5 * ((freqs - 200.0) / 30.0) ** 2).tolist(),
            "ph_bandstructure": bands,
            "qpts": qpts,
        },
        "thermo": thermo,
        "flags": {"has_neg_fr": not thermo},
    }


def test_process_petretto_gamma_and_thermo():
    bands = [[0, 0, 0, 100, 100, 150], [10, 20, 30, 120, 120, 160], [0, 0, 0, 100, 130, 150]]
    qpts = [[0, 0, 0], [0.5, 0, 0], [0, 0, 0]]
    thermo = {"temperature": [100.0, 300.0, 800.0], "C_v": [1.0, 2.0, 3.0]}
    rec = B.process_petretto("mp-x", _fake_doc(qpts, bands, thermo))
    np.testing.assert_allclose(rec["gamma"], np.array([150, 100, 100, 0, 0, 0]) / CM1_PER_THZ)
    assert rec["lo_to_spread"] == pytest.approx(30 / CM1_PER_THZ)
    assert rec["cv"] == [1.0, 2.0, 3.0] and not rec["has_neg_fr"]
    assert len(rec["structure"]) == 2 and rec["dos"].max() == 1.0
    empty = B.process_petretto("mp-y", _fake_doc(qpts, bands, {}))
    assert np.isnan(empty["cv"]).all() and empty["has_neg_fr"]


def test_process_petretto_without_gamma_fails_loudly():
    doc = _fake_doc([[0.5, 0, 0], [0.25, 0, 0]], [[1, 2, 3, 4, 5, 6]] * 2, {})
    with pytest.raises(DataError, match=r"mp-z: no q = \(0, 0, 0\)"):
        B.process_petretto("mp-z", doc)


# ---------------------------------------------------------------------- builds from the shared data
@pytest.mark.needs_shared
def test_subset_build_is_deterministic_and_loadable(raw, tmp_path):
    r1 = B.build(raw, tmp_path / "a", limit=50)
    r2 = B.build(raw, tmp_path / "b", limit=50)
    for name in (*B.FILES, MANIFEST_NAME):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert r1["repro_within_tol"] == 50 and r1["repro_max_abs_diff"] < 1e-13
    assert r1["n_petretto"] == r2["n_petretto"] == 50
    manifest = json.loads((tmp_path / "a" / MANIFEST_NAME).read_text())
    assert manifest["limit"] == 50 and set(manifest["files"]) == set(B.FILES)
    dos = DosDataset(data_dir=str(tmp_path / "a"))
    assert len(dos.load()) == 51 and dos.load().ids[-1] == "tutorial-Mg3Bi2"
    assert sum(dos.split().folds[0].sizes().values()) == 51
    full = DosDataset().load()
    # same numbers as the shipped file up to float64 rounding: the byte-for-byte check above is within
    # one environment; across numpy/scipy releases the Savitzky-Golay/interpolation sums move by ~1e-14
    np.testing.assert_allclose(dos.load().targets[:50], full.targets[:50], rtol=0, atol=1e-12)
    np.testing.assert_allclose(dos.load().targets[50], full.targets[-1], rtol=0, atol=1e-12)
    gamma = GammaDataset(data_dir=str(tmp_path / "a")).load()
    np.testing.assert_array_equal(gamma.targets, GammaDataset().load().targets[:50])
    mb = MatbenchPhononsDataset(data_dir=str(tmp_path / "a")).load()
    assert 0 < len(mb) < 50 and set(mb.extras["mp_id"]) <= set(gamma.ids)


@pytest.mark.needs_shared
def test_rebuild_keeps_other_builds_manifest_entries(tmp_path):
    manifest = tmp_path / MANIFEST_NAME
    manifest.write_text(json.dumps({"files": {"dos.npz": "old", "phonondb_dos.npz": "abc"}, "phonondb": {"n": 1}}))
    merged = B._keep_other_builds(manifest, {"format": 1, "files": {"dos.npz": "new"}})
    assert merged == {"format": 1, "files": {"dos.npz": "new", "phonondb_dos.npz": "abc"}, "phonondb": {"n": 1}}


def test_build_refuses_missing_raw(tmp_path):
    with pytest.raises(DataError, match="--raw"):
        B.build(tmp_path / "nowhere", tmp_path / "out")


@pytest.mark.slow
@pytest.mark.needs_shared
def test_full_build_reproduces_shipped_files(raw, tmp_path):
    report = B.build(raw, tmp_path)
    assert report["repro_within_tol"] == 1521 and report["n_matbench"] == 1265
    shipped_manifest = json.loads((package_data_dir() / MANIFEST_NAME).read_text())
    built_manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    for name in B.FILES:
        built, shipped = load_npz(tmp_path / name), load_npz(package_data_dir() / name)
        assert sorted(built) == sorted(shipped), name
        for key, value in built.items():  # float sums move by ~1e-14 across numpy/scipy releases
            if value.dtype.kind == "f":
                np.testing.assert_allclose(value, shipped[key], rtol=1e-12, atol=1e-12, err_msg=f"{name}:{key}")
            else:
                np.testing.assert_array_equal(value, shipped[key], err_msg=f"{name}:{key}")
        if (tmp_path / name).read_bytes() == (package_data_dir() / name).read_bytes():
            assert built_manifest["files"][name] == shipped_manifest["files"][name]
    for key in ("format", "limit", "sources", "checks"):
        assert built_manifest[key] == shipped_manifest[key], key
    assert sum(report["sizes"].values()) < 5_000_000
    assert load_npz(tmp_path / "dos.npz")["targets"].shape == (1522, 51)
