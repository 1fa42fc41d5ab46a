"""Runner, records and MLflow: a run writes a verified record, predictions and the same metrics to MLflow."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import make_data

from phonbench.datasets.base import Dataset, DatasetCard
from phonbench.exceptions import ConfigError, TrackingError
from phonbench.records import read_record
from phonbench.registry import DATASETS
from phonbench.runner import parse_params, run


def _tiny_dataset_class(kind: str):
    data = make_data(kind, n_repeat=3)

    class Tiny(Dataset):
        card = DatasetCard(
            name=f"tiny_{kind}", description="tiny test data", task=data.task, splits=("random", "kfold5"),
            default_metrics=("mae", "mse", "r2_aggregated"), primary_metric="mae",
        )

        def _load(self):
            return data

    return Tiny


@pytest.fixture
def tiny_dataset(request):
    kind = getattr(request, "param", "modes")
    cls = _tiny_dataset_class(kind)
    DATASETS.register(cls.card.name)(cls)
    yield cls.card.name
    DATASETS.unregister(cls.card.name)


@pytest.mark.parametrize("tiny_dataset", ["modes"], indirect=True)
def test_run_writes_record_predictions_and_mlflow(tiny_dataset, tmp_path):
    result = run("dummy", tiny_dataset, out=tmp_path, seed=3)
    (record,) = result.records
    data = read_record(result.run_dirs[0])
    assert data["metrics"] == record.metrics and set(data["metrics"]) == {"train", "valid", "test"}
    assert data["model"]["provider"]["distribution"] == "phonbench"
    assert data["dataset"]["sizes"] == {"train": 20, "valid": 2, "test": 2}
    assert data["environment"]["python"] and data["timings"]["fit_s"] >= 0
    assert data["environment"]["plugins"]["model:dummy"].startswith("phonbench ")
    assert data["environment"]["plugins"]["metric:mae"].startswith("phonbench ")
    # predictions: one row per material of each split, mask columns for modes
    with open(result.run_dirs[0] / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 24 and {"y_true_0", "y_pred_0", "mask_0"} <= set(rows[0])
    # dummy: test MAE recomputed from the predictions file equals the recorded one
    test = [r for r in rows if r["split"] == "test"]
    d = record.dataset["task"]["n_outputs"]
    y = np.array([[float(r[f"y_true_{j}"]) for j in range(d)] for r in test])
    p = np.array([[float(r[f"y_pred_{j}"]) for j in range(d)] for r in test])
    m = np.array([[r[f"mask_{j}"] == "1" for j in range(d)] for r in test])
    assert np.abs(y - p)[m].mean() == pytest.approx(record.metrics["test"]["mae"], rel=1e-6)
    # MLflow holds the same numbers
    from phonbench.tracking import Tracker

    mlrun = Tracker(tmp_path).get_run(data["mlflow_run_id"])
    assert mlrun.data.metrics["test_mae"] == pytest.approx(record.metrics["test"]["mae"])
    assert mlrun.data.params["model"] == "dummy"
    assert mlrun.info.status == "FINISHED"
    # the fitted model is kept and reloads to the same predictions
    from phonbench.runner import load_run_model

    again = load_run_model(result.run_dirs[0])
    np.testing.assert_allclose(again.predict(make_data("modes", n_repeat=1))[:, :d], p[:1].repeat(8, 0), rtol=1e-6)


@pytest.mark.parametrize("tiny_dataset", ["spectrum"], indirect=True)
def test_kfold_run_writes_one_record_per_fold_and_a_summary(tiny_dataset, tmp_path):
    result = run("dummy", tiny_dataset, split="kfold5", out=tmp_path, tracking=False)
    assert len(result.records) == 5 and len({r.run_id for r in result.records}) == 5
    maes = [r.metrics["test"]["mae"] for r in result.records]
    assert result.summary["metrics"]["test"]["mae"]["mean"] == pytest.approx(np.mean(maes))
    assert result.summary["metrics"]["test"]["mae"]["std"] == pytest.approx(np.std(maes, ddof=1))
    assert json.loads(result.summary_path.read_text())["runs"] == [r.run_id for r in result.records]


@pytest.mark.parametrize("tiny_dataset", ["scalar"], indirect=True)
def test_same_seed_same_metrics(tiny_dataset, tmp_path):
    a = run("dummy", tiny_dataset, out=tmp_path / "a", seed=1, tracking=False).records[0]
    b = run("dummy", tiny_dataset, out=tmp_path / "b", seed=1, tracking=False).records[0]
    assert a.metrics == b.metrics


def test_record_tampering_is_detected(tiny_dataset, tmp_path):
    result = run("dummy", tiny_dataset, out=tmp_path, tracking=False)
    path = result.run_dirs[0] / "record.json"
    data = json.loads(path.read_text())
    data["metrics"]["test"]["mae"] = 0.0
    path.write_text(json.dumps(data))
    with pytest.raises(TrackingError, match="hash mismatch"):
        read_record(path)


def test_failed_fit_leaves_no_run_directory(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError):
        run("dummy", tiny_dataset, out=tmp_path, tracking=False, params={"nope": 1})
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_split_and_fold_and_device(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match="no split 'nope'.*random, kfold5"):
        run("dummy", tiny_dataset, split="nope", out=tmp_path, tracking=False)
    with pytest.raises(ConfigError, match="fold 7"):
        run("dummy", tiny_dataset, split="kfold5", folds=[7], out=tmp_path, tracking=False)
    with pytest.raises(ConfigError, match="device"):
        run("dummy", tiny_dataset, device="tpu", out=tmp_path, tracking=False)


def test_parse_params():
    assert parse_params(["epochs=5", "lr=1e-3", "name=rf", "flag=true", "dims=[1,2]"]) == {
        "epochs": 5, "lr": 1e-3, "name": "rf", "flag": True, "dims": [1, 2]}
    with pytest.raises(ConfigError, match="key=value"):
        parse_params(["oops"])


def test_train_fraction_subsamples_train_only(tiny_dataset, tmp_path):
    full = run("dummy", tiny_dataset, out=tmp_path, tracking=False).records[0]
    half = run("dummy", tiny_dataset, out=tmp_path, tracking=False, train_fraction=0.5).records[0]
    assert half.dataset["sizes"]["train"] == full.dataset["sizes"]["train"] // 2
    assert half.dataset["sizes"]["test"] == full.dataset["sizes"]["test"]
    assert half.dataset["train_fraction"] == 0.5
    with pytest.raises(ConfigError, match="outside"):
        run("dummy", tiny_dataset, out=tmp_path, tracking=False, train_fraction=1.5)


def test_save_model_false_keeps_no_checkpoint(tiny_dataset, tmp_path):
    result = run("dummy", tiny_dataset, out=tmp_path, tracking=False, save_model=False, plots=False)
    assert not (result.run_dirs[0] / "model").exists() and (result.run_dirs[0] / "record.json").exists()


def test_grouped_split_records_say_what_was_held_out(tmp_path):
    result = run("dummy", "synthetic", split="chemsys", folds=[0], dataset_options={"size": 60}, out=tmp_path,
                 tracking=False, plots=False)
    grouping = read_record(result.run_dirs[0])["dataset"]["grouping"]
    assert grouping["kind"] == "chemsys" and grouping["description"]
    assert grouping["distinct_groups"]["test"] == len(grouping["test_groups"]) > 0
    assert sum(grouping["test_groups"].values()) == result.records[0].dataset["sizes"]["test"]


def test_matbench_final_fit_on_the_whole_training_fold_reproduces_the_matbench_dummy(tmp_path):
    """matbench trains the recorded model on train + valid: the dummy gives matbench's 323.98 cm^-1."""
    result = run("dummy", "matbench_phonons", out=tmp_path, tracking=False, plots=False, save_model=False)
    assert result.summary["metrics"]["test"]["mae"]["mean"] == pytest.approx(323.98, abs=0.01)
    record = result.records[0]
    assert record.dataset["final_fit"] == "train+valid" and record.dataset["sizes"]["valid"] == 0
    assert "valid" not in record.metrics
