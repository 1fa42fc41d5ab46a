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


def _craft(run_dir, **fields):
    """Rewrite a record with ``fields`` and a matching hash (what a malicious submitter could do)."""
    from phonbench.records import record_hash

    data = json.loads((run_dir / "record.json").read_text())
    data.update(fields)
    data["record_hash"] = record_hash(data)
    (run_dir / "record.json").write_text(json.dumps(data))


@pytest.mark.parametrize("run_id", ["../../escaped", "/tmp/phonbench-absolute-escape", "..", "a/b", ""])
def test_crafted_run_id_cannot_write_outside_the_records_folder(records, tmp_path, run_id):
    src = copy_runs(records, tmp_path / "src")
    crafted = sorted((src / "runs").iterdir())[0]
    _craft(crafted, run_id=run_id)
    victim = tmp_path / "escaped"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    dest = tmp_path / "deep" / "records"
    with pytest.raises(TrackingError, match="not a safe folder name"):
        archive_run(crafted, dest, replace=True)
    assert (victim / "keep.txt").read_text() == "precious"
    assert not (tmp_path / "phonbench-absolute-escape").exists()
    from pathlib import Path

    assert not Path("/tmp/phonbench-absolute-escape").exists()


def test_replace_never_deletes_a_folder_phonbench_did_not_archive(records, tmp_path):
    run_dir = sorted((records / "runs").iterdir())[0]
    dest = tmp_path / "recs"
    foreign = dest / "runs" / run_dir.name
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(TrackingError, match="already in"):
        archive_run(run_dir, dest)
    with pytest.raises(TrackingError, match="not an archived run"):
        archive_run(run_dir, dest, replace=True)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_manifest_only_removes_generated_files_inside_out(records, tmp_path):
    from phonbench.leaderboard import build_leaderboard
    from phonbench.leaderboard.build import MANIFEST

    out = tmp_path / "boards"
    build_leaderboard(records, None, out, with_figures=False)
    outside = tmp_path / "outside.md"
    outside.write_text("keep")
    kept_record = out / "records" / "runs" / "x" / "record.json"
    kept_record.parent.mkdir(parents=True)
    kept_record.write_text("{}")
    stale = out / "site" / "old.html"
    stale.write_text("stale page")
    manifest = out / MANIFEST
    lines = manifest.read_text().splitlines()
    lines += [str(outside), "../outside.md", "records/runs/x/record.json", "site/old.html"]
    manifest.write_text("\n".join(lines) + "\n")
    report = build_leaderboard(records, None, out, with_figures=False)
    assert report.removed == ["site/old.html"] and not stale.exists()
    assert outside.read_text() == "keep" and kept_record.is_file()


def test_build_refuses_to_overwrite_boards_of_another_record_set(records, tmp_path):
    from phonbench.exceptions import ConfigError
    from phonbench.leaderboard import build_leaderboard

    out = tmp_path / "boards"
    build_leaderboard(records, None, out, with_figures=False)
    fewer = copy_runs(records, tmp_path / "fewer")
    for extra in sorted((fewer / "runs").iterdir())[1:]:
        import shutil

        shutil.rmtree(extra)
    with pytest.raises(ConfigError, match="different record set"):
        build_leaderboard(fewer, None, out, with_figures=False)
    build_leaderboard(records, None, out, with_figures=False)  # the same records rebuild freely
    report = build_leaderboard(fewer, None, out, with_figures=False, force=True)
    assert report.n_runs == 1


def test_build_from_the_same_records_folder_after_adding_a_run(records, tmp_path):
    """`leaderboard add` then `leaderboard build` on the same folder needs no --force."""
    import shutil

    from phonbench.leaderboard import build_leaderboard

    mine = copy_runs(records, tmp_path / "mine")
    held_back = sorted((mine / "runs").iterdir())[-1]
    shutil.move(held_back, tmp_path / held_back.name)
    out = tmp_path / "boards"
    first = build_leaderboard(mine, None, out, with_figures=False)
    shutil.move(tmp_path / held_back.name, mine / "runs" / held_back.name)
    second = build_leaderboard(mine, None, out, with_figures=False)
    assert second.n_runs == first.n_runs + 1
    assert "# source " in (out / ".leaderboard-manifest").read_text()
