"""Optuna tuning: valid-only objective, pruning, resume, refit tagged `tuned`, kill-and-restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import install_fake_distribution

from phonbench.records import read_record

# A plugin distribution with a slow-ish epoch model and a small dataset, importable in subprocesses.
PLUGIN = '''
from __future__ import annotations
import os, time
import numpy as np
from phonbench.datasets.base import Dataset, DatasetCard, PhononData, Task
from phonbench.models.base import Model

class ShrinkModel(Model):
    """Predicts the training mean shrunk by `alpha`; reports a per-epoch valid loss."""
    name = "shrink"
    description = "test model"
    default_params = {"alpha": 0.5, "epochs": 3, "sleep": 0.0}

    @classmethod
    def search_space(cls, trial):
        return {"alpha": trial.suggest_float("alpha", 0.0, 1.0)}

    def fit(self, train, valid=None, callbacks=()):
        self.check_task(train)
        SEEN.append(("fit", list(train.ids), list(valid.ids) if valid is not None else []))
        self.mean_ = train.targets.mean(axis=0) * self.params["alpha"]
        for epoch in range(self.params["epochs"]):
            time.sleep(self.params["sleep"])
            loss = float(((valid.targets - self.mean_) ** 2).mean()) + 1.0 / (epoch + 1)
            self.history.append({"epoch": epoch, "valid_loss": loss})
            for cb in callbacks:
                cb(epoch, {"valid_loss": loss})
        return self

    def predict(self, data):
        SEEN.append(("predict", list(data.ids)))
        return np.tile(self.mean_, (len(data), 1))

SEEN = []

class LineDataset(Dataset):
    card = DatasetCard(name="line", description="y = 10 + noise", task=Task("scalar", 1, "K"),
                       splits=("random", "kfold5"), default_metrics=("mae", "mse"), primary_metric="mae")

    def _load(self):
        rng = np.random.default_rng(0)
        n = 40
        return PhononData([f"x{i}" for i in range(n)], [None] * n, 10 + rng.normal(size=(n, 1)), self.card.task)
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    install_fake_distribution(root, "tune-test-plugin", "0.1", "tune_test_plugin", PLUGIN, {
        "phonbench.models": {"shrink": "tune_test_plugin:ShrinkModel"},
        "phonbench.datasets": {"line": "tune_test_plugin:LineDataset"},
    })
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    from phonbench.registry import DATASETS, MODELS

    MODELS.refresh()
    DATASETS.refresh()
    yield root
    sys.modules.pop("tune_test_plugin", None)
    MODELS.refresh()
    DATASETS.refresh()


def test_tune_uses_valid_only_then_refits_on_test(plugin, tmp_path):
    import tune_test_plugin

    from phonbench.tuning import tune

    tune_test_plugin.SEEN.clear()
    result = tune("shrink", "line", trials=6, out=tmp_path / "out", pruner="none", seed=1)
    (info,) = result.studies
    assert info["n_finished"] == 6 and 0.0 <= info["best_params"]["alpha"] <= 1.0
    # the trials predicted valid rows only; test rows were only predicted by the refit
    from phonbench.runner import load_dataset

    test_ids = {load_dataset("line").load().ids[i] for i in load_dataset("line").split().folds[0].test}
    trial_calls = tune_test_plugin.SEEN[: 2 * 6]
    assert all(not (set(c[1]) & test_ids) for c in trial_calls if c[0] == "predict")
    (record,) = result.run
    data = read_record(tmp_path / "out" / "runs" / record.run_id)
    assert data["tags"] == ["tuned"] and data["extra"]["tuning"]["n_finished"] == 6
    assert data["model"]["params"]["alpha"] == pytest.approx(info["best_params"]["alpha"])
    assert "alpha" in data["extra"]["tuning"]["search_space"]
    # the MLflow parent run has one nested run per trial
    from phonbench.tracking import Tracker

    client = Tracker(tmp_path / "out").client
    runs = client.search_runs([client.get_experiment_by_name("phonbench/line").experiment_id])
    trials = [r for r in runs if r.data.tags.get("phonbench.kind") == "trial"]
    assert len(trials) == 6 and all("hp.alpha" in r.data.params for r in trials)
    assert len({r.data.tags["mlflow.parentRunId"] for r in trials}) == 1


def test_resume_counts_finished_trials_in_total(plugin, tmp_path):
    from phonbench.tuning import tune

    out = tmp_path / "out"
    tune("shrink", "line", trials=3, out=out, refit=False, tracking=False)
    again = tune("shrink", "line", trials=5, out=out, refit=False, tracking=False)
    assert again.studies[0]["n_finished"] == 5


def test_study_is_keyed_by_everything_that_defines_the_objective(plugin, tmp_path):
    from phonbench.tuning import tune

    out = tmp_path / "out"
    base = tune("shrink", "line", trials=2, out=out, refit=False, tracking=False)
    same = tune("shrink", "line", trials=2, out=out, refit=False, tracking=False)
    assert same.studies[0]["study"] == base.studies[0]["study"]  # resumed: no new trials
    names = {base.studies[0]["study"]}
    for change in ({"seed": 1}, {"fixed_params": {"epochs": 2}}):
        other = tune("shrink", "line", trials=2, out=out, refit=False, tracking=False, **change)
        assert other.studies[0]["n_finished"] == 2 and other.studies[0]["study"] not in names
        names.add(other.studies[0]["study"])
    assert all(n.startswith("line-shrink-random-f0-") for n in names)


def test_pruner_prunes_bad_trials(plugin, tmp_path):
    from phonbench.tuning import tune

    res = tune("shrink", "line", trials=12, out=tmp_path, refit=False, tracking=False, pruner="median",
               fixed_params={"epochs": 6}, sampler="random")
    assert res.studies[0]["n_finished"] == 12 and res.studies[0]["n_complete"] < 12


def test_killed_worker_is_recovered_on_restart(plugin, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "phonbench.cli", "tune", "--model", "shrink", "--dataset", "line",
           "--trials", "4", "--no-tracking", "--no-refit", "--pruner", "none", "--out", str(out),
           "--param", "sleep=0.5", "--param", "epochs=4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    journals = []
    while time.time() < deadline and not (journals and b"worker" in journals[0].read_bytes()):
        journals = sorted((out / "optuna").glob("line-shrink-random-f0-*.journal"))
        time.sleep(0.2)
    (journal,) = journals
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)  # killed mid-trial
    proc.wait()
    subprocess.run(cmd, check=True, timeout=300, stdout=subprocess.DEVNULL)

    import optuna

    from phonbench.tuning import make_storage

    name = journal.name[: -len(".journal")]
    study = optuna.load_study(study_name=name, storage=make_storage(None, out, name))
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 4
    assert "RUNNING" not in states and states.count("FAIL") >= 1  # the killed trial was failed and retried
    assert len({t.number for t in study.trials}) == len(study.trials)
