"""Benchmark suites: parsing, running, resuming, --only, bad files."""

from __future__ import annotations

import pytest

from phonbench.bench import load_suite, run_suite
from phonbench.exceptions import ConfigError
from phonbench.registry import DATASETS
from test_runner import _tiny_dataset_class

SUITE = """
[suite]
name = "mini"
seeds = [0, 1]

[[entry]]
model = "dummy"
dataset = "tiny_scalar"

[[entry]]
model = "dummy"
dataset = "tiny_scalar"
split = "kfold5"
folds = [0, 1]
seeds = [2]
"""


@pytest.fixture
def suite_file(tmp_path):
    cls = _tiny_dataset_class("scalar")
    DATASETS.register(cls.card.name)(cls)
    path = tmp_path / "mini.toml"
    path.write_text(SUITE)
    yield path
    DATASETS.unregister(cls.card.name)


def test_suite_runs_and_resumes(suite_file, tmp_path):
    logs: list[str] = []
    state = run_suite(suite_file, out=tmp_path / "out", tracking=False, log=logs.append)
    assert len(state["done"]) == 3  # 2 seeds + 1 seed
    assert sum(len(v) for v in state["done"].values()) == 2 + 2
    logs.clear()
    run_suite(suite_file, out=tmp_path / "out", tracking=False, log=logs.append)
    assert all(line.startswith("skip") for line in logs) and len(logs) == 3
    n_runs = len(list((tmp_path / "out" / "runs").iterdir()))
    assert n_runs == 4
    run_suite(suite_file, out=tmp_path / "out", tracking=False, log=logs.append, rerun=True, only=["DUMMY/tiny-scalar"])
    assert len(list((tmp_path / "out" / "runs").iterdir())) == 8


def test_bad_suite_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[entry]]\nmodel = 'dummy'\n")
    with pytest.raises(ConfigError, match="needs model and dataset"):
        load_suite(bad)
    bad.write_text("[[entry]\n")
    with pytest.raises(ConfigError, match="cannot read suite"):
        load_suite(bad)


def test_shipped_suites_parse():
    from pathlib import Path

    suites = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.toml"))
    assert {p.stem for p in suites} >= {"quick", "papers", "full"}
    for path in suites:
        assert load_suite(path).entries


def test_parallel_suites_do_not_lose_each_others_progress(suite_file, tmp_path):
    """Two processes on one output dir: each re-reads the state under a lock before writing."""
    from phonbench.bench import _record_done

    path = tmp_path / "state.json"
    _record_done(path, "a", ["r1"])
    _record_done(path, "b", ["r2"])  # as if written by another process
    import json

    assert json.loads(path.read_text())["done"] == {"a": ["r1"], "b": ["r2"]}


def test_entry_variant_tags_records_and_makes_its_own_board_row(suite_file, tmp_path):
    from phonbench.leaderboard.collect import collect_dir
    from phonbench.leaderboard.tables import build_boards

    text = suite_file.read_text().replace('split = "kfold5"', 'split = "kfold5"\nvariant = "short budget"')
    suite_file.write_text(text)
    assert load_suite(suite_file).entries[1].variant == "short budget"
    run_suite(suite_file, out=tmp_path, tracking=False, log=lambda _: None)
    runs = collect_dir(tmp_path).runs
    tagged = [r for r in runs if "variant:short budget" in r.record["tags"]]
    assert len(tagged) == 2 and all(r.record["dataset"]["split"] == "kfold5" for r in tagged)
    (board,) = build_boards(runs)
    kfold = next(t for t in board.tables if t.split == "kfold5")
    assert [r.label for r in kfold.rows] == ["dummy (short budget)"]
