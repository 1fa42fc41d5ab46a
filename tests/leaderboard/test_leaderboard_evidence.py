"""Leaderboard evidence: the protocol box of every split table and the per-row detail pages (#19 items 1, 2)."""

from __future__ import annotations

import copy
import csv
import dataclasses
import gzip
import io
import json
import re

import numpy as np
import pytest
from test_leaderboard_collect import MODES, SPEC, _rewrite, copy_runs, records, registered  # noqa: F401 (fixture)

from phonbench.leaderboard import broken_links, build_leaderboard, evidence, protocol_box
from phonbench.leaderboard.collect import Run, collect_dir
from phonbench.leaderboard.tables import Row, build_boards

SCHEMA_2_ONLY = ("cpu_model", "load_average", "git_dirty", "libraries", "torch_threads")


@pytest.fixture(scope="module")
def boards(records):
    return {b.slug: b for b in build_boards(collect_dir(records).runs)}


@pytest.fixture(scope="module")
def built(records, tmp_path_factory):
    out = tmp_path_factory.mktemp("evidence")
    report = build_leaderboard(records, None, out, with_figures=False)
    return out, report


def _table(boards, slug, split):
    return next(t for t in boards[slug].tables if t.split == split)


def _items(table) -> dict[str, str]:
    return dict(protocol_box.protocol_box(table).items)


def _variant(run: Run, edit) -> Run:
    """A copy of ``run`` whose record ``edit`` changed (no files: for the box's text only)."""
    record = copy.deepcopy(run.record)
    edit(record)
    return Run(record, run.predictions, run.source)


def test_protocol_box_states_split_sizes_and_what_the_spread_is_over(boards):
    random, kfold, cluster = (_table(boards, SPEC, s) for s in ("random", "kfold5", "cluster"))
    assert _items(random)["Split"] == "`random` (1 fold): train 64 · valid 8 · test 8 materials"
    assert _items(kfold)["Split"] == ("`kfold5` (5 folds; runs on fold 0): train 58 · valid 6 · test 16 materials "
                                      "per fold")
    assert _items(cluster)["Split"].startswith("`cluster` (5 folds; runs on folds 0, 1): ")
    # random: each seed draws a new split (split_seed = seed); cluster: two folds of one split
    assert _items(random)["±"].endswith("for every row: 3 seeded splits (each seed draws a new split, "
                                        "`dataset.split_seed` 0, 1, 2)")
    assert _items(kfold)["±"].endswith("for every row: single run, no ±")
    assert _items(cluster)["±"].endswith("for every row: 2 folds")
    assert "spectrum `dos` in a.u., 11 points on 0–1000 cm⁻¹" == _items(random)["Task"]
    # seeds on one fixed split, and a mixed table
    row = next(r for r in random.rows if r.model == "lb_oracle")
    fixed = Row(row.model, row.variant, [_variant(r, lambda rec: rec["dataset"].update(split_seed=0))
                                         for r in row.runs])
    assert protocol_box.spread_kind(fixed) == "3 training seeds on one split"
    mixed = dataclasses.replace(random, rows=[fixed, Row("solo", "default", row.runs[:1])])
    assert protocol_box.spread_text(mixed).endswith(
        "3 training seeds on one split — lb_oracle; single run, no ± — solo")


def test_protocol_box_sizes_range_over_folds():
    run = Run({"dataset": {"n_folds": 5, "fold": "0", "sizes": {"train": 60, "valid": 6, "test": 14}}}, None, "")
    other = _variant(run, lambda rec: rec["dataset"].update(fold="1", sizes={"train": 59, "valid": 6, "test": 15}))
    table = dataclasses.make_dataclass("T", ["split", "rows"])("kfold5", [Row("m", "default", [run, other])])
    assert protocol_box.split_text(table) == ("`kfold5` (5 folds; runs on folds 0, 1): train 59–60 · valid 6 · test "
                                              "14–15 materials per fold (range over folds and seeded splits)")


def test_metric_definitions_come_from_the_registry(boards, monkeypatch):
    from phonbench.registry import METRICS

    random = _table(boards, SPEC, "random")
    defs = dict(protocol_box.metric_definitions(random))
    assert defs["mae ↓ (a.u.)"] == METRICS.get("mae").description
    assert "padded entries" not in defs["mae ↓ (a.u.)"]
    modes = dict(protocol_box.metric_definitions(_table(boards, MODES, "random")))
    assert "padded entries are never scored" in modes["mae ↓ (THz)"] and "`mae_optical`" in modes["mae ↓ (THz)"]
    heat = dataclasses.replace(random, metrics=["heat_capacity_error"], units={})
    (text,) = dict(protocol_box.metric_definitions(heat)).values()
    assert text.count("300 K") == 1  # the registry's description states it: not repeated
    plain = dataclasses.replace(METRICS.get("heat_capacity_error"), description="MAE of the heat capacity")
    real_get = METRICS.get
    monkeypatch.setattr(METRICS, "get", lambda name: plain if name == "heat_capacity_error" else real_get(name))
    (text,) = dict(protocol_box.metric_definitions(heat)).values()
    assert text == "MAE of the heat capacity, at 300 K"


def test_budget_epochs_reached_and_models_without_epochs(boards):
    row = next(r for r in _table(boards, SPEC, "random").rows if r.model == "lb_oracle")
    stops = [{"member": 0, "epochs_run": 40, "best_epoch": 30, "stopped_by": "patience"},
             {"member": 1, "epochs_run": 55, "best_epoch": 41, "stopped_by": "time budget (max_time_s)"}]

    def trained(rec):
        rec["model"]["params"].update(epochs=100, max_time_s=0.0, ensemble=2)
        rec["model"]["stops"] = stops

    budget = Row("net", "default", [_variant(r, trained) for r in row.runs])
    assert protocol_box.budget_cells(budget) == ["net", "100", "unlimited", "2", "40–55 (best 30–41)",
                                                 "patience ×3, time budget (max_time_s) ×3"]
    assert protocol_box.budget_cells(row) == ["lb_oracle", "–", "–", "–", "–", "–"]  # no epochs: dashes

    def old(rec):
        rec["model"]["params"].update(epochs=50, max_time_s=600.0)
        del rec["model"]["stops"]

    assert protocol_box.budget_cells(Row("net", "default", [_variant(r, old) for r in row.runs])) == \
        ["net", "50", "600", "–", "not recorded", "not recorded"]


def test_commit_span_dirty_flag_hardware_and_shared_cores(boards):
    row = next(r for r in _table(boards, SPEC, "random").rows if r.model == "dummy")

    def commit(sha, dirty, load):
        def edit(rec):
            rec["environment"].update(git_commit=sha * 40, git_dirty=dirty, cpu_count=4, load_average=[load, 1, 1])
        return edit

    runs = [_variant(row.runs[0], commit("a", False, 0.5)), _variant(row.runs[1], commit("b", True, 2.0)),
            _variant(row.runs[2], commit("a", False, 3.9))]
    assert evidence.commits_text(runs) == ("rows span 2 commits (`aaaaaaaa`, `bbbbbbbb`); uncommitted changes "
                                           "(git_dirty) in 1 of 3 runs")
    assert evidence.commits_text(runs[:1]) == "commit `aaaaaaaa`; no uncommitted changes"
    assert [evidence.cores_shared(r) for r in runs] == ["not shared", "shared", "shared"]  # load ≥ 0.5 × 4 CPUs
    assert protocol_box.shared_text(runs).startswith("shared in 2 of 3 runs, not shared in 1")
    assert evidence.hardware(runs[0]) == f"{row.runs[0].record['environment']['cpu_model']}, 4 CPUs, device cpu"


def _spec_random(rec) -> bool:
    return rec["dataset"]["name"] == SPEC and rec["dataset"]["split"] == "random"


def _schema_1(rec):
    """Strip a record down to what schema-1 records hold."""
    for key in SCHEMA_2_ONLY:
        rec["environment"].pop(key, None)
    rec["model"].pop("stops", None)
    rec["model"]["params"]["epochs"] = 20
    rec["dataset"].pop("split_seed", None)
    rec.pop("predictions_sha256", None)
    rec["schema_version"] = 1


def test_schema_1_records_read_not_recorded(records, tmp_path):
    recs = copy_runs(records, tmp_path / "recs", _spec_random)
    for run_dir in sorted((recs / "runs").iterdir()):
        _rewrite(run_dir, _schema_1)
    (board,) = build_boards(collect_dir(recs).runs)
    (table,) = board.tables
    items = _items(table)
    assert items["Hardware"].startswith("CPU model not recorded, 2 CPUs, device cpu (9 runs")
    assert items["Cores"] == "whether they were shared is not recorded (the records hold no load average)"
    assert items["Code"].endswith("; dirty flag not recorded for 9 of 9 runs")
    assert "whether each seed drew a new split is not recorded" in items["±"]
    assert protocol_box.budget_cells(table.rows[0])[-2:] == ["not recorded", "not recorded"]
    assert evidence.libraries(table.rows[0].runs[0]).keys() == {"numpy", "phonbench", "python", "torch"}
    out = tmp_path / "lb"
    build_leaderboard(recs, None, out, with_figures=False)
    page = (out / "site" / SPEC / "random-lb_oracle.html").read_text()
    assert "<td>not recorded</td>" in page and "Split seed" in page
    assert "**Protocol**" in (out / f"{SPEC}.md").read_text() and broken_links(out / "site") == []


def test_protocol_box_on_every_split_of_the_site_and_markdown(built, boards):
    out, _ = built
    for slug, board in boards.items():
        page, md = (out / "site" / f"{slug}.html").read_text(), (out / f"{slug}.md").read_text()
        assert page.count('<section class="protocol"') == md.count("**Protocol**") == len(board.tables)
        for table in board.tables:
            assert f'<section class="protocol" id="protocol-{table.split}">' in page
    md = (out / f"{SPEC}.md").read_text()
    section = md[md.index("## Split `random`"):]
    assert section.index("| Model | mae") < section.index("**Protocol**") < section.index("Evidence (run ids")
    assert "- Budget per model" in section and "| Model | Epochs | Max time (s) |" in section


def test_markdown_lists_run_ids_and_commits_per_row(built, boards):
    out, _ = built
    md = (out / f"{SPEC}.md").read_text()
    for table in boards[SPEC].tables:
        for row in table.rows:
            line = next(ln for ln in md.splitlines() if ln.startswith(f"- [{row.label}](site/{SPEC}/{table.split}-"))
            assert all(f"`{r.run_id}`" in line for r in row.runs) and "commit `" in line


def test_detail_pages_link_back_and_to_copied_run_files(built, boards, records):
    out, report = built
    site = out / "site"
    assert broken_links(site) == []
    for slug, board in boards.items():
        board_page = (site / f"{slug}.html").read_text()
        for table in board.tables:
            for row in table.rows:
                rel = evidence.row_page(board, table, row)
                assert f'<td class="model"><a href="{rel}"' in board_page  # the Model cell links to it
                page = (site / rel).read_text()
                assert f'href="../{slug}.html#split-{table.split}"' in page and 'href="../index.html"' in page
                assert 'href="../assets/style.css"' in page
                assert f'href="../{slug}.csv"' in page and f'href="../{slug}.json"' in page
                for run in row.runs:
                    assert f'href="../runs/{run.run_id}/record.json"' in page
                    assert f'href="../runs/{run.run_id}/test-predictions.csv.gz"' in page
                    assert f"<code>{run.run_id}</code>" in page
    assert (site / f"{SPEC}.csv").read_bytes() == (out / f"{SPEC}.csv").read_bytes()
    assert (site / f"{SPEC}.json").read_bytes() == (out / f"{SPEC}.json").read_bytes()
    # the records are copied byte for byte; the predictions keep the test rows, with the archive's header
    run_dir = sorted((records / "runs").iterdir())[0]
    copied = site / "runs" / run_dir.name
    assert (copied / "record.json").read_bytes() == (run_dir / "record.json").read_bytes()
    rows = list(csv.reader(io.StringIO(gzip.decompress((copied / "test-predictions.csv.gz").read_bytes()).decode())))
    original = list(csv.reader(io.StringIO((run_dir / "predictions.csv").read_text())))
    assert rows[0] == original[0] and rows[1:] == [r for r in original[1:] if r[1] == "test"]
    assert len(rows) - 1 == json.loads((run_dir / "record.json").read_text())["dataset"]["sizes"]["test"]
    assert len([f for f in report.files if f.startswith("site/runs/")]) == 2 * len(list((records / "runs").iterdir()))


def test_detail_page_scores_params_tie_test_and_versions(built, boards):
    out, _ = built
    table = _table(boards, SPEC, "random")
    noisy = next(r for r in table.rows if r.model == "lb_noisy")
    page = (out / "site" / evidence.row_page(boards[SPEC], table, noisy)).read_text()
    assert f"Rank {noisy.rank}, tier {noisy.tier}" in page and noisy.tie_test.describe() in page
    assert 'Tie test against <a href="../lb_spec/random-dummy.html">dummy</a>' in page
    for run in noisy.runs:
        assert f"{run.record['metrics']['test']['mae']:.4g}" in page
    assert "<code>noise</code></td><td><code>0.5</code></td><td>same</td>" in page
    assert "<code>scikit-learn</code>" in page and "2 CPUs, device cpu" in page
    tuned = next(r for r in _table(boards, SPEC, "kfold5").rows if r.variant == "tuned")
    kfold = _table(boards, SPEC, "kfold5")
    assert evidence.row_page(boards[SPEC], kfold, tuned) == f"{SPEC}/kfold5-lb_oracle--tuned.html"


def test_params_that_differ_between_runs_are_marked():
    per_run = [{"lr": 0.01, "epochs": 10}, {"lr": 0.02, "epochs": 10}, {"epochs": 10}]
    assert evidence.union_values(per_run) == [("epochs", ["10", "10", "10"], False),
                                              ("lr", ["0.01", "0.02", None], True)]


def test_external_row_shows_its_model_card_with_doi_links(records, tmp_path):
    from phonbench.protocol import Benchmark

    recs = copy_runs(records, tmp_path / "recs", _spec_random)
    bench = Benchmark(SPEC, split="random", seed=0)
    fold = bench.folds[0]
    fold.record(np.full((len(fold.test_inputs), 11), 0.5), {
        "name": "ext-model", "authors": ["A. Author", "B. Author"], "doi": "10.1000/xyz123",
        "url": "https://example.org/paper", "code_url": "https://example.org/code", "hardware": "1 GPU",
        "description": "see doi:10.1000/abc.9 for details."})
    bench.save(recs)
    out = tmp_path / "lb"
    build_leaderboard(recs, None, out, with_figures=False)
    site = out / "site"
    page = (site / SPEC / "random-ext-model--external.html").read_text()
    assert '<dt>DOI</dt><dd><a href="https://doi.org/10.1000/xyz123">10.1000/xyz123</a></dd>' in page
    assert "A. Author, B. Author" in page and "<dd>1 GPU</dd>" in page
    assert 'see doi:<a href="https://doi.org/10.1000/abc.9">10.1000/abc.9</a> for details.' in page
    assert 'href="https://example.org' not in page and "https://example.org/code" in page  # text, not a link
    assert "Of the environment that scored the predictions" in page
    assert broken_links(site) == []  # doi.org links are allowed
    links = re.findall(r'href="(https?://[^"]*)"', "".join(p.read_text() for p in site.rglob("*.html")))
    assert links and all(link.startswith("https://doi.org/") for link in links)


def test_broken_links_allows_only_doi_org(tmp_path):
    (tmp_path / "index.html").write_text('<a href="https://doi.org/10.1/x">a</a> <a href="https://example.org">b</a>')
    assert broken_links(tmp_path) == ["index.html: https://example.org (not a relative link)"]


def test_modes_boards_say_which_rows_force_acoustic_zeros(boards):
    from phonbench.leaderboard.protocol_box import protocol_box

    table = next(t for t in boards[MODES].tables if t.split == "random")
    items = dict(protocol_box(table).items)
    assert items["Acoustic modes"].startswith("no row forces them to 0")
    spec = next(t for t in boards[SPEC].tables if t.split == "random")
    assert "Acoustic modes" not in dict(protocol_box(spec).items)


def test_protocol_box_says_what_each_row_was_fitted_on(boards):
    from phonbench.leaderboard.protocol_box import final_fit_text

    table = next(t for t in boards[SPEC].tables if t.split == "random")
    assert final_fit_text(table) == "train rows only (valid held out for early stopping)"
    row = table.rows[0]
    saved = [dict(r.record["dataset"]) for r in row.runs]
    try:
        for r in row.runs:
            r.record["dataset"]["final_fit"] = "train+valid"
        text = final_fit_text(table)
        assert f"the whole training fold, train + valid (as matbench): {row.label}" in text
    finally:
        for r, ds in zip(row.runs, saved):
            r.record["dataset"] = ds
