"""Model contract.

A model plugin subclasses :class:`Model` and is registered under ``phonbench.models``. The
constructor only stores hyperparameters; :meth:`fit` trains on a :class:`PhononData` (the
validation set is for early stopping and never for test scoring); :meth:`predict` returns an
``(n, d)`` float array in the task's unit (for ``modes`` tasks padded entries may hold anything —
metrics ignore them).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from phonbench.exceptions import ConfigError, ModelError

if TYPE_CHECKING:
    from phonbench.datasets.base import PhononData, Task

#: Called once per epoch with ``(epoch, {"train_loss": ..., "valid_loss": ..., ...})``. A callback
#: may raise to stop training (Optuna's ``TrialPruned`` passes through ``fit``).
EpochCallback = Callable[[int, Mapping[str, float]], None]


class Model(ABC):
    """Base class of all models.

    Class attributes:
        name: registry name.
        description: one line for ``phonbench list``.
        task_kinds: task kinds the model supports.
        default_params: every hyperparameter with its default; unknown keys are rejected.
        task_defaults: per task kind (``spectrum``/``modes``/``scalar``), defaults that replace
            ``default_params`` entries when the model is fitted on that kind of task — only for the
            parameters the caller did not pass; ``params`` then holds the values actually used.
        legacy_params: parameters added after models were first saved, each with the value that
            reproduces a model saved without it; ``load`` fills them in (new fits use the defaults).
        param_types: declared types of parameters whose default's type is too narrow (e.g.
            ``{"compile": object}`` for true/false/"auto"); every other parameter is coerced to the
            type of its default (bool/int/float) before any work starts
            (:func:`phonbench.spec.coerce_params`).

    Args:
        params: hyperparameters overriding ``default_params``.
        seed: random seed (same seed + same data → same predictions on CPU).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``; ignored by non-torch models.
    """

    name: ClassVar[str] = "model"
    description: ClassVar[str] = ""
    task_kinds: ClassVar[tuple[str, ...]] = ("spectrum", "modes", "scalar")
    default_params: ClassVar[dict[str, Any]] = {}
    task_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    legacy_params: ClassVar[dict[str, Any]] = {}
    param_types: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: Mapping[str, Any] | None = None, *, seed: int = 0, device: str = "auto"):
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.default_params))
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(unknown)} for model {self.name!r}",
                f"valid parameters: {', '.join(sorted(self.default_params)) or '(none)'}",
            )
        self.params: dict[str, Any] = {**self.default_params, **params}
        self._given_params = frozenset(params)
        self.seed = int(seed)
        self.device = device
        self.task: Task | None = None
        #: per-epoch metrics of the last fit (list of dicts with at least ``epoch``)
        self.history: list[dict[str, float]] = []
        #: why training stopped, one dict per trained network (``member``, ``epochs_run``,
        #: ``best_epoch``, ``stopped_by``); empty for models without epochs
        self.stops: list[dict[str, Any]] = []

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Hyperparameters sampled from an Optuna ``trial`` (default: none to tune)."""
        return {}

    # ------------------------------------------------------------------ contract
    @abstractmethod
    def fit(
        self, train: PhononData, valid: PhononData | None = None, callbacks: Sequence[EpochCallback] = ()
    ) -> Model:
        """Train on ``train``; ``valid`` is used only for early stopping/model selection."""

    @abstractmethod
    def predict(self, data: PhononData) -> np.ndarray:
        """Predictions of shape ``(len(data), task.n_outputs)`` in the task's unit."""

    def n_parameters(self) -> int | None:
        """Number of trainable parameters (``None`` when it has no meaning)."""
        return None

    def save(self, path: str | Path) -> None:
        """Write the fitted model to ``path`` (a directory).

        Optional capability: a model without persistence keeps this default, which raises
        ``NotImplementedError``; the runner then records the run without a checkpoint.
        """
        raise NotImplementedError(f"model {self.name!r} cannot be saved")

    @classmethod
    def load(cls, path: str | Path) -> Model:
        """Read a model written by :meth:`save` (optional capability, see :meth:`save`)."""
        raise NotImplementedError(f"model {cls.name!r} cannot be loaded")

    # ------------------------------------------------------------------ helpers
    def check_task(self, data: PhononData) -> None:
        """Raise :class:`ModelError` if the data's task kind is unsupported; remember the task."""
        if data.task.kind not in self.task_kinds:
            raise ModelError(
                f"model {self.name!r} does not support {data.task.kind!r} tasks",
                f"it supports: {', '.join(self.task_kinds)}",
            )
        if len(data) == 0:
            raise ModelError(f"model {self.name!r} got an empty training set", "check the split")
        self.task = data.task
        kind_defaults = self.task_defaults.get(data.task.kind, {})
        for key in {k for d in self.task_defaults.values() for k in d} - self._given_params:
            self.params[key] = kind_defaults.get(key, self.default_params[key])

    def check_fitted(self) -> Task:
        if self.task is None:
            raise ModelError(f"model {self.name!r} is not fitted", "call fit() or load() first")
        return self.task

    def _write_meta(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        from phonbench.io import write_json_atomic

        task = self.check_fitted()
        meta = {"model": self.name, "params": self.params, "seed": self.seed, "task": task.as_dict()}
        write_json_atomic(Path(path) / "model.json", {**meta, **(extra or {})})

    @classmethod
    def _read_meta(cls, path: Path) -> tuple[Model, dict[str, Any]]:
        from phonbench.datasets.base import Task

        file = Path(path) / "model.json"
        if not file.exists():
            raise ModelError(f"no saved model at {path}", "pass a directory written by Model.save()")
        meta = json.loads(file.read_text())
        if meta.get("model") != cls.name:
            raise ModelError(f"{path} holds model {meta.get('model')!r}, not {cls.name!r}")
        model = cls({**cls.legacy_params, **meta["params"]}, seed=meta["seed"])
        task = dict(meta["task"])
        if task.get("grid") is not None:
            task["grid"] = tuple(task["grid"])
        model.task = Task(**task)
        return model, meta
