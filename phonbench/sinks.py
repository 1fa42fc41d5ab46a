"""Sinks of the fold core: what happens to each :class:`~phonbench.runner.FoldResult`.

For every fold, in this order: the MLflow run is created and given the params, metrics and
curves; the record — complete, with that MLflow run id — is written **once**, atomically, with its
predictions and model; figures are drawn from it; the run's files go to MLflow as artifacts and
the MLflow run is finished. A multi-fold run gets a parent MLflow run and a summary file. A failed
plot or an unsaved model is a warning (kept in :attr:`Sinks.warnings` and passed to
``on_warning`` at once), never a lost record.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from phonbench.records import (
    RunRecord,
    environment,
    new_run_id,
    peak_memory_mb,
    predictions_table,
    summarize,
    utc_now,
    write_run,
)
from phonbench.registry import DATASETS, METRICS, MODELS

if TYPE_CHECKING:
    from phonbench.runner import FoldResult, Prepared
    from phonbench.spec import RunSpec


def dataset_section(prep: Any, fold: Any) -> dict[str, Any]:
    """The record's ``dataset`` section for ``fold`` of ``prep`` (a :class:`~phonbench.runner.Prepared`
    or a :class:`~phonbench.protocol.Benchmark`: anything with ``dataset``, ``data``, ``protocol``,
    ``train_fraction`` and ``dataset_options``)."""
    card = prep.dataset.card
    dataset_extra = {"grouping": grouping(prep.protocol, fold)} if prep.protocol.groups is not None else {}
    return {"name": card.name, "version": card.version, "content_hash": prep.data.content_hash(),
            "split": prep.protocol.name, "split_seed": prep.protocol.seed, "fold": fold.name,
            "n_folds": len(prep.protocol.folds), "train_fraction": prep.train_fraction,
            "sizes": fold.sizes(), "task": card.task.as_dict(),
            "provider": DATASETS.provider(card.name).as_dict(), "options": dict(prep.dataset_options),
            "final_fit": card.final_fit, **dataset_extra}


def build_record(prep: Prepared, res: FoldResult, run_id: str) -> RunRecord:
    """The :class:`RunRecord` of one fold result (``mlflow_run_id`` is set by the caller)."""
    spec, card, fit = prep.spec, prep.dataset.card, res.fit
    extra = dict(spec.extra)
    if spec.origin:
        extra["origin"] = dict(spec.origin)
    return RunRecord(
        run_id=run_id,
        created_at=utc_now(),
        model={"name": prep.model_cls.name, "params": fit.model.params,
               "provider": MODELS.provider(prep.model_cls.name).as_dict(), "n_parameters": fit.model.n_parameters(),
               "stops": list(getattr(fit.model, "stops", []))},
        dataset=dataset_section(prep, res.fold),
        seed=spec.seed,
        metrics=res.metrics,
        primary_metric=card.primary_metric,
        timings={"fit_s": fit.fit_s, "predict_s": fit.predict_s, "total_s": res.total_s},
        peak_memory_mb=peak_memory_mb(),
        environment={**environment(getattr(fit.model, "device_used", "cpu"), res.machine or None),
                     "plugins": plugin_versions(prep.model_cls.name, card.name, prep.metric_names)},
        history=list(fit.model.history),
        tags=list(spec.tags),
        extra=extra,
    )


def grouping(protocol: Any, fold: Any) -> dict[str, Any]:
    """What a grouped split held out in ``fold``: kind, description, distinct groups per part, and
    the number of test materials of every test group (``{"Mg-O": 3, ...}``)."""
    from collections import Counter

    counts = {part: len(set(protocol.part_groups(getattr(fold, part)))) for part in ("train", "valid", "test")}
    test = Counter(protocol.part_groups(fold.test))
    return {"kind": protocol.group_kind, "description": protocol.description, "distinct_groups": counts,
            "test_groups": dict(sorted(test.items()))}


def plugin_versions(model: str, dataset: str, metrics: Sequence[str]) -> dict[str, str]:
    """``{"model:e3nn": "phonbench 0.1.0", ...}`` for every plugin a run used."""
    pairs = [("model", MODELS, model), ("dataset", DATASETS, dataset)] + [("metric", METRICS, m) for m in metrics]
    out = {}
    for kind, registry, name in pairs:
        prov = registry.provider(name)
        out[f"{kind}:{name}"] = f"{prov.distribution} {prov.version}".strip()
    return out


def predictions_csv(res: FoldResult) -> str:
    """The predictions CSV text of one fold (train, valid, test rows in that order)."""
    fit = res.fit
    return "".join(
        predictions_table(fit.parts[s].ids, s, fit.parts[s].targets, p, fit.parts[s].mask, header=k == 0)
        for k, (s, p) in enumerate(fit.predictions.items())
    )


class Sinks:
    """Record writer, plots, MLflow and warnings for the folds of one spec.

    Args:
        spec: the run's spec (its :class:`~phonbench.spec.OutputOptions` say what to write).
        on_warning: called with each warning when it happens (e.g. the CLI prints it).
    """

    def __init__(self, spec: RunSpec, on_warning: Callable[[str], None] | None = None):
        self.spec, self.out = spec, spec.outputs.out
        self.on_warning = on_warning
        self.warnings: list[str] = []
        self.tracker = None
        self.parent_id: str | None = None
        self.open_runs: list[str] = []
        #: fold indices whose record is on disk (counted as soon as it is written, for Ctrl-C reports)
        self.kept: list[int] = []
        if spec.outputs.tracking:
            from phonbench.tracking import Tracker

            self.tracker = Tracker(self.out, spec.outputs.tracking_uri)
            self.tracker.check(spec.dataset)

    @property
    def tracking_uri(self) -> str | None:
        return self.tracker.uri if self.tracker else None

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        if self.on_warning:
            self.on_warning(text)

    def start(self, prep: Prepared) -> None:
        """Open the parent MLflow run of a multi-fold run."""
        if self.tracker and len(prep.chosen) > 1:
            card = prep.dataset.card
            self.parent_id = self.tracker.start_run(card.name, f"{card.name}-{prep.model_cls.name}-{prep.protocol.name}",
                                                    tags={"phonbench.kind": "folds"})
            self.open_runs.append(self.parent_id)

    def consume(self, prep: Prepared, res: FoldResult) -> tuple[RunRecord, Path]:
        """Write one fold's record (once, complete), figures and MLflow run; return (record, run dir)."""
        record = build_record(prep, res, new_run_id(prep.model_cls.name, prep.dataset.card.name))
        mlflow_id = None
        if self.tracker:
            mlflow_id = self.tracker.start_record_run(record.to_dict(), parent_run_id=self.parent_id)
            self.open_runs.append(mlflow_id)
        record.mlflow_run_id = mlflow_id
        writer = (lambda d, m=res.fit.model: self._save_model(m, d)) if self.spec.outputs.save_model else None
        run_dir = write_run(self.out, record, predictions_csv(res), write_extra=writer)
        self.kept.append(res.index)
        if self.spec.outputs.plots:
            self._plot(run_dir)
        if self.tracker and mlflow_id:
            self.tracker.finish_record_run(mlflow_id, run_dir)
            self.open_runs.remove(mlflow_id)
        return record, run_dir

    def _plot(self, run_dir: Path) -> None:
        from phonbench.plots import plot_run

        try:
            plot_run(run_dir)
        except Exception as exc:  # noqa: BLE001 - figures are derived data (rerun `phonbench plot`)
            self.warn(f"plots for {run_dir.name} failed: {exc} (rerun `phonbench plot {run_dir}`)")

    def _save_model(self, model: Any, run_dir: Path) -> None:
        from phonbench.records import MODEL_DIR

        try:
            model.save(run_dir / MODEL_DIR)
        except NotImplementedError:
            self.warn(f"model {model.name!r} does not implement save(); no checkpoint kept")

    def abort(self) -> None:
        """End the MLflow runs still open as ``KILLED`` (after Ctrl-C); never raises."""
        for run_id in reversed(self.open_runs):
            try:
                self.tracker.finish(run_id, "KILLED")  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001 - best effort while interrupted
                pass
        self.open_runs.clear()

    def finish(self, records: list[RunRecord]) -> tuple[dict[str, Any] | None, Path | None]:
        """Write the summary of a multi-fold run and close its parent MLflow run."""
        summary = path = None
        if len(records) > 1:
            summary, path = write_summary(self.out, records)
        if self.parent_id and self.tracker:
            if summary:
                flat = {f"{s}_{m}_{k}": v[k] for s, ms in summary["metrics"].items() for m, v in ms.items()
                        for k in ("mean", "std")}
                self.tracker.log_metrics(self.parent_id, flat)
                self.tracker.log_artifacts(self.parent_id, [path])
            self.tracker.finish(self.parent_id)
            self.open_runs.remove(self.parent_id)
        return summary, path


def write_summary(out: Path, records: list[RunRecord]) -> tuple[dict[str, Any], Path]:
    """Write ``<out>/summaries/<name>.json``: mean ± std of every metric over the folds of one run."""
    from phonbench.io import write_json_atomic

    first = records[0]
    summary = {
        "model": first.model["name"], "dataset": first.dataset["name"], "split": first.dataset["split"],
        "seed": first.seed, "runs": [r.run_id for r in records], "primary_metric": first.primary_metric,
        "metrics": summarize(records), "created_at": utc_now(),
    }
    name = f"{first.dataset['name']}-{first.model['name']}-{first.dataset['split']}-{records[-1].run_id[-6:]}"
    return summary, write_json_atomic(Path(out) / "summaries" / f"{name}.json", summary)
