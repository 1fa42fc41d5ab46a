"""Headless Chromium opens the built site from disk: tables render, header clicks sort, figures load.

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
         "--column", "Model", "--column", "r2_aggregated", "--screenshots", str(shots), "--chromium", chromium],
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
    rows = tables["table-random"]["rows"]
    assert [r[:4] for r in rows] == [["1", "1", "lb_oracle", "3"], ["2", "2", "dummy", "3"], ["3", "3", "lb_noisy", "3"]]
    assert [r[2] for r in tables["table-kfold5"]["rows"]] == ["lb_oracle", "lb_oracle (tuned)", "lb_noisy"]


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
    for name in ("index.png", f"{SPEC}.png"):
        assert (shots / name).read_bytes()[:4] == b"\x89PNG"
