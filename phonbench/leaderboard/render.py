"""Render leaderboard boards as Markdown, CSV and JSON text (deterministic: no timestamps, sorted)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import asdict
from typing import Any

from phonbench.leaderboard.reported import Reported
from phonbench.leaderboard.tables import BASELINE, TIER_RULE, Board, Row, Table

DASH = "–"


SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
#: below this fraction of |mean| a spread is floating-point noise of deterministic repeats
DETERMINISTIC_RTOL = 1e-9


def _fixed(x: float, decimals: int) -> str:
    return f"{x:.{max(decimals, 0)}f}" if decimals > 0 else f"{round(x, decimals):.0f}"


def _in_plain_range(x: float) -> bool:
    return x == 0 or 1e-4 <= abs(x) < 1e5


def fmt(x: float | None, digits: int = 4) -> str:
    """``x`` to ``digits`` significant digits (trailing zeros dropped); NaN/None → en dash. Fixed-point
    notation for 0 and 1e-4 ≤ |x| < 1e5 (large values rounded but written out: ``12350``), scientific
    notation outside."""
    if x is None or not math.isfinite(x):
        return DASH
    if not _in_plain_range(x):
        return f"{x:.{digits}g}"
    text = _fixed(x, digits - 1 - math.floor(math.log10(abs(x))) if x else 0)
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_uncertain(mean: float, std: float) -> str:
    """``mean ± std`` with std rounded to 2 significant digits and the mean to the same decimal place
    (``0.019150 ± 0.000016``, ``15.33 ± 0.37``, ``324 ± 20``)."""
    std = float(f"{abs(std):.2g}")
    if std == 0 or not math.isfinite(std):
        return fmt(mean)
    decimals = 1 - math.floor(math.log10(std))
    if not _in_plain_range(mean) or (mean == 0 and not _in_plain_range(std)):
        return f"{fmt(mean)} ± {fmt(std, 2)}"
    return f"{_fixed(mean, decimals)} ± {_fixed(std, decimals)}"


def is_deterministic(mean: float, std: float) -> bool:
    """True when the spread of repeats is 0 or floating-point noise (below 1e-9 × |mean|)."""
    return std == 0 or abs(std) < DETERMINISTIC_RTOL * abs(mean)


def fmt_mean_std(mean: float, std: float, n: int) -> str:
    """The mean alone for a single run; ``mean (deterministic)`` when repeats agree to floating-point
    noise; else :func:`fmt_uncertain`."""
    if not math.isfinite(mean):
        return DASH
    if n <= 1 or not math.isfinite(std):
        return fmt(mean)
    if is_deterministic(mean, std):
        return f"{fmt(mean)} (deterministic)"
    return fmt_uncertain(mean, std)


def fmt_seconds(x: float | None) -> str:
    """Wall-clock seconds: whole seconds from 100 s up (``1,450``), ``< 0.001`` below a millisecond,
    else 3 significant digits."""
    if x is None or not math.isfinite(x):
        return DASH
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return "< 0.001" if 0 <= x < 1e-3 else fmt(x, 3)


def fmt_params(values: list[int]) -> str:
    if not values:
        return DASH
    return f"{values[0]:,}" if len(values) == 1 else f"{values[0]:,}–{values[-1]:,}"


def pretty_unit(unit: str) -> str:
    """Typeset a unit for display: ``cm^-1`` → ``cm⁻¹``, ``(a.u.)^2`` → ``a.u.²``, ``THz^2`` → ``THz²``
    (CSV and JSON keep the raw spelling)."""
    text = re.sub(r"\^(-?\d+)", lambda m: m.group(1).translate(SUPERSCRIPT), unit)
    return re.sub(r"\(([A-Za-z.]+)\)(?=[⁰¹²³⁴⁵⁶⁷⁸⁹⁻])", r"\1", text)


def metric_header(table: Table, name: str) -> str:
    arrow = "↓" if _direction(name, table) == "minimize" else "↑"
    unit = table.units.get(name) or ""
    return f"{name} {arrow}" + (f" ({pretty_unit(unit)})" if unit and unit != "1" else "")


def _direction(name: str, table: Table) -> str:
    from phonbench.registry import METRICS

    if name == table.primary:
        return table.direction
    return METRICS.get(name).direction if name in METRICS else "minimize"


def secondary_metrics(table: Table) -> list[str]:
    """The table's metrics other than the primary one, in table order."""
    return [m for m in table.metrics if m != table.primary]


def headers(table: Table) -> list[str]:
    """Column headers: Model, the primary metric, Rank, Tier, Runs, the other metrics, fit time,
    parameters, hardware (the Model and primary columns first so that narrow screens show them)."""
    return (["Model", metric_header(table, table.primary), "Rank", "Tier", "Runs"]
            + [metric_header(table, m) for m in secondary_metrics(table)] + ["Fit time (s)", "Parameters", "Hardware"])


def row_cells(table: Table, row: Row) -> list[str]:
    """Display cells of a row, in :func:`headers` order."""
    cells = [row.label, fmt_mean_std(*row.metrics[table.primary]), str(row.rank) if row.rank else DASH,
             str(row.tier) if row.tier else DASH, str(len(row.runs))]
    cells += [fmt_mean_std(*row.metrics[m]) for m in secondary_metrics(table)]
    cells += [fmt_seconds(row.timing("fit_s")), fmt_params(row.n_parameters), "; ".join(row.hardware)]
    return cells


def fmt_reported(entry: Reported) -> str:
    """A reported value: ``value ± std`` rounded to its uncertainty, the value alone without a std."""
    if entry.std is None or not math.isfinite(entry.std) or entry.std == 0:
        return fmt(entry.value)
    return fmt_uncertain(entry.value, entry.std)


def reported_cells(table: Table, entry: Reported, mark: int) -> list[str]:
    """Display cells of a reported entry, in :func:`headers` order: no rank or tier, the primary metric
    only, a footnote mark."""
    cells = [f"{entry.label} [{mark}]", fmt_reported(entry), DASH, "reported", DASH]
    return cells + [DASH] * len(secondary_metrics(table)) + [DASH, DASH, DASH]


def reported_notes(table: Table) -> list[str]:
    """Footnotes ``[n] model: citation — protocol (note); source`` of a table's reported entries."""
    notes = []
    for mark, entry in enumerate(table.reported, start=1):
        text = f"[{mark}] {entry.model}: {entry.citation} — {entry.protocol.rstrip('.')}."
        if not entry.comparable:
            text += f" Not directly comparable: {entry.note}"
        elif entry.note:
            text += f" {entry.note}"
        notes.append(text + (f" (source: {entry.source})" if entry.source else ""))
    if notes:
        notes.insert(0, "Rows marked *reported* are published numbers, not re-run here: they have no rank or "
                        "tier and stand after the phonbench rows that score at least as well.")
    return notes


def display_cells(table: Table) -> list[list[str]]:
    """Cells of every display row (ranked rows with reported entries interleaved)."""
    marks = {id(e): i for i, e in enumerate(table.reported, start=1)}
    return [reported_cells(table, r, marks[id(r)]) if isinstance(r, Reported) else row_cells(table, r)
            for r in table.display_rows]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    return lines


def _md_figure(caption: str, path: str) -> list[str]:
    """The PNG inline, then a link to its SVG (:func:`.figure_canvas.svg_path`)."""
    from phonbench.leaderboard.figure_canvas import svg_path

    return [f"![{caption}]({path}) ([SVG]({svg_path(path)}))", ""]


def board_markdown(board: Board, figures: dict[str, dict[str, str]] | None = None) -> str:
    """Per-dataset page ``<slug>.md``; ``figures`` maps split → {caption: relative PNG path} (the key
    ``""`` holds the generalisation figure; each figure links its SVG too)."""
    from phonbench.leaderboard import evidence, generalisation, protocol_box

    lines = [f"# {board.title}", ""]
    if board.card.get("description"):
        lines += [board.card["description"], ""]
    if board.card.get("citation"):
        lines += [f"Citation: {board.card['citation']}", ""]
    lines += [f"Interactive page: [site/{board.slug}.html](site/{board.slug}.html) · [all datasets](README.md)", ""]
    lines += [f"- {n}" for n in board.notes] + ([""] if board.notes else [])
    gen = generalisation.generalisation_table(board)
    if gen is not None:
        lines += generalisation.markdown(gen)
        for caption, path in (figures or {}).get("", {}).items():
            lines += _md_figure(caption, path)
    for table in board.tables:
        task = table.task
        lines += [f"## Split `{table.split}`", ""]
        lines += [f"Task: {task['kind']} `{task.get('target', '')}` ({pretty_unit(task['unit'])}); test-split metrics as mean ± "
                  f"std over runs; ranked by **{table.primary}** ({'lower' if table.direction == 'minimize' else 'higher'}"
                  " is better).", ""]
        lines += _md_table(headers(table), display_cells(table)) + [""]
        for note in table.notes + [TIER_RULE] + reported_notes(table):
            lines.append(f"- {note}")
        lines.append("")
        lines += protocol_box.markdown(table) + evidence.markdown_evidence(board, table)
        for caption, path in (figures or {}).get(table.split, {}).items():
            lines += _md_figure(caption, path)
    return "\n".join(lines).rstrip("\n") + "\n"


def readme_markdown(boards: list[Board]) -> str:
    """Overview ``README.md``: one short table per dataset with the best model of each split."""
    lines = ["# phonbench leaderboards", "",
             "Generated by `phonbench leaderboard build` from verified run records — do not edit by hand. "
             "Scores are on the test split (mean ± std over seeds/folds). "
             "Open [site/index.html](site/index.html) for sortable tables and figures.", ""]
    for board in boards:
        lines += [f"## [{board.title}]({board.slug}.md)", ""]
        rows = []
        for table in board.tables:
            best = table.best
            tier1 = [r.label for r in table.rows if r.tier == 1]
            baseline = next((r for r in table.rows if r.model == BASELINE and r.variant == "default"), None)
            rows.append([
                f"`{table.split}`", table.primary,
                best.label if best else DASH,
                fmt_mean_std(*best.metrics[table.primary]) if best else DASH,
                ", ".join(tier1) or DASH,
                fmt_mean_std(*baseline.metrics[table.primary]) if baseline else "not run",
                str(sum(len(r.runs) for r in table.rows)),
            ])
        lines += _md_table(["Split", "Primary metric", "Best model", "Score", "Tier 1", f"Baseline ({BASELINE})", "Runs"], rows)
        lines += ["", f"Details: [{board.slug}.md]({board.slug}.md) · [site/{board.slug}.html](site/{board.slug}.html)", ""]
    if not boards:
        lines += ["No accepted run records.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def row_dict(table: Table, row: Row) -> dict[str, Any]:
    return {
        "rank": row.rank,
        "tier": row.tier,
        "model": row.model,
        "variant": row.variant,
        "label": row.label,
        "n_runs": len(row.runs),
        "run_ids": [r.run_id for r in row.runs],
        "seeds": row.seeds,
        "folds": row.folds,
        "metrics": {m: {"mean": _num(v[0]), "std": _num(v[1]), "n": v[2]} for m, v in row.metrics.items()},
        "fit_s": _num(row.timing("fit_s")),
        "total_s": _num(row.timing("total_s")),
        "n_parameters": row.n_parameters,
        "hardware": row.hardware,
        "tie_test": None if row.tie_test is None else {k: (_num(v) if isinstance(v, float) else v)
                                                       for k, v in row.tie_test.as_dict().items()},
    }


def board_json(board: Board) -> str:
    """``<slug>.json``: everything in the tables, with run ids and tie-test details."""
    doc = {
        "dataset": board.name,
        "options": board.options,
        "content_hash": board.content_hash,
        "slug": board.slug,
        "title": board.title,
        "card": board.card,
        "notes": board.notes,
        "tier_rule": TIER_RULE,
        "generalisation": _generalisation_dict(board),
        "tables": [
            {
                "split": t.split,
                "task": t.task,
                "primary_metric": t.primary,
                "direction": t.direction,
                "metrics": t.metrics,
                "units": t.units,
                "notes": t.notes,
                "rows": [row_dict(t, r) for r in t.rows],
                **({"reported": [asdict(r) for r in t.reported]} if t.reported else {}),
            }
            for t in board.tables
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _generalisation_dict(board: Board) -> dict[str, Any] | None:
    from phonbench.leaderboard import generalisation

    gen = generalisation.generalisation_table(board)
    if gen is None:
        return None
    return {"metric": gen.metric, "unit": gen.unit, "reference": gen.reference, "protocols": gen.protocols,
            "rows": [{"label": r.label, "model": r.model,
                      "values": {s: {"mean": _num(v[0]), "std": _num(v[1]), "n": v[2]} for s, v in r.values.items()},
                      "ratios": {s: _num(r.ratio(s, gen.reference)) for s in gen.protocols}} for r in gen.rows]}


def board_csv(board: Board) -> str:
    """``<slug>.csv``: one line per (split, row); metric columns are the union over splits."""
    metrics = sorted({m for t in board.tables for m in t.metrics})
    head = ["dataset", "split", "primary_metric", "rank", "tier", "model", "variant", "n_runs", "seeds", "folds"]
    head += [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    head += ["fit_s_mean", "total_s_mean", "n_parameters", "hardware", "tie_test"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head)
    for t in board.tables:
        for r in t.rows:
            line: list[Any] = [board.slug, t.split, t.primary, r.rank or "", r.tier or "", r.model, r.variant,
                               len(r.runs), ";".join(map(str, r.seeds)), ";".join(r.folds)]
            for m in metrics:
                mean, std, _ = r.metrics.get(m, (math.nan, math.nan, 0))
                line += [_csv_num(mean), _csv_num(std)]
            line += [_csv_num(r.timing("fit_s")), _csv_num(r.timing("total_s")),
                     ";".join(map(str, r.n_parameters)), "; ".join(r.hardware),
                     r.tie_test.describe() if r.tie_test else ""]
            writer.writerow(line)
    return buf.getvalue()


def _csv_num(x: float) -> str:
    return repr(float(x)) if math.isfinite(x) else ""
