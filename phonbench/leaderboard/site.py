"""Static HTML site: ``index.html`` + one page per dataset with sortable tables and figures.

Everything is local and relative (``assets/style.css``, ``assets/sort.js``, ``figures/...``), so
opening ``index.html`` from disk works and the folder can be copied anywhere. No CDN, no fonts or
scripts from the network. Sorting: click (or press Enter on) a column header.
"""

from __future__ import annotations

import math
import re
from html import escape
from importlib import resources

from phonbench.leaderboard.render import (
    BASELINE,
    DASH,
    fmt_mean_std,
    headers,
    reported_cells,
    reported_notes,
    row_cells,
)
from phonbench.leaderboard.reported import Reported
from phonbench.leaderboard.tables import TIER_RULE, Board, Row, Table

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


def _page(title: str, body: list[str], nav: str) -> str:
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        '<link rel="stylesheet" href="assets/style.css">',
        "</head>",
        "<body>",
        f"<nav>{nav}</nav>",
        *body,
        '<script src="assets/sort.js"></script>',
        "</body>",
        "</html>",
        "",
    ])


def _num_attr(x: float | int | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    return f' data-value="{x!r}"' if isinstance(x, float) else f' data-value="{x}"'


def _row_html(table: Table, row: Row) -> str:
    cells = row_cells(table, row)
    values: list[float | int | None] = [row.rank, row.tier, None, len(row.runs)]
    values += [row.metrics[m][0] for m in table.metrics]
    values += [row.timing("fit_s"), row.n_parameters[-1] if row.n_parameters else None, None]
    tds = []
    for text, value in zip(cells, values):
        cls = ' class="num"' if value is not None or text == DASH else ""
        attr = _num_attr(value) if value is not None else ""
        tds.append(f"<td{cls}{attr}>{escape(text)}</td>")
    classes = [c for c in (f"tier-{row.tier}" if row.tier else "", "baseline" if row.model == BASELINE else "") if c]
    cls = f' class="{" ".join(classes)}"' if classes else ""
    return f'<tr{cls} data-model="{escape(row.label)}">' + "".join(tds) + "</tr>"


def _reported_html(table: Table, entry: Reported, mark: int) -> str:
    cells = reported_cells(table, entry, mark)
    tds = "".join(f'<td class="num"{_num_attr(float(entry.value)) if k == 4 else ""}>{escape(c)}</td>'
                  if k >= 3 else f"<td>{escape(c)}</td>" for k, c in enumerate(cells))
    return f'<tr class="reported" data-model="{escape(entry.label)}" title="reported, not re-run">{tds}</tr>'


def table_html(table: Table, table_id: str) -> list[str]:
    """A sortable ``<table>`` of ranked rows (reported entries interleaved, marked ``tr.reported``)."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers(table))
    lines = ['<div class="table-wrap">', f'<table class="sortable leaderboard" id="{escape(table_id)}">',
             f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    marks = {id(e): i for i, e in enumerate(table.reported, start=1)}
    lines += [_reported_html(table, r, marks[id(r)]) if isinstance(r, Reported) else _row_html(table, r)
              for r in table.display_rows]
    lines += ["</tbody>", "</table>", "</div>"]
    return lines


def board_html(board: Board, figures: dict[str, list[tuple[str, str]]]) -> str:
    """Dataset page; ``figures`` maps split → ``[(caption, path relative to the site root)]``."""
    body = [f"<h1>{escape(board.title)}</h1>"]
    if board.card.get("description"):
        body.append(f"<p>{escape(board.card['description'])}</p>")
    if board.card.get("citation"):
        body.append(f"<p><small>Citation: {escape(board.card['citation'])}</small></p>")
    if board.notes:
        body += ['<ul class="notes">'] + [f"<li>{escape(n)}</li>" for n in board.notes] + ["</ul>"]
    body += _generalisation_html(board, figures.get("", []))
    for table in board.tables:
        task = table.task
        better = "lower" if table.direction == "minimize" else "higher"
        body.append(f'<h2 id="split-{escape(safe_name(table.split))}">Split <code>{escape(table.split)}</code></h2>')
        body.append(f"<p>Task: {escape(task['kind'])} <code>{escape(str(task.get('target', '')))}</code> "
                    f"({escape(task['unit'])}). Test-split metrics, mean ± std over runs; ranked by "
                    f"<strong>{escape(table.primary)}</strong> ({better} is better).</p>")
        body += table_html(table, f"table-{safe_name(table.split)}")
        notes = table.notes + [TIER_RULE] + reported_notes(table)
        body += ['<ul class="notes">'] + [f"<li>{escape(n)}</li>" for n in notes] + ["</ul>"]
        for caption, path in figures.get(table.split, []):
            body += ["<figure>", f'<img src="{escape(path)}" alt="{escape(caption)}" loading="eager">',
                     f"<figcaption>{escape(caption)}</figcaption>", "</figure>"]
    nav = '<a href="index.html">All datasets</a>'
    return _page(f"{board.title} — phonbench leaderboard", body, nav)


def _generalisation_html(board: Board, figs: list[tuple[str, str]]) -> list[str]:
    """The in- vs out-of-distribution section of a dataset page (empty without OOD runs)."""
    from phonbench.leaderboard import generalisation as g

    gen = g.generalisation_table(board)
    if gen is None:
        return []
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escape(g.describe(gen)))
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in g.headers(gen))
    body = ['<h2 id="generalisation">Generalisation: in- vs out-of-distribution</h2>', f"<p>{text}</p>",
            '<div class="table-wrap">', '<table class="sortable generalisation" id="table-generalisation">',
            f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for row in gen.rows:
        values = [None] + [row.values.get(s, (None,))[0] for s in gen.splits]
        values += [row.ratio(s, gen.reference) for s in gen.protocols]
        tds = [f"<td>{escape(c)}</td>" if k == 0 else f'<td class="num"{_num_attr(v)}>{escape(c)}</td>'
               for k, (c, v) in enumerate(zip(g.row_cells(gen, row), values))]
        cls = ' class="baseline"' if row.model == BASELINE else ""
        body.append(f'<tr{cls} data-model="{escape(row.label)}">' + "".join(tds) + "</tr>")
    body += ["</tbody>", "</table>", "</div>"]
    for caption, path in figs:
        body += ['<figure class="generalisation">', f'<img src="{escape(path)}" alt="{escape(caption)}" loading="eager">',
                 f"<figcaption>{escape(caption)}</figcaption>", "</figure>"]
    return body


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
                f'<td class="num"{_num_attr(best.metrics[table.primary][0] if best else None)}>'
                f"{escape(fmt_mean_std(*best.metrics[table.primary])) if best else DASH}</td>",
                f"<td>{escape(', '.join(r.label for r in table.rows if r.tier == 1)) or DASH}</td>",
                f'<td class="num"{_num_attr(baseline.metrics[table.primary][0] if baseline else None)}>'
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
    return _page("phonbench leaderboards", body, '<a href="index.html">phonbench leaderboards</a>')
