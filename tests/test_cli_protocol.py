"""`phonbench data export` and `phonbench score` from the command line: the happy path and every bad
predictions file (one line naming the row or column, non-zero exit, nothing written)."""

from __future__ import annotations

import csv
import json

import pytest

from tests.test_cli_errors import assert_clear, phonbench

SYN = ["--dataset-param", "size=60", "--dataset-param", "task=spectrum"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A synthetic export and a complete predictions CSV made from its template."""
    root = tmp_path_factory.mktemp("protocol")
    done = phonbench(["data", "export", "synthetic", "--out", str(root / "exp"), *SYN], cwd=root)
    assert done.returncode == 0, done.stderr
    assert "manifest:" in done.stdout
    with open(root / "exp" / "fold_0" / "test_template.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    good = [rows[0]] + [[r[0], *["0.5"] * (len(r) - 1)] for r in rows[1:]]
    (root / "card.toml").write_text('name = "half"\nauthors = ["Test"]\n')
    return {"root": root, "rows": good}


def _write(path, rows) -> str:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return str(path)


def _score(exported, rows, *extra, dataset="synthetic", tmp_path):
    path = _write(tmp_path / "pred.csv", rows)
    out = tmp_path / "out"
    proc = phonbench(["score", path, "--dataset", dataset, "--card", str(exported["root"] / "card.toml"),
                      "--out", str(out), *extra], cwd=tmp_path)
    return proc, out


def test_score_writes_an_external_record(exported, tmp_path):
    proc, out = _score(exported, exported["rows"], *SYN, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (out / "runs").iterdir()
    record = json.loads((run_dir / "record.json").read_text())
    assert record["tags"] == ["external"] and record["model"]["card"]["name"] == "half"
    assert "leaderboard add" in proc.stdout
    added = phonbench(["leaderboard", "add", str(run_dir), "--records", str(tmp_path / "records")], cwd=tmp_path)
    assert added.returncode == 0, added.stderr


def _missing(rows):
    return rows[:3] + rows[4:]


def _duplicate(rows):
    return rows + [rows[2]]


def _nan(rows):
    return rows[:2] + [[rows[2][0], "nan", *rows[2][2:]]] + rows[3:]


def _text(rows):
    return rows[:2] + [[rows[2][0], "abc", *rows[2][2:]]] + rows[3:]


def _one_column_short(rows):
    return [r[:-1] for r in rows]


def _unknown(rows):
    return rows + [["not-a-material", *rows[1][1:]]]


BAD = [
    (_missing, "is missing"),
    (_duplicate, "appears twice"),
    (_nan, "line 3"),
    (_text, "is not a number"),
    (_one_column_short, "value columns"),
    (_unknown, "not-a-material"),
]


@pytest.mark.parametrize("mangle, says", BAD, ids=[m.__name__.strip("_") for m, _ in BAD])
def test_bad_predictions_one_line_nothing_written(exported, tmp_path, mangle, says):
    proc, out = _score(exported, mangle([list(r) for r in exported["rows"]]), *SYN, tmp_path=tmp_path)
    assert_clear(proc, code=1, says=says)
    assert not (out / "runs").exists()


def test_predictions_for_another_dataset_are_refused(exported, tmp_path):
    proc, out = _score(exported, exported["rows"], "--dataset-param", "size=60", "--dataset-param", "task=modes",
                       tmp_path=tmp_path)
    assert_clear(proc, code=1, says="value columns")
    proc, out = _score(exported, exported["rows"], dataset="dos", tmp_path=tmp_path)  # also 51 outputs
    assert_clear(proc, code=1, says="another dataset")
    assert not (out / "runs").exists()


def test_export_into_a_non_empty_folder_is_refused(exported, tmp_path):
    proc = phonbench(["data", "export", "synthetic", "--out", str(exported["root"] / "exp"), *SYN], cwd=tmp_path)
    assert_clear(proc, code=1, says="not empty")
