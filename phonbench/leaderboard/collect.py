"""Collect and validate run records (from record directories or from MLflow) for leaderboards.

A record is accepted only if all of these hold, otherwise it is rejected with a one-line reason:

* ``record.json`` passes :func:`phonbench.records.read_record` (schema version and ``record_hash``)
  and the structural check :func:`schema_errors` (required keys and types);
* its run id matches the run directory name (or the MLflow tag ``phonbench.run_id``) and no other
  accepted record has the same id with different content;
* ``predictions.csv`` has the columns of the record's task (``mask_*`` for ``modes``), one row per
  material of every split that has metrics (``dataset.sizes``; external records score test only),
  no duplicate id within a split, and it reproduces the
  recorded test metrics (relative tolerance 1e-4; metrics of plugins not installed here and metrics
  that need per-material extras, such as the heat-capacity error, are not recomputed);
* the dataset version equals the installed dataset card's ``version``.

Records of datasets that are **not installed** here are accepted with a warning (their version
cannot be checked); the warning is repeated in that dataset's leaderboard notes. This keeps results
of plugin datasets publishable on a machine without the plugin.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phonbench.exceptions import PhonbenchError
from phonbench.records import PREDICTIONS_FILE, RECORD_FILE, read_predictions_text, read_record

SPLITS = ("train", "valid", "test")
RUNS_DIR = "runs"
METRIC_RTOL = 1e-4
METRIC_ATOL = 1e-6

# (key path, accepted types); nested dicts are checked in order so a parent failure is reported once
_NUM = (int, float)
SCHEMA: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("run_id", (str,)),
    ("created_at", (str,)),
    ("model", (dict,)),
    ("model.name", (str,)),
    ("model.params", (dict,)),
    ("model.n_parameters", (int, type(None))),
    ("dataset", (dict,)),
    ("dataset.name", (str,)),
    ("dataset.version", (str,)),
    ("dataset.content_hash", (str,)),
    ("dataset.split", (str,)),
    ("dataset.fold", (str, int)),
    ("dataset.n_folds", (int,)),
    ("dataset.sizes", (dict,)),
    ("dataset.task", (dict,)),
    ("dataset.task.kind", (str,)),
    ("dataset.task.n_outputs", (int,)),
    ("dataset.task.unit", (str,)),
    ("seed", (int,)),
    ("metrics", (dict,)),
    ("metrics.test", (dict,)),
    ("primary_metric", (str,)),
    ("timings", (dict,)),
    ("timings.fit_s", (int, float, type(None))),  # None: an external model's card gives no training time
    ("environment", (dict,)),
    ("history", (list,)),
    ("tags", (list,)),
    ("schema_version", (int,)),
    ("record_hash", (str,)),
)


class RecordRejected(PhonbenchError):
    """A run record failed validation (the message says which check)."""


@dataclass
class Predictions:
    """Per-material predictions of one run (all splits).

    Attributes:
        ids: material ids, length ``n``.
        split: ``(n,)`` split name of each row (``train``/``valid``/``test``).
        y_true, y_pred: ``(n, d)`` float64 in the task's unit.
        mask: ``(n, d)`` bool (True = real entry) or ``None`` (everything real).
    """

    ids: list[str]
    split: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    mask: np.ndarray | None
    sha256: str = ""  # of the uncompressed CSV text

    def part(self, split: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, y_true, y_pred, mask)`` of one split; the mask is all-True when absent."""
        sel = self.split == split
        mask = np.ones(self.y_true.shape, dtype=bool) if self.mask is None else self.mask
        return [i for i, s in zip(self.ids, sel) if s], self.y_true[sel], self.y_pred[sel], mask[sel]


@dataclass
class Run:
    """An accepted record with its predictions and where it came from."""

    record: dict[str, Any]
    predictions: Predictions
    source: str
    #: the folder holding ``record.json`` and the predictions (read while the build runs)
    directory: Path | None = None

    @property
    def run_id(self) -> str:
        return self.record["run_id"]


@dataclass
class Collection:
    """Accepted runs (sorted by run id), rejections ``(source, reason)`` and warnings."""

    runs: list[Run] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dataset_notes: dict[str, list[str]] = field(default_factory=dict)

    def merge(self, other: Collection) -> None:
        self.rejected += other.rejected
        self.warnings += other.warnings
        for k, v in other.dataset_notes.items():
            self.dataset_notes.setdefault(k, []).extend(n for n in v if n not in self.dataset_notes.get(k, []))
        known = {r.run_id: r for r in self.runs}
        for run in other.runs:
            old = known.get(run.run_id)
            if old is None:
                self.runs.append(run)
                known[run.run_id] = run
            elif old.record["record_hash"] != run.record["record_hash"]:
                self.rejected.append((run.source, f"run id {run.run_id} also in {old.source} with different content"))
        self.runs.sort(key=lambda r: r.run_id)


def schema_errors(data: Any) -> list[str]:
    """Structural problems of a record dict (missing keys, wrong types); empty if it is well formed."""
    if not isinstance(data, dict):
        return ["record is not a JSON object"]
    errors: list[str] = []
    failed: list[str] = []
    for path, types in SCHEMA:
        if any(path.startswith(f + ".") for f in failed):
            continue
        node: Any = data
        for key in path.split("."):
            node = node.get(key, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            errors.append(f"missing key {path!r}")
            failed.append(path)
        elif not isinstance(node, types) or (isinstance(node, bool) and bool not in types):
            names = "/".join(t.__name__ for t in types)
            errors.append(f"key {path!r} is {type(node).__name__}, expected {names}")
            failed.append(path)
    if not errors:
        for split, values in data["metrics"].items():
            if not isinstance(values, dict) or not all(isinstance(v, _NUM) for v in values.values()):
                errors.append(f"metrics.{split} must map metric names to numbers")
        if data["primary_metric"] not in data["metrics"]["test"]:
            errors.append(f"primary metric {data['primary_metric']!r} missing from metrics.test")
        if not all(isinstance(data["dataset"]["sizes"].get(s, 0), int) for s in SPLITS):
            errors.append("dataset.sizes must map train/valid/test to integers")
    return errors


_MISSING = object()


def read_predictions(path: Path, n_outputs: int) -> Predictions:
    """Parse the ``predictions.csv`` (or ``.csv.gz``) of run directory ``path``, as written by
    :func:`phonbench.records.predictions_table`.

    Raises:
        RecordRejected: missing file, wrong columns, unknown split names or unparsable values.
    """
    try:
        text = read_predictions_text(path)
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except OSError as exc:
        raise RecordRejected(f"cannot read {PREDICTIONS_FILE}: {exc.strerror or exc}") from exc
    if not rows:
        raise RecordRejected(f"{PREDICTIONS_FILE} is empty")
    header, body = rows[0], rows[1:]
    d = n_outputs
    expected = ["id", "split"] + [f"y_true_{j}" for j in range(d)] + [f"y_pred_{j}" for j in range(d)]
    has_mask = len(header) == len(expected) + d and header[len(expected) :] == [f"mask_{j}" for j in range(d)]
    if header[: len(expected)] != expected or not (len(header) == len(expected) or has_mask):
        raise RecordRejected(
            f"{PREDICTIONS_FILE} columns do not match a task with {d} outputs "
            f"(expected id, split, y_true_0..{d - 1}, y_pred_0..{d - 1}[, mask_0..{d - 1}])"
        )
    width = len(header)
    bad = [i + 2 for i, r in enumerate(body) if len(r) != width]
    if bad:
        raise RecordRejected(f"{PREDICTIONS_FILE} line {bad[0]} has the wrong number of fields")
    splits = np.array([r[1] for r in body], dtype=object)
    unknown = sorted(set(splits.tolist()) - set(SPLITS))
    if unknown:
        raise RecordRejected(f"{PREDICTIONS_FILE} has unknown split {unknown[0]!r} (expected train/valid/test)")
    try:
        values = np.array([[float(x) for x in r[2 : 2 + 2 * d]] for r in body], dtype=np.float64).reshape(-1, 2 * d)
        mask = np.array([[x == "1" for x in r[2 + 2 * d :]] for r in body], dtype=bool).reshape(-1, d) if has_mask else None
    except ValueError as exc:
        raise RecordRejected(f"{PREDICTIONS_FILE} has a non-numeric value ({exc})") from exc
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Predictions([r[0] for r in body], splits, values[:, :d], values[:, d:], mask, digest)


def check_consistency(record: dict[str, Any], pred: Predictions) -> None:
    """Check ``pred`` against ``record``: rows per split, duplicate ids, mask, recomputed test metrics.

    Raises:
        RecordRejected: naming the first inconsistency.
    """
    sizes = record["dataset"]["sizes"]
    for split in SPLITS:
        n_rows = int((pred.split == split).sum())
        # external records (``phonbench score``) hold test predictions only: rows only for scored splits
        expected = sizes.get(split, 0) if split in record["metrics"] else 0
        if n_rows != expected:
            raise RecordRejected(
                f"{PREDICTIONS_FILE} has {n_rows} {split} rows but the record says {expected} {split} materials"
            )
        ids = [i for i, s in zip(pred.ids, pred.split) if s == split]
        if len(set(ids)) != len(ids):
            dup = sorted(i for i in set(ids) if ids.count(i) > 1)[0]
            raise RecordRejected(f"{PREDICTIONS_FILE} lists material {dup!r} twice in the {split} split")
    task = task_from_record(record)
    if task.kind == "modes" and pred.mask is None:
        raise RecordRejected(f"{PREDICTIONS_FILE} of a modes task has no mask_* columns")
    from phonbench.registry import METRICS

    _, y, p, m = pred.part("test")
    for name, value in sorted(record["metrics"]["test"].items()):
        if name not in METRICS or not len(y) or getattr(METRICS.get(name), "needs", ()):
            continue  # plugin not installed, or needs per-material extras that predictions.csv lacks
        try:
            again = METRICS.get(name)(y, p, m, task)
        except PhonbenchError as exc:
            raise RecordRejected(f"test {name} cannot be recomputed from {PREDICTIONS_FILE}: {exc}") from exc
        both_nan = math.isnan(again) and math.isnan(value)
        if not both_nan and not math.isclose(again, value, rel_tol=METRIC_RTOL, abs_tol=METRIC_ATOL):
            raise RecordRejected(
                f"{PREDICTIONS_FILE} gives test {name} = {again:.6g} but the record says {value:.6g}"
            )
    # last, so the checks above name what is wrong; this one catches any other edit (schema 2 records)
    if record.get("predictions_sha256") and record["predictions_sha256"] != pred.sha256:
        raise RecordRejected(f"{PREDICTIONS_FILE} is not the file the record was written with (sha256 differs)")


def task_from_record(record: dict[str, Any]):
    """The :class:`~phonbench.datasets.base.Task` stored in a record."""
    from phonbench.datasets.base import Task

    t = record["dataset"]["task"]
    grid = t.get("grid")
    return Task(t["kind"], t["n_outputs"], t["unit"], t.get("target", "target"),
                tuple(grid) if grid is not None else None, t.get("grid_unit"))


def installed_version(dataset: str) -> str | None:
    """Version on the installed dataset card, or ``None`` if no such dataset is registered."""
    from phonbench.registry import DATASETS

    if dataset not in DATASETS:
        return None
    return str(DATASETS.get(dataset).card.version)


def validate(record_path: Path, source: str, expected_id: str | None, coll: Collection) -> Run | None:
    """Read and check one record (+ its predictions beside it); append a rejection on failure."""
    try:
        try:
            data = read_record(record_path)
        except PhonbenchError as exc:
            reason = str(exc).replace(str(record_path), RECORD_FILE)
            raise RecordRejected(reason) from exc
        problems = schema_errors(data)
        if problems:
            raise RecordRejected(f"{RECORD_FILE} does not match the run-record schema: {'; '.join(problems)}")
        if expected_id is not None and data["run_id"] != expected_id:
            raise RecordRejected(f"record run id {data['run_id']!r} does not match {expected_id!r}")
        ds = data["dataset"]
        version = installed_version(ds["name"])
        if version is not None and version != ds["version"]:
            raise RecordRejected(
                f"dataset {ds['name']!r} version {ds['version']!r} differs from the installed card's version "
                f"{version!r} — rerun on the current data"
            )
        pred = read_predictions(record_path.parent, ds["task"]["n_outputs"])
        check_consistency(data, pred)
    except RecordRejected as exc:
        coll.rejected.append((source, str(exc)))
        return None
    if version is None:
        note = (f"dataset {ds['name']!r} is not installed here; version {ds['version']!r} of its records "
                "was not checked")
        notes = coll.dataset_notes.setdefault(ds["name"], [])
        if note not in notes:
            notes.append(note)
            coll.warnings.append(note)
    return Run(data, pred, source, record_path.parent)


def collect_dir(records_dir: Path) -> Collection:
    """Every ``runs/<run_id>/record.json`` under ``records_dir`` (recursively), or ``records_dir`` itself.

    Hidden directories are skipped, and so are other copies of record files (e.g. MLflow artifact
    folders inside an output directory): only the runner's ``runs/<run_id>/`` layout counts.

    Raises:
        PhonbenchError: ``records_dir`` does not exist.
    """
    from phonbench.exceptions import DataError

    root = Path(records_dir)
    if not root.is_dir():
        raise DataError(f"records directory {root} does not exist", "pass --records DIR holding runs/<id>/record.json")
    coll = Collection()
    paths = sorted(
        p for p in root.rglob(RECORD_FILE)
        if not any(x.startswith(".") for x in p.relative_to(root).parts)
        and (p.parent == root or p.parent.parent.name == RUNS_DIR)
    )
    for path in paths:
        source = path.parent.relative_to(root).as_posix() or "."
        run = validate(path, source, path.parent.name if path.parent != root else None, coll)
        if run is not None:
            coll.merge(Collection(runs=[run]))
    return coll


def collect_mlflow(tracking_uri: str, workdir: Path) -> Collection:
    """Runs tagged ``phonbench.run_id`` in every ``phonbench/*`` experiment of an MLflow store.

    ``record.json`` and ``predictions.csv`` are downloaded into ``workdir`` (which must outlive the
    returned runs' use) and verified like record directories; the tag must equal the record's id.
    """
    import os

    from phonbench.tracking import EXPERIMENT_PREFIX, Tracker

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as scratch:
        client = Tracker(scratch, tracking_uri).client
    coll = Collection()
    experiments = sorted(
        (e for e in client.search_experiments() if e.name.startswith(EXPERIMENT_PREFIX + "/")),
        key=lambda e: e.name,
    )
    for exp in experiments:
        runs, token = [], None
        while True:
            page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                break
        for mlrun in sorted(runs, key=lambda r: r.data.tags.get("phonbench.run_id", "")):
            run_id = mlrun.data.tags.get("phonbench.run_id")
            if not run_id:
                continue  # parent/study/trial runs carry no record
            source = f"mlflow:{mlrun.info.run_id}"
            dest = Path(workdir) / mlrun.info.run_id
            dest.mkdir(parents=True, exist_ok=True)
            try:
                for name in (RECORD_FILE, PREDICTIONS_FILE):
                    client.download_artifacts(mlrun.info.run_id, name, str(dest))
            except Exception as exc:  # mlflow raises several types for missing artifacts
                coll.rejected.append((source, f"cannot download {name} from MLflow: {exc}"))
                continue
            run = validate(dest / RECORD_FILE, source, run_id, coll)
            if run is not None:
                coll.merge(Collection(runs=[run]))
    return coll
