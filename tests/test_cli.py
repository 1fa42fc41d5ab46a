"""The CLI end to end, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "PHONBENCH_NO_PROGRESS": "1", "COLUMNS": "200"}


def cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "phonbench.cli", *args], capture_output=True, text=True,
                          env=ENV, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"phonbench {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_run_dummy_synthetic_writes_record_and_mlflow(tmp_path):
    proc = cli("run", "--model", "dummy", "--dataset", "synthetic", "--dataset-param", "size=120",
               "--out", str(tmp_path), check=True)
    assert "mae" in proc.stdout and "record:" in proc.stdout
    (record_file,) = list((tmp_path / "runs").glob("*/record.json"))
    record = json.loads(record_file.read_text())
    assert record["model"]["name"] == "dummy" and record["dataset"]["name"] == "synthetic"
    assert (record_file.parent / "predictions.csv").exists() and (tmp_path / "mlflow.db").exists()
    # the printed test MAE equals the recorded one
    assert f"{record['metrics']['test']['mae']:.5g}" in proc.stdout


def test_unknown_model_is_one_line_naming_valid_models(tmp_path):
    proc = cli("run", "--model", "nope", "--dataset", "synthetic", "--out", str(tmp_path))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown model 'nope'" in lines[0] and "dummy" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_debug_shows_traceback(tmp_path):
    proc = cli("--debug", "run", "--model", "nope", "--dataset", "synthetic", "--out", str(tmp_path))
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_bad_param_and_bad_dataset_option(tmp_path):
    proc = cli("run", "-m", "dummy", "-d", "synthetic", "-p", "depth=3", "--no-tracking", "-o", str(tmp_path))
    assert proc.returncode == 1 and "unknown parameter(s) depth" in proc.stderr
    proc = cli("run", "-m", "dummy", "-d", "synthetic", "--dataset-param", "task=bogus", "--no-tracking")
    assert proc.returncode == 1 and "bogus" in proc.stderr


def test_list_and_data_info():
    proc = cli("list", "models", "--plugins", check=True)
    assert "dummy" in proc.stdout and "phonbench" in proc.stdout
    proc = cli("data", "info", "dos", check=True)
    assert "1522" in proc.stdout and "checksums" in proc.stdout and "ok" in proc.stdout
    proc = cli("data", "info", "rhombohedron")
    assert proc.returncode == 1 and "PHONBENCH_DATA_DIR" in proc.stderr


def test_help_is_fast_and_lists_commands():
    proc = cli("--help", check=True)
    for command in ("run", "tune", "bench", "list", "data"):
        assert command in proc.stdout
    # --help must not import the heavy stack
    code = "import sys, phonbench.cli; print(sorted(m for m in ('torch','mlflow','pymatgen','optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("kind", ["modes", "spectrum"])
def test_matbench_style_folds_and_summary(tmp_path, kind):
    proc = cli("run", "-m", "dummy", "-d", "synthetic", "--dataset-param", "size=100", "--dataset-param",
               f"task={kind}", "--split", "kfold5", "--no-tracking", "-o", str(tmp_path), check=True)
    assert "mean ± std over 5 folds" in proc.stdout
    assert len(list((tmp_path / "runs").iterdir())) == 5


def test_predict_and_plot_from_a_run(tmp_path):
    cli("run", "-m", "dummy", "-d", "dos", "--no-tracking", "-o", str(tmp_path / "res"), check=True)
    (run_dir,) = list((tmp_path / "res" / "runs").iterdir())
    assert (run_dir / "plots" / "parity_test.png").exists() and (run_dir / "plots" / "dos_quartiles.png").exists()
    from conftest import make_crystals

    folder = tmp_path / "structures"
    folder.mkdir()
    for i, s in enumerate(make_crystals()[:3]):
        s.to(filename=str(folder / f"s{i}.cif"))
    (folder / "broken.cif").write_text("not a cif")
    proc = cli("predict", str(folder), "--run", run_dir.name, "--results", str(tmp_path / "res"),
               "--top", "2", "-o", str(tmp_path / "pred"), check=True)
    assert "3 predicted, 1 skipped" in proc.stdout and "broken.cif" in proc.stdout
    import pandas as pd

    table = pd.read_csv(tmp_path / "pred" / "predictions.csv")
    assert table["ok"].sum() == 3 and (table.loc[table["ok"], "cv_300K_J_per_K_mol"] > 0).all()
    proc = cli("plot", str(run_dir), check=True)
    assert "parity_test.png" in proc.stdout


def test_predict_alloy_series_with_e3nn_on_disordered_sites(tmp_path):
    """Chen et al.'s Mg3Sb2(1-p)Bi2p workflow: disordered sites through the e3nn multi-hot encoding."""
    from pymatgen.core import Lattice, Structure

    from phonbench.models.e3nn_model import E3NNModel
    from phonbench.testing import tiny_data

    model = E3NNModel({"epochs": 1}, seed=0, device="cpu").fit(tiny_data("spectrum"))
    model.save(tmp_path / "model")
    coords = [[1 / 3, 2 / 3, 0.63], [2 / 3, 1 / 3, 0.37], [0, 0, 0], [1 / 3, 2 / 3, 0.23], [2 / 3, 1 / 3, 0.77]]
    for name, pnict, a in (("a", "Sb", 4.57), ("b", "Bi", 4.70)):
        s = Structure(Lattice.hexagonal(a, 7.3), ["Mg", "Mg", "Mg", pnict, pnict], coords)
        s.to(filename=str(tmp_path / f"{name}.cif"))
    proc = cli("predict", "--checkpoint", str(tmp_path / "model"), "--alloy-series", str(tmp_path / "a.cif"),
               str(tmp_path / "b.cif"), "--steps", "3", "-o", str(tmp_path / "out"), check=True)
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "alloy_series.csv")
    assert len(table) == 3 and table["ok"].all() and table["mean_frequency_cm1"].notna().all()
    assert (tmp_path / "out" / "alloy_series.png").stat().st_size > 0
    assert "p=0.50" in proc.stdout
