"""The evidence behind leaderboard rows: run provenance (code commit, hardware, shared cores, package
versions, parameters), the run files copied into the site, and the Markdown boards' evidence lists.

Site layout (relative to ``site/``)::

    <board slug>/<split>-<row slug>.html   one detail page per row (:mod:`.detail_page`)
    runs/<run_id>/record.json              the archived record, byte for byte
    runs/<run_id>/test-predictions.csv.gz  the test rows of the archived predictions (the scored
                                           part), gzip-compressed the way ``archive_run`` does
    <board slug>.csv / .json               copies of the board's tables, for relative links

Only the test rows of the predictions travel: the full archives (train/valid/test) of the committed
records are ~14 MB, their test rows ~1.7 MB compressed. The full file stays in the records folder;
its sha256 is the record's ``predictions_sha256``.

Older (schema 1) records lack several provenance fields: those read ``not recorded``.
"""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

from phonbench.leaderboard.collect import Run
from phonbench.leaderboard.tables import Board, Row, Table

NOT_RECORDED = "not recorded"
#: the cores count as shared when the 1-minute load average at the start is at least this × cpu_count
SHARED_LOAD_FRACTION = 0.5
RUNS_DIR = "runs"
RECORD_NAME = "record.json"
PREDICTIONS_NAME = "test-predictions.csv.gz"
SHORT_SHA = 8


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def row_slug(row: Row) -> str:
    """File-name stem of a row: the model name, ``--<variant>`` unless it is ``default``."""
    return _safe(row.model) + ("" if row.variant == "default" else f"--{_safe(row.variant)}")


def row_page(board: Board, table: Table, row: Row) -> str:
    """Path of a row's detail page relative to the site root."""
    return f"{board.slug}/{_safe(table.split)}-{row_slug(row)}.html"


def commit(run: Run) -> str | None:
    """The git commit of the code that made the run (of the scoring code for external runs)."""
    env = run.record.get("environment") or {}
    scored = env.get("scored_with") if isinstance(env.get("scored_with"), dict) else {}
    return env.get("git_commit") or scored.get("git_commit") or None


def dirty(run: Run) -> bool | None:
    """Whether tracked files differed from the commit (``None``: not recorded)."""
    env = run.record.get("environment") or {}
    scored = env.get("scored_with") if isinstance(env.get("scored_with"), dict) else {}
    value = env.get("git_dirty", scored.get("git_dirty"))
    return value if isinstance(value, bool) else None


def commits_text(runs: list[Run], noun: str = "rows") -> str:
    """``commit 1a2b3c4d`` or ``<noun> span 3 commits (…)``, with the dirty flags and missing commits."""
    shas = sorted({c[:SHORT_SHA] for c in map(commit, runs) if c})
    missing = sum(1 for r in runs if not commit(r))
    if not shas:
        return f"commit {NOT_RECORDED}"
    text = f"commit `{shas[0]}`" if len(shas) == 1 else \
        f"{noun} span {len(shas)} commits ({', '.join(f'`{s}`' for s in shas)})"
    flags = [dirty(r) for r in runs]
    if any(flags):
        text += f"; uncommitted changes (git_dirty) in {sum(1 for f in flags if f)} of {len(runs)} runs"
    elif None in flags:
        text += f"; dirty flag {NOT_RECORDED} for {flags.count(None)} of {len(runs)} runs"
    else:
        text += "; no uncommitted changes"
    return text + (f"; commit {NOT_RECORDED} for {missing} runs" if missing else "")


def hardware(run: Run) -> str:
    """``<cpu model>, <n> CPUs, device <device>`` (what the record holds)."""
    env = run.record.get("environment") or {}
    if "external" in run.record.get("tags", []):
        return f"model card: {env.get('device') or NOT_RECORDED}"
    cpus = env.get("cpu_count")
    return ", ".join([env.get("cpu_model") or f"CPU model {NOT_RECORDED}",
                      f"{cpus} CPUs" if cpus else f"CPU count {NOT_RECORDED}",
                      f"device {env.get('device') or NOT_RECORDED}"])


def cores_shared(run: Run) -> str:
    """``shared`` when the 1-minute load average at the start was ≥ half the CPUs, ``not shared``, or
    ``not recorded`` (schema-1 and external records)."""
    env = run.record.get("environment") or {}
    load, cpus = env.get("load_average"), env.get("cpu_count")
    if not load or not isinstance(cpus, int) or cpus <= 0 or not isinstance(load[0], (int, float)):
        return NOT_RECORDED
    return "shared" if load[0] >= cpus * SHARED_LOAD_FRACTION else "not shared"


def libraries(run: Run) -> dict[str, str]:
    """Package versions: ``environment.libraries`` (schema 2), else torch/numpy/phonbench; with
    python and phonbench. External runs: the scoring environment's."""
    env = run.record.get("environment") or {}
    if isinstance(env.get("scored_with"), dict):
        env = env["scored_with"]
    keys = ("python", "phonbench") + (() if isinstance(env.get("libraries"), dict) else ("torch", "numpy"))
    out = {k: env.get(k) for k in keys}
    out.update(env.get("libraries") or {})
    return {k: str(v) if v is not None else "not installed" for k, v in sorted(out.items())}


def canon(value: Any) -> str:
    """A parameter value as text (strings as they are, everything else as canonical JSON)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def union_values(per_run: list[dict[str, Any]]) -> list[tuple[str, list[str | None], bool]]:
    """``(key, [value or None per run], differs)`` for every key of any run, sorted by key."""
    keys = sorted({k for d in per_run for k in d})
    out = []
    for key in keys:
        values = [canon(d[key]) if key in d else None for d in per_run]
        out.append((key, values, len(set(values)) > 1))
    return out


def run_folder(run: Run) -> str | None:
    """``runs/<run_id>`` relative to the site root, or ``None`` for a run id that is no safe folder name."""
    run_id = run.run_id
    if not isinstance(run_id, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}", run_id) or ".." in run_id:
        return None
    return f"{RUNS_DIR}/{run_id}"


def run_files(run: Run) -> dict[str, bytes]:
    """``{path relative to the site root: bytes}`` of a run's archived record and test predictions
    (empty when the run's folder is unknown; no predictions file when they cannot be read)."""
    from phonbench.records import read_predictions_text

    folder = run_folder(run)
    if folder is None or run.directory is None or not (run.directory / RECORD_NAME).is_file():
        return {}
    files = {f"{folder}/{RECORD_NAME}": (run.directory / RECORD_NAME).read_bytes()}
    try:
        lines = read_predictions_text(run.directory).split("\n")
    except OSError:
        return files
    splits = run.predictions.split
    if lines[-1] == "" and len(lines) == len(splits) + 2:  # header, one line per row, final newline
        test = [line for line, split in zip(lines[1:-1], splits) if split == "test"]
        text = "\n".join([lines[0], *test]) + "\n"
        files[f"{folder}/{PREDICTIONS_NAME}"] = gzip.compress(text.encode(), compresslevel=9, mtime=0)
    return files


def board_files(board: Board) -> dict[str, bytes]:
    """Run files of every run on the board, each run once."""
    files: dict[str, bytes] = {}
    for table in board.tables:
        for row in table.rows:
            for run in row.runs:
                files.update(run_files(run))
    return files


def markdown_evidence(board: Board, table: Table) -> list[str]:
    """The per-row evidence list below a Markdown table: run ids and commit(s) of each row."""
    if not table.rows:
        return []
    lines = ["Evidence (run ids and code commit of each row; the linked page lists the scores of every run, "
             "the parameters, package versions and the run files):", ""]
    for row in table.rows:
        ids = ", ".join(f"`{r.run_id}`" for r in row.runs)
        lines.append(f"- [{row.label}](site/{row_page(board, table, row)}): {len(row.runs)} "
                     f"run{'s' if len(row.runs) != 1 else ''} {ids}; {commits_text(row.runs, 'runs')}")
    return lines + [""]
