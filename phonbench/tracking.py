"""MLflow tracking — the only module that imports mlflow.

Uses an explicit :class:`mlflow.tracking.MlflowClient` (no global active run), so several
threads or worker processes can log at once. Default store: an embedded SQLite database
``<out>/mlflow.db`` with artifacts in ``<out>/mlartifacts``; ``--tracking-uri`` or
``MLFLOW_TRACKING_URI`` point it at a server instead. Browse with
``mlflow ui --backend-store-uri sqlite:///<out>/mlflow.db``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from phonbench.exceptions import TrackingError

EXPERIMENT_PREFIX = "phonbench"


def resolve_uri(out_dir: str | Path, uri: str | None = None) -> str:
    """Tracking URI: ``uri`` > ``$MLFLOW_TRACKING_URI`` > ``sqlite:///<out>/mlflow.db``."""
    if uri:
        return uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    path = Path(out_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / 'mlflow.db'}"


def _quiet() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    # fail within seconds on an unreachable server instead of retrying for minutes
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def check_tracking_uri(uri: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast (one line) when an explicit ``http(s)://`` MLflow server does not answer.

    Other stores (the default SQLite file, ``file:``, ``databricks``) are checked when opened.

    Raises:
        TrackingError: the server cannot be reached within ``timeout_s`` seconds.
    """
    import urllib.error
    import urllib.request

    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).close()  # noqa: S310
    except urllib.error.HTTPError:
        return  # the server answered (a proxy without /health is still a server)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"MLflow server {uri} is unreachable ({reason})",
                            "start it, fix --tracking-uri, or pass --no-tracking") from None


class Tracker:
    """Thin wrapper over an ``MlflowClient`` for phonbench runs.

    Args:
        out_dir: output directory (holds the default SQLite store and artifacts).
        uri: explicit tracking URI (optional).
    """

    def __init__(self, out_dir: str | Path, uri: str | None = None):
        from mlflow.tracking import MlflowClient

        _quiet()  # after the import: mlflow configures its loggers when imported

        self.out_dir = Path(out_dir)
        self.uri = resolve_uri(out_dir, uri)
        try:
            self.client = MlflowClient(tracking_uri=self.uri)
        except Exception as exc:  # mlflow raises many types
            raise TrackingError(f"cannot open MLflow store {self.uri}: {exc}", "check --tracking-uri") from exc

    def check(self, dataset: str) -> None:
        """Touch the store once (the dataset's experiment) so a wrong store fails before any training.

        Raises:
            TrackingError: the URI answers, but not as an MLflow tracking store.
        """
        try:
            self.experiment_id(dataset)
        except Exception as exc:  # noqa: BLE001 - mlflow raises many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise TrackingError(f"MLflow store {self.uri} did not work ({first})",
                                "check --tracking-uri (an MLflow server or sqlite:///file.db), or pass --no-tracking") from None

    def experiment_id(self, dataset: str) -> str:
        """Id of experiment ``phonbench/<dataset>``, created once (safe against concurrent creators)."""
        name = f"{EXPERIMENT_PREFIX}/{dataset}"
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        artifacts = None
        if self.uri.startswith("sqlite:"):
            artifacts = (self.out_dir.resolve() / "mlartifacts").as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=artifacts)
        except Exception:
            exp = self.client.get_experiment_by_name(name)  # another worker won the race
            if exp is None:
                raise
            return exp.experiment_id

    def start_run(
        self, dataset: str, run_name: str, tags: Mapping[str, Any] | None = None, parent_run_id: str | None = None
    ) -> str:
        """Create a run (nested under ``parent_run_id`` if given) and return its id."""
        all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id(dataset), tags=all_tags, run_name=run_name)
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(str(k), float(v), now, int(step)) for k, v in metrics.items() if v == v]
        for i in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[i : i + 500])

    def log_history(self, run_id: str, history: Iterable[Mapping[str, float]]) -> None:
        """Per-epoch curves: every key except ``epoch`` becomes a metric stepped by epoch."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(str(k), float(v), now, int(row.get("epoch", i)))
            for i, row in enumerate(history)
            for k, v in row.items()
            if k != "epoch" and isinstance(v, (int, float)) and v == v
        ]
        for i in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[i : i + 500])

    def log_artifacts(self, run_id: str, paths: Iterable[Path]) -> None:
        for path in paths:
            if Path(path).exists():
                self.client.log_artifact(run_id, str(path))

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        """End a run with ``status`` (``FINISHED``, ``FAILED`` or ``KILLED`` for an interrupt)."""
        self.client.set_terminated(run_id, status=status)

    def start_record_run(self, record: Mapping[str, Any], parent_run_id: str | None = None) -> str:
        """Create the MLflow run of a record (as dict) and log its params, metrics and curves; return its id.

        The run stays open until :meth:`finish_record_run` (or :meth:`finish` with ``KILLED``).
        """
        ds = record["dataset"]
        model = record["model"]
        tags = {"phonbench.run_id": record["run_id"], "phonbench.model": model["name"],
                "phonbench.dataset": ds["name"], "phonbench.split": ds["split"], "phonbench.fold": ds["fold"],
                "phonbench.tags": ",".join(record.get("tags", []))}
        run_id = self.start_run(ds["name"], record["run_id"], tags=tags, parent_run_id=parent_run_id)
        try:
            params = {"model": model["name"], "dataset": ds["name"], "split": ds["split"], "fold": ds["fold"],
                      "seed": record["seed"], "device": record["environment"].get("device"),
                      **{f"hp.{k}": v for k, v in model["params"].items()}}
            self.log_params(run_id, params)
            flat = {f"{split}_{name}": v for split, ms in record["metrics"].items() for name, v in ms.items()}
            flat.update({f"time_{k}": v for k, v in record["timings"].items()})
            flat["peak_memory_mb"] = record["peak_memory_mb"]
            self.log_metrics(run_id, flat)
            self.log_history(run_id, record.get("history", []))
        except Exception:
            self.finish(run_id, "FAILED")
            raise
        return run_id

    def finish_record_run(self, run_id: str, run_dir: Path) -> None:
        """Log a written run directory's files (and ``plots/``) as artifacts and finish the run."""
        try:
            self.log_artifacts(run_id, sorted(p for p in Path(run_dir).iterdir() if p.is_file()))
            if (Path(run_dir) / "plots").is_dir():
                self.client.log_artifacts(run_id, str(Path(run_dir) / "plots"), artifact_path="plots")
        except Exception:
            self.finish(run_id, "FAILED")
            raise
        self.finish(run_id)

    def log_record(self, record: Mapping[str, Any], run_dir: Path, parent_run_id: str | None = None) -> str:
        """Log a finished, written record with its files in one go; return the MLflow run id."""
        run_id = self.start_record_run(record, parent_run_id)
        self.finish_record_run(run_id, run_dir)
        return run_id

    def get_run(self, run_id: str) -> Any:
        return self.client.get_run(run_id)
