"""Leaderboard collection: records from run directories and MLflow, validation and rejections.

Also holds the helpers that generate realistic records with the real runner (imported by the other
leaderboard test modules): a tiny spectrum dataset, a modes dataset ranked by a maximised metric,
and two local models — ``lb_oracle`` (truth + small noise, with a per-epoch history) and
``lb_noisy`` (truth + large noise) — beside the ``dummy`` baseline.
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from phonbench.datasets.base import Dataset, DatasetCard, PhononData, Task, kfold_split
from phonbench.leaderboard.collect import collect_dir, collect_mlflow, schema_errors
from phonbench.models.dummy import DummyModel
from phonbench.records import record_hash
from phonbench.registry import DATASETS, MODELS
from phonbench.runner import run

SPEC = "lb_spec"
MODES = "lb_modes"


def make_targets(kind: str, n: int, seed: int = 1) -> PhononData:
    """``n`` materials without structures (the test models never look at them).

    ``spectrum``: 11-point max-normalised spectra on 0..1000 cm⁻¹; ``modes``: 3–12 real
    frequencies (THz) per material, zero-padded to 12 with a mask.
    """
    rng = np.random.default_rng(seed)
    ids = [f"m{i:03d}" for i in range(n)]
    if kind == "spectrum":
        task = Task("spectrum", 11, "a.u.", "dos", tuple(np.linspace(0, 1000, 11)), "cm^-1")
        y = rng.random((n, 11))
        return PhononData(ids, [None] * n, y / y.max(axis=1, keepdims=True), task)
    task = Task("modes", 12, "THz", "gamma_frequencies")
    mask = np.arange(12)[None, :] < 3 * rng.integers(1, 5, size=n)[:, None]
    y = np.where(mask, -np.sort(-rng.random((n, 12)) * 20, axis=1), 0.0)
    return PhononData(ids, [None] * n, y, task, mask=mask)


def _dataset(name: str, kind: str, primary: str, n: int) -> type[Dataset]:
    data = make_targets(kind, n)

    class Tiny(Dataset):
        card = DatasetCard(name=name, description=f"tiny {kind} data for leaderboard tests", task=data.task,
                           splits=("random", "kfold5", "cluster"), default_metrics=("mae", "mse", "r2_aggregated"),
                           primary_metric=primary, version="3")

        def _load(self):
            return data

        def _make_split(self, name, seed):
            if name == "cluster":  # stands in for the out-of-distribution protocol (no structures here)
                return kfold_split(len(data), seed, name="cluster")
            return super()._make_split(name, seed)

    return Tiny


class _NoisyTruth(DummyModel):
    """Predicts the true targets plus seeded Gaussian noise of size ``noise`` (a.u.)."""

    default_params = {"noise": 0.02}

    def fit(self, train, valid=None, callbacks=()):
        super().fit(train, valid, callbacks)
        for epoch in range(4):
            self.history.append({"epoch": epoch, "train_loss": 1.0 / (epoch + 1), "valid_loss": 1.5 / (epoch + 1)})
        return self

    def predict(self, data):
        rng = np.random.default_rng([self.seed, len(data)])
        return data.targets + self.params["noise"] * rng.normal(size=data.targets.shape)


class Oracle(_NoisyTruth):
    name = "lb_oracle"


class Noisy(_NoisyTruth):
    name = "lb_noisy"
    default_params = {"noise": 0.5}

    def fit(self, train, valid=None, callbacks=()):
        DummyModel.fit(self, train, valid, callbacks)  # no history: training curves skip this row
        return self


@contextlib.contextmanager
def registered():
    """Register the test datasets and models for the duration of the block."""
    entries = [(DATASETS, _dataset(SPEC, "spectrum", "mae", 80)), (DATASETS, _dataset(MODES, "modes", "r2_aggregated", 40)),
               (MODELS, Oracle), (MODELS, Noisy)]
    added = []
    for reg, cls in entries:
        name = cls.card.name if reg is DATASETS else cls.name
        if name not in reg:  # re-entrant: an enclosing block may have registered them already
            reg.register(name)(cls)
            added.append((reg, name))
    try:
        yield
    finally:
        for reg, name in added:
            reg.unregister(name)


def make_records(out: Path) -> Path:
    """Write the standard set of test runs under ``out/runs`` (tracking off) and return ``out``.

    * ``lb_spec`` / ``random``: dummy, lb_oracle, lb_noisy with seeds 0, 1, 2 (pairs → paired t-test);
    * ``lb_spec`` / ``kfold5`` fold 0, seed 0: lb_oracle, lb_oracle tagged ``tuned`` with the same
      params (identical predictions) and lb_noisy — one pair each, so ties use the bootstrap; no dummy;
    * ``lb_modes`` / ``random`` seeds 0, 1: dummy, lb_oracle, lb_noisy (ranked by r2_aggregated, ↑);
    * ``lb_spec`` / ``cluster`` (an out-of-distribution split name) folds 0, 1: dummy and lb_noisy.
    """
    for seed in (0, 1, 2):
        for model in ("dummy", "lb_oracle", "lb_noisy"):
            run(model, SPEC, out=out, tracking=False, plots=False, seed=seed)
    for model, tags in (("lb_oracle", ("default",)), ("lb_oracle", ("tuned",)), ("lb_noisy", ("default",))):
        run(model, SPEC, split="kfold5", folds=[0], out=out, tracking=False, plots=False, seed=0, tags=tags)
    for seed in (0, 1):
        for model in ("dummy", "lb_oracle", "lb_noisy"):
            run(model, MODES, out=out, tracking=False, plots=False, seed=seed)
    for model in ("dummy", "lb_noisy"):
        run(model, SPEC, split="cluster", folds=[0, 1], out=out, tracking=False, plots=False, seed=0)
    return out


_CACHE: dict[str, Path] = {}


def standard_records(tmp_path_factory) -> Path:
    """The standard records, generated once per test session (read-only for tests: copy to modify)."""
    if "records" not in _CACHE:
        with registered():
            _CACHE["records"] = make_records(tmp_path_factory.mktemp("records"))
    return _CACHE["records"]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """The standard records directory; the test datasets and models stay registered meanwhile."""
    path = standard_records(tmp_path_factory)
    with registered():
        yield path


def copy_runs(src: Path, dst: Path, select=lambda rec: True) -> Path:
    """Copy the run directories whose record satisfies ``select`` into ``dst/runs``."""
    for run_dir in sorted((src / "runs").iterdir()):
        if select(json.loads((run_dir / "record.json").read_text())):
            shutil.copytree(run_dir, dst / "runs" / run_dir.name)
    return dst


def _one_run(records: Path, tmp_path: Path, model: str = "dummy", dataset: str = SPEC) -> Path:
    out = copy_runs(records, tmp_path / "recs", lambda r: r["model"]["name"] == model and r["dataset"]["name"] == dataset
                    and r["dataset"]["split"] == "random" and r["seed"] == 0)
    (run_dir,) = (out / "runs").iterdir()
    return run_dir


def _rewrite(run_dir: Path, edit) -> None:
    path = run_dir / "record.json"
    data = json.loads(path.read_text())
    edit(data)
    data["record_hash"] = record_hash(data)
    path.write_text(json.dumps(data))


def test_collects_every_valid_record_sorted(records):
    coll = collect_dir(records)
    assert coll.rejected == [] and coll.warnings == []
    assert len(coll.runs) == 9 + 3 + 6 + 4
    assert [r.run_id for r in coll.runs] == sorted(r.run_id for r in coll.runs)
    run0 = next(r for r in coll.runs if r.record["dataset"]["split"] == "kfold5")
    ids, y, p, m = run0.predictions.part("test")
    assert len(ids) == 16 and y.shape == (16, 11) and m.all()
    modes = next(r for r in coll.runs if r.record["dataset"]["name"] == MODES)
    assert modes.predictions.mask is not None and not modes.predictions.mask.all()
    assert np.abs(y - p).mean() == pytest.approx(run0.record["metrics"]["test"]["mae"], rel=1e-6)


def test_tampered_record_is_rejected(records, tmp_path):
    run_dir = _one_run(records, tmp_path)
    data = json.loads((run_dir / "record.json").read_text())
    data["metrics"]["test"]["mae"] = 0.0
    (run_dir / "record.json").write_text(json.dumps(data))
    coll = collect_dir(tmp_path / "recs")
    assert coll.runs == []
    ((source, reason),) = coll.rejected
    assert source == f"runs/{run_dir.name}" and "hash mismatch" in reason
    assert str(tmp_path) not in reason  # messages name files relative to the records directory


def test_predictions_row_count_mismatch_is_rejected(records, tmp_path):
    run_dir = _one_run(records, tmp_path)
    lines = (run_dir / "predictions.csv").read_text().splitlines()
    test_rows = [i for i, line in enumerate(lines) if ",test," in line]
    del lines[test_rows[0]]
    (run_dir / "predictions.csv").write_text("\n".join(lines) + "\n")
    ((_, reason),) = collect_dir(tmp_path / "recs").rejected
    assert reason == "predictions.csv has 7 test rows but the record says 8 test materials"


def test_predictions_that_do_not_reproduce_the_metrics_are_rejected(records, tmp_path):
    run_dir = _one_run(records, tmp_path, model="lb_noisy")
    with open(run_dir / "predictions.csv") as fh:
        rows = list(csv.reader(fh))
    for row in rows[1:]:
        if row[1] == "test":
            row[2 + 11] = "0.5"  # y_pred_0 of every test material
    with open(run_dir / "predictions.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    ((_, reason),) = collect_dir(tmp_path / "recs").rejected
    assert reason.startswith("predictions.csv gives test mae = ") and "but the record says" in reason


def test_missing_predictions_and_wrong_columns_are_rejected(records, tmp_path):
    run_dir = _one_run(records, tmp_path)
    text = (run_dir / "predictions.csv").read_text()
    (run_dir / "predictions.csv").write_text(text.replace("y_pred_3", "y_hat_3", 1))
    ((_, reason),) = collect_dir(tmp_path / "recs").rejected
    assert "columns do not match a task with 11 outputs" in reason
    (run_dir / "predictions.csv").unlink()
    ((_, reason),) = collect_dir(tmp_path / "recs").rejected
    assert reason.startswith("cannot read predictions.csv")


def test_modes_predictions_without_mask_are_rejected(records, tmp_path):
    run_dir = _one_run(records, tmp_path, dataset=MODES)
    with open(run_dir / "predictions.csv") as fh:
        rows = list(csv.reader(fh))
    d = sum(1 for c in rows[0] if c.startswith("mask_"))
    with open(run_dir / "predictions.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(r[:-d] for r in rows)
    ((_, reason),) = collect_dir(tmp_path / "recs").rejected
    assert reason == "predictions.csv of a modes task has no mask_* columns"


def test_mismatched_run_id_and_duplicates(records, tmp_path):
    run_dir = _one_run(records, tmp_path)
    shutil.copytree(run_dir, tmp_path / "recs" / "runs" / "renamed")
    coll = collect_dir(tmp_path / "recs")
    assert len(coll.runs) == 1
    ((source, reason),) = coll.rejected
    assert source == "runs/renamed" and reason == f"record run id {run_dir.name!r} does not match 'renamed'"
    # the same run found twice (e.g. two copies of a results folder): kept once, no complaint
    copy_runs(tmp_path / "recs", tmp_path / "recs" / "copy", lambda r: True)
    shutil.rmtree(tmp_path / "recs" / "copy" / "runs" / "renamed")
    coll = collect_dir(tmp_path / "recs")
    assert len(coll.runs) == 1 and len(coll.rejected) == 1


def test_dataset_version_mismatch_is_rejected(records, tmp_path):
    run_dir = _one_run(records, tmp_path)
    _rewrite(run_dir, lambda d: d["dataset"].update(version="2"))
    ((_, reason),) = collect_dir(tmp_path / "recs").rejected
    assert reason.startswith("dataset 'lb_spec' version '2' differs from the installed card's version '3'")


def test_unknown_dataset_is_accepted_with_a_warning(records, tmp_path):
    run_dir = _one_run(records, tmp_path)
    _rewrite(run_dir, lambda d: d["dataset"].update(name="not_installed_here"))
    coll = collect_dir(tmp_path / "recs")
    assert len(coll.runs) == 1 and coll.rejected == []
    assert coll.warnings == ["dataset 'not_installed_here' is not installed here; version '3' of its records was not checked"]
    assert coll.dataset_notes == {"not_installed_here": coll.warnings}


def test_schema_check_names_missing_and_mistyped_keys(records, tmp_path):
    data = json.loads((_one_run(records, tmp_path) / "record.json").read_text())
    assert schema_errors(data) == []
    del data["dataset"]["task"]
    data["seed"] = "0"
    data["primary_metric"] = "nope"
    assert schema_errors(data) == ["missing key 'dataset.task'", "key 'seed' is str, expected int"]
    data["dataset"]["task"] = {"kind": "spectrum", "n_outputs": 11, "unit": "a.u."}
    data["seed"] = 0
    assert schema_errors(data) == ["primary metric 'nope' missing from metrics.test"]
    assert schema_errors([]) == ["record is not a JSON object"]
    # a schema-violating record with a valid hash is rejected by collection
    run_dir = tmp_path / "recs" / "runs" / next((tmp_path / "recs" / "runs").iterdir()).name
    _rewrite(run_dir, lambda d: d.pop("timings"))
    ((_, reason),) = collect_dir(tmp_path / "recs").rejected
    assert reason == "record.json does not match the run-record schema: missing key 'timings'"


def test_missing_records_directory(tmp_path):
    from phonbench.exceptions import DataError

    with pytest.raises(DataError, match="does not exist"):
        collect_dir(tmp_path / "nope")


def test_collect_from_mlflow(tmp_path):
    with registered():
        result = run("dummy", SPEC, out=tmp_path, seed=0, plots=False)
        coll = collect_mlflow(f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "download")
    (got,) = coll.runs
    assert coll.rejected == []
    assert got.run_id == result.records[0].run_id and got.source.startswith("mlflow:")
    assert got.record["metrics"] == result.records[0].metrics
    # the local copy of the same run deduplicates against it
    local = collect_dir(tmp_path)
    local.merge(coll)
    assert len(local.runs) == 1 and local.rejected == []


def test_any_edit_of_the_predictions_is_caught_by_their_sha256(records, tmp_path):
    run_dir = _one_run(records, tmp_path, model="lb_noisy")
    text = (run_dir / "predictions.csv").read_text()
    train = next(line for line in text.splitlines() if ",train," in line)
    edited = train.rsplit(",", 1)[0] + ",0.123"  # a train prediction: the test metrics still reproduce
    (run_dir / "predictions.csv").write_text(text.replace(train, edited))
    ((_, reason),) = collect_dir(tmp_path / "recs").rejected
    assert "sha256 differs" in reason


def test_schema_2_provenance_in_new_records(records):
    record = json.loads(next((records / "runs").glob("*/record.json")).read_text())
    env = record["environment"]
    assert record["schema_version"] == 2 and len(record["predictions_sha256"]) == 64
    assert {"cpu_model", "torch_threads", "load_average", "git_dirty", "libraries"} <= set(env)
    assert env["libraries"]["pymatgen"] and "scikit-learn" in env["libraries"]
    assert record["model"]["stops"] == []  # the test models have no epochs
    assert "origin" not in record["extra"]  # Python API runs; the CLI and suites record their command or entry
