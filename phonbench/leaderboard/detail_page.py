"""Per-row detail pages of the leaderboard site: the evidence behind one row of a split table.

``site/<board slug>/<split>-<row slug>.html`` (linked from the row's Model cell) lists the row's
runs (ids, seeds, folds, every test score), the tie test behind its tier, its parameters (the union
over runs; values that differ between runs are marked), training stops, the code commit(s) with
their dirty flags, hardware, package versions, the model card of external rows, and download links
to each run's archived record and test predictions and to the board's CSV and JSON. All links are
relative (``../``) except DOIs, which link to ``https://doi.org/``.
"""

from __future__ import annotations

from html import escape

from phonbench.leaderboard import evidence
from phonbench.leaderboard.protocol_box import code_spans, spread_kind
from phonbench.leaderboard.render import DASH, fmt, fmt_mean_std, fmt_seconds, metric_header, pretty_unit
from phonbench.leaderboard.site_tables import DOI_RESOLVER, doi_of, link_dois
from phonbench.leaderboard.tables import TIER_RULE, Board, Row, Table

UP = "../"


def _safe_split(table: Table) -> str:
    from phonbench.leaderboard.site import safe_name

    return safe_name(table.split)


def _table(head: list[str], rows: list[list[str]], cls: str) -> list[str]:
    """A plain (not sortable) table; ``rows`` hold HTML cells (already escaped)."""
    return ['<div class="table-wrap">', f'<table class="{cls}">',
            "<thead><tr>" + "".join(f'<th scope="col">{escape(h)}</th>' for h in head) + "</tr></thead>", "<tbody>",
            *["<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cells in rows],
            "</tbody>", "</table>", "</div>"]


def detail_html(board: Board, table: Table, row: Row, available: set[str]) -> str:
    """The detail page of ``row``; ``available`` holds the site paths of the copied run files."""
    from phonbench.leaderboard.site import page

    split = escape(table.split)
    back = f"{UP}{escape(board.slug)}.html#split-{escape(_safe_split(table))}"
    body = [f"<h1>{escape(row.label)}</h1>",
            f'<p>{escape(board.title)}, split <a href="{back}"><code>{split}</code></a>: '
            "the evidence behind this row.</p>"]
    body += _summary(table, row) + _tie(board, table, row) + _runs(table, row, available) + _stops(row)
    body += _params(row) + _provenance(row) + _packages(row) + _card(row) + _downloads(board)
    nav = (f'<a href="{UP}index.html">All datasets</a> · <a href="{UP}{escape(board.slug)}.html">{escape(board.title)}'
           f'</a> · <a href="{back}">split {split}</a>')
    return page(f"{row.label} on {board.title} ({table.split}) — phonbench leaderboard", body, nav, root=UP)


def _summary(table: Table, row: Row) -> list[str]:
    place = f"Rank {row.rank}, tier {row.tier}" if row.rank else "Not ranked"
    unit = table.units.get(table.primary) or ""
    unit = f" ({pretty_unit(unit)})" if unit and unit != "1" else ""
    return [f"<p>{place}. Test <strong>{escape(table.primary)}</strong>{escape(unit)}: "
            f"{escape(fmt_mean_std(*row.metrics[table.primary]))} "
            + ("from a single run (no ±)" if len(row.runs) == 1 else
               f"over {len(row.runs)} runs; ± over {code_spans(spread_kind(row))}") + ".</p>"]


def tie_reference(table: Table, row: Row) -> Row | None:
    """The row ``row`` was tie-tested against: the head of its tier, or for a tier head the head of
    the tier above (``None`` for the best row and unranked rows)."""
    if row.tier is None or row.tie_test is None:
        return None
    heads = {}
    for other in table.rows:
        if other.tier is not None:
            heads.setdefault(other.tier, other)
    head = heads.get(row.tier)
    return head if head is not row else heads.get(row.tier - 1)


def _tie(board: Board, table: Table, row: Row) -> list[str]:
    test, ref = row.tie_test, tie_reference(table, row)
    if row.rank is None:
        text = f"Not ranked: no finite test {escape(table.primary)}."
    elif row.rank == 1:
        text = "Best row of the table: it heads tier 1, and the other rows are tested against it."
    elif test is None or ref is None:
        text = f"Tier {row.tier}; no tie test recorded."
    else:
        link = f'<a href="{UP}{escape(evidence.row_page(board, table, ref))}">{escape(ref.label)}</a>'
        verdict = f"tied: tier {row.tier}" if test.tied else f"not tied: starts tier {row.tier}"
        text = (f"Tie test against {link} on {escape(table.primary)}: {escape(test.describe())}; mean difference "
                f"(this row − {escape(ref.label)}) {escape(fmt(test.mean_diff))} → {verdict}.")
    return ["<h2>Tier</h2>", f"<p>{text}</p>", f"<p><small>{escape(TIER_RULE)}</small></p>"]


def _files(run, available: set[str]) -> str:
    folder = evidence.run_folder(run)
    links = [f'<a href="{UP}{escape(f"{folder}/{name}")}">{label}</a>'
             for name, label in ((evidence.RECORD_NAME, "record.json"), (evidence.PREDICTIONS_NAME, "test predictions"))
             if folder and f"{folder}/{name}" in available]
    return " · ".join(links) or "not copied"


def _runs(table: Table, row: Row, available: set[str]) -> list[str]:
    head = ["#", "Run", "Files", "Seed", "Fold", "Split seed"] + [metric_header(table, m) for m in table.metrics]
    rows = []
    for k, run in enumerate(row.runs, start=1):
        ds, test = run.record["dataset"], run.record["metrics"].get("test", {})
        split_seed = ds.get("split_seed", evidence.NOT_RECORDED)
        cells = [str(k), f"<code>{escape(run.run_id)}</code>", _files(run, available), str(run.record["seed"]),
                 escape(str(ds["fold"])), DASH if split_seed is None else escape(evidence.canon(split_seed))]
        cells += [escape(fmt(test.get(m))) for m in table.metrics]
        rows.append(cells + [escape(fmt_seconds(run.record["timings"].get("fit_s")))])
    return ["<h2>Runs</h2>", "<p>Test scores of every run (the board shows their mean ± std); split seed – means "
            "a fixed split.</p>", *_table(head + ["Fit time (s)"], rows, "runs")]


def _stops(row: Row) -> list[str]:
    rows = [[str(k), escape(str(s.get("member", DASH))), escape(str(s.get("epochs_run", DASH))),
             escape(str(s.get("best_epoch", DASH))), escape(str(s.get("stopped_by", DASH)))]
            for k, run in enumerate(row.runs, start=1) for s in run.record["model"].get("stops") or []
            if isinstance(s, dict)]
    if not rows:
        return []
    head = ["#", "Member", "Epochs run", "Best epoch", "Stopped by"]
    return ["<h2>Training stops</h2>", *_table(head, rows, "stops")]


def _union_table(title: str, per_run: list[dict], head: list[str]) -> list[str]:
    rows = []
    for key, values, differs in evidence.union_values(per_run):
        if differs:
            value = "; ".join(f"#{k}: <code>{escape(v)}</code>" if v is not None else f"#{k}: absent"
                              for k, v in enumerate(values, start=1))
        else:
            value = f"<code>{escape(values[0])}</code>"
        rows.append([f"<code>{escape(key)}</code>", value,
                     '<strong class="differs">differs</strong>' if differs else "same" if len(per_run) > 1 else DASH])
    if not rows:
        return [f"<h2>{escape(title)}</h2>", "<p>None.</p>"]
    return [f"<h2>{escape(title)}</h2>", *_table(head, rows, "params")]


def _params(row: Row) -> list[str]:
    return _union_table("Parameters", [r.record["model"].get("params") or {} for r in row.runs],
                        ["Parameter", "Value (#: run)", "Between runs"])


def _packages(row: Row) -> list[str]:
    lines = _union_table("Package versions", [evidence.libraries(r) for r in row.runs],
                         ["Package", "Version (#: run)", "Between runs"])
    if row.variant == "external":
        lines.insert(1, "<p>Of the environment that scored the predictions (the model ran elsewhere).</p>")
    return lines


def _provenance(row: Row) -> list[str]:
    rows = []
    for k, run in enumerate(row.runs, start=1):
        sha, flag = evidence.commit(run), evidence.dirty(run)
        rows.append([str(k), escape(run.record.get("created_at", evidence.NOT_RECORDED)),
                     f"<code>{escape(sha[:evidence.SHORT_SHA])}</code>" if sha else evidence.NOT_RECORDED,
                     evidence.NOT_RECORDED if flag is None else "yes" if flag else "no",
                     escape(evidence.hardware(run)), escape(evidence.cores_shared(run))])
    code = code_spans(evidence.commits_text(row.runs, "runs"))
    head = ["#", "Created", "Commit", "Uncommitted changes", "Hardware", "Cores at start"]
    return ["<h2>Code and hardware</h2>", f"<p>{code[:1].upper() + code[1:]}.</p>", *_table(head, rows, "provenance")]


def _card(row: Row) -> list[str]:
    if row.variant != "external":
        return []
    card = next((r.record["model"].get("card") for r in row.runs if r.record["model"].get("card")), None) or {}
    items = []
    for key, label in (("name", "Name"), ("version", "Version"), ("authors", "Authors"), ("description", "Description"),
                       ("doi", "DOI"), ("url", "URL"), ("code_url", "Code"), ("hardware", "Hardware"),
                       ("training_time_s", "Training time (s)"), ("n_parameters", "Parameters")):
        value = card.get(key)
        if value in (None, "", [], ()):
            continue
        text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        doi = doi_of(text) if key in ("doi", "url") else None
        html = f'<a href="{escape(DOI_RESOLVER + doi)}">{escape(text)}</a>' if doi else link_dois(escape(text))
        items.append(f"<dt>{label}</dt><dd>{html}</dd>")
    body = ["<h2>Model card</h2>",
            "<p>An external row: trained outside phonbench, its test predictions scored here.</p>"]
    return body + (["<dl class=\"card\">", *items, "</dl>"] if items else ["<p>The records hold no model card.</p>"])


def _downloads(board: Board) -> list[str]:
    slug = escape(board.slug)
    return ["<h2>Downloads</h2>",
            f'<p>The whole board: <a href="{UP}{slug}.csv">{slug}.csv</a> · <a href="{UP}{slug}.json">{slug}.json</a>. '
            "Each run's <code>record.json</code> is the archived file, byte for byte (its <code>record_hash</code> "
            "verifies it); <em>test predictions</em> are the test rows of the archived predictions, gzip-compressed "
            "(the full file, train and valid rows included, is in the records folder; its sha256 is the record's "
            "<code>predictions_sha256</code>).</p>"]

