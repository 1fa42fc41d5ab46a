"""Leaderboard build: grouping, ranking direction, tiers, Markdown/CSV/JSON, HTML site, determinism."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil

import pytest
from test_leaderboard_collect import MODES, SPEC, copy_runs, records, registered  # noqa: F401 (fixture)

from phonbench.exceptions import ConfigError, DataError
from phonbench.leaderboard import broken_links, build_leaderboard, publish_site
from phonbench.leaderboard.collect import collect_dir
from phonbench.leaderboard.tables import build_boards


@pytest.fixture(scope="module")
def boards(records):
    return {b.slug: b for b in build_boards(collect_dir(records).runs)}


@pytest.fixture(scope="module")
def built(records, tmp_path_factory):
    """One full build (with figures) of the standard records."""
    out = tmp_path_factory.mktemp("leaderboards")
    report = build_leaderboard(records, None, out)
    return out, report


def _table(boards, slug, split):
    return next(t for t in boards[slug].tables if t.split == split)


def test_grouping_by_dataset_split_and_model_variant(boards):
    assert sorted(boards) == [MODES, SPEC]
    assert [t.split for t in boards[SPEC].tables] == ["cluster", "kfold5", "random"]
    kfold = _table(boards, SPEC, "kfold5")
    assert sorted(r.label for r in kfold.rows) == ["lb_noisy", "lb_oracle", "lb_oracle (tuned)"]
    random = _table(boards, SPEC, "random")
    assert {r.label: (len(r.runs), r.seeds, r.folds) for r in random.rows} == {
        "dummy": (3, [0, 1, 2], ["0"]), "lb_oracle": (3, [0, 1, 2], ["0"]), "lb_noisy": (3, [0, 1, 2], ["0"])}
    assert random.metrics == ["mae", "mse", "r2_aggregated"]  # primary first
    oracle = next(r for r in random.rows if r.model == "lb_oracle")
    maes = sorted(r.record["metrics"]["test"]["mae"] for r in oracle.runs)
    mean, std, n = oracle.metrics["mae"]
    assert n == 3 and mean == pytest.approx(sum(maes) / 3)
    assert std == pytest.approx((sum((m - mean) ** 2 for m in maes) / 2) ** 0.5)
    assert oracle.n_parameters == [11] and oracle.hardware[0].startswith("cpu, ")


def test_ranking_respects_metric_direction(boards):
    spec = _table(boards, SPEC, "random")  # mae: lower is better
    assert spec.direction == "minimize"
    assert [r.label for r in spec.rows] == ["lb_oracle", "dummy", "lb_noisy"]
    assert [r.rank for r in spec.rows] == [1, 2, 3]
    modes = _table(boards, MODES, "random")  # r2_aggregated: higher is better
    assert modes.primary == "r2_aggregated" and modes.direction == "maximize"
    assert [r.label for r in modes.rows] == ["lb_oracle", "lb_noisy", "dummy"]
    scores = [r.metrics["r2_aggregated"][0] for r in modes.rows]
    assert scores == sorted(scores, reverse=True)


def test_tiers_paired_t_when_runs_pair_and_bootstrap_otherwise(boards):
    random = _table(boards, SPEC, "random")
    # three seeds pair up → paired t-tests; the three models are clearly different
    assert [(r.label, r.tier) for r in random.rows] == [("lb_oracle", 1), ("dummy", 2), ("lb_noisy", 3)]
    assert random.rows[0].tie_test is None
    assert random.rows[1].tie_test.method == "paired_t" and random.rows[1].tie_test.n == 3
    assert random.rows[1].tie_test.p_value < 0.05
    kfold = _table(boards, SPEC, "kfold5")
    # one fold, one seed → one pair only → bootstrap over the 16 test materials
    tiers = {r.label: r.tier for r in kfold.rows}
    assert tiers == {"lb_oracle": 1, "lb_oracle (tuned)": 1, "lb_noisy": 2}
    tuned = next(r for r in kfold.rows if r.variant == "tuned")
    assert tuned.tie_test.method == "bootstrap" and tuned.tie_test.n == 16
    assert tuned.tie_test.tied and tuned.tie_test.ci_low == tuned.tie_test.ci_high == 0.0  # identical predictions
    noisy = next(r for r in kfold.rows if r.model == "lb_noisy")
    assert noisy.tie_test.method == "bootstrap" and noisy.tie_test.ci_low > 0


def test_missing_dummy_is_noted_not_invented(boards):
    kfold = _table(boards, SPEC, "kfold5")
    assert not any(r.model == "dummy" for r in kfold.rows)
    assert any("no `dummy` baseline run in the records for this split" in n for n in kfold.notes)
    assert not any("dummy" in n for n in _table(boards, SPEC, "random").notes)


def test_markdown_csv_json_outputs(built):
    out, report = built
    assert report.n_runs == 22 and report.rejected == [] and report.datasets == [MODES, SPEC]
    for slug in (MODES, SPEC):
        for ext in ("md", "csv", "json"):
            assert f"{slug}.{ext}" in report.files and (out / f"{slug}.{ext}").is_file()
    readme = (out / "README.md").read_text()
    assert f"## [{SPEC}]({SPEC}.md)" in readme and f"(site/{SPEC}.html)" in readme
    assert "| `random` | mae | lb_oracle |" in readme
    assert "| `kfold5` | mae | lb_oracle |" in readme and "| not run |" in readme
    md = (out / f"{SPEC}.md").read_text()
    # Model and the primary metric first; units typeset
    assert "| Model | mae ↓ (a.u.) | Rank | Tier | Runs | mse ↓ (a.u.²) | r2_aggregated ↑ | Fit time (s) |" in md
    assert re.search(r"^\| lb_oracle \| 0\.0\d+ ± 0\.\d+ \| 1 \| 1 \| 3 \| ", md, re.M)
    assert re.search(r"^\| dummy \| [^|]+ \| 2 \| 2 \| 3 \| ", md, re.M)
    modes_md = (out / f"{MODES}.md").read_text()
    assert "| Model | r2_aggregated ↑ | Rank | Tier | Runs | mae ↓ (THz) | mse ↓ (THz²) |" in modes_md
    assert "e-0" not in md and "e+0" not in md  # fit times < 1 ms read "< 0.001", no scientific notation
    assert "no `dummy` baseline run" in md
    # every figure linked from the Markdown exists, the PNG inline and its SVG beside it
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+)\) \(\[SVG\]\(([^)]+)\)\)", md)
    assert len(pngs) == len(re.findall(r"!\[", md)) == 4 + 4 + 3 + 1
    for png, svg in pngs:
        assert svg == png[:-4] + ".svg" and (out / png).is_file() and (out / svg).is_file(), png
    rows = [r for r in csv.DictReader(io.StringIO((out / f"{SPEC}.csv").read_text())) if r["split"] != "cluster"]
    assert [(r["split"], r["rank"], r["tier"], r["model"], r["variant"]) for r in rows] == [
        ("kfold5", "1", "1", "lb_oracle", "default"), ("kfold5", "2", "1", "lb_oracle", "tuned"),
        ("kfold5", "3", "2", "lb_noisy", "default"),
        ("random", "1", "1", "lb_oracle", "default"), ("random", "2", "2", "dummy", "default"),
        ("random", "3", "3", "lb_noisy", "default")]
    assert rows[3]["seeds"] == "0;1;2" and rows[3]["n_runs"] == "3" and float(rows[3]["mae_mean"]) < 0.05
    assert rows[1]["tie_test"] == "bootstrap, n=16, 95% CI [0, 0]"
    doc = json.loads((out / f"{MODES}.json").read_text())
    (table,) = doc["tables"]
    assert table["direction"] == "maximize" and table["primary_metric"] == "r2_aggregated"
    assert [r["label"] for r in table["rows"]] == ["lb_oracle", "lb_noisy", "dummy"]
    assert len(table["rows"][0]["run_ids"]) == 2 and table["rows"][0]["metrics"]["mae"]["n"] == 2
    assert doc["card"]["version"] == "3"


def test_html_site_has_rows_and_existing_relative_images(built):
    out, report = built
    site = out / "site"
    index = (site / "index.html").read_text()
    assert f'<a href="{SPEC}.html">{SPEC}</a>' in index and f'<a href="{MODES}.html">' in index
    page = (site / f"{SPEC}.html").read_text()
    assert '<table class="sortable leaderboard sticky-first" id="table-random">' in page
    for label in ("lb_oracle", "dummy", "lb_noisy", "lb_oracle (tuned)"):
        assert f'data-model="{label}"' in page
    random = page[page.index('id="table-random"'):]
    assert random.index('data-model="lb_oracle"') < random.index('data-model="dummy"') < random.index('data-model="lb_noisy"')
    images = re.findall(r'<img src="([^"]+)"', page)
    # random, kfold5: parity, errors, DoS quartiles, training curves; cluster: no training curves (no
    # history); and the generalisation figure
    assert len(images) == 4 + 4 + 3 + 1
    assert all(not src.startswith(("/", "http")) and (site / src).is_file() for src in images)
    assert (site / images[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # every figure opens full size: the PNG is wrapped in a link to its SVG next to it
    assert all(src.endswith(".png") for src in images)
    links = re.findall(r'<a href="([^"]+)" title="Open full size \(SVG\)"><img src="([^"]+)"', page)
    assert links == [(i[:-4] + ".svg", i) for i in images]
    for svg, _ in links:
        assert (site / svg).read_bytes().startswith(b'<?xml version="1.0" encoding="utf-8"'), svg
    assert all(f'<a href="{i[:-4]}.svg">SVG</a> · <a href="{i}">PNG</a>' in page for i in images)
    # Model column first (sticky), primary metric second; the other metrics behind a checkbox
    head = re.search(r'id="table-random">\s*<thead><tr>(.*?)</tr>', page).group(1)
    ths = re.findall(r'<th scope="col"(?: class="([^"]*)")?>([^<]*)</th>', head)
    assert [t for _, t in ths][:5] == ["Model", "mae ↓ (a.u.)", "Rank", "Tier", "Runs"]
    assert [c for c, _ in ths][:7] == ["model", "primary", "", "", "", "secondary", "secondary"]
    assert '<input type="checkbox" class="show-secondary" id="more-table-random"' in page
    assert 'class="sortable generalisation sticky-first"' in page
    css = (site / "assets" / "style.css").read_text()
    assert "position: sticky; left: 0" in css and ":not(:checked) ~ .table-wrap .secondary { display: none; }" in css
    modes_page = (site / f"{MODES}.html").read_text()
    assert "dos_quartiles" not in modes_page and "random-parity.png" in modes_page
    assert broken_links(site) == []
    text = "".join(p.read_text() for p in site.rglob("*") if p.suffix in (".html", ".css", ".js"))
    # the only absolute links allowed are DOIs resolved at doi.org
    assert "http://" not in text and "//cdn" not in text
    assert all(url.startswith("https://doi.org/") for url in re.findall(r"https://[^\s\"'<>]*", text))


def test_rebuild_is_byte_identical(records, tmp_path):
    subset = copy_runs(records, tmp_path / "recs", lambda r: r["dataset"]["split"] == "kfold5")
    a = build_leaderboard(subset, None, tmp_path / "a")
    b = build_leaderboard(subset, None, tmp_path / "b")
    assert a.files == b.files and len([f for f in a.files if f.endswith(".png")]) == 4
    svgs = [f for f in a.files if f.endswith(".svg")]  # every PNG has its SVG, byte-identical below
    assert svgs == sorted(f[:-4] + ".svg" for f in a.files if f.endswith(".png"))
    for rel in a.files + [".leaderboard-manifest"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    again = build_leaderboard(subset, None, tmp_path / "a")
    assert again.changed == [] and again.removed == []
    blob = b"".join((tmp_path / "a" / rel).read_bytes() for rel in a.files)
    assert str(tmp_path).encode() not in blob  # no absolute paths
    assert b"Matplotlib" not in blob and b"<dc:date>" not in blob  # no software/date metadata in PNGs and SVGs


def test_stale_files_are_removed_and_other_files_kept(records, tmp_path):
    out = tmp_path / "lb"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    first = build_leaderboard(records, None, out, with_figures=False)
    assert (out / f"{MODES}.md").is_file()
    only_spec = copy_runs(records, tmp_path / "recs", lambda r: r["dataset"]["name"] == SPEC)
    report = build_leaderboard(only_spec, None, out, with_figures=False, force=True)
    # the board's tables and page, its row pages, its runs' files and the site's copies of its CSV/JSON
    gone = sorted(f for f in first.files if MODES in f)
    assert f"site/{MODES}.html" in gone and f"site/{MODES}/random-dummy.html" in gone and f"site/{MODES}.csv" in gone
    assert sum(1 for f in gone if f.startswith(f"site/runs/{MODES}-")) == 2 * 6  # record + test predictions each
    assert sorted(report.removed) == gone
    assert not (out / "site" / MODES).exists()  # emptied folders are pruned
    assert not (out / f"{MODES}.md").exists() and (out / "keep.txt").read_text() == "mine"


def test_publish_site_copies_a_self_contained_site(built, tmp_path):
    out, report = built
    dest = tmp_path / "public"
    index = publish_site(out, dest)
    assert index == dest / "index.html" and index.is_file()
    assert broken_links(dest) == []
    published = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file() and p.name[0] != ".")
    assert published == sorted(f[len("site/"):] for f in report.files if f.startswith("site/"))
    with pytest.raises(DataError, match="no leaderboard site"):
        publish_site(tmp_path / "nothing", dest)


def test_no_valid_records_and_no_source(records, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no valid run records found"):
        build_leaderboard(empty, None, tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no records given"):
        build_leaderboard(None, None, tmp_path / "out")
    broken = copy_runs(records, tmp_path / "recs", lambda r: r["seed"] == 2)
    victim = next((broken / "runs").iterdir()) / "predictions.csv"
    victim.write_text(victim.read_text().replace(",test,", ",tset,", 1))
    report = build_leaderboard(broken, None, tmp_path / "out", with_figures=False)
    assert report.n_runs == 2 and len(report.rejected) == 1
    assert "unknown split 'tset'" in report.rejected[0][1] and any("rejected" in line for line in report.lines())
    with pytest.raises(DataError, match="1 records rejected"):
        build_leaderboard(broken, None, tmp_path / "out", with_figures=False, strict=True)
    shutil.rmtree(tmp_path / "out")


def test_training_set_size_runs_are_not_ranked(records, tmp_path):
    out = copy_runs(records, tmp_path / "recs", lambda r: r["dataset"]["name"] == MODES)
    with registered():
        from phonbench.runner import run

        run("lb_oracle", MODES, out=out, tracking=False, plots=False, seed=0, train_fraction=0.5)
    report = build_leaderboard(out, None, tmp_path / "lb", with_figures=False)
    assert report.n_runs == 7 and report.warnings == [
        "1 runs trained on a fraction of the training set (training-set-size studies) are not ranked"]
    doc = json.loads((tmp_path / "lb" / f"{MODES}.json").read_text())
    assert [r["n_runs"] for r in doc["tables"][0]["rows"]] == [2, 2, 2]


def test_boards_group_by_data_content_not_option_spelling(records, tmp_path):
    from test_leaderboard_collect import _rewrite

    out = copy_runs(records, tmp_path / "recs", lambda r: r["dataset"]["name"] == SPEC and r["dataset"]["split"] == "random")
    run_dirs = sorted((out / "runs").iterdir())
    for i, run_dir in enumerate(run_dirs):  # same data, options spelled two ways
        _rewrite(run_dir, lambda d, i=i: d["dataset"].update(options={"size": 80, **({"task": "spectrum"} if i % 2 else {})}))
    (board,) = build_boards(collect_dir(out).runs)
    assert board.title == f"{SPEC} (size=80)" and board.slug == f"{SPEC}-size-80" and board.n_runs == 9
    # different data under the same name and options: two boards told apart by the content hash
    for run_dir in run_dirs[:3]:
        _rewrite(run_dir, lambda d: d["dataset"].update(content_hash="ffffffff00000000"))
    boards = build_boards(collect_dir(out).runs)
    hashes = {b.content_hash[:8] for b in boards}
    assert len(hashes) == 2 and "ffffffff" in hashes
    assert sorted(b.slug for b in boards) == sorted(f"{SPEC}-size-80-{h}" for h in hashes)
    assert sum(b.n_runs for b in boards) == 9 and all("data " in b.title for b in boards)


def test_generalisation_table_and_figure(boards, built):
    from phonbench.leaderboard.generalisation import generalisation_table

    gen = generalisation_table(boards[SPEC])
    assert gen.reference == "random" and gen.protocols == ["cluster"] and gen.metric == "mae"
    assert [r.label for r in gen.rows] == ["dummy", "lb_noisy"]  # sorted by cluster; lb_oracle has no OOD run
    noisy = gen.rows[1]
    random_row = next(r for r in _table(boards, SPEC, "random").rows if r.label == "lb_noisy")
    assert noisy.values["random"] == random_row.metrics["mae"] and noisy.values["cluster"][2] == 2
    assert noisy.ratio("cluster", "random") == pytest.approx(noisy.values["cluster"][0] / noisy.values["random"][0])
    assert generalisation_table(boards[MODES]) is None  # no out-of-distribution runs
    out, _ = built
    md = (out / f"{SPEC}.md").read_text()
    assert "## Generalisation: in- vs out-of-distribution" in md
    value = r"[0-9.]+ (?:± [0-9.]+|\(deterministic\))"
    assert re.search(rf"^\| lb_noisy \| {value} \| {value} \| [0-9.]+× \|$", md, re.M)
    assert (out / "site" / "figures" / SPEC / "generalisation.png").is_file()
    html = (out / "site" / f"{SPEC}.html").read_text()
    assert 'id="table-generalisation"' in html and f"figures/{SPEC}/generalisation.png" in html
    doc = json.loads((out / f"{SPEC}.json").read_text())
    assert doc["generalisation"]["protocols"] == ["cluster"] and doc["card"]["default_split"] == "random"


def test_training_curves_panel_separates_ensemble_members():
    from types import SimpleNamespace

    from matplotlib.figure import Figure

    from phonbench.leaderboard.figures import FIGURES, draw_training_panel
    from phonbench.leaderboard.tables import Row

    history = [{"epoch": e, "member": m, "train_loss": 1.0 / e + m, "valid_loss": 2.0 / e + m}
               for m in range(2) for e in range(1, 6)]
    runs = [SimpleNamespace(record={"history": history, "model": {"params": {"loss": "l1"}}}) for _ in range(2)]
    ax = Figure().subplots()
    draw_training_panel(ax, Row("e3nn", "default", runs))
    lines = ax.get_lines()
    assert len(lines) == 2 * 2 * 2  # runs x keys x members
    assert all(list(line.get_xdata()) == [1, 2, 3, 4, 5] for line in lines)  # x never decreases
    assert ax.get_ylabel() == "train_loss / valid_loss (L1)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train_loss", "valid_loss", "member 0", "member 1"]
    assert FIGURES["training_curves"][0].startswith("Training curves") and "learning_curves" not in FIGURES

    plain = [{k: v for k, v in h.items() if k != "member"} for h in history if h["member"] == 0]
    ax = Figure().subplots()
    draw_training_panel(ax, Row("e3nn", "default", [SimpleNamespace(record={"history": plain, "model": {}})]))
    assert len(ax.get_lines()) == 2 and ax.get_ylabel() == "train_loss / valid_loss"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train_loss", "valid_loss"]
