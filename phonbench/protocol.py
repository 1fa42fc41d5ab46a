"""The open protocol: train anywhere, score here — a matbench-style loop over a dataset's folds.

::

    from phonbench import Benchmark

    bench = Benchmark("dos", split="tutorial")       # any dataset and split, multi-fold ones too
    for fold in bench.folds:
        train, valid = fold.train, fold.valid        # PhononData with targets
        test = fold.test_inputs                      # ids + structures (+ the modes mask), no targets
        fold.record(my_predictions, model_card={"name": "my-model"})   # validated and scored
    bench.save("my-results/")                        # runs/<id>/ records that `leaderboard add` takes

Records made this way are tagged ``external``: their ``model`` section holds the model card
(:class:`~phonbench.model_card.ModelCard`) instead of phonbench params, only test predictions are
stored, and boards show them as ``<name> (external)`` rows that take part in tiers like any other.
``phonbench score`` is the same loop driven by a predictions CSV (:mod:`phonbench.exchange`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from phonbench.datasets.base import Fold, PhononData, Task
from phonbench.exceptions import ConfigError, DataError
from phonbench.model_card import ModelCard
from phonbench.records import RunRecord, environment, new_run_id, predictions_table, utc_now

EXTERNAL_TAG = "external"


@dataclass(frozen=True)
class TestInputs:
    """What a model may see of a fold's test part.

    Attributes:
        ids: ``n`` material ids (predictions follow this order).
        structures: ``n`` pymatgen ``Structure`` objects.
        task: what to predict (``n_outputs`` columns in ``task.unit``).
        mask: ``(n, n_outputs)`` bool for ``modes`` tasks (which padded entries are real modes), else None.
    """

    ids: list[str]
    structures: Sequence[Any]
    task: Task
    mask: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


class BenchmarkFold:
    """One fold of a :class:`Benchmark`: training data, test inputs and :meth:`record`."""

    def __init__(self, bench: Benchmark, index: int):
        self.bench, self.index = bench, index
        self.fold: Fold = bench.protocol.folds[index]
        self.name = self.fold.name
        self._test = bench.data.subset(self.fold.test)

    @property
    def train(self) -> PhononData:
        return self.bench.data.subset(self.fold.train)

    @property
    def valid(self) -> PhononData:
        return self.bench.data.subset(self.fold.valid)

    @property
    def test_inputs(self) -> TestInputs:
        return TestInputs(list(self._test.ids), self._test.structures, self._test.task, self._test.mask)

    @property
    def where(self) -> str:
        return f"{self.bench.dataset.name}/{self.bench.protocol.name} fold {self.name}"

    def record(self, predictions: Any, model_card: ModelCard | Mapping[str, Any],
               origin: Mapping[str, Any] | None = None) -> RunRecord:
        """Check and score test predictions; keep the record for :meth:`Benchmark.save`.

        Args:
            predictions: ``(n_test, n_outputs)`` array in the order of ``test_inputs.ids`` (``(n_test,)``
                for scalar tasks), or a mapping ``{id: values}`` covering every test id.
            model_card: a :class:`ModelCard` or a mapping with at least ``name``.
            origin: where the predictions came from (stored in the record's ``extra.origin``).

        Raises:
            DataError: wrong shape, unknown or missing ids, NaN/inf where a real output is.
            ConfigError: a model card without a valid name.
        """
        card = model_card if isinstance(model_card, ModelCard) else ModelCard.from_mapping(model_card)
        pred = self._as_array(predictions)
        from phonbench.metrics import score

        test = self._test
        metrics = {"test": score(self.bench.metric_names, test.targets, pred, test.mask, test.task,
                                 extras=test.extras)}
        record = _external_record(self, card, metrics, dict(origin or {"via": "phonbench.Benchmark"}))
        self.bench.recorded[self.index] = (record, predictions_table(test.ids, "test", test.targets, pred, test.mask))
        return record

    def _as_array(self, predictions: Any) -> np.ndarray:
        task, ids = self._test.task, self._test.ids
        if isinstance(predictions, Mapping):
            missing = [i for i in ids if i not in predictions]
            unknown = [k for k in predictions if k not in set(ids)]
            if unknown:
                raise DataError(f"predictions for {self.where}: id {unknown[0]!r} is not a test id",
                                "predict exactly the ids of fold.test_inputs")
            if missing:
                raise DataError(f"predictions for {self.where}: test id {missing[0]!r} is missing "
                                f"({len(missing)} of {len(ids)})", "predict every id of fold.test_inputs")
            predictions = [np.ravel(np.asarray(predictions[i], dtype=np.float64)) for i in ids]
        try:
            arr = np.asarray(predictions, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"predictions for {self.where} are not a numeric array ({exc})",
                            f"give shape ({len(ids)}, {task.n_outputs})") from None
        if task.n_outputs == 1 and arr.ndim == 1:
            arr = arr[:, None]
        if arr.shape != (len(ids), task.n_outputs):
            raise DataError(f"predictions for {self.where} have shape {arr.shape}, expected "
                            f"({len(ids)}, {task.n_outputs}) (test materials, outputs)",
                            "one row per test id in the order of fold.test_inputs.ids")
        real = self._test.effective_mask()
        bad = np.where((real & ~np.isfinite(arr)).any(axis=1))[0]
        if bad.size:
            raise DataError(f"predictions for {self.where}: row {int(bad[0])} (id {ids[int(bad[0])]!r}) has NaN or "
                            f"inf ({bad.size} rows)", "predict a finite value for every real output")
        return np.where(real, arr, 0.0)


class Benchmark:
    """The folds of one (dataset, split) for models trained outside phonbench.

    Args:
        dataset: registry name (any case, ``-`` = ``_``).
        split: split protocol (default: the dataset's); ``seed`` draws seeded splits.
        folds: fold indices to offer (default: all).
        data_dir, dataset_options: as for ``phonbench run``.
        metrics: metric names (default: the dataset card's).
    """

    def __init__(self, dataset: str, split: str | None = None, *, seed: int = 0, folds: Sequence[int] | None = None,
                 data_dir: str | None = None, dataset_options: Mapping[str, Any] | None = None,
                 metrics: Sequence[str] | None = None):
        from phonbench.registry import METRICS
        from phonbench.runner import check_folds, load_dataset

        self.dataset_options = dict(dataset_options or {})
        self.dataset = load_dataset(dataset, data_dir, **self.dataset_options)
        for name in metrics or ():
            METRICS.get(name)
        self.metric_names = list(metrics or self.dataset.card.default_metrics)
        self.data = self.dataset.load()
        self.protocol = self.dataset.split(split, seed=seed)
        self.seed, self.train_fraction = int(seed), 1.0
        chosen = list(range(len(self.protocol.folds))) if folds is None else [int(i) for i in folds]
        check_folds(self.dataset, self.data, self.protocol, chosen)
        self.folds = [BenchmarkFold(self, i) for i in chosen]
        self.recorded: dict[int, tuple[RunRecord, str]] = {}

    def __repr__(self) -> str:
        return f"Benchmark({self.dataset.name!r}, split={self.protocol.name!r}, folds={len(self.folds)})"

    @property
    def task(self) -> Task:
        return self.dataset.card.task

    def fold(self, index: int) -> BenchmarkFold:
        """The fold with split index ``index``."""
        for fold in self.folds:
            if fold.index == index:
                return fold
        raise ConfigError(f"fold {index} is not offered by {self!r}", f"use one of {[f.index for f in self.folds]}")

    def save(self, out: str | Path) -> list[Path]:
        """Write every recorded fold as ``<out>/runs/<run_id>/`` (record + test predictions), and a
        summary when there are several; return the run directories.

        Raises:
            DataError: nothing was recorded.
        """
        from phonbench.records import write_run
        from phonbench.sinks import write_summary
        from phonbench.spec import check_out_dir

        if not self.recorded:
            raise DataError(f"{self!r}: no fold was recorded", "call fold.record(predictions, model_card) first")
        out = Path(out)
        check_out_dir(out)
        records = [self.recorded[i] for i in sorted(self.recorded)]
        dirs = [write_run(out, record, table) for record, table in records]
        if len(records) > 1:
            write_summary(out, [r for r, _ in records])
        return dirs


def _external_record(fold: BenchmarkFold, card: ModelCard, metrics: dict[str, dict[str, float]],
                     origin: dict[str, Any]) -> RunRecord:
    from phonbench.sinks import dataset_section

    bench = fold.bench
    dataset = dataset_section(bench, fold.fold)
    dataset.pop("final_fit", None)  # what an external model was fitted on is the submitter's to state
    scoring_env = environment("cpu")
    env = {"device": card.hardware or "not stated", "cpu_count": None, "scored_with": scoring_env}
    return RunRecord(
        run_id=new_run_id(_slug(card.name), bench.dataset.card.name),
        created_at=utc_now(),
        model={"name": card.name, "params": {}, "provider": {"distribution": EXTERNAL_TAG, "version": card.version},
               "n_parameters": card.n_parameters, "card": card.as_dict()},
        dataset=dataset,
        seed=bench.seed,
        metrics=metrics,
        primary_metric=bench.dataset.card.primary_metric,
        timings={"fit_s": card.training_time_s, "predict_s": None, "total_s": None},
        peak_memory_mb=None,
        environment=env,
        tags=[EXTERNAL_TAG],
        extra={"origin": origin},
    )


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name).lower()


def score_csv(path: str | Path, dataset: str, card: ModelCard, *, split: str | None = None,
              fold: int | None = None, seed: int = 0, data_dir: str | None = None,
              dataset_options: Mapping[str, Any] | None = None) -> Benchmark:
    """Check a predictions CSV (see :mod:`phonbench.exchange`) against one fold's test ids and score it.

    Args:
        fold: the fold index; may be omitted only for single-fold splits.

    Raises:
        ConfigError / DataError: one line naming the problem (nothing is written by this function).
    """
    from phonbench.exchange import read_predictions_csv

    bench = Benchmark(dataset, split, seed=seed, data_dir=data_dir, dataset_options=dataset_options,
                      folds=None if fold is None else [fold])
    if fold is None and len(bench.folds) > 1:
        raise ConfigError(f"split {bench.protocol.name!r} of {bench.dataset.name!r} has {len(bench.folds)} folds",
                          f"say which one these predictions are for: --fold 0..{len(bench.folds) - 1}")
    target = bench.folds[0]
    test = target.test_inputs
    pred = read_predictions_csv(path, test.task, test.ids, test.mask, target.where)
    sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    target.record(pred, card, origin={"via": "phonbench score", "predictions_file": Path(path).name,
                                      "predictions_sha256": sha})
    return bench
