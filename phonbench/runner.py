"""Run one (model, dataset, split, seed): fit on train, score valid and test, write records.

This is the middle of the data flow in ARCHITECTURE.md. :func:`fit_and_predict` is the shared core
that tuning reuses; :func:`run` adds records (``runs/<id>/record.json`` + predictions) and MLflow.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from phonbench.datasets.base import Dataset, Fold, PhononData
from phonbench.exceptions import ConfigError
from phonbench.metrics import score
from phonbench.models.base import EpochCallback, Model
from phonbench.records import (
    RunRecord,
    environment,
    new_run_id,
    peak_memory_mb,
    predictions_table,
    summarize,
    update_record,
    utc_now,
    write_run,
)
from phonbench.registry import DATASETS, MODELS

DEFAULT_OUT = "phonbench-results"
DEVICES = ("auto", "cpu", "cuda")


def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    """Parse ``["key=value", ...]``; values are JSON (numbers, true/false, lists) or plain strings.

    Raises:
        ConfigError: an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"parameter {item!r} is not key=value", "write e.g. --param epochs=50")
        key, raw = item.split("=", 1)
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip().replace("-", "_")] = value
    return out


def coerce_params(model_cls: type[Model], params: Mapping[str, Any]) -> dict[str, Any]:
    """Cast ints to floats where the default is a float (``lr=1`` → ``1.0``)."""
    out = dict(params)
    for key, value in params.items():
        default = model_cls.default_params.get(key)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def load_dataset(name: str, data_dir: str | None = None, **options: Any) -> Dataset:
    """Instantiate the registered dataset ``name`` (no data is read until ``.load()``)."""
    cls = DATASETS.get(name)
    return cls(data_dir=data_dir, **options) if data_dir else cls(**options)


@dataclass
class FitResult:
    """A fitted model with its predictions and timings on one fold."""

    model: Model
    predictions: dict[str, np.ndarray]  # split -> (n, d)
    parts: dict[str, PhononData]
    fit_s: float
    predict_s: float


def fit_and_predict(
    model_cls: type[Model],
    params: Mapping[str, Any],
    data: PhononData,
    fold: Fold,
    *,
    seed: int = 0,
    device: str = "auto",
    callbacks: Sequence[EpochCallback] = (),
    predict_on: Sequence[str] = ("train", "valid", "test"),
) -> FitResult:
    """Fit ``model_cls(params)`` on ``fold.train`` (``fold.valid`` for early stopping) and predict.

    Test rows are only predicted when ``"test"`` is in ``predict_on`` (tuning leaves it out).
    """
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}", f"use one of {', '.join(DEVICES)}")
    parts = {"train": data.subset(fold.train), "valid": data.subset(fold.valid), "test": data.subset(fold.test)}
    model = model_cls(coerce_params(model_cls, params), seed=seed, device=device)
    t0 = time.perf_counter()
    model.fit(parts["train"], parts["valid"] if len(parts["valid"]) else None, callbacks=callbacks)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    preds = {s: np.asarray(model.predict(parts[s]), dtype=np.float64) for s in predict_on if len(parts[s])}
    predict_s = time.perf_counter() - t0
    return FitResult(model, preds, {s: parts[s] for s in preds}, fit_s, predict_s)


def score_splits(fit: FitResult, metric_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Score every predicted split with ``metric_names`` → ``{split: {metric: value}}``."""
    out = {}
    for split, pred in fit.predictions.items():
        part = fit.parts[split]
        out[split] = score(list(metric_names), part.targets, pred, part.mask, part.task, extras=part.extras)
    return out


def subsample_train(fold: Fold, fraction: float, seed: int) -> Fold:
    """``fold`` with a seeded ``fraction`` of its training rows (at least one); others unchanged."""
    if fraction >= 1.0:
        return fold
    rng = np.random.default_rng(seed + 7919)
    n = max(1, int(round(fraction * len(fold.train))))
    train = np.sort(rng.choice(fold.train, size=n, replace=False))
    return Fold(train, fold.valid, fold.test, fold.name)


@dataclass
class RunResult:
    """What :func:`run` produced: one record per fold, their directories, and a summary."""

    records: list[RunRecord]
    run_dirs: list[Path]
    summary: dict[str, Any] | None = None
    summary_path: Path | None = None
    tracking_uri: str | None = None
    warnings: list[str] = field(default_factory=list)


def run(
    model: str,
    dataset: str,
    *,
    split: str | None = None,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    device: str = "auto",
    out: str | Path = DEFAULT_OUT,
    tracking_uri: str | None = None,
    tracking: bool = True,
    data_dir: str | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    folds: Sequence[int] | None = None,
    metrics: Sequence[str] | None = None,
    tags: Sequence[str] = ("default",),
    extra: Mapping[str, Any] | None = None,
    train_fraction: float = 1.0,
    plots: bool = True,
    save_model: bool = True,
    on_fold: Callable[[RunRecord], None] | None = None,
) -> RunResult:
    """Train and score ``model`` on ``dataset`` for every fold of ``split``; write records.

    Args:
        model, dataset: registry names (case-insensitive, ``-`` = ``_``).
        split: split protocol (default: the dataset card's).
        seed: seeds the split (for seeded protocols) and the model.
        params: hyperparameters overriding the model's defaults.
        device: ``auto`` | ``cpu`` | ``cuda``.
        out: output directory (records, predictions, MLflow store).
        tracking_uri / tracking: MLflow store override / switch MLflow off.
        folds: restrict to these fold indices (default: all).
        metrics: metric names (default: the dataset card's default metrics).
        train_fraction: train on a seeded subset of this fraction of each fold's training rows
            (valid and test unchanged) — for training-set-size studies.
        plots: write parity/error/DoS/learning-curve PNGs into ``runs/<id>/plots`` (and MLflow).
        save_model: keep the fitted model in ``runs/<id>/model`` (needed by ``phonbench predict``;
            a 300-tree composition forest on ``gamma`` takes ~330 MB).
        on_fold: called with each finished record (for progress output).
    """
    out = Path(out)
    model_cls = MODELS.get(model)
    ds = load_dataset(dataset, data_dir, **dict(dataset_options or {}))
    card = ds.card
    metric_names = list(metrics or card.default_metrics)
    tracker = None
    if tracking:
        from phonbench.tracking import Tracker

        tracker = Tracker(out, tracking_uri)  # opened before training: a bad URI fails fast
    data = ds.load()
    protocol = ds.split(split, seed=seed)
    chosen = list(range(len(protocol.folds))) if folds is None else list(folds)
    for i in chosen:
        if not 0 <= i < len(protocol.folds):
            raise ConfigError(f"fold {i} does not exist in split {protocol.name!r}",
                              f"use 0..{len(protocol.folds) - 1}")
    params = dict(params or {})
    result = RunResult([], [], tracking_uri=tracker.uri if tracker else None)
    parent_id = None
    if tracker and len(chosen) > 1:
        parent_id = tracker.start_run(card.name, f"{card.name}-{model_cls.name}-{protocol.name}",
                                      tags={"phonbench.kind": "folds"})
    if not 0.0 < train_fraction <= 1.0:
        raise ConfigError(f"train fraction {train_fraction} is outside (0, 1]", "use e.g. 0.25,0.5,1.0")
    for i in chosen:
        fold = subsample_train(protocol.folds[i], train_fraction, seed)
        t_start = time.perf_counter()
        fit = fit_and_predict(model_cls, params, data, fold, seed=seed, device=device)
        scores = score_splits(fit, metric_names)
        record = RunRecord(
            run_id=new_run_id(model_cls.name, card.name),
            created_at=utc_now(),
            model={
                "name": model_cls.name,
                "params": fit.model.params,
                "provider": MODELS.provider(model_cls.name).as_dict(),
                "n_parameters": fit.model.n_parameters(),
            },
            dataset={
                "name": card.name,
                "version": card.version,
                "content_hash": data.content_hash(),
                "split": protocol.name,
                "split_seed": protocol.seed,
                "fold": fold.name,
                "n_folds": len(protocol.folds),
                "train_fraction": train_fraction,
                "sizes": fold.sizes(),
                "task": card.task.as_dict(),
                "provider": DATASETS.provider(card.name).as_dict(),
                "options": dict(dataset_options or {}),
            },
            seed=seed,
            metrics=scores,
            primary_metric=card.primary_metric,
            timings={"fit_s": fit.fit_s, "predict_s": fit.predict_s,
                     "total_s": time.perf_counter() - t_start},
            peak_memory_mb=peak_memory_mb(),
            environment={**environment(getattr(fit.model, "device_used", "cpu")),
                         "plugins": _plugin_versions(model_cls.name, card.name, metric_names)},
            history=list(fit.model.history),
            tags=list(tags),
            extra=dict(extra or {}),
        )
        csv = "".join(
            predictions_table(fit.parts[s].ids, s, fit.parts[s].targets, p, fit.parts[s].mask, header=k == 0)
            for k, (s, p) in enumerate(fit.predictions.items())
        )
        writer = (lambda d, m=fit.model: _save_model(m, d, result)) if save_model else None
        run_dir = write_run(out, record, csv, write_extra=writer)
        if plots:
            _plot(run_dir, result)
        if tracker:
            record.mlflow_run_id = tracker.log_record(record.to_dict(), run_dir, parent_run_id=parent_id)
            update_record(run_dir, mlflow_run_id=record.mlflow_run_id)
        result.records.append(record)
        result.run_dirs.append(run_dir)
        if on_fold:
            on_fold(record)
    if len(result.records) > 1:
        result.summary, result.summary_path = _write_summary(out, result.records, tracker, parent_id)
    elif parent_id and tracker:
        tracker.finish(parent_id)
    return result


def _plugin_versions(model: str, dataset: str, metrics: Sequence[str]) -> dict[str, str]:
    """``{"model:e3nn": "phonbench 0.1.0", ...}`` for every plugin this run used."""
    from phonbench.registry import METRICS

    pairs = [("model", MODELS, model), ("dataset", DATASETS, dataset)] + [("metric", METRICS, m) for m in metrics]
    out = {}
    for kind, registry, name in pairs:
        prov = registry.provider(name)
        out[f"{kind}:{name}"] = f"{prov.distribution} {prov.version}".strip()
    return out


def _plot(run_dir: Path, result: RunResult) -> None:
    """Figures of a finished run; a plotting failure is reported, never fatal (rerun `phonbench plot`)."""
    from phonbench.plots import plot_run

    try:
        plot_run(run_dir)
    except Exception as exc:  # noqa: BLE001 - figures are derived data
        result.warnings.append(f"plots for {run_dir.name} failed: {exc}")


def _save_model(model: Model, run_dir: Path, result: RunResult) -> None:
    """Save the fitted model into ``run_dir/model``; models without ``save`` are skipped with a note."""
    from phonbench.records import MODEL_DIR

    try:
        model.save(run_dir / MODEL_DIR)
    except NotImplementedError:
        result.warnings.append(f"model {model.name!r} does not implement save(); no checkpoint kept")


def load_run_model(run_dir: str | Path) -> Model:
    """Reload the fitted model saved in a run directory (``runs/<id>``)."""
    from phonbench.exceptions import DataError
    from phonbench.records import MODEL_DIR, read_record

    record = read_record(run_dir)
    path = Path(run_dir) / MODEL_DIR
    if not path.is_dir():
        raise DataError(f"run {record['run_id']} has no saved model", "rerun it with a model that implements save()")
    return MODELS.get(record["model"]["name"]).load(path)


def _write_summary(out: Path, records: list[RunRecord], tracker: Any, parent_id: str | None):
    from phonbench.io import write_json_atomic

    first = records[0]
    summary = {
        "model": first.model["name"],
        "dataset": first.dataset["name"],
        "split": first.dataset["split"],
        "seed": first.seed,
        "runs": [r.run_id for r in records],
        "primary_metric": first.primary_metric,
        "metrics": summarize(records),
        "created_at": utc_now(),
    }
    name = f"{first.dataset['name']}-{first.model['name']}-{first.dataset['split']}-{records[-1].run_id[-6:]}"
    path = write_json_atomic(out / "summaries" / f"{name}.json", summary)
    if tracker and parent_id:
        flat = {f"{s}_{m}_mean": v["mean"] for s, ms in summary["metrics"].items() for m, v in ms.items()}
        flat.update({f"{s}_{m}_std": v["std"] for s, ms in summary["metrics"].items() for m, v in ms.items()})
        tracker.log_metrics(parent_id, flat)
        tracker.log_artifacts(parent_id, [path])
        tracker.finish(parent_id)
    return summary, path
