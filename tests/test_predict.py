"""Prediction/screening workflow with the dummy model: files in, table/CSV/JSON/plots out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from phonbench.exceptions import ConfigError, DataError, ModelError
from phonbench.physics import R_GAS
from phonbench.predict import (
    alloy_series,
    cv_column,
    load_model,
    plot_alloy_series,
    predict,
    predict_structures,
    rank_candidates,
)


@pytest.fixture(scope="module")
def crystals():
    from conftest import make_crystals

    return make_crystals()  # NaCl, CsCl, SiC, MgO, SrTiO3, CaF2, Fe, GaAs


def _fit_dummy(kind: str, crystals, max_atoms: int = 5):
    """Dummy model fitted on seeded targets of ``kind`` for the given crystals (cheap: no make_data)."""
    from phonbench.datasets.base import PhononData, Task
    from phonbench.models.dummy import DummyModel

    rng = np.random.default_rng(0)
    n = len(crystals)
    n_atoms = np.array([len(c) for c in crystals])
    ids = [f"m{i}" for i in range(n)]
    if kind == "spectrum":
        y = rng.random((n, 11))
        task = Task("spectrum", 11, "a.u.", "dos", tuple(np.linspace(0, 1000, 11)), "cm^-1")
        return DummyModel().fit(PhononData(ids, crystals, y / y.max(1, keepdims=True), task))
    if kind == "modes":
        d = 3 * max_atoms
        mask = np.arange(d)[None, :] < 3 * n_atoms[:, None]
        y = np.where(mask, -np.sort(-rng.random((n, d)) * 20, axis=1), 0.0)
        return DummyModel().fit(PhononData(ids, crystals, y, Task("modes", d, "THz"), mask))
    return DummyModel().fit(PhononData(ids, crystals, rng.random((n, 1)) * 500, Task("scalar", 1, "cm^-1")))


@pytest.fixture(scope="module")
def spectrum_model_dir(tmp_path_factory, crystals):
    path = tmp_path_factory.mktemp("model")
    _fit_dummy("spectrum", crystals).save(path)
    return path


@pytest.fixture(scope="module")
def structure_dir(tmp_path_factory, crystals):
    root = tmp_path_factory.mktemp("structures")
    (root / "sub").mkdir()
    crystals[0].to(filename=str(root / "nacl.cif"))  # NaCl, 2 atoms
    crystals[4].to(filename=str(root / "srtio3.cif"))  # SrTiO3, 5 atoms
    crystals[1].to(filename=str(root / "sub" / "POSCAR"))  # CsCl, 2 atoms
    (root / "garbage.cif").write_text("data_nothing\nthis is not a crystal\n")
    return root


def _bromide():
    from pymatgen.core import Lattice, Structure

    def rocksalt(a, anion):
        return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", anion],
                                         [[0, 0, 0], [0.5, 0.5, 0.5]]).get_primitive_structure()

    return rocksalt(5.64, "Cl"), rocksalt(5.97, "Br")


def test_predict_structures_reports_garbage_and_predicts_the_rest(spectrum_model_dir, structure_dir, tmp_path):
    out = tmp_path / "out"
    df = predict_structures(spectrum_model_dir, [structure_dir, str(structure_dir / "missing*.cif")],
                            temperatures=(100, 300), out_dir=out)
    good = df[df["ok"]]
    assert sorted(good["id"]) == ["POSCAR", "nacl", "srtio3"]
    assert sorted(good["formula"]) == ["CsCl", "NaCl", "SrTiO3"]
    bad = df[~df["ok"]].set_index("id")
    assert set(bad.index) == {"garbage.cif", "missing*.cif"}
    assert "garbage.cif" in bad.loc["garbage.cif", "error"] and "matches no files" in bad.loc["missing*.cif", "error"]
    for t in (100, 300):
        cv = good[cv_column(t, "mol")].to_numpy()
        assert np.all(cv > 0) and np.all(cv < 3 * good["n_atoms"].to_numpy() * R_GAS)
    # same DoS shape per atom: C_V per mole scales with N, per kg with N / mass
    by_id = good.set_index("id")
    assert by_id.loc["srtio3", cv_column(300)] == pytest.approx(2.5 * by_id.loc["nacl", cv_column(300)])
    assert by_id.loc["nacl", cv_column(300, "kg")] == pytest.approx(
        by_id.loc["nacl", cv_column(300)] / (by_id.loc["nacl", "mass_amu"] * 1e-3))
    assert good[cv_column(100)].lt(good[cv_column(300)]).all()
    assert np.all((good["mean_frequency_cm1"] > 0) & (good["mean_frequency_cm1"] < 1000))
    # files
    saved = json.loads((out / "predictions.json").read_text())
    assert len(saved["results"]) == 3 and {f["file"].split("/")[-1] for f in saved["failed"]} == {"garbage.cif",
                                                                                                  "missing*.cif"}
    assert (out / "predictions.csv").read_text().count("\n") == 6
    dos_lines = (out / "dos.csv").read_text().splitlines()
    assert dos_lines[0].split(",")[:3] == ["id", "0", "100"] and len(dos_lines) == 4
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["POSCAR.png", "nacl.png", "srtio3.png"]


def test_rank_candidates(spectrum_model_dir, structure_dir):
    df = predict_structures(spectrum_model_dir, structure_dir, temperatures=(300,))
    top = rank_candidates(df, 2)  # per kg: the light NaCl first
    assert top["rank"].tolist() == [1, 2] and top["id"].tolist() == ["nacl", "srtio3"]
    assert rank_candidates(df, 5, per="mol")["id"].tolist()[0] == "srtio3"  # 5 atoms per cell
    assert len(rank_candidates(df, 10, by="mean_frequency")) == 3
    with pytest.raises(ConfigError, match="500"):
        rank_candidates(df, 2, temperature=500)
    with pytest.raises(ConfigError):
        rank_candidates(df, 0)


def test_modes_and_scalar_models(crystals):
    modes = _fit_dummy("modes", crystals[:5])
    result = predict(modes, crystals[:3], temperatures=(300,))
    n = result.table["n_atoms"].to_numpy()
    expected = [modes.mean_[: 3 * k].mean() * 33.35641 for k in n]
    np.testing.assert_allclose(result.table["mean_frequency_cm1"], expected)
    assert result.dos is None and not any(c.startswith("cv_") for c in result.table.columns)
    with pytest.raises(ConfigError, match="cv"):
        rank_candidates(result.table, 1)
    scalar = _fit_dummy("scalar", crystals)
    assert predict(scalar, crystals[:2]).table["prediction"].tolist() == pytest.approx([scalar.mean_[0]] * 2)


def test_structures_too_large_for_a_modes_model_are_reported(crystals):
    model = _fit_dummy("modes", crystals[:4], max_atoms=2)  # NaCl, CsCl, SiC, MgO: 2 atoms each
    table = predict(model, crystals[:5]).table  # + SrTiO3: 5 atoms
    assert table["ok"].tolist() == [True, True, True, True, False]
    assert "15 modes" in table.loc[4, "error"] and np.isnan(table.loc[4, "mean_frequency_cm1"])


def test_load_model_sources(spectrum_model_dir, tmp_path):
    from phonbench.runner import run

    assert load_model(spectrum_model_dir).name == "dummy"
    result = run("dummy", "synthetic", out=tmp_path, tracking=False, dataset_options={"task": "spectrum", "size": 20})
    model = load_model(result.run_dirs[0])
    assert model.check_fitted().n_outputs == 51
    with pytest.raises(ModelError, match="neither"):
        load_model(tmp_path)


def test_alloy_series_endpoints_and_occupancies(tmp_path, spectrum_model_dir):
    a, b = _bromide()
    series = alloy_series(a, b, 5)
    assert len(series) == 5 and series[0] == a and series[-1] == b
    for k, s in enumerate(series[1:-1], start=1):
        p = k / 4
        assert not s.is_ordered
        for site in s:
            assert sum(site.species.values()) == pytest.approx(1.0)
        assert s[0].species.get_el_amt_dict() == pytest.approx({"Cl": 1 - p, "Br": p})
        assert s.lattice.a == pytest.approx((1 - p) * a.lattice.a + p * b.lattice.a)
    result = predict(spectrum_model_dir, series, temperatures=(300,))
    masses = result.table["mass_amu"].to_numpy()
    assert np.all(np.diff(masses) > 0) and masses[0] == pytest.approx(58.44, abs=0.01)
    path = plot_alloy_series(result.grid_cm1, result.dos, np.linspace(0, 1, 5), tmp_path / "alloy.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_alloy_series_rejects_mismatched_end_members(crystals):
    a, b = _bromide()
    with pytest.raises(DataError, match="sites"):
        alloy_series(a, crystals[4], 3)
    swapped = b.copy()
    swapped.translate_sites([0, 1], [0.25, 0.25, 0.25])  # sites no longer where A has them
    with pytest.raises(DataError, match="order the sites"):
        alloy_series(a, swapped, 3)
    with pytest.raises(ConfigError):
        alloy_series(a, b, 1)
