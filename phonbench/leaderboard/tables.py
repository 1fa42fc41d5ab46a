"""Leaderboard tables: group runs, aggregate test metrics, rank by the primary metric, assign tiers.

One :class:`Board` per dataset (name + data content hash), holding one :class:`Table` per split
protocol; a :class:`Row` is one model variant (``default`` or ``tuned``) with all its runs (seeds,
folds). Renderers for Markdown, CSV and JSON live in :mod:`phonbench.leaderboard.render`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from phonbench.leaderboard import stats
from phonbench.leaderboard.collect import Run, task_from_record
from phonbench.leaderboard.reported import Reported, for_table, interleave

BASELINE = "dummy"

TIER_RULE = (
    "Tier 1 = the best row and every row statistically tied with it (two-sided paired t-test over runs "
    "paired by data content, split, fold and seed, p ≥ 0.05; without ≥ 2 such pairs, a paired bootstrap "
    f"({stats.N_RESAMPLES} resamples) of per-material test errors whose 95% interval contains 0). "
    "The best row not yet placed starts the next tier."
)


@dataclass
class Row:
    """One model variant on one (dataset, split): aggregates over its runs (sorted by run id)."""

    model: str
    variant: str
    runs: list[Run]
    metrics: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # name -> (mean, std, n)
    rank: int | None = None
    tier: int | None = None
    tie_test: stats.TieTest | None = None

    @property
    def label(self) -> str:
        return self.model if self.variant == "default" else f"{self.model} ({self.variant})"

    @property
    def seeds(self) -> list[int]:
        return sorted({r.record["seed"] for r in self.runs})

    @property
    def folds(self) -> list[str]:
        return sorted({str(r.record["dataset"]["fold"]) for r in self.runs}, key=_natural)

    def timing(self, key: str) -> float:
        return stats.mean_std([r.record["timings"].get(key, math.nan) for r in self.runs])[0]

    @property
    def n_parameters(self) -> list[int]:
        return sorted({r.record["model"]["n_parameters"] for r in self.runs if r.record["model"]["n_parameters"] is not None})

    @property
    def hardware(self) -> list[str]:
        return sorted({_hardware(r.record["environment"]) for r in self.runs})


@dataclass
class Table:
    """Ranked rows of one (dataset, split protocol)."""

    split: str
    task: dict[str, Any]
    primary: str
    direction: str
    metrics: list[str]
    units: dict[str, str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    #: published numbers on this split ("reported, not re-run"; never ranked or tiered), best first
    reported: list[Reported] = field(default_factory=list)

    @property
    def display_rows(self) -> list[Row | Reported]:
        """Rows in rank order with reported entries after the rows that score at least as well."""
        return interleave(self.rows, self.reported, self.primary, self.direction)

    @property
    def best(self) -> Row | None:
        return self.rows[0] if self.rows and self.rows[0].rank == 1 else None


@dataclass
class Board:
    """All tables of one dataset content (name + data content hash), with its card info when installed.

    ``options`` are the dataset options every run of the board agrees on (for the title);
    ``suffix`` disambiguates boards of the same name and options whose data differ.
    """

    name: str
    options: dict[str, Any]
    tables: list[Table]
    notes: list[str] = field(default_factory=list)
    card: dict[str, str] = field(default_factory=dict)
    content_hash: str = ""
    suffix: str = ""

    @property
    def slug(self) -> str:
        """File-name stem: the dataset name, plus the options and suffix when there are any."""
        parts = [self.name] + [f"{k}-{_canon(v)}" for k, v in sorted(self.options.items())]
        parts += [self.suffix] if self.suffix else []
        return re.sub(r"[^a-z0-9_-]+", "_", "-".join(parts).lower())

    @property
    def title(self) -> str:
        opts = [f"{k}={_canon(v)}" for k, v in sorted(self.options.items())]
        opts += [f"data {self.suffix}"] if self.suffix else []
        return f"{self.name} ({', '.join(opts)})" if opts else self.name

    @property
    def n_runs(self) -> int:
        return sum(len(r.runs) for t in self.tables for r in t.rows)


def _canon(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _natural(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def _hardware(env: dict[str, Any]) -> str:
    cpus = env.get("cpu_count")
    device = env.get("device") or "unknown device"
    return f"{device}, {cpus} CPU" if cpus else str(device)


VARIANT_TAG = "variant:"


def variant_of(record: dict[str, Any]) -> str:
    """The row a record belongs to: ``tuned``, ``external`` (scored with ``phonbench score``), the
    name of a ``variant:<name>`` tag (a suite entry's non-default budget), else ``default``."""
    tags = record.get("tags", [])
    for special in ("tuned", "external"):
        if special in tags:
            return special
    named = [t[len(VARIANT_TAG):] for t in tags if isinstance(t, str) and t.startswith(VARIANT_TAG)]
    return named[0] if named else "default"


def build_boards(runs: list[Run], dataset_notes: dict[str, list[str]] | None = None,
                 reported: list[Reported] | None = None) -> list[Board]:
    """Group runs into boards (dataset name + data content hash) and ranked tables (split protocol).

    Runs whose options are spelled differently but load the same data (e.g. an explicit default)
    share a board. Boards are sorted by slug. ``reported`` entries join the tables of their
    (dataset, split, primary metric) on boards without dataset options.
    """
    groups: dict[tuple[str, str], dict[str, list[Run]]] = {}
    for run in sorted(runs, key=lambda r: r.run_id):
        ds = run.record["dataset"]
        groups.setdefault((ds["name"], ds["content_hash"]), {}).setdefault(ds["split"], []).append(run)
    boards = []
    for (name, content_hash), by_split in sorted(groups.items()):
        group_runs = [r for rs in by_split.values() for r in rs]
        tables = [make_table(split, by_split[split]) for split in sorted(by_split, key=_natural)]
        options = _common_options(group_runs)
        for table in tables if not options else []:
            table.reported = for_table(reported or [], name, table.split, table.primary, table.direction)
        boards.append(Board(name, options, tables, list((dataset_notes or {}).get(name, [])), _card(name),
                            content_hash))
    slugs = [b.slug for b in boards]
    for board in boards:
        if slugs.count(board.slug) > 1:  # same name and options, different data
            board.suffix = board.content_hash[:8]
    return sorted(boards, key=lambda b: b.slug)


def _common_options(runs: list[Run]) -> dict[str, Any]:
    """Dataset options (key and value) that every run states identically."""
    opts = [run.record["dataset"].get("options") or {} for run in runs]
    keys = set(opts[0]).intersection(*opts[1:]) if opts else set()
    return {k: opts[0][k] for k in sorted(keys) if all(_canon(o[k]) == _canon(opts[0][k]) for o in opts)}


def _card(name: str) -> dict[str, str]:
    from phonbench.registry import DATASETS

    if name not in DATASETS:
        return {}
    card = DATASETS.get(name).card
    return {"description": card.description, "citation": card.citation, "version": str(card.version),
            "default_split": card.default_split}


def make_table(split: str, runs: list[Run]) -> Table:
    """Aggregate, rank and tier the runs of one (dataset, split)."""
    from phonbench.registry import METRICS

    first = runs[0].record
    primary = first["primary_metric"]
    task = first["dataset"]["task"]
    notes: list[str] = []
    if primary in METRICS:
        direction = METRICS.get(primary).direction
    else:
        direction = "minimize"
        notes.append(f"primary metric {primary!r} is not installed; ranked assuming lower is better")
    primaries = sorted({r.record["primary_metric"] for r in runs})
    if len(primaries) > 1:
        notes.append(f"records disagree on the primary metric ({', '.join(primaries)}); ranked by {primary!r}")
    names = sorted({m for r in runs for m in r.record["metrics"].get("test", {})})
    metrics = [primary] + [m for m in names if m != primary]
    task_obj = task_from_record(first)
    units = {m: METRICS.get(m).unit_for(task_obj) if m in METRICS else "" for m in metrics}
    by_row: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        by_row.setdefault((run.record["model"]["name"], variant_of(run.record)), []).append(run)
    rows = []
    for (model, variant), row_runs in sorted(by_row.items()):
        row = Row(model, variant, row_runs)
        for m in metrics:
            values = [r.record["metrics"]["test"].get(m, math.nan) for r in row_runs]
            mean, std = stats.mean_std(values)
            row.metrics[m] = (mean, std, sum(1 for v in values if math.isfinite(v)))
        rows.append(row)
    rows = _rank(rows, primary, direction)
    if not any(r.model == BASELINE for r in rows):
        notes.append(f"no `{BASELINE}` baseline run in the records for this split; "
                     f"add one with `phonbench run {BASELINE} {first['dataset']['name']} --split {split}`")
    return Table(split, task, primary, direction, metrics, units, rows, notes)


def _rank(rows: list[Row], primary: str, direction: str) -> list[Row]:
    sign = 1.0 if direction == "minimize" else -1.0

    def key(row: Row) -> tuple:
        value = row.metrics[primary][0]
        return (not math.isfinite(value), sign * value if math.isfinite(value) else 0.0, row.label)

    rows = sorted(rows, key=key)
    scored = [i for i, r in enumerate(rows) if math.isfinite(r.metrics[primary][0])]
    for rank, i in enumerate(scored, start=1):
        rows[i].rank = rank
    tests: dict[tuple[int, int], stats.TieTest] = {}

    def tied(candidate: int, head: int) -> bool:
        test = compare(rows[candidate], rows[head], primary)
        tests[(candidate, head)] = test
        return test.tied

    tiers = stats.assign_tiers(scored, tied)
    for i, tier in tiers.items():
        rows[i].tier = tier
        head = next(j for j in scored if tiers[j] == tier)
        if head != i:
            rows[i].tie_test = tests[(i, head)]
        elif i != scored[0]:
            # head of a lower tier: keep the (failed) test against the head of the tier above
            above = next(j for j in scored if tiers[j] == tier - 1)
            rows[i].tie_test = tests.get((i, above))
    return rows


def pair_key(run: Run) -> tuple:
    """Runs pair up when data content, split, fold and seed agree."""
    ds = run.record["dataset"]
    return (ds["content_hash"], ds["split"], str(ds["fold"]), run.record["seed"])


def compare(candidate: Row, reference: Row, primary: str) -> stats.TieTest:
    """Tie test of ``candidate`` against ``reference`` on the primary metric (see ``TIER_RULE``)."""
    a = _by_key(candidate, primary)
    b = _by_key(reference, primary)
    common = sorted(set(a) & set(b), key=repr)
    if len(common) >= 2:
        return stats.paired_test([a[k] for k in common], [b[k] for k in common])
    ea = material_errors(candidate, primary)
    eb = material_errors(reference, primary)
    ids = sorted(set(ea) & set(eb))
    if not ids:
        return stats.TieTest("none", 0, math.nan, False)
    return stats.paired_bootstrap([ea[i] for i in ids], [eb[i] for i in ids])


def _by_key(row: Row, primary: str) -> dict[tuple, float]:
    values: dict[tuple, list[float]] = {}
    for run in row.runs:
        v = run.record["metrics"]["test"].get(primary, math.nan)
        if math.isfinite(v):
            values.setdefault(pair_key(run), []).append(v)
    return {k: float(np.mean(v)) for k, v in values.items()}


def material_errors(row: Row, primary: str, split: str = "test") -> dict[str, float]:
    """Per-material error (lower = better) of ``row`` on ``split``, averaged over the row's runs."""
    acc: dict[str, list[float]] = {}
    for run in row.runs:
        ids, y, p, m = run.predictions.part(split)
        if not ids:
            continue
        err = stats.per_material_error(primary, y, p, m, task_from_record(run.record))
        for i, e in zip(ids, err):
            if math.isfinite(e):
                acc.setdefault(i, []).append(float(e))
    return {i: float(np.mean(v)) for i, v in acc.items()}
