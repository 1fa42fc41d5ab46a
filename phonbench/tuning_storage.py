"""Optuna storages for ``phonbench tune``: journal files, SQLite/PostgreSQL, and recovery of dead trials.

Default: an Optuna journal file ``<out>/optuna/<study>.journal`` (embedded, local, no server).
``sqlite:///...`` or ``postgresql://...`` give RDB storage with heartbeats; stale trials are
retried. Any other URL is refused before a study starts (:func:`check_storage_url`).
"""

from __future__ import annotations

import socket
import warnings
from pathlib import Path
from typing import Any

from phonbench.exceptions import ConfigError

STORAGE_SCHEMES = ("sqlite://", "postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://")


def check_storage_url(storage: str | None) -> None:
    """Reject storage URLs phonbench cannot open, before any study starts.

    Raises:
        ConfigError: not a journal path, ``sqlite://`` or ``postgresql://`` URL.
    """
    if storage is None or storage.startswith("journal:") or storage.endswith(".journal"):
        return
    if not storage.startswith(STORAGE_SCHEMES):
        raise ConfigError(f"unsupported Optuna storage {storage!r}",
                          "use a .journal path, sqlite:///file.db or postgresql://user@host/db")


def make_storage(storage: str | None, out: Path, study_name: str):
    """Optuna storage object for ``storage`` (journal file under ``out`` when ``None``); may raise anything."""
    import optuna

    if storage is None or storage.startswith("journal:") or storage.endswith(".journal"):
        path = Path(storage.split(":", 1)[1]) if storage and storage.startswith("journal:") else (
            Path(storage) if storage else out / "optuna" / f"{study_name}.journal")
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(
            str(path), lock_obj=optuna.storages.journal.JournalFileOpenLock(str(path)))
        return optuna.storages.journal.JournalStorage(backend)
    if "://" not in storage:
        raise ConfigError(f"storage {storage!r} is not a URL", "use sqlite:///file.db, postgresql://... or a .journal path")
    storage = _sqlalchemy_url(storage)
    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    kwargs: dict[str, Any] = {"heartbeat_interval": 10, "grace_period": 30}
    if retry_cls is None:  # older Optuna
        kwargs["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(max_retry=3)
    with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if retry_cls is not None:
            kwargs["heartbeat_stale_trial_callback"] = retry_cls(max_retry=3)
        return optuna.storages.RDBStorage(storage, engine_kwargs={"pool_pre_ping": True}, **kwargs)


def open_storage(storage: str | None, out: Path, study_name: str):
    """:func:`make_storage` with every failure turned into one :class:`ConfigError` line.

    Raises:
        ConfigError: unsupported URL, missing driver, unreachable database.
    """
    check_storage_url(storage)
    try:
        return make_storage(storage, out, study_name)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - sqlalchemy/drivers raise many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"cannot open Optuna storage {storage!r}: {first[:200]}",
                          "check the URL and that the database is running, or use a .journal path") from None


def _sqlalchemy_url(url: str) -> str:
    """Use the psycopg (v3) driver for ``postgresql://`` URLs when psycopg2 is not installed."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
        if importlib.util.find_spec("psycopg") is None:
            raise ConfigError("PostgreSQL storage needs a driver", "pip install 'phonbench[postgres]'")
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def retry_dead_journal_trials(study) -> int:
    """Mark RUNNING trials of dead local workers as FAIL and re-queue their parameters.

    Journal storage has no heartbeat, so each trial stores its worker's ``host`` and ``pid``; a
    trial whose worker process on this host no longer exists is stale. Returns the number retried.
    """
    import optuna
    import psutil

    host = socket.gethostname()
    retried = 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", {})
        if worker.get("host") != host or psutil.pid_exists(int(worker.get("pid", -1))):
            continue
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        retried += 1
    return retried


def count_finished(study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


