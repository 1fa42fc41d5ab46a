"""Reported (published, not re-run) rows: file checks, placement among ranked rows, and every output."""

from __future__ import annotations

import json

import pytest

from phonbench.exceptions import ConfigError
from phonbench.leaderboard.reported import interleave, load_reported
from test_leaderboard_collect import SPEC, records, registered  # noqa: F401 (fixtures)

ENTRY = """
[[reported]]
dataset = "{dataset}"
split = "random"
metric = "mae"
value = {value}
model = "{model}"
citation = "A. Author, J. Phon. 1, 1 (2020)"
protocol = "same folds"
"""


def _write(path, *entries: str) -> str:
    path.write_text("\n".join(entries))
    return str(path)


@pytest.mark.parametrize("text, says", [
    ('[[reported]]\ndataset = "x"\n', "missing"),
    (ENTRY.format(dataset="x", value=1, model="m") + 'colour = "red"\n', "unknown"),
    (ENTRY.format(dataset="x", value='"abc"', model="m"), "finite number"),
    (ENTRY.format(dataset="x", value=1, model="m") + "comparable = false\n", "needs a note"),
    ("[[reported]\n", "cannot read"),
])
def test_bad_reported_files_are_refused(tmp_path, text, says):
    with pytest.raises(ConfigError, match=says):
        load_reported(_write(tmp_path / "reported.toml", text))


def test_published_reported_file_loads_and_cites_every_entry():
    from pathlib import Path

    entries = load_reported(Path(__file__).resolve().parents[2] / "leaderboards" / "reported.toml")
    matbench = {e.model: e.value for e in entries if e.dataset == "matbench_phonons"}
    assert matbench["MegNet (kgcnn v2.1.0)"] == pytest.approx(28.76, abs=0.01)
    assert matbench["Dummy"] == pytest.approx(323.98, abs=0.01)
    assert all(e.citation and e.protocol and e.source for e in entries)
    assert all(e.note for e in entries if not e.comparable)


class _Row:
    def __init__(self, value):
        self.metrics = {"mae": (value, 0.0, 1)}


def test_reported_entries_stand_after_rows_that_score_at_least_as_well(tmp_path):
    entries = load_reported(_write(tmp_path / "r.toml", ENTRY.format(dataset="d", value=2.5, model="mid"),
                                   ENTRY.format(dataset="d", value=0.1, model="best"),
                                   ENTRY.format(dataset="d", value=9, model="worst")))
    rows = [_Row(1.0), _Row(2.5), _Row(3.0)]
    from phonbench.leaderboard.reported import for_table

    ordered = interleave(rows, for_table(entries, "d", "random", "mae"), "mae", "minimize")
    labels = [getattr(x, "model", x.metrics["mae"][0] if hasattr(x, "metrics") else None) for x in ordered]
    assert labels == ["best", 1.0, 2.5, "mid", 3.0, "worst"]


def test_reported_rows_in_markdown_json_and_site_but_not_ranked(records, tmp_path):  # noqa: F811
    from phonbench.leaderboard import build_leaderboard

    path = _write(tmp_path / "reported.toml", ENTRY.format(dataset=SPEC, value=0.0001, model="Paper net"),
                  ENTRY.format(dataset="other_dataset", value=1, model="Elsewhere"))
    out = tmp_path / "lb"
    build_leaderboard(records, None, out, with_figures=False, reported=path)
    md = (out / f"{SPEC}.md").read_text()
    assert "| Paper net (reported) [1] | 0.0001 | – | reported | – | – | – | – | – | – |" in md
    assert "A. Author, J. Phon. 1, 1 (2020)" in md
    assert "Elsewhere" not in md
    board = json.loads((out / f"{SPEC}.json").read_text())
    table = next(t for t in board["tables"] if t["split"] == "random")
    assert table["reported"][0]["model"] == "Paper net"
    assert all(r["label"] != "Paper net" for r in table["rows"]) and table["rows"][0]["rank"] == 1
    html = (out / "site" / f"{SPEC}.html").read_text()
    assert '<tr class="reported" data-model="Paper net (reported)"' in html
    # a reported.toml inside --out is picked up without --reported
    (out / "reported.toml").write_text((tmp_path / "reported.toml").read_text())
    build_leaderboard(records, None, out, with_figures=False)
    assert "Paper net" in (out / f"{SPEC}.md").read_text()
