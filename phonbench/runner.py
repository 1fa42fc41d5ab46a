"""The fold core: a :class:`~phonbench.spec.RunSpec` → :func:`fit_fold` per fold → :class:`FoldResult` → sinks.

This is the middle of the data flow in ARCHITECTURE.md. :func:`prepare` loads the dataset and its
split once; :func:`fit_fold` fits and scores one fold and returns a :class:`FoldResult` (it writes
nothing); :func:`run_spec` feeds each result to the sinks of :mod:`phonbench.sinks` (record,
plots, MLflow, console). :func:`run` is the keyword-argument Python API on top. ``tune``'s refit
and ``bench`` build a spec and call :func:`run_spec` too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from phonbench.datasets.base import Dataset, Fold, PhononData, Split
from phonbench.exceptions import ConfigError, DataError, Interrupted
from phonbench.metrics import score
from phonbench.models.base import EpochCallback, Model
from phonbench.records import RunRecord
from phonbench.registry import DATASETS, MODELS
from phonbench.spec import DEFAULT_OUT, DEVICES, RunSpec, coerce_params, parse_params  # noqa: F401 - re-exported


def load_dataset(name: str, data_dir: str | None = None, **options: Any) -> Dataset:
    """Instantiate the registered dataset ``name`` (no data is read until ``.load()``)."""
    from phonbench.spec import check_dataset_options

    cls = DATASETS.get(name)
    check_dataset_options(cls, options)
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


def merge_valid(fold: Fold) -> Fold:
    """``fold`` with its valid rows moved into train (the ``train+valid`` final fit of a dataset card)."""
    return Fold(np.sort(np.concatenate([fold.train, fold.valid])), fold.valid[:0], fold.test, fold.name)


def subsample_train(fold: Fold, fraction: float, seed: int) -> Fold:
    """``fold`` with a seeded ``fraction`` of its training rows (at least one); others unchanged."""
    if fraction >= 1.0:
        return fold
    rng = np.random.default_rng(seed + 7919)
    n = max(1, int(round(fraction * len(fold.train))))
    train = np.sort(rng.choice(fold.train, size=n, replace=False))
    return Fold(train, fold.valid, fold.test, fold.name)


@dataclass
class Prepared:
    """A spec's dataset, records and split, loaded once for all its folds."""

    spec: RunSpec
    model_cls: type[Model]
    dataset: Dataset
    data: PhononData
    protocol: Split
    chosen: list[int]
    metric_names: list[str]

    @property
    def train_fraction(self) -> float:
        return self.spec.train_fraction

    @property
    def dataset_options(self) -> Mapping[str, Any]:
        return self.spec.dataset_options


def check_folds(ds: Dataset, data: PhononData, protocol: Split, chosen: Sequence[int]) -> None:
    """Every chosen fold index exists and its fold has training and test rows.

    Raises:
        ConfigError: a fold index outside the split.
        DataError: a fold without training or test rows (nothing would be scored).
    """
    for i in chosen:
        if not 0 <= i < len(protocol.folds):
            raise ConfigError(f"fold {i} does not exist in split {protocol.name!r}",
                              f"use 0..{len(protocol.folds) - 1}")
        fold = protocol.folds[i]
        for part in ("train", "test"):
            if len(getattr(fold, part)) == 0:
                raise DataError(f"split {protocol.name!r} fold {fold.name} of dataset {ds.name!r} has no {part} "
                                f"rows ({len(data)} materials)", "use a larger dataset or another --split")


def prepare(spec: RunSpec) -> Prepared:
    """Load the spec's data and split; check the chosen folds exist and hold train and test rows.

    Raises:
        ConfigError: a fold index outside the split.
        DataError: a fold without training or test rows (nothing would be scored).
    """
    model_cls = MODELS.get(spec.model)
    ds = load_dataset(spec.dataset, spec.data_dir, **dict(spec.dataset_options))
    data = ds.load()
    protocol = ds.split(spec.split, seed=spec.seed)
    chosen = list(range(len(protocol.folds))) if spec.folds is None else list(spec.folds)
    check_folds(ds, data, protocol, chosen)
    return Prepared(spec, model_cls, ds, data, protocol, chosen, list(spec.metrics or ds.card.default_metrics))


@dataclass
class FoldResult:
    """What one fold produced (nothing written yet): the fit, its scores and timings."""

    index: int
    fold: Fold
    fit: FitResult
    metrics: dict[str, dict[str, float]]
    total_s: float
    warnings: list[str] = field(default_factory=list)
    #: CPU model, torch threads and load average when the fold started (:mod:`phonbench.provenance`)
    machine: dict[str, Any] = field(default_factory=dict)


def fit_fold(prep: Prepared, index: int) -> FoldResult:
    """Fit and score fold ``index`` of ``prep`` (train fraction applied) and return the result."""
    from phonbench.provenance import machine_state

    spec = prep.spec
    fold = subsample_train(prep.protocol.folds[index], spec.train_fraction, spec.seed)
    if prep.dataset.card.final_fit == "train+valid":
        fold = merge_valid(fold)
    machine = machine_state()
    t_start = time.perf_counter()
    fit = fit_and_predict(prep.model_cls, spec.params, prep.data, fold, seed=spec.seed, device=spec.device)
    scores = score_splits(fit, prep.metric_names)
    # the threads the fit itself used (PHONBENCH_NUM_THREADS / the model's setting), else torch's now
    machine["torch_threads"] = getattr(fit.model, "threads_used", None) or machine_state()["torch_threads"]
    return FoldResult(index, fold, fit, scores, time.perf_counter() - t_start, machine=machine)


@dataclass
class RunResult:
    """What :func:`run` produced: one record per fold, their directories, and a summary."""

    records: list[RunRecord]
    run_dirs: list[Path]
    summary: dict[str, Any] | None = None
    summary_path: Path | None = None
    tracking_uri: str | None = None
    warnings: list[str] = field(default_factory=list)


def run_spec(spec: RunSpec, on_fold: Callable[[RunRecord], None] | None = None,
             on_warning: Callable[[str], None] | None = None) -> RunResult:
    """Run every chosen fold of ``spec`` through :func:`fit_fold` and the sinks.

    Args:
        on_fold: called with each finished (written) record.
        on_warning: called with each warning (a failed plot, an unsaved model) as it happens.

    Raises:
        Interrupted: Ctrl-C; finished folds are kept (complete records), the message says how many
            and how to run the rest; MLflow runs in flight are ended as ``KILLED``.
    """
    from phonbench.sinks import Sinks

    sinks = Sinks(spec, on_warning)  # opens the MLflow store first: a bad URI fails before training
    prep = prepare(spec)
    result = RunResult([], [], tracking_uri=sinks.tracking_uri)
    for i in prep.chosen if prep.dataset.card.final_fit == "train" else []:
        if not len(prep.protocol.folds[i].valid):
            sinks.warn(f"fold {prep.protocol.folds[i].name} has no validation rows: no early stopping, no valid scores")
    sinks.start(prep)
    try:
        for i in prep.chosen:
            record, run_dir = sinks.consume(prep, fit_fold(prep, i))
            result.records.append(record)
            result.run_dirs.append(run_dir)
            if on_fold:
                on_fold(record)
    except KeyboardInterrupt:
        sinks.abort()
        raise Interrupted(_interrupt_message(prep, sinks.kept)) from None
    result.summary, result.summary_path = sinks.finish(result.records)
    result.warnings = sinks.warnings
    return result


def _interrupt_message(prep: Prepared, kept: list[int]) -> str:
    done, total = len(kept), len(prep.chosen)
    where = prep.spec.outputs.out / "runs"
    rest = [i for i in prep.chosen if i not in kept]
    hint = " ".join(f"--fold {i}" for i in rest)
    kept = f"{done} of {total} folds kept at {where}" if done else f"0 of {total} folds finished, nothing written"
    return f"interrupted: {kept}; rerun the same command with {hint} to finish"


def run(model: str, dataset: str, *, out: str | Path | None = None, tracking: bool = True,
        tracking_uri: str | None = None, plots: bool = True, save_model: bool = True,
        on_fold: Callable[[RunRecord], None] | None = None, **fields: Any) -> RunResult:
    """Train and score ``model`` on ``dataset`` for every fold of ``split``; write records.

    Args:
        model, dataset: registry names (case-insensitive, ``-`` = ``_``).
        out: output folder (default ``$PHONBENCH_OUT`` or ``./phonbench-results``).
        tracking / tracking_uri: switch MLflow off / point it at another store.
        plots: write parity/error/DoS/curve PNGs into ``runs/<id>/plots`` (and MLflow).
        save_model: keep the fitted model in ``runs/<id>/model`` (needed by ``phonbench predict``).
        on_fold: called with each finished record (for progress output).
        **fields: :class:`~phonbench.spec.RunSpec` fields: ``split``, ``seed``, ``params``,
            ``device``, ``data_dir``, ``dataset_options``, ``folds``, ``metrics``, ``tags``,
            ``extra``, ``train_fraction`` (train on a seeded subset of each fold's training rows).
    """
    spec = RunSpec.build(model, dataset, out=out, tracking=tracking, tracking_uri=tracking_uri, plots=plots,
                         save_model=save_model, **fields)
    return run_spec(spec, on_fold)


def load_run_model(run_dir: str | Path) -> Model:
    """Reload the fitted model saved in a run directory (``runs/<id>``)."""
    from phonbench.records import MODEL_DIR, read_record

    record = read_record(run_dir)
    path = Path(run_dir) / MODEL_DIR
    if not path.is_dir():
        raise DataError(f"run {record['run_id']} has no saved model",
                        "rerun it with `phonbench run` (keeps the model unless --no-save-model) or "
                        "`phonbench bench --save-models`")
    return MODELS.get(record["model"]["name"]).load(path)
