"""The protocol box of a split table (Markdown boards and dataset pages): what the numbers mean.

Per table: the task and its units; the split and its sizes (train/valid/test from the records'
``dataset.sizes``, as a range where folds or seeded splits differ); what ± is over — folds, training
seeds on one split, or seeded splits (each seed draws a new split: ``dataset.split_seed``), derived
from each row's runs; one-line metric definitions (the metric registry's ``description``); each
model's budget (``epochs``, ``max_time_s``, ``ensemble`` of ``model.params``) and the epochs it
reached (``model.stops``, schema-2 records); the hardware and whether its cores were shared at the
start of a run; the code commit(s). Fields older records lack read ``not recorded``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from html import escape

from phonbench.leaderboard import evidence
from phonbench.leaderboard.evidence import NOT_RECORDED, canon
from phonbench.leaderboard.render import DASH, fmt, metric_header, pretty_unit
from phonbench.leaderboard.tables import Row, Table, _natural

BUDGET_HEAD = ["Model", "Epochs", "Max time (s)", "Ensemble", "Epochs run (best)", "Stopped by"]
SIZE_KEYS = ("train", "valid", "test")


@dataclass
class Box:
    """Content of one protocol box: ``(label, text)`` items (text may hold ``code`` spans in
    backticks), ``(metric header, definition)`` pairs and the budget table rows."""

    items: list[tuple[str, str]]
    metrics: list[tuple[str, str]]
    budget: list[list[str]]


def protocol_box(table: Table) -> Box:
    runs = [r for row in table.rows for r in row.runs]
    items = [("Task", task_text(table)), ("Split", split_text(table)), ("±", spread_text(table)),
             ("Hardware", hardware_text(runs)), ("Cores", shared_text(runs)),
             ("Code", evidence.commits_text(runs) if runs else DASH)]
    items.insert(3, ("Final fit", final_fit_text(table)))
    if table.task.get("kind") == "modes":
        items.insert(3, ("Acoustic modes", acoustic_text(table)))
    return Box(items, metric_definitions(table), [budget_cells(row) for row in table.rows])


def task_text(table: Table) -> str:
    task = table.task
    text = f"{task['kind']} `{task.get('target', 'target')}` in {pretty_unit(task['unit'])}"
    grid = task.get("grid")
    if grid:
        text += f", {len(grid)} points on {fmt(grid[0])}–{fmt(grid[-1])} {pretty_unit(task.get('grid_unit') or '')}"
    elif task["kind"] == "modes":
        text += f", up to {task['n_outputs']} modes per material (zero-padded; a mask marks the real ones)"
    return text.rstrip()


def _span(values: list[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def split_text(table: Table) -> str:
    """``\\`random\\`` (1 fold): train 64 · valid 8 · test 8 materials``, per fold for multi-fold splits."""
    runs = [r for row in table.rows for r in row.runs]
    n_folds = sorted({int(r.record["dataset"].get("n_folds", 1)) for r in runs}) or [1]
    folds = sorted({str(r.record["dataset"]["fold"]) for r in runs}, key=_natural)
    if n_folds[-1] == 1:
        head = f"`{table.split}` (1 fold)"
    else:
        ran = "all run" if len(folds) == n_folds[-1] else \
            f"runs on fold{'s' if len(folds) > 1 else ''} {', '.join(folds)}"
        head = f"`{table.split}` ({_span(n_folds)} folds; {ran})"
    parts, ranged = [], False
    for key in SIZE_KEYS:
        values = sorted({r.record["dataset"].get("sizes", {}).get(key) for r in runs} - {None})
        parts.append(f"{key} {_span(values) if values else NOT_RECORDED}")
        ranged = ranged or len(values) > 1
    text = f"{head}: {' · '.join(parts)} materials" + (" per fold" if n_folds[-1] > 1 else "")
    return text + (" (range over folds and seeded splits)" if ranged else "")


def spread_kind(row: Row) -> str:
    """What ± is over for one row: folds, training seeds on one split, or seeded splits."""
    if len(row.runs) == 1:
        return "single run, no ±"
    parts = [f"{len(row.folds)} folds"] if len(row.folds) > 1 else []
    if len(row.seeds) > 1:
        split_seeds = {canon(r.record["dataset"].get("split_seed", NOT_RECORDED)) for r in row.runs}
        if canon(NOT_RECORDED) in split_seeds:
            parts.append(f"{len(row.seeds)} seeds (whether each seed drew a new split is {NOT_RECORDED})")
        elif len(split_seeds) > 1:
            parts.append(f"{len(row.seeds)} seeded splits (each seed draws a new split, `dataset.split_seed` "
                         f"{', '.join(sorted(split_seeds, key=_natural))})")
        else:
            parts.append(f"{len(row.seeds)} training seeds on one split")
    return " × ".join(parts) or f"{len(row.runs)} repeats of the same fold and seed"


def spread_text(table: Table) -> str:
    groups: dict[str, list[str]] = {}
    for row in table.rows:
        groups.setdefault(spread_kind(row), []).append(row.label)
    if not groups:
        return DASH
    if len(groups) == 1:
        (kind,) = groups
        text = f"sample standard deviation (ddof = 1) over each row's runs, for every row: {kind}"
    else:
        text = "sample standard deviation (ddof = 1) over each row's runs: " + "; ".join(
            f"{kind} — {', '.join(labels)}" for kind, labels in groups.items())
    return text + ("; reported rows show the spread their source gives" if table.reported else "")


FINAL_FIT = {"train": "train rows only (valid held out for early stopping)",
             "train+valid": "the whole training fold, train + valid (as matbench)"}


def final_fit_text(table: Table) -> str:
    """What each row's scored model was fitted on (record ``dataset.final_fit``; older records: train)."""
    groups: dict[str, list[str]] = {}
    for row in table.rows:
        if row.variant == "external":
            kind = "as its submitter states (external)"
        else:
            fits = {str(r.record["dataset"].get("final_fit", "train")) for r in row.runs}
            kind = " / ".join(FINAL_FIT.get(f, f) for f in sorted(fits))
        groups.setdefault(kind, []).append(row.label)
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join(f"{kind}: {', '.join(labels)}" for kind, labels in groups.items())


def acoustic_text(table: Table) -> str:
    """Which rows pin the three acoustic Γ modes at 0 by construction (param ``acoustic_zeros``)."""
    def pinned(row: Row) -> bool:
        return any((r.record["model"].get("params") or {}).get("acoustic_zeros") for r in row.runs)

    forced = [row.label for row in table.rows if pinned(row)]
    text = "forced to 0 THz by " + ", ".join(forced) if forced else "no row forces them to 0"
    return text + "; the other rows predict them (they count in `mae`, not in `mae_optical`)"


def metric_definitions(table: Table) -> list[tuple[str, str]]:
    """``(header, definition)`` of each metric of the table, from the metric registry."""
    from phonbench.physics_metrics import CV_TEMPERATURE_K
    from phonbench.registry import METRICS

    out = []
    for name in table.metrics:
        text = METRICS.get(name).description if name in METRICS else ""
        text = text or "no definition available (metric not installed here)"
        if name == "heat_capacity_error" and not re.search(r"\d\s*K\b", text):
            text += f", at {fmt(CV_TEMPERATURE_K)} K"
        if name == "mae" and table.task.get("kind") == "modes":
            text += ("; padded entries are never scored, and the acoustic modes (≈ 0 at Γ) do count — "
                     "`mae_optical` leaves them out")
        out.append((metric_header(table, name), text))
    return out


def _param(params: list[dict], key: str) -> str:
    """The distinct values of ``params[key]`` over runs (``max_time_s`` 0 = unlimited), ``–`` if absent."""
    def text(value) -> str:
        if key == "max_time_s" and value == 0:
            return "unlimited"
        return fmt(value) if isinstance(value, float) else canon(value)

    values = sorted({text(p[key]) for p in params if p.get(key) is not None}, key=_natural)
    return ", ".join(values) if values else DASH


def _stops(row: Row, has_epochs: bool) -> tuple[str, str]:
    """(epochs run and best epoch, stopped-by counts) from ``model.stops``."""
    if row.variant == "external":
        return DASH, DASH
    recorded = [r.record["model"]["stops"] for r in row.runs if isinstance(r.record["model"].get("stops"), list)]
    stops = [s for rs in recorded for s in rs if isinstance(s, dict)]
    if not stops:
        return (NOT_RECORDED, NOT_RECORDED) if has_epochs and len(recorded) < len(row.runs) else (DASH, DASH)
    run_epochs = sorted({int(s["epochs_run"]) for s in stops if isinstance(s.get("epochs_run"), int)})
    best = sorted({int(s["best_epoch"]) for s in stops if isinstance(s.get("best_epoch"), int)})
    reached = (_span(run_epochs) if run_epochs else DASH) + (f" (best {_span(best)})" if best else "")
    counts = Counter(str(s.get("stopped_by") or NOT_RECORDED) for s in stops)
    stopped = ", ".join(f"{k} ×{n}" for k, n in sorted(counts.items()))
    if len(recorded) < len(row.runs):
        stopped += f"; {NOT_RECORDED} for {len(row.runs) - len(recorded)} runs"
    return reached, stopped


def budget_cells(row: Row) -> list[str]:
    """One budget row: model, epochs, max_time_s, ensemble (``–`` when absent), epochs reached."""
    params = [r.record["model"].get("params") or {} for r in row.runs]
    epochs = _param(params, "epochs")
    return [row.label, epochs, _param(params, "max_time_s"), _param(params, "ensemble"),
            *_stops(row, epochs != DASH)]


def hardware_text(runs: list) -> str:
    groups: dict[str, list] = {}
    for run in runs:
        groups.setdefault(evidence.hardware(run), []).append(run)
    if not groups:
        return DASH
    parts = []
    for desc, group in sorted(groups.items()):
        models = sorted({g.record["model"]["name"] for g in group})
        parts.append(f"{desc} ({len(group)} run{'s' if len(group) != 1 else ''}: {', '.join(models)})")
    return "; ".join(parts)


def shared_text(runs: list) -> str:
    counts = Counter(evidence.cores_shared(r) for r in runs)
    if not runs:
        return DASH
    if counts[NOT_RECORDED] == len(runs):
        return f"whether they were shared is {NOT_RECORDED} (the records hold no load average)"
    text = f"shared in {counts['shared']} of {len(runs)} runs, not shared in {counts['not shared']}"
    if counts[NOT_RECORDED]:
        text += f", {NOT_RECORDED} for {counts[NOT_RECORDED]}"
    return text + (f" (shared: 1-minute load average at the start ≥ {evidence.SHARED_LOAD_FRACTION:g} × "
                   "the CPU count)")


def markdown(table: Table) -> list[str]:
    """The box as Markdown: a bullet list and the budget table."""
    from phonbench.leaderboard.render import _md_table

    box = protocol_box(table)
    lines = ["**Protocol**", ""] + [f"- {label}: {text}" for label, text in box.items[:3]]
    lines += ["- Metrics:"] + [f"  - {head}: {text}" for head, text in box.metrics]
    lines += [f"- {label}: {text}" for label, text in box.items[3:]]
    if box.budget:
        lines += ["- Budget per model (`model.params`; epochs reached from `model.stops`):", ""]
        lines += _md_table(BUDGET_HEAD, box.budget)
    return lines + [""]


def code_spans(text: str) -> str:
    """Escape ``text`` for HTML and turn backtick spans into ``<code>``."""
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escape(text))


def html(table: Table, box_id: str) -> list[str]:
    """The box as an HTML ``<section class="protocol">`` with a definition list and the budget table."""
    box = protocol_box(table)
    lines = [f'<section class="protocol" id="{escape(box_id)}">', "<h3>Protocol</h3>", "<dl>"]
    items = [f"<dt>{escape(label)}</dt><dd>{code_spans(text)}</dd>" for label, text in box.items]
    lines += items[:3] + ["<dt>Metrics</dt><dd><ul>"]
    lines += [f"<li><strong>{escape(head)}</strong>: {code_spans(text)}</li>" for head, text in box.metrics]
    lines += ["</ul></dd>"] + items[3:]
    if box.budget:
        lines += ["<dt>Budget</dt><dd>Per model (<code>model.params</code>; epochs reached from "
                  "<code>model.stops</code>)", '<div class="table-wrap"><table class="budget">',
                  "<thead><tr>" + "".join(f'<th scope="col">{escape(h)}</th>' for h in BUDGET_HEAD) + "</tr></thead>",
                  "<tbody>"]
        lines += ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>" for cells in box.budget]
        lines += ["</tbody></table></div></dd>"]
    return lines + ["</dl>", "</section>"]
