"""Run records: the JSON file every run writes, plus its per-material predictions.

Layout under the output directory (default ``./phonbench-results``)::

    runs/<run_id>/record.json        RunRecord (config, metrics per split, timings, provenance)
    runs/<run_id>/predictions.csv    id, split, y_true_*, y_pred_* (and mask_* for modes);
                                     archived runs (:func:`archive_run`) hold predictions.csv.gz
    runs/<run_id>/model/             the fitted model (``Model.save``), reloadable for predictions
    summaries/<summary_id>.json      mean ± std over the folds of one multi-fold run

A run directory is assembled under a hidden temporary name and renamed into place when complete,
so an interrupted run leaves no half-written record. ``record_hash`` is the sha256 of the
canonical JSON of every other field; :func:`read_record` checks it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from phonbench.exceptions import TrackingError
from phonbench.io import write_bytes_atomic, write_json_atomic, write_text_atomic

SCHEMA_VERSION = 2
#: versions :func:`read_record` accepts (1: before the provenance fields of schema 2)
READABLE_SCHEMAS = (1, 2)
RECORD_FILE = "record.json"
PREDICTIONS_FILE = "predictions.csv"
PREDICTIONS_ARCHIVE = PREDICTIONS_FILE + ".gz"
MODEL_DIR = "model"


@dataclass
class RunRecord:
    """Everything needed to interpret and reproduce one (model, dataset, split, fold, seed) run.

    Attributes:
        run_id: unique id (also the run directory name).
        model: ``{name, params, provider, n_parameters}``.
        dataset: ``{name, version, content_hash, split, fold, sizes, task, provider}``.
        metrics: ``{"train"|"valid"|"test": {metric: value}}``.
        primary_metric: the dataset's primary metric name.
        timings: seconds: ``fit_s``, ``predict_s``, ``total_s``.
        environment: versions of python/numpy/torch/phonbench, platform, device, git commit.
        history: per-epoch dicts (empty for models without epochs).
        tags: free labels, e.g. ``["default"]`` or ``["tuned"]``.
        extra: anything a workflow adds (e.g. Optuna study info for tuned runs).
    """

    run_id: str
    created_at: str
    model: dict[str, Any]
    dataset: dict[str, Any]
    seed: int
    metrics: dict[str, dict[str, float]]
    primary_metric: str
    timings: dict[str, float]
    peak_memory_mb: float
    environment: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    predictions_file: str = PREDICTIONS_FILE
    #: sha256 of the uncompressed predictions CSV text (archives hold it gzipped; same text)
    predictions_sha256: str | None = None
    schema_version: int = SCHEMA_VERSION
    mlflow_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict including ``record_hash``."""
        d = asdict(self)
        d["record_hash"] = record_hash(d)
        return d


def record_hash(d: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``d`` without ``record_hash`` and ``mlflow_run_id``."""
    body = {k: v for k, v in d.items() if k not in ("record_hash", "mlflow_run_id")}
    text = json.dumps(body, sort_keys=True, default=_default)
    return hashlib.sha256(text.encode()).hexdigest()


def _default(obj: Any) -> Any:
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def new_run_id(model: str, dataset: str) -> str:
    """Readable unique id: ``<dataset>-<model>-<UTC time>-<6 hex>``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{dataset}-{model}-{stamp}-{uuid.uuid4().hex[:6]}"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def environment(device: str, machine_at_start: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions and hardware of this process (torch only if already imported).

    Schema 2 adds ``cpu_model``, ``torch_threads``, ``load_average`` (at the start of the run when
    ``machine_at_start`` is given), ``libraries`` (every field library's version) and ``git_dirty``.
    """
    from importlib import metadata

    from phonbench.provenance import git_state, library_versions, machine_state

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    git = git_state()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "phonbench": version("phonbench"),
        "numpy": np.__version__,
        "torch": sys.modules["torch"].__version__ if "torch" in sys.modules else version("torch"),
        "device": device,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        **(machine_at_start or machine_state()),
        "libraries": library_versions(),
    }


def peak_memory_mb() -> float:
    """Peak resident memory of this process in MiB (Linux/macOS ``ru_maxrss``)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def predictions_table(
    ids: list[str],
    split: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    mask: np.ndarray | None,
    header: bool = True,
) -> str:
    """CSV text (optional header + rows) of one split's predictions; values to 8 significant digits."""
    d = y_true.shape[1]
    columns = ["id", "split"] + [f"y_true_{j}" for j in range(d)] + [f"y_pred_{j}" for j in range(d)]
    if mask is not None:
        columns += [f"mask_{j}" for j in range(d)]
    lines = [",".join(columns)] if header else []
    for i, material in enumerate(ids):
        row = [_csv_escape(material), split]
        row += [f"{v:.8g}" for v in y_true[i]] + [f"{v:.8g}" for v in y_pred[i]]
        if mask is not None:
            row += ["1" if m else "0" for m in mask[i]]
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def _csv_escape(text: str) -> str:
    return f'"{text}"' if ("," in text or '"' in text) else text


def write_run(
    out_dir: Path, record: RunRecord, predictions_csv: str, write_extra: Callable[[Path], None] | None = None
) -> Path:
    """Write ``runs/<run_id>/`` atomically (temp dir + rename) and return its path.

    ``write_extra(tmp_dir)`` may add files (e.g. the fitted model) before the rename. The record
    gets the sha256 of ``predictions_csv`` (``predictions_sha256``) before it is hashed and written.
    """
    record.predictions_sha256 = hashlib.sha256(predictions_csv.encode()).hexdigest()
    runs = Path(out_dir) / "runs"
    run_id = safe_run_id(record.run_id)
    final = runs / run_id
    tmp = runs / f".tmp-{run_id}"
    if final.exists():
        raise TrackingError(f"run directory {final} already exists", "use a new run id or output dir")
    try:
        tmp.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise TrackingError(f"{tmp} exists (another writer?)", "remove it if no run is writing there") from None
    try:
        write_text_atomic(tmp / PREDICTIONS_FILE, predictions_csv)
        if write_extra is not None:
            write_extra(tmp)
        write_json_atomic(tmp / RECORD_FILE, record.to_dict())
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_record(path: str | Path) -> dict[str, Any]:
    """Load a record JSON and verify its hash and schema version.

    Raises:
        TrackingError: unreadable file, unknown schema version or hash mismatch.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RECORD_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TrackingError(f"cannot read run record {path}: {exc}", "check the path") from exc
    if data.get("schema_version") not in READABLE_SCHEMAS:
        raise TrackingError(
            f"record {path} has schema version {data.get('schema_version')!r}, expected one of {READABLE_SCHEMAS}",
            "upgrade phonbench to read it",
        )
    if data.get("record_hash") != record_hash(data):
        raise TrackingError(f"record {path} was modified after it was written (hash mismatch)",
                            "rerun the experiment instead of editing records")
    return data


def summarize(records: list[RunRecord]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and (sample) std of every metric per split over ``records``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for split in ("train", "valid", "test"):
        names = sorted({m for r in records for m in r.metrics.get(split, {})})
        for name in names:
            values = np.array([r.metrics[split][name] for r in records if name in r.metrics.get(split, {})])
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            out.setdefault(split, {})[name] = {"mean": float(values.mean()), "std": std, "n": len(values)}
    return out


def predictions_path(run_dir: str | Path) -> Path:
    """``<run_dir>/predictions.csv``, or the archived ``predictions.csv.gz`` when only that exists."""
    plain = Path(run_dir) / PREDICTIONS_FILE
    archived = Path(run_dir) / PREDICTIONS_ARCHIVE
    return archived if not plain.exists() and archived.exists() else plain


def read_predictions_text(run_dir: str | Path) -> str:
    """The predictions CSV of a run directory as text (plain or gzip-archived).

    Raises:
        OSError: neither file is readable.
    """
    path = predictions_path(run_dir)
    if path.suffix == ".gz":
        try:
            return gzip.decompress(path.read_bytes()).decode()
        except (gzip.BadGzipFile, EOFError) as exc:
            raise OSError(f"{path.name} is not a valid gzip file ({exc})") from exc
    return path.read_bytes().decode()  # no newline translation: the text its sha256 was taken of


def archive_run(run_dir: str | Path, records_dir: str | Path, replace: bool = False) -> Path:
    """Copy one run into a records folder (e.g. ``leaderboards/records``) for a leaderboard.

    Only what a leaderboard reads travels: ``record.json`` (its hash verified) and the predictions,
    gzip-compressed deterministically (no timestamp, ~4x smaller) as ``predictions.csv.gz``. The
    copy is assembled under a temporary name and renamed into ``<records_dir>/runs/<run_id>/``.

    Raises:
        TrackingError: unreadable or modified record, missing predictions, or the run is already
            archived (pass ``replace=True`` to overwrite).
    """
    data = read_record(run_dir)
    try:
        text = read_predictions_text(run_dir)
    except OSError as exc:
        raise TrackingError(f"run {run_dir} has no readable predictions ({exc})",
                            "archive run directories written by phonbench run or bench") from exc
    run_id = safe_run_id(data.get("run_id"))
    runs = Path(records_dir) / "runs"
    final, tmp = runs / run_id, runs / f".tmp-{run_id}"
    if final.exists() and not replace:
        raise TrackingError(f"run {run_id} is already in {records_dir}", "pass --replace to overwrite it")
    if final.exists() and not is_archived_run(final):
        raise TrackingError(f"{final} exists and is not an archived run (it holds other files)",
                            "move it away; phonbench only replaces folders it archived")
    shutil.rmtree(tmp, ignore_errors=True)
    old = runs / f".old-{run_id}"
    try:
        tmp.mkdir(parents=True)
        write_bytes_atomic(tmp / PREDICTIONS_ARCHIVE, gzip.compress(text.encode(), compresslevel=9, mtime=0))
        write_json_atomic(tmp / RECORD_FILE, data)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not final.exists():
            os.replace(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return final


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
ARCHIVED_FILES = frozenset({RECORD_FILE, PREDICTIONS_ARCHIVE})


def safe_run_id(run_id: Any) -> str:
    """``run_id`` if it is one safe path component (letters, digits, ``._+-``; no ``/``, no ``..``).

    Raises:
        TrackingError: anything else, e.g. ``../../x`` or an absolute path in a crafted record.
    """
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise TrackingError(f"record run_id {run_id!r} is not a safe folder name",
                            "run ids are single names like dos-e3nn-20260101T000000-abc123; do not edit records")
    return run_id


def is_archived_run(folder: Path) -> bool:
    """Whether ``folder`` holds only what :func:`archive_run` writes (so replacing it loses nothing)."""
    entries = list(folder.iterdir()) if folder.is_dir() and not folder.is_symlink() else None
    return entries is not None and all(p.is_file() and p.name in ARCHIVED_FILES for p in entries)
