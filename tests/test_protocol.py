"""The open protocol: the Python ``Benchmark`` loop, model cards, the exchange CSV and external records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from phonbench.exceptions import ConfigError, DataError
from phonbench.model_card import ModelCard
from phonbench.protocol import EXTERNAL_TAG, Benchmark

SMALL = {"size": 60}


def _mean_predictions(fold) -> np.ndarray:
    """The training mean (over train + valid where the card's final fit says so, as matbench does)."""
    rows = [fold.train.targets]
    if fold.bench.dataset.card.final_fit == "train+valid":
        rows.append(fold.valid.targets)
    return np.tile(np.vstack(rows).mean(axis=0), (len(fold.test_inputs), 1))


CASES = [("synthetic", "kfold5", {**SMALL, "task": "spectrum"}), ("synthetic", "kfold5", {**SMALL, "task": "modes"}),
         ("matbench_phonons", "matbench", {})]


@pytest.mark.parametrize("dataset, split, options", CASES, ids=["spectrum", "modes", "scalar"])
def test_benchmark_loop_scores_like_the_dummy_and_saves_accepted_records(tmp_path, dataset, split, options):
    from phonbench import run
    from phonbench.leaderboard.collect import collect_dir

    bench = Benchmark(dataset, split=split, dataset_options=options)
    task = bench.task.kind
    assert len(bench.folds) == 5
    for fold in bench.folds[:2]:
        inputs = fold.test_inputs
        assert len(inputs) == len(fold.fold.test) and not hasattr(inputs, "targets")
        assert (inputs.mask is not None) == (task == "modes")
        record = fold.record(_mean_predictions(fold), model_card={"name": "train-mean", "authors": "A. B."})
        assert record.tags == [EXTERNAL_TAG] and set(record.metrics) == {"test"}
        assert record.model["card"]["authors"] == ["A. B."] and record.model["params"] == {}
    dirs = bench.save(tmp_path)
    assert len(dirs) == 2 and len(list((tmp_path / "summaries").iterdir())) == 1
    coll = collect_dir(tmp_path)
    assert coll.rejected == [] and len(coll.runs) == 2

    if task == "modes":
        return  # the dummy averages real modes only; a plain column mean differs there
    # the same numbers as phonbench's own dummy (train-mean) model on the same folds
    dummy = run("dummy", dataset, split=split, folds=[0, 1], dataset_options=options, out=tmp_path / "d",
                tracking=False, plots=False, save_model=False)
    ours = sorted(coll.runs, key=lambda r: r.record["dataset"]["fold"])
    for mine, theirs in zip(ours, dummy.records):
        primary = theirs.primary_metric
        assert mine.record["metrics"]["test"][primary] == pytest.approx(theirs.metrics["test"][primary], rel=1e-9)


def test_predictions_by_id_mapping_and_scalar_vector(tmp_path):
    bench = Benchmark("matbench_phonons", folds=[0])
    fold = bench.folds[0]
    ids = fold.test_inputs.ids
    by_id = {i: float(v) for i, v in zip(ids, np.arange(len(ids)))}
    a = fold.record(by_id, ModelCard("m"))
    b = fold.record(np.arange(len(ids), dtype=float), ModelCard("m"))  # (n,) for scalar tasks
    assert a.metrics == b.metrics


@pytest.mark.parametrize("bad, says", [
    (lambda f: np.zeros((len(f.test_inputs) + 1, f.test_inputs.task.n_outputs)), "shape"),
    (lambda f: np.zeros((len(f.test_inputs), f.test_inputs.task.n_outputs + 1)), "shape"),
    (lambda f: np.full((len(f.test_inputs), f.test_inputs.task.n_outputs), np.nan), "NaN"),
    (lambda f: {i: [0.0] * f.test_inputs.task.n_outputs for i in f.test_inputs.ids[1:]}, "missing"),
    (lambda f: {**{i: [0.0] * f.test_inputs.task.n_outputs for i in f.test_inputs.ids}, "nope": [0.0]},
     "not a test id"),
    (lambda f: "abc", "numeric"),
])
def test_bad_predictions_are_refused_with_the_row_named(bad, says):
    bench = Benchmark("synthetic", dataset_options=SMALL)
    fold = bench.folds[0]
    with pytest.raises(DataError, match=says):
        fold.record(bad(fold), {"name": "m"})
    assert bench.recorded == {}
    with pytest.raises(DataError, match="no fold was recorded"):
        bench.save("unused")


def test_benchmark_refuses_unknown_split_and_fold():
    with pytest.raises(ConfigError, match="has no split 'nope'.*"):
        Benchmark("synthetic", split="nope", dataset_options=SMALL)
    with pytest.raises(ConfigError, match="fold 9 does not exist"):
        Benchmark("synthetic", split="kfold5", folds=[9], dataset_options=SMALL)
    with pytest.raises(ConfigError, match="not offered"):
        Benchmark("synthetic", split="kfold5", folds=[1], dataset_options=SMALL).fold(0)


@pytest.mark.parametrize("card, says", [
    ({}, "needs name"),
    ({"name": "has space"}, "needs name"),
    ({"name": "m", "colour": "red"}, "unknown key 'colour'"),
    ({"name": "m", "n_parameters": 1.5}, "n_parameters"),
    ({"name": "m", "training_time_s": -1}, "training_time_s"),
    ({"name": "m", "authors": [1]}, "authors"),
    ({"name": "m", "doi": 10}, "doi"),
])
def test_model_card_validation(card, says):
    with pytest.raises(ConfigError, match=says):
        ModelCard.from_mapping(card)


def test_model_card_from_toml_with_model_table(tmp_path):
    path = tmp_path / "card.toml"
    path.write_text('[model]\nname = "x"\nauthors = ["A", "B"]\ntraining_time_s = 12\nn_parameters = 3\n')
    card = ModelCard.read(path)
    assert card.as_dict() == {"name": "x", "authors": ["A", "B"], "training_time_s": 12.0, "n_parameters": 3}
    (tmp_path / "bad.toml").write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ModelCard.read(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="cannot read model card"):
        ModelCard.read(tmp_path / "missing.toml")


def test_external_rows_are_ranked_and_tiered_on_boards(tmp_path):
    from phonbench import run
    from phonbench.leaderboard import build_leaderboard

    bench = Benchmark("synthetic", dataset_options=SMALL)
    bench.folds[0].record(_mean_predictions(bench.folds[0]), {"name": "ext-mean", "hardware": "1 GPU"})
    bench.save(tmp_path / "records")
    run("dummy", "synthetic", dataset_options=SMALL, out=tmp_path / "records", tracking=False, plots=False,
        save_model=False)
    build_leaderboard(tmp_path / "records", None, tmp_path / "lb", with_figures=False, strict=True)
    board = json.loads(next((tmp_path / "lb").glob("synthetic*.json")).read_text())
    rows = {r["label"]: r for r in board["tables"][0]["rows"]}
    assert rows["ext-mean (external)"]["variant"] == "external" and rows["ext-mean (external)"]["tier"] == 1
    assert rows["ext-mean (external)"]["hardware"] == ["1 GPU"]
    assert "ext-mean (external)" in next((tmp_path / "lb").glob("synthetic*.md")).read_text()


def test_export_layout_checksums_and_readers(tmp_path):
    import ase.io
    from pymatgen.io.cif import CifParser

    from phonbench.export import export_dataset, verify_export

    manifest_path = export_dataset("synthetic", tmp_path / "exp", split="kfold5",
                                   dataset_options={**SMALL, "task": "modes"})
    manifest = json.loads(manifest_path.read_text())
    assert manifest["split"] == "kfold5" and manifest["folds"] == ["0", "1", "2", "3", "4"]
    assert manifest["dataset"]["name"] == "synthetic" and verify_export(tmp_path / "exp") == []
    fold = tmp_path / "exp" / "fold_0"
    ids = json.loads((fold / "ids.json").read_text())
    bench = Benchmark("synthetic", split="kfold5", dataset_options={**SMALL, "task": "modes"})
    assert ids["test"] == bench.folds[0].test_inputs.ids
    frames = ase.io.read(fold / "test.extxyz", index=":")
    assert [a.info["id"] for a in frames] == ids["test"]
    structures = CifParser(fold / "train.cif").parse_structures(primitive=False)
    assert len(structures) == len(ids["train"])
    header = (fold / "test_template.csv").read_text().splitlines()[0].split(",")
    task = bench.task
    assert header[0] == "id" and len(header) == 1 + 2 * task.n_outputs and header[-1] == f"mask_{task.n_outputs - 1}"
    assert len((fold / "test_targets.csv").read_text().splitlines()) == 1 + len(ids["test"])
    (fold / "test_targets.csv").write_text("tampered\n")
    assert verify_export(tmp_path / "exp") == ["fold_0/test_targets.csv"]
    with pytest.raises(ConfigError, match="not empty"):
        export_dataset("synthetic", tmp_path / "exp", dataset_options=SMALL)


def test_export_failure_leaves_nothing(tmp_path, monkeypatch):
    from phonbench import export

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "write_cif", boom)
    with pytest.raises(RuntimeError):
        export.export_dataset("synthetic", tmp_path / "exp", dataset_options=SMALL)
    assert list(tmp_path.iterdir()) == []


def test_exported_template_filled_in_scores_like_the_python_loop(tmp_path):
    from phonbench.export import export_dataset
    from phonbench.protocol import score_csv

    export_dataset("synthetic", tmp_path / "exp", dataset_options={**SMALL, "task": "modes"})
    bench = Benchmark("synthetic", dataset_options={**SMALL, "task": "modes"})
    fold = bench.folds[0]
    pred = _mean_predictions(fold)
    expected = fold.record(pred, {"name": "m"}).metrics
    lines = (tmp_path / "exp" / "fold_0" / "test_template.csv").read_text().splitlines()
    d = bench.task.n_outputs
    filled = [lines[0]]
    for line, row in zip(lines[1:], pred):
        cells = line.split(",")
        filled.append(",".join([cells[0], *map(repr, row.tolist()), *cells[1 + d:]]))
    (tmp_path / "p.csv").write_text("\n".join(filled) + "\n")
    scored = score_csv(tmp_path / "p.csv", "synthetic", ModelCard("m"), dataset_options={**SMALL, "task": "modes"})
    (record, _), = scored.recorded.values()
    assert record.metrics["test"] == pytest.approx(expected["test"], rel=1e-12)
    origin = record.extra["origin"]
    assert origin["via"] == "phonbench score" and len(origin["predictions_sha256"]) == 64


def test_score_refuses_a_multi_fold_split_without_fold(tmp_path):
    from phonbench.protocol import score_csv

    (tmp_path / "p.csv").write_text("id,x\n")
    with pytest.raises(ConfigError, match="--fold"):
        score_csv(tmp_path / "p.csv", "synthetic", ModelCard("m"), split="kfold5", dataset_options=SMALL)


def test_worked_example_reads_only_the_export(tmp_path):
    """examples/external_knn.py runs on an export and its CSV scores (the docs/submit.md example)."""
    import subprocess
    import sys

    from phonbench.export import export_dataset
    from phonbench.protocol import score_csv

    repo = Path(__file__).resolve().parents[1]
    export_dataset("synthetic", tmp_path / "exp", dataset_options={**SMALL, "task": "spectrum"})
    proc = subprocess.run([sys.executable, str(repo / "examples" / "external_knn.py"), str(tmp_path / "exp"),
                           "--out", str(tmp_path / "knn.csv")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    card = ModelCard.read(repo / "examples" / "external_knn.toml")
    bench = score_csv(tmp_path / "knn.csv", "synthetic", card, dataset_options={**SMALL, "task": "spectrum"})
    (record, _), = bench.recorded.values()
    assert record.model["name"] == "knn-composition" and np.isfinite(record.metrics["test"]["mse"])


@pytest.mark.parametrize("edit, says", [
    ("flip_mask", "differs from the task's mask"),
    ("drop_masks", None),
    ("mask_on_spectrum", "without a mask"),
    ("padding_empty", None),
])
def test_modes_mask_columns_in_predictions(tmp_path, edit, says):
    from phonbench.exchange import mask_columns, read_predictions_csv, table_csv, value_columns

    bench = Benchmark("synthetic", dataset_options={**SMALL, "task": "modes"})
    test = bench.folds[0].test_inputs
    task, d = test.task, test.task.n_outputs
    pred = np.where(test.mask, 1.0, 0.0)
    lines = table_csv(test.ids, pred, task, test.mask).splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    if edit == "flip_mask":
        rows[0][1 + d] = "0" if rows[0][1 + d] == "1" else "1"
    elif edit == "drop_masks":
        header, rows = header[:1 + d], [r[:1 + d] for r in rows]
    elif edit == "padding_empty":
        for r in rows:
            for j in range(d):
                if r[1 + d + j] == "0":
                    r[1 + j] = ""
    if edit == "mask_on_spectrum":
        task = bench.dataset.card.task.__class__("spectrum", d, "a.u.", "x", tuple(range(d)), "cm^-1")
        header = ["id", *value_columns(task), *mask_columns(bench.task)]
    (tmp_path / "p.csv").write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    mask = test.mask if task.kind == "modes" else None
    if says:
        with pytest.raises(DataError, match=says):
            read_predictions_csv(tmp_path / "p.csv", task, test.ids, mask, "here")
    else:
        out = read_predictions_csv(tmp_path / "p.csv", task, test.ids, mask, "here")
        assert np.array_equal(out, pred)
