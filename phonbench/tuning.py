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
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from phonbench.exceptions import ConfigError
from phonbench.registry import METRICS, MODELS
from phonbench.tuning_storage import (  # noqa: F401 - re-exported
    STORAGE_SCHEMES,
    check_storage_url,
    count_finished,
    make_storage,
    open_storage,
    retry_dead_journal_trials,
)

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
FINISHED = ("COMPLETE", "PRUNED")


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


@dataclass(frozen=True)
class TuneOptions:
    """How to search (the objective itself is defined by the :class:`~phonbench.spec.RunSpec`).

    Attributes:
        trials: finished trials wanted in total per study (resuming counts earlier ones), >= 1.
        timeout: seconds for this worker's optimisation loop (None: no limit), > 0.
        storage: Optuna storage URL or journal path (default: journal file under ``out``).
        study: study name prefix (default ``<dataset>-<model>-<split>``).
        sampler / pruner: see :data:`SAMPLERS` / :data:`PRUNERS`.
        refit: refit and score on test after the studies (workers started by ``--workers`` skip it).
        worker_index: offsets the sampler seed so parallel workers explore different points.
    """

    trials: int = 20
    timeout: float | None = None
    storage: str | None = None
    study: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    refit: bool = True
    worker_index: int = 0

    def check(self) -> TuneOptions:
        """Raise :class:`ConfigError` for a value that could not run; return self."""
        if self.trials < 1:
            raise ConfigError(f"--trials {self.trials} must be at least 1", "e.g. --trials 20")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"--timeout {self.timeout} must be a positive number of seconds", "e.g. --timeout 600")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}", f"use one of {', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"unknown pruner {self.pruner!r}", f"use one of {', '.join(PRUNERS)}")
        check_storage_url(self.storage)
        return self


def study_name(spec: Any, options: TuneOptions, fold_name: str, split_name: str) -> str:
    """``<prefix>-f<fold>-<hash>``: the hash covers everything that defines the objective.

    Changing the model, dataset or its options, split, seed, fixed parameters, metrics or training
    fraction gives a new study instead of silently resuming one of another configuration.
    """
    import hashlib
    import json

    prefix = options.study or f"{spec.dataset}-{spec.model}-{split_name}"
    digest = hashlib.sha256(json.dumps({**spec.key(), "fold": fold_name}, sort_keys=True, default=str).encode())
    return f"{prefix}-f{fold_name}-{digest.hexdigest()[:8]}"


@dataclass
class TuneResult:
    """Per-fold studies and the ``tuned`` refit records."""

    studies: list[dict[str, Any]] = field(default_factory=list)
    run: Any = None  # list of RunRecord of the refit


def tune(model: str, dataset: str, *, trials: int = 20, timeout: float | None = None, storage: str | None = None,
         study: str | None = None, sampler: str = "tpe", pruner: str = "median", refit: bool = True,
         worker_index: int = 0, fixed_params: Mapping[str, Any] | None = None,
         on_trial: Callable[[dict[str, Any]], None] | None = None, **fields: Any) -> TuneResult:
    """Tune ``model`` on ``dataset`` (valid rows only), then refit the best parameters and score test.

    Keyword-argument API over :func:`tune_spec`: ``fixed_params`` are held fixed in every trial;
    ``out``, ``tracking``, ``tracking_uri``, ``split``, ``folds``, ``seed``, ``device``, ``data_dir``,
    ``dataset_options``, ``save_model`` are the :class:`~phonbench.spec.RunSpec` fields.
    """
    from phonbench.spec import RunSpec

    options = TuneOptions(trials, timeout, storage, study, sampler, pruner, refit, worker_index).check()
    spec = RunSpec.build(model, dataset, params=dict(fixed_params or {}), **fields)
    return tune_spec(spec, options, on_trial)


def tune_spec(spec: Any, options: TuneOptions, on_trial: Callable[[dict[str, Any]], None] | None = None,
              on_warning: Callable[[str], None] | None = None) -> TuneResult:
    """One study per chosen fold of ``spec`` (its ``params`` held fixed), then the refit when asked.

    Raises:
        Interrupted: Ctrl-C; finished trials are kept in the storage and a rerun resumes.
    """
    import optuna

    from phonbench.runner import prepare

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prep = prepare(spec)
    result = TuneResult()
    for fold_index in prep.chosen:
        result.studies.append(_study(prep, fold_index, options, on_trial))
    if options.refit:
        result.run = refit(spec, result.studies, on_warning)
    return result


def _study(prep: Any, fold_index: int, options: TuneOptions, on_trial: Callable | None) -> dict[str, Any]:
    """Run (or resume) the study of one fold and return its summary dict."""
    import optuna

    from phonbench.exceptions import Interrupted

    spec = prep.spec
    fold = prep.protocol.folds[fold_index]
    name = study_name(spec, options, fold.name, prep.protocol.name)
    storage_obj = open_storage(options.storage, spec.outputs.out, name)
    primary = METRICS.get(prep.dataset.card.primary_metric)
    st = optuna.create_study(
        study_name=name, storage=storage_obj, load_if_exists=True,
        direction="minimize" if primary.direction == "minimize" else "maximize",
        sampler=_sampler(options.sampler, spec.seed + 1000 * options.worker_index + fold_index),
        pruner=_pruner(options.pruner))
    if isinstance(storage_obj, optuna.storages.journal.JournalStorage):
        retry_dead_journal_trials(st)
    else:
        optuna.storages.fail_stale_trials(st)
    tracker, parent = _study_tracker(spec, prep.dataset.card.name, st, name)
    objective = make_objective(prep, fold, name, tracker, parent)
    try:
        _optimize(st, objective, options, name, on_trial)
    except KeyboardInterrupt:
        if tracker and parent:
            tracker.finish(parent, "KILLED")
        raise Interrupted(f"interrupted: study {name} keeps {count_finished(st)} finished trials "
                          f"({options.storage or spec.outputs.out / 'optuna' / (name + '.journal')}); "
                          "rerun the same command to resume") from None
    return _study_info(st, name, fold.name, options, dict(spec.params), tracker, parent)


def _study_tracker(spec: Any, dataset: str, st: Any, name: str) -> tuple[Any, str | None]:
    if not spec.outputs.tracking:
        return None, None
    from phonbench.tracking import Tracker

    tracker = Tracker(spec.outputs.out, spec.outputs.tracking_uri)
    parent = st.user_attrs.get("mlflow_parent_run_id")
    if parent is None:
        parent = tracker.start_run(dataset, name, tags={"phonbench.kind": "study"})
        st.set_user_attr("mlflow_parent_run_id", parent)
    return tracker, parent


def make_objective(prep: Any, fold: Any, name: str, tracker: Any, parent: str | None) -> Callable[[Any], float]:
    """The Optuna objective: fit a sampled configuration on train, return the primary metric on valid."""
    import optuna

    from phonbench.runner import fit_and_predict, score_splits

    spec, card, model_cls = prep.spec, prep.dataset.card, prep.model_cls
    primary = card.primary_metric

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        params = {**model_cls.search_space(trial), **spec.params}

        def report(epoch: int, logs: Mapping[str, float]) -> None:
            value = logs.get("valid_loss")
            if value is not None:
                trial.report(float(value), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        fit = fit_and_predict(model_cls, params, prep.data, fold, seed=spec.seed, device=spec.device,
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
        return valid[primary]

    return objective


def _optimize(st: Any, objective: Callable, options: TuneOptions, name: str, on_trial: Callable | None) -> None:
    import optuna

    started = time.perf_counter()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

    def progress(study_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial is None:
            return
        try:
            best = study_.best_value
        except ValueError:
            best = None
        on_trial({"study": name, "finished": count_finished(study_), "target": options.trials, "best": best,
                  "elapsed_s": time.perf_counter() - started, "state": trial.state.name})

    if count_finished(st) < options.trials:
        with _quiet_interrupts():
            st.optimize(objective, n_trials=None, timeout=options.timeout, catch=(),
                        callbacks=[optuna.study.MaxTrialsCallback(options.trials, states=states), progress],
                        gc_after_trial=True)


def _quiet_interrupts() -> Any:
    """Optuna at ERROR level while optimising: with ``catch=()`` a failing trial (or Ctrl-C) propagates
    to the CLI, which reports it on one line, so Optuna's own warning and traceback would only repeat it."""
    import contextlib

    import optuna

    @contextlib.contextmanager
    def scope():
        level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        try:
            yield
        finally:
            optuna.logging.set_verbosity(level)

    return scope()


def _study_info(st: Any, name: str, fold_name: str, options: TuneOptions, fixed: dict[str, Any], tracker: Any,
                parent: str | None) -> dict[str, Any]:
    import optuna

    complete = st.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    info: dict[str, Any] = {"study": name, "fold": fold_name, "storage": options.storage or "journal (default)",
                            "n_finished": count_finished(st), "n_complete": len(complete)}
    if complete:
        info.update(best_trial=st.best_trial.number, best_value=st.best_value,
                    best_params={**st.best_trial.params, **fixed})
    if tracker and parent:
        tracker.log_metrics(parent, {"best_valid": info.get("best_value", float("nan")),
                                     "n_finished": info["n_finished"]})
    return info


def refit(spec: Any, studies: list[dict[str, Any]], on_warning: Callable[[str], None] | None = None) -> list[Any]:
    """One ``tuned`` record per fold through the fold core, each with that fold's best parameters."""
    from phonbench.runner import prepare, run_spec
    from phonbench.spec import validate_params

    model_cls = MODELS.get(spec.model)
    space = _search_space_description(model_cls)
    prep = prepare(spec)
    by_name = {prep.protocol.folds[i].name: i for i in prep.chosen}
    records = []
    for info in studies:
        if "best_params" not in info:
            continue
        fold_spec = spec.with_(params=validate_params(model_cls, info["best_params"]), folds=(by_name[info["fold"]],),
                               tags=("tuned",), extra={**dict(spec.extra), "tuning": {**info, "search_space": space}})
        records.extend(run_spec(fold_spec, on_warning=on_warning).records)
    return records


def _search_space_description(model_cls) -> dict[str, str]:
    """Sample the search space once with a recording fake trial: ``{param: distribution}``."""
    import optuna

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    trial = study.ask()
    model_cls.search_space(trial)
    return {k: repr(v) for k, v in trial.distributions.items()}
