"""HTML tables of the leaderboard site: split tables (ranked and reported rows), the generalisation
table and figures.

Column order follows :func:`phonbench.leaderboard.render.headers`: Model first (sticky: it stays in
view while the table scrolls sideways), the primary metric second, then rank, tier, runs, the other
metrics (class ``secondary``: hidden until the reader ticks the table's "other metrics" box — pure
CSS, no script needed), fit time, parameters and hardware.
"""

from __future__ import annotations

import math
import re
from html import escape

from phonbench.leaderboard.render import (
    BASELINE,
    DASH,
    headers,
    reported_cells,
    row_cells,
    secondary_metrics,
)
from phonbench.leaderboard.reported import Reported
from phonbench.leaderboard.tables import Board, Row, Table

#: column index of the primary metric in :func:`headers`
PRIMARY_COLUMN = 1
#: the one absolute link prefix the site uses: DOIs resolve there
DOI_RESOLVER = "https://doi.org/"
_DOI = re.compile(r"\b10\.\d{4,9}/[^\s\"'<>;,()\[\]]+")


def doi_of(text: str) -> str | None:
    """The DOI in ``text`` (``10.1000/xyz``, ``doi:10.1000/xyz`` or a doi.org URL), else ``None``."""
    found = _DOI.search(text)
    return found.group(0).rstrip(".") if found else None


def link_dois(html_text: str) -> str:
    """Every DOI in already-escaped HTML text turned into a link to ``https://doi.org/<doi>``."""
    def link(match: re.Match) -> str:
        doi = match.group(0).rstrip(".")
        return f'<a href="{DOI_RESOLVER}{doi}">{doi}</a>{match.group(0)[len(doi):]}'

    return _DOI.sub(link, html_text)


def num_attr(x: float | int | None) -> str:
    """`` data-value="…"`` for the sort script (empty for missing values)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    return f' data-value="{x!r}"' if isinstance(x, float) else f' data-value="{x}"'


def column_classes(table: Table) -> list[list[str]]:
    """CSS classes of each column of a split table: ``model``, ``primary``, ``secondary``."""
    n_secondary = len(secondary_metrics(table))
    return [["model"], ["primary"], [], [], []] + [["secondary"]] * n_secondary + [[], [], []]


def _class_attr(classes: list[str]) -> str:
    return f' class="{" ".join(classes)}"' if classes else ""


def _td(text: str, classes: list[str], value: float | int | None = None) -> str:
    return f"<td{_class_attr(classes)}{num_attr(value)}>{escape(text)}</td>"


def _row_html(table: Table, row: Row, columns: list[list[str]], href: str | None = None) -> str:
    cells = row_cells(table, row)
    values: list[float | int | None] = [None, row.metrics[table.primary][0], row.rank, row.tier, len(row.runs)]
    values += [row.metrics[m][0] for m in secondary_metrics(table)]
    values += [row.timing("fit_s"), row.n_parameters[-1] if row.n_parameters else None, None]
    tds = [_td(text, cls + (["num"] if value is not None or text == DASH else []), value)
           for text, value, cls in zip(cells, values, columns)]
    if href is not None:  # the Model cell links to the row's evidence page
        tds[0] = (f'<td{_class_attr(columns[0])}><a href="{escape(href)}" title="Runs, parameters, files">'
                  f"{escape(cells[0])}</a></td>")
    classes = [c for c in (f"tier-{row.tier}" if row.tier else "", "baseline" if row.model == BASELINE else "") if c]
    return f'<tr{_class_attr(classes)} data-model="{escape(row.label)}">' + "".join(tds) + "</tr>"


def _reported_html(table: Table, entry: Reported, mark: int, columns: list[list[str]]) -> str:
    cells = reported_cells(table, entry, mark)
    tds = [_td(c, cls if k in (0, 3) else cls + ["num"], float(entry.value) if k == PRIMARY_COLUMN else None)
           for k, (c, cls) in enumerate(zip(cells, columns))]
    return (f'<tr class="reported" data-model="{escape(entry.label)}" title="reported, not re-run">'
            + "".join(tds) + "</tr>")


def _thead(names: list[str], columns: list[list[str]]) -> str:
    ths = "".join(f'<th scope="col"{_class_attr(c)}>{escape(h)}</th>' for h, c in zip(names, columns))
    return f"<thead><tr>{ths}</tr></thead>"


def table_html(table: Table, table_id: str, row_links: dict[int, str] | None = None) -> list[str]:
    """A sortable ``<table>`` of ranked rows (reported entries interleaved, marked ``tr.reported``),
    preceded by the checkbox that shows the secondary metrics when the table has any. ``row_links``
    maps ``id(row)`` to the href of the row's detail page (its Model cell links there)."""
    columns = column_classes(table)
    lines = ['<div class="board-table">']
    others = secondary_metrics(table)
    if others:
        box = f"more-{table_id}"
        lines += [f'<input type="checkbox" class="show-secondary" id="{escape(box)}" '
                  f'aria-controls="{escape(table_id)}">',
                  f'<label class="show-secondary" for="{escape(box)}">Show the other metrics '
                  f"({escape(', '.join(others))})</label>"]
    lines += ['<div class="table-wrap">', f'<table class="sortable leaderboard sticky-first" id="{escape(table_id)}">',
              _thead(headers(table), columns), "<tbody>"]
    marks = {id(e): i for i, e in enumerate(table.reported, start=1)}
    lines += [_reported_html(table, r, marks[id(r)], columns) if isinstance(r, Reported)
              else _row_html(table, r, columns, (row_links or {}).get(id(r))) for r in table.display_rows]
    lines += ["</tbody>", "</table>", "</div>", "</div>"]
    return lines


def figure_html(caption: str, path: str, cls: str = "") -> list[str]:
    """A ``<figure>`` showing the PNG at ``path``; the image links to the full-size vector SVG next to
    it (:func:`.figure_canvas.svg_path`), and the caption links both files."""
    from phonbench.leaderboard.figure_canvas import svg_path

    attr = f' class="{escape(cls)}"' if cls else ""
    svg = svg_path(path)
    return [f"<figure{attr}>",
            f'<a href="{escape(svg)}" title="Open full size (SVG)"><img src="{escape(path)}" alt="{escape(caption)}" '
            'loading="eager"></a>',
            f'<figcaption>{escape(caption)} <small>(<a href="{escape(svg)}">SVG</a> · '
            f'<a href="{escape(path)}">PNG</a>)</small></figcaption>', "</figure>"]


def generalisation_html(board: Board, figs: list[tuple[str, str]]) -> list[str]:
    """The in- vs out-of-distribution section of a dataset page (empty without OOD runs)."""
    from phonbench.leaderboard import generalisation as g

    gen = g.generalisation_table(board)
    if gen is None:
        return []
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escape(g.describe(gen)))
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    names = g.headers(gen)
    columns = [["model"]] + [[] for _ in names[1:]]
    body = ['<h2 id="generalisation">Generalisation: in- vs out-of-distribution</h2>', f"<p>{text}</p>",
            '<div class="table-wrap">',
            '<table class="sortable generalisation sticky-first" id="table-generalisation">',
            _thead(names, columns), "<tbody>"]
    for row in gen.rows:
        values = [None] + [row.values.get(s, (None,))[0] for s in gen.splits]
        values += [row.ratio(s, gen.reference) for s in gen.protocols]
        tds = [_td(c, ["model"]) if k == 0 else f'<td class="num"{num_attr(v)}>{escape(c)}</td>'
               for k, (c, v) in enumerate(zip(g.row_cells(gen, row), values))]
        cls = ' class="baseline"' if row.model == BASELINE else ""
        body.append(f'<tr{cls} data-model="{escape(row.label)}">' + "".join(tds) + "</tr>")
    body += ["</tbody>", "</table>", "</div>"]
    for caption, path in figs:
        body += figure_html(caption, path, "generalisation")
    return body
