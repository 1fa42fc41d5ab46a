"""Optuna tuning of a (model, dataset) pair on validation data only, then one refit scored on test.

* Objective: the dataset's primary metric on the **valid** rows of a fold; test rows are never
  predicted inside a trial. Torch models report per-epoch validation loss for pruning.
* Storage: default is an Optuna journal file ``<out>/optuna/<study>.journal`` (embedded, local);
  ``--storage sqlite:///...`` or ``postgresql://...`` uses RDB storage with heartbeats, and stale
  trials are retried. Rerunning the same command resumes the study; ``n_trials`` counts finished
  (complete or pruned) trials in total over all runs and workers.
* Multi-fold protocols (k-fold, matbench) get one study per fold, so no fold's test data is ever
  seen while tuning for that fold; the refit of each fold uses that fold's best parameters.
* MLflow: one parent run per study, one nested run per trial with ``hp.``-prefixed parameters.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from phonbench.exceptions import ConfigError
from phonbench.registry import METRICS, MODELS

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
FINISHED = ("COMPLETE", "PRUNED")


def make_storage(storage: str | None, out: Path, study_name: str):
    """Optuna storage object for ``storage`` (journal file under ``out`` when ``None``)."""
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


def _sqlalchemy_url(url: str) -> str:
    """Use the psycopg (v3) driver for ``postgresql://`` URLs when psycopg2 is not installed."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
        if importlib.util.find_spec("psycopg") is None:
            raise ConfigError("PostgreSQL storage needs a driver", "pip install 'phonbench[postgres]'")
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _sampler(name: str, seed: int):
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"unknown sampler {name!r}", f"use one of {', '.join(SAMPLERS)}")


def _pruner(name: str):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}", f"use one of {', '.join(PRUNERS)}")


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


@dataclass
class TuneResult:
    """Per-fold studies and the ``tuned`` refit records."""

    studies: list[dict[str, Any]] = field(default_factory=list)
    run: Any = None  # RunResult of the refit


def tune(
    model: str,
    dataset: str,
    *,
    split: str | None = None,
    folds: Sequence[int] | None = None,
    trials: int = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study: str | None = None,
    sampler: str = "tpe",
    pruner: str = "median",
    seed: int = 0,
    device: str = "auto",
    out: str | Path = "phonbench-results",
    tracking_uri: str | None = None,
    tracking: bool = True,
    data_dir: str | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    fixed_params: Mapping[str, Any] | None = None,
    refit: bool = True,
    worker_index: int = 0,
    save_model: bool = True,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Tune ``model`` on ``dataset`` (valid rows only), then refit the best parameters and score test.

    Args:
        trials: finished trials wanted in total per study (resuming counts earlier ones).
        timeout: seconds for this worker's optimisation loop (None: no limit).
        storage: Optuna storage URL or journal path (default: journal file under ``out``).
        study: study name prefix (default ``<dataset>-<model>-<split>``; ``-f<fold>`` appended).
        fixed_params: parameters held fixed in every trial (e.g. a small epoch budget).
        refit: refit and score on test after the studies (workers started by ``--workers`` skip it).
        worker_index: offsets the sampler seed so parallel workers explore different points.
        on_trial: called after each finished trial with a progress dict.
    """
    import optuna

    from phonbench.runner import fit_and_predict, load_dataset, run, score_splits

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(out)
    model_cls = MODELS.get(model)
    ds = load_dataset(dataset, data_dir, **dict(dataset_options or {}))
    card = ds.card
    data = ds.load()
    protocol = ds.split(split, seed=seed)
    primary = METRICS.get(card.primary_metric)
    chosen = list(range(len(protocol.folds))) if folds is None else list(folds)
    tracker = None
    if tracking:
        from phonbench.tracking import Tracker

        tracker = Tracker(out, tracking_uri)
    result = TuneResult()
    best_params: dict[int, dict[str, Any]] = {}
    fixed = dict(fixed_params or {})
    for fold_index in chosen:
        fold = protocol.folds[fold_index]
        name = f"{study or f'{card.name}-{model_cls.name}-{protocol.name}'}-f{fold.name}"
        storage_obj = make_storage(storage, out, name)
        st = optuna.create_study(
            study_name=name, storage=storage_obj, load_if_exists=True,
            direction="minimize" if primary.direction == "minimize" else "maximize",
            sampler=_sampler(sampler, seed + 1000 * worker_index + fold_index), pruner=_pruner(pruner),
        )
        if isinstance(storage_obj, optuna.storages.journal.JournalStorage):
            retry_dead_journal_trials(st)
        else:
            optuna.storages.fail_stale_trials(st)
        parent = None
        if tracker:
            parent = st.user_attrs.get("mlflow_parent_run_id")
            if parent is None:
                parent = tracker.start_run(card.name, name, tags={"phonbench.kind": "study"})
                st.set_user_attr("mlflow_parent_run_id", parent)

        def objective(trial: optuna.Trial) -> float:
            trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
            params = {**model_cls.search_space(trial), **fixed}

            def report(epoch: int, logs: Mapping[str, float]) -> None:
                value = logs.get("valid_loss")
                if value is not None:
                    trial.report(float(value), epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"pruned at epoch {epoch}")

            fit = fit_and_predict(model_cls, params, data, fold, seed=seed, device=device,
                                  callbacks=[report], predict_on=("valid",))
            valid = score_splits(fit, card.default_metrics)["valid"]
            for key, value in valid.items():
                trial.set_user_attr(f"valid_{key}", value)
            if tracker:
                child = tracker.start_run(card.name, f"{name}-t{trial.number}", parent_run_id=parent,
                                          tags={"phonbench.kind": "trial", "optuna.trial": trial.number})
                tracker.log_params(child, {f"hp.{k}": v for k, v in params.items()})
                tracker.log_metrics(child, {f"valid_{k}": v for k, v in valid.items()})
                tracker.log_history(child, fit.model.history)
                tracker.finish(child)
            return valid[primary.name]

        started = time.perf_counter()
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

        def progress(study_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if on_trial is None:
                return
            done = count_finished(study_)
            try:
                best = study_.best_value
            except ValueError:
                best = None
            on_trial({"study": name, "finished": done, "target": trials, "best": best,
                      "elapsed_s": time.perf_counter() - started, "state": trial.state.name})

        if count_finished(st) < trials:
            st.optimize(objective, n_trials=None, timeout=timeout, catch=(),
                        callbacks=[optuna.study.MaxTrialsCallback(trials, states=states), progress],
                        gc_after_trial=True)
        complete = st.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        info = {"study": name, "fold": fold.name, "storage": storage or "journal (default)",
                "n_finished": count_finished(st), "n_complete": len(complete)}
        if complete:
            info.update(best_trial=st.best_trial.number, best_value=st.best_value,
                        best_params={**st.best_trial.params, **fixed})
            best_params[fold_index] = info["best_params"]
        if tracker and parent:
            tracker.log_metrics(parent, {"best_valid": info.get("best_value", float("nan")),
                                         "n_finished": info["n_finished"]})
        result.studies.append(info)
    if refit:
        result.run = _refit(model_cls, card, ds, split, seed, device, out, tracking_uri, tracking, data_dir,
                            dataset_options, best_params, result.studies, run, save_model)
    return result


def _refit(model_cls, card, ds, split, seed, device, out, tracking_uri, tracking, data_dir, dataset_options,
           best_params, studies, run, save_model=True) -> Any:
    """One ``tuned`` record per fold, each with that fold's best parameters."""
    records = []
    for fold_index, params in best_params.items():
        study_info = next(s for s in studies if s.get("best_params") is params)
        space = _search_space_description(model_cls)
        res = run(model_cls.name, card.name, split=split, seed=seed, params=params, device=device, out=out,
                  tracking_uri=tracking_uri, tracking=tracking, data_dir=data_dir,
                  dataset_options=dataset_options, folds=[fold_index], tags=("tuned",),
                  extra={"tuning": {**study_info, "search_space": space}}, save_model=save_model)
        records.extend(res.records)
    return records


def _search_space_description(model_cls) -> dict[str, str]:
    """Sample the search space once with a recording fake trial: ``{param: distribution}``."""
    import optuna

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    trial = study.ask()
    model_cls.search_space(trial)
    return {k: repr(v) for k, v in trial.distributions.items()}
