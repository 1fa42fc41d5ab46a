"""The typed run specification: everything one ``run`` needs, validated once before any work starts.

:meth:`RunSpec.build` is the single place where user input is checked — registry names, model
parameters (coerced through the model's declared types), dataset options, split name, folds,
device, training fraction, the output folder and the MLflow store — so a bad value is a one-line
:class:`~phonbench.exceptions.PhonbenchError` *before* data is loaded or a model trained. The CLI,
the Python API (:func:`phonbench.run`), ``tune``'s refit and ``bench`` all build one and hand it
to :func:`phonbench.runner.run_spec`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from phonbench.exceptions import ConfigError

DEFAULT_OUT = "phonbench-results"
OUT_ENV = "PHONBENCH_OUT"
DEVICES = ("auto", "cpu", "cuda")


def default_out(out: str | Path | None = None) -> Path:
    """``out`` if given, else ``$PHONBENCH_OUT``, else ``./phonbench-results``."""
    return Path(out or os.environ.get(OUT_ENV) or DEFAULT_OUT)


def parse_params(items: Sequence[str] | None) -> dict[str, Any]:
    """Parse ``["key=value", ...]``; values are JSON (numbers, true/false, lists) or plain strings.

    Raises:
        ConfigError: an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"parameter {item!r} is not key=value", "write e.g. --param epochs=50")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip().replace("-", "_")] = value
    return out


def check_out_dir(out: str | Path) -> Path:
    """Create ``out`` if needed and make sure it is a writable folder.

    Raises:
        ConfigError: ``out`` (or a parent) is a file, or the folder cannot be created or written.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output path {path} exists and is not a folder", "pass --out a folder (new or existing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output folder {path} ({exc.strerror or exc})",
                          "pass --out a folder you can write to") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"output folder {path} is not writable", "pass --out a folder you can write to")
    return path


@dataclass(frozen=True)
class OutputOptions:
    """Where and what a run writes.

    Attributes:
        out: results folder (records under ``runs/``, summaries, MLflow store).
        tracking: log to MLflow.
        tracking_uri: MLflow store override (default ``sqlite:///<out>/mlflow.db``).
        plots: draw the run's figures into ``runs/<id>/plots``.
        save_model: keep the fitted model in ``runs/<id>/model``.
    """

    out: Path = Path(DEFAULT_OUT)
    tracking: bool = True
    tracking_uri: str | None = None
    plots: bool = True
    save_model: bool = True


@dataclass(frozen=True)
class RunSpec:
    """One validated (model, dataset, split, folds, seed) job with its budget and outputs.

    Build it with :meth:`build`; the fields hold normalised values (registry names as registered,
    ``params`` coerced to the model's declared types, ``folds`` checked against the split only
    once the data is loaded, in :func:`phonbench.runner.prepare`).
    """

    model: str
    dataset: str
    params: Mapping[str, Any] = field(default_factory=dict)
    split: str | None = None
    seed: int = 0
    folds: tuple[int, ...] | None = None
    device: str = "auto"
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    train_fraction: float = 1.0
    metrics: tuple[str, ...] | None = None
    tags: tuple[str, ...] = ("default",)
    extra: Mapping[str, Any] = field(default_factory=dict)
    origin: Mapping[str, Any] = field(default_factory=dict)
    outputs: OutputOptions = field(default_factory=OutputOptions)

    @classmethod
    def build(cls, model: str, dataset: str, *, out: str | Path | None = None, tracking: bool = True,
              tracking_uri: str | None = None, plots: bool = True, save_model: bool = True,
              check_outputs: bool = True, **fields: Any) -> RunSpec:
        """Validate user input and return the spec (see the module docstring for what is checked).

        Args:
            model, dataset: registry names (any case, ``-`` = ``_``).
            out, tracking, tracking_uri, plots, save_model: the :class:`OutputOptions`.
            check_outputs: create/check the output folder and the MLflow store now.
            **fields: the other :class:`RunSpec` fields (``params``, ``split``, ``seed``, ...).

        Raises:
            RegistryError: unknown model, dataset or metric.
            ConfigError: any other bad value (names the value and the fix).
        """
        from phonbench.registry import DATASETS, METRICS, MODELS

        model_cls = MODELS.get(model)
        dataset_cls = DATASETS.get(dataset)
        params = validate_params(model_cls, fields.pop("params", None) or {})
        options = dict(fields.pop("dataset_options", None) or {})
        check_dataset_options(dataset_cls, options)
        for name in fields.get("metrics") or ():
            METRICS.get(name)
        spec = cls(model=model_cls.name, dataset=dataset_cls.card.name, params=params, dataset_options=options,
                   outputs=OutputOptions(default_out(out), tracking, tracking_uri, plots, save_model),
                   **_normalised(fields))
        spec._check_values(dataset_cls)
        if check_outputs:
            check_out_dir(spec.outputs.out)
            if tracking:
                from phonbench.tracking import check_tracking_uri

                check_tracking_uri(tracking_uri)
        return spec

    def _check_values(self, dataset_cls: Any) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}", f"use one of {', '.join(DEVICES)}")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ConfigError(f"train fraction {self.train_fraction} is outside (0, 1]", "use e.g. 0.25,0.5,1.0")
        if self.split is not None:
            name = self.split.lower().replace("-", "_")
            if name not in dataset_cls.card.splits:
                raise ConfigError(f"dataset {self.dataset!r} has no split {self.split!r}",
                                  f"use one of: {', '.join(dataset_cls.card.splits)}")
        if self.folds is not None and any(i < 0 for i in self.folds):
            raise ConfigError(f"fold indices must be >= 0, got {list(self.folds)}", "e.g. --fold 0 --fold 1")

    def with_(self, **changes: Any) -> RunSpec:
        """A copy with ``changes`` applied (``params`` are re-validated by the caller if user-given)."""
        return replace(self, **changes)

    def key(self) -> dict[str, Any]:
        """What defines the job's results (for study names and resumable suites)."""
        return {"model": self.model, "dataset": self.dataset, "params": dict(self.params), "split": self.split,
                "seed": self.seed, "dataset_options": dict(self.dataset_options), "data_dir": self.data_dir,
                "train_fraction": self.train_fraction, "metrics": list(self.metrics or [])}


def _normalised(fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    if out.get("folds") is not None:
        out["folds"] = tuple(int(i) for i in out["folds"])
    if out.get("metrics") is not None:
        out["metrics"] = tuple(out["metrics"])
    if "tags" in out:
        out["tags"] = tuple(out["tags"])
    if "seed" in out:
        out["seed"] = int(out["seed"])
    if "train_fraction" in out:
        out["train_fraction"] = float(out["train_fraction"])
    return out


def check_dataset_options(dataset_cls: Any, options: Mapping[str, Any]) -> None:
    """Reject options a dataset would silently ignore (datasets that take none keep the base ``__init__``)."""
    from phonbench.datasets.base import Dataset

    if options and dataset_cls.__init__ is Dataset.__init__:
        raise ConfigError(f"dataset {dataset_cls.card.name!r} takes no options (got {', '.join(sorted(options))})",
                          "drop --dataset-param; `phonbench data info NAME` describes the dataset")
    if options:
        dataset_cls(**options)  # the dataset's own checks (no I/O happens in constructors)


def validate_params(model_cls: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` coerced through ``model_cls``'s declared types, then checked by its constructor.

    Raises:
        ConfigError: unknown parameter, or a value that is not of the declared type.
    """
    coerced = coerce_params(model_cls, params)
    model_cls(coerced)  # constructors only store and check hyperparameters (no I/O)
    return coerced


def coerce_params(model_cls: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """Cast each value to the type of its default (``param_types`` overrides): ``lr=1`` → ``1.0``.

    Parameters whose default is ``None``, a string or a container are passed through unchanged;
    unknown names are left for the model's constructor to reject with the list of valid ones.

    Raises:
        ConfigError: a value that cannot be read as the declared bool/int/float, or a non-finite float.
    """
    declared = {**{k: type(v) for k, v in model_cls.default_params.items()},
                **dict(getattr(model_cls, "param_types", {}) or {})}
    out = dict(params)
    for key, value in params.items():
        kind = declared.get(key)
        if kind in (bool, int, float):
            out[key] = _cast(model_cls.name, key, value, kind, model_cls.default_params.get(key))
    return out


def _cast(model: str, key: str, value: Any, kind: type, default: Any) -> Any:
    words = {bool: "true or false", int: "an integer", float: "a number"}
    fix = f"e.g. -p {key}={json.dumps(default)} (the default)"
    bad = ConfigError(f"parameter {key}={value!r} of model {model!r} must be {words[kind]}", fix)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        raise bad
    if isinstance(value, bool):
        raise bad
    try:
        number = float(value) if not isinstance(value, (int, float)) else value
    except (TypeError, ValueError):
        raise bad from None
    if not math.isfinite(float(number)):
        raise ConfigError(f"parameter {key}={value!r} of model {model!r} is not finite", fix)
    if kind is int:
        if float(number) != int(float(number)):
            raise bad
        return int(float(number))
    return float(number)
