"""Headless Chromium opens the built site from disk: tables render, header clicks sort, figures (PNG
inline, linked SVG) load.

Runs ``scripts/browser_check.py`` (a standard-library DevTools-protocol driver) in a subprocess and
checks its JSON. Needs a Chromium binary (``$PHONBENCH_CHROMIUM`` or ``chromium`` on PATH); skipped
otherwise, unless ``PHONBENCH_REQUIRE_BROWSER=1`` (CI) turns the skip into a failure. Screenshots go to
``$PHONBENCH_ARTIFACTS/leaderboard-site/`` (or the test's tmp dir).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_leaderboard_collect import MODES, SPEC, records  # noqa: F401 (fixture)

from phonbench.leaderboard import build_leaderboard

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "browser_check.py"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

pytestmark = pytest.mark.browser
WIDTHS = (400, 1400)  # a phone and a laptop


def _chromium() -> str | None:
    for name in (os.environ.get("PHONBENCH_CHROMIUM"), *CANDIDATES):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of Chromium; skips without one (fails instead when ``PHONBENCH_REQUIRE_BROWSER=1``, as in CI)."""
    missing = "no Chromium binary (install Debian's `chromium` or set PHONBENCH_CHROMIUM)" if _chromium() is None \
        else f"{SCRIPT} is missing" if not SCRIPT.is_file() else None
    if missing:
        if os.environ.get("PHONBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    return _chromium()


@pytest.fixture(scope="module")
def browser_report(chromium, records, tmp_path_factory):  # chromium first: skip before building records
    out = tmp_path_factory.mktemp("site")
    build_leaderboard(records, None, out)
    shots = Path(os.environ.get("PHONBENCH_ARTIFACTS") or tmp_path_factory.mktemp("shots")) / "leaderboard-site"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out / "site"), "--page", f"{SPEC}.html", "--table", "table-random",
         "--column", "Model", "--column", "r2_aggregated", "--screenshots", str(shots),
         "--widths", ",".join(map(str, WIDTHS)), "--chromium", chromium],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout), out / "site", shots


def test_index_renders_overview_rows(browser_report):
    report, site, _ = browser_report
    index = report["index"]
    assert index["title"] == "phonbench leaderboards"
    (table,) = index["tables"]
    assert table["visible"] and table["headers"][:5] == ["Dataset", "Split", "Task", "Primary metric", "Best model"]
    assert [(r[0], r[1], r[4]) for r in table["rows"]] == [
        (MODES, "random", "lb_oracle"), (SPEC, "cluster", "dummy"), (SPEC, "kfold5", "lb_oracle"),
        (SPEC, "random", "lb_oracle")]
    (sort,) = index["sorts"]  # already ascending by dataset: the second click reverses
    assert sort["after_two_clicks"]["rows"] == [SPEC, SPEC, SPEC, MODES]
    assert sort["after_two_clicks"]["aria"] == "descending"


def test_dataset_page_tables_render_with_expected_rows(browser_report):
    page = browser_report[0]["page"]
    tables = {t["id"]: t for t in page["tables"]}
    assert sorted(tables) == ["table-cluster", "table-generalisation", "table-kfold5", "table-random"]
    assert all(t["visible"] for t in tables.values())
    assert [r[0] for r in tables["table-generalisation"]["rows"]] == ["dummy", "lb_noisy"]
    random = tables["table-random"]
    assert random["headers"][:5] == ["Model", "mae ↓ (a.u.)", "Rank", "Tier", "Runs"]
    rows = random["rows"]
    assert [[r[0], *r[2:5]] for r in rows] == [["lb_oracle", "1", "1", "3"], ["dummy", "2", "2", "3"],
                                               ["lb_noisy", "3", "3", "3"]]
    assert [r[0] for r in tables["table-kfold5"]["rows"]] == ["lb_oracle", "lb_oracle (tuned)", "lb_noisy"]


def test_secondary_metrics_hidden_until_the_checkbox_is_ticked(browser_report):
    toggle = browser_report[0]["page"]["secondary_toggle"]
    assert toggle == {"total": 2, "visible_before": 0, "visible_after_click": 2}  # mse, r2_aggregated
    r2 = next(s for s in browser_report[0]["page"]["sorts"] if s["column"] == "r2_aggregated")
    assert r2["revealed"] is True  # the sort below clicked a header that the checkbox had to reveal first


def test_clicking_headers_sorts_rows(browser_report):
    by_column = {s["column"]: s for s in browser_report[0]["page"]["sorts"]}
    model = by_column["Model"]
    assert model["before"]["rows"] == ["lb_oracle", "dummy", "lb_noisy"]
    assert model["after_one_click"]["rows"] == ["dummy", "lb_noisy", "lb_oracle"]
    assert model["after_one_click"]["aria"] == "ascending"
    assert model["after_two_clicks"]["rows"] == ["lb_oracle", "lb_noisy", "dummy"]
    assert model["after_two_clicks"]["aria"] == "descending"
    r2 = by_column["r2_aggregated"]  # numeric sort, negative values included
    assert r2["after_one_click"]["rows"] == ["lb_noisy", "dummy", "lb_oracle"]
    values = [float(v.split(" ± ")[0]) for v in r2["after_one_click"]["values"]]
    assert values == sorted(values) and values[0] < 0


def test_figures_load_and_nothing_external_is_requested(browser_report):
    report, site, shots = browser_report
    images = report["page"]["images"]
    assert len(images) == 12  # 3 splits' figures (no training curves on cluster) + the generalisation figure
    assert any(img["src"].endswith(f"figures/{SPEC}/generalisation.png") for img in images), images
    for img in images:
        assert img["complete"] and img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
    assert report["js_errors"] == []
    assert report["requests"] and all(url.startswith("file://") for url in report["requests"])
    for name in ("index.png", f"{SPEC}.png", *(f"{SPEC}-{w}.png" for w in WIDTHS)):
        assert (shots / name).read_bytes()[:4] == b"\x89PNG"


def test_every_figure_links_to_its_full_size_svg(browser_report):
    page = browser_report[0]["page"]
    links = page["figure_links"]
    svgs = sorted(img["src"][:-len(".png")] + ".svg" for img in page["images"])
    assert sorted(link["href"] for link in links) == svgs
    for link in links:  # the inline PNG links to the vector SVG next to it, which the browser loads
        assert link["href"] == link["img_src"][:-4] + ".svg" and link["loaded"] and link["naturalWidth"] > 0, link


def _inside(rect: dict, viewport: dict) -> bool:
    return (0 <= rect["left"] < rect["right"] <= viewport["width"]
            and 0 <= rect["top"] < rect["bottom"] <= viewport["height"])


@pytest.mark.parametrize("width", WIDTHS)
def test_model_and_primary_metric_fit_the_viewport(browser_report, width):
    (layout,) = [w for w in browser_report[0]["widths"] if w["width"] == width]
    viewport = layout["viewport"]
    assert viewport["width"] == width and layout["scroll"]["x"] == 0
    assert layout["page_width"] <= width  # only the table scrolls sideways, never the page
    assert layout["model"]["text"].startswith("Model") and layout["primary"]["text"].startswith("mae")
    assert _inside(layout["model"], viewport), layout
    assert _inside(layout["primary"], viewport), layout
    # sticky Model column: still at the left edge once the table is scrolled to its last column
    if layout["table_scrolled_by"] > 0:
        assert layout["model_after_table_scroll"]["left"] == pytest.approx(layout["model"]["left"], abs=1)
        assert layout["primary_after_table_scroll"]["left"] < layout["primary"]["left"]
