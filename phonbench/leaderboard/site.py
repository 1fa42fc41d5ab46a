"""Static HTML site: ``index.html`` + one page per dataset with sortable tables and figures.

Everything is local and relative (``assets/style.css``, ``assets/sort.js``, ``figures/...``), so
opening ``index.html`` from disk works and the folder can be copied anywhere. No CDN, no fonts or
scripts from the network. Sorting: click (or press Enter on) a column header. The split tables
themselves (sticky Model column, secondary metrics behind a checkbox, figures linking to their
full-size SVG) are built in :mod:`phonbench.leaderboard.site_tables`.
"""

from __future__ import annotations

import re
from html import escape
from importlib import resources

from phonbench.leaderboard.render import (
    BASELINE,
    DASH,
    fmt_mean_std,
    pretty_unit,
    reported_notes,
)
from phonbench.leaderboard.site_tables import (
    figure_html,
    generalisation_html,
    link_dois,
    num_attr,
    table_html,
)
from phonbench.leaderboard.tables import TIER_RULE, Board, Table

ASSETS = ("style.css", "sort.js")
FIGURES_DIR = "figures"


def asset_files() -> dict[str, bytes]:
    """``{"assets/<name>": bytes}`` of the bundled CSS and JavaScript."""
    root = resources.files("phonbench.leaderboard") / "assets"
    return {f"assets/{name}": (root / name).read_bytes() for name in ASSETS}


def safe_name(text: str) -> str:
    """A file-name-safe version of ``text`` (split names in figure paths)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def figure_path(board: Board, table: Table, kind: str) -> str:
    """Path of a figure relative to the site root."""
    return f"{FIGURES_DIR}/{board.slug}/{safe_name(table.split)}-{kind}.png"


def page(title: str, body: list[str], nav: str, root: str = "") -> str:
    """A complete HTML page; ``root`` is the relative path from the page to the site root (``../``
    for the detail pages one folder down)."""
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f'<link rel="stylesheet" href="{root}assets/style.css">',
        "</head>",
        "<body>",
        f"<nav>{nav}</nav>",
        *body,
        f'<script src="{root}assets/sort.js"></script>',
        "</body>",
        "</html>",
        "",
    ])



def board_html(board: Board, figures: dict[str, list[tuple[str, str]]]) -> str:
    """Dataset page; ``figures`` maps split → ``[(caption, path relative to the site root)]``. Model
    cells link to the rows' detail pages (:mod:`.detail_page`); each split has a protocol box."""
    from phonbench.leaderboard import evidence, protocol_box

    body = [f"<h1>{escape(board.title)}</h1>"]
    if board.card.get("description"):
        body.append(f"<p>{link_dois(escape(board.card['description']))}</p>")
    if board.card.get("citation"):
        body.append(f"<p><small>Citation: {link_dois(escape(board.card['citation']))}</small></p>")
    slug = escape(board.slug)
    body.append(f'<p><small>Download the tables: <a href="{slug}.csv">{slug}.csv</a> · '
                f'<a href="{slug}.json">{slug}.json</a></small></p>')
    if board.notes:
        body += ['<ul class="notes">'] + [f"<li>{link_dois(escape(n))}</li>" for n in board.notes] + ["</ul>"]
    body += generalisation_html(board, figures.get("", []))
    for table in board.tables:
        task = table.task
        better = "lower" if table.direction == "minimize" else "higher"
        name = safe_name(table.split)
        body.append(f'<h2 id="split-{escape(name)}">Split <code>{escape(table.split)}</code></h2>')
        body.append(f"<p>Task: {escape(task['kind'])} <code>{escape(str(task.get('target', '')))}</code> "
                    f"({escape(pretty_unit(task['unit']))}). Test-split metrics, mean ± std over runs; ranked by "
                    f"<strong>{escape(table.primary)}</strong> ({better} is better). Click a model for its runs, "
                    "parameters and files.</p>")
        links = {id(row): evidence.row_page(board, table, row) for row in table.rows}
        body += table_html(table, f"table-{name}", links)
        notes = table.notes + [TIER_RULE] + reported_notes(table)
        body += ['<ul class="notes">'] + [f"<li>{link_dois(escape(n))}</li>" for n in notes] + ["</ul>"]
        body += protocol_box.html(table, f"protocol-{name}")
        for caption, path in figures.get(table.split, []):
            body += figure_html(caption, path)
    nav = '<a href="index.html">All datasets</a>'
    return page(f"{board.title} — phonbench leaderboard", body, nav)


def index_html(boards: list[Board]) -> str:
    """Overview page: one row per (dataset, split) with the best model, linking to dataset pages."""
    head = ["Dataset", "Split", "Task", "Primary metric", "Best model", "Score", "Tier 1", f"Baseline ({BASELINE})",
            "Runs"]
    rows = []
    for board in boards:
        for table in board.tables:
            best = table.best
            baseline = next((r for r in table.rows if r.model == BASELINE and r.variant == "default"), None)
            cells = [
                f'<td><a href="{escape(board.slug)}.html">{escape(board.title)}</a></td>',
                f"<td>{escape(table.split)}</td>",
                f"<td>{escape(table.task['kind'])}</td>",
                f"<td>{escape(table.primary)}</td>",
                f"<td>{escape(best.label) if best else DASH}</td>",
                f'<td class="num"{num_attr(best.metrics[table.primary][0] if best else None)}>'
                f"{escape(fmt_mean_std(*best.metrics[table.primary])) if best else DASH}</td>",
                f"<td>{escape(', '.join(r.label for r in table.rows if r.tier == 1)) or DASH}</td>",
                f'<td class="num"{num_attr(baseline.metrics[table.primary][0] if baseline else None)}>'
                f"{escape(fmt_mean_std(*baseline.metrics[table.primary])) if baseline else 'not run'}</td>",
                f'<td class="num" data-value="{sum(len(r.runs) for r in table.rows)}">'
                f"{sum(len(r.runs) for r in table.rows)}</td>",
            ]
            rows.append(f'<tr data-dataset="{escape(board.slug)}">' + "".join(cells) + "</tr>")
    body = ["<h1>phonbench leaderboards</h1>",
            "<p>Generated from verified run records. Scores are on the test split; click a column header "
            "to sort.</p>",
            '<div class="table-wrap">', '<table class="sortable" id="overview">',
            "<thead><tr>" + "".join(f'<th scope="col">{escape(h)}</th>' for h in head) + "</tr></thead>",
            "<tbody>", *rows, "</tbody>", "</table>", "</div>"]
    if not rows:
        body.append("<p>No accepted run records.</p>")
    body += ["<h2>Datasets</h2>", "<ul>"]
    body += [f'<li><a href="{escape(b.slug)}.html">{escape(b.title)}</a> ({b.n_runs} runs)</li>' for b in boards]
    body.append("</ul>")
    return page("phonbench leaderboards", body, '<a href="index.html">phonbench leaderboards</a>')
