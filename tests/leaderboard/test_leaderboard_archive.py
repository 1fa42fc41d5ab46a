"""Archiving runs into a leaderboard records folder: gzipped predictions, same board, CLI, errors."""

from __future__ import annotations

import gzip
import json

import pytest
from test_leaderboard_collect import copy_runs, records, registered  # noqa: F401 (fixtures)

from phonbench.cli import main
from phonbench.exceptions import TrackingError
from phonbench.leaderboard.collect import collect_dir
from phonbench.leaderboard.tables import build_boards
from phonbench.plots import read_predictions
from phonbench.records import PREDICTIONS_ARCHIVE, PREDICTIONS_FILE, archive_run


def _board_rows(source):
    return [(b.slug, [(row.label, len(row.runs), row.metrics, row.tier) for t in b.tables for row in t.rows]) for b in build_boards(source)]


def test_archived_runs_build_the_same_boards(records, tmp_path):
    archived = tmp_path / "archived"
    runs = sorted((records / "runs").iterdir())
    for run_dir in runs:
        target = archive_run(run_dir, archived)
        assert sorted(p.name for p in target.iterdir()) == [PREDICTIONS_ARCHIVE, "record.json"]
        plain = (run_dir / PREDICTIONS_FILE).read_bytes()
        assert gzip.decompress((target / PREDICTIONS_ARCHIVE).read_bytes()) == plain
    original, copied = collect_dir(records), collect_dir(archived)
    assert not copied.rejected and len(copied.runs) == len(original.runs) == len(runs)
    assert _board_rows(copied.runs) == _board_rows(original.runs)
    first = archived / "runs" / runs[0].name
    assert read_predictions(first).keys() == read_predictions(runs[0]).keys()


def test_archive_is_deterministic_and_refuses_to_overwrite(records, tmp_path):
    run_dir = sorted((records / "runs").iterdir())[0]
    a = archive_run(run_dir, tmp_path / "a")
    b = archive_run(run_dir, tmp_path / "b")
    assert (a / PREDICTIONS_ARCHIVE).read_bytes() == (b / PREDICTIONS_ARCHIVE).read_bytes()
    with pytest.raises(TrackingError, match="already in"):
        archive_run(run_dir, tmp_path / "a")
    archive_run(run_dir, tmp_path / "a", replace=True)
    assert not list((tmp_path / "a" / "runs").glob(".tmp-*"))


def test_archive_rejects_modified_records_and_missing_predictions(records, tmp_path):
    src = copy_runs(records, tmp_path / "src")
    edited, empty = sorted((src / "runs").iterdir())[:2]
    data = json.loads((edited / "record.json").read_text())
    data["seed"] = 99
    (edited / "record.json").write_text(json.dumps(data))
    with pytest.raises(TrackingError, match="hash mismatch"):
        archive_run(edited, tmp_path / "out")
    (empty / PREDICTIONS_FILE).unlink()
    with pytest.raises(TrackingError, match="no readable predictions"):
        archive_run(empty, tmp_path / "out")
    assert not (tmp_path / "out" / "runs").exists() or not list((tmp_path / "out" / "runs").iterdir())


def test_corrupt_archive_is_rejected_by_the_collector(records, tmp_path):
    archived = tmp_path / "archived"
    target = archive_run(sorted((records / "runs").iterdir())[0], archived)
    (target / PREDICTIONS_ARCHIVE).write_bytes(b"not gzip")
    result = collect_dir(archived)
    assert not result.runs and len(result.rejected) == 1
    assert "gzip" in str(result.rejected[0])


def test_cli_add_then_build(records, tmp_path, capsys):
    runs = [str(p) for p in sorted((records / "runs").iterdir())[:3]]
    main(["leaderboard", "add", *runs, "--records", str(tmp_path / "recs")])
    assert capsys.readouterr().out.count("added:") == 3
    with pytest.raises(SystemExit) as exit_info:
        main(["leaderboard", "add", runs[0], "--records", str(tmp_path / "recs")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "already in" in err and "--replace" in err and len(err.splitlines()) == 1
    assert len(collect_dir(tmp_path / "recs").runs) == 3
