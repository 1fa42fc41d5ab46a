"""Shared training loop of every torch model: :class:`TorchModel`.

A concrete torch model subclasses :class:`TorchModel` and implements a few hooks; ``fit``,
``predict``, ``save``, ``load`` and ``n_parameters`` come from here:

* :meth:`TorchModel.featurize` — ``PhononData`` → list of per-material items (e.g. PyG ``Data``).
* :meth:`TorchModel.collate` — list of items → batch (default: ``torch_geometric`` ``Batch``).
* :meth:`TorchModel.infer_config` — JSON-serialisable dict derived from the training items (e.g. a
  mean neighbour count); saved in ``model.json`` and handed back to :meth:`build_module` on load.
* :meth:`TorchModel.build_module` — ``(task, config)`` → ``torch.nn.Module``.
* :meth:`TorchModel.forward` — ``(module, batch)`` → ``(B, d)`` tensor in *normalised* target space.
* :meth:`TorchModel.augment` — optional training-time augmentation of a batch's items.

Target space: for ``modes`` and ``scalar`` tasks targets are standardised with one mean and one
standard deviation over all real (unmasked) training entries; spectra are already max-normalised
and are used as they are. The loss (MSE or L1) is masked, so zero padding of ``modes`` targets never
contributes. ``predict`` un-standardises, so it returns values in the task's unit.

Training: AdamW (the fused kernel for float32 parameters), an LR schedule (``exponential`` with
factor ``lr_decay`` per epoch; ``cosine``, annealed to zero over ``epochs`` or, when ``max_time_s``
is set, over whichever of the epoch and time budgets runs out first, so a time-capped run still ends
at a small LR; ``plateau``; or ``none``), gradient-norm clipping (``clip``; 0 disables), optional
seed ensembles (``ensemble``, see :mod:`phonbench.models.ensemble`), early stopping on the
validation loss (``patience`` epochs without improvement; the training loss is monitored when no
validation set is given), optionally an exponential moving average of the weights (``ema_decay``
per step; validation, checkpoints and the final model then use the averaged weights), optionally
``torch.compile`` of the training steps (``compile``: true, false or auto — see
:func:`~phonbench.models.torch_utils.compile_wanted`; validation and ``predict`` stay eager), the best
epoch's weights kept in memory and restored at the end, a wall
clock budget ``max_time_s`` (counted from the start of ``fit``, featurisation included; training
stops before an epoch that would overrun it), a ``rich`` progress bar (off when stderr is not a TTY
or ``PHONBENCH_NO_PROGRESS`` is set) and per-epoch callbacks
``cb(epoch, {"epoch", "train_loss", "valid_loss", "lr", "epoch_time_s"})``; epochs count from 1 and an
exception raised by a callback (e.g. ``optuna.TrialPruned``) propagates out of ``fit``.

Determinism: ``fit`` seeds torch (``torch.manual_seed``) before building the module, shuffles with
``numpy.random.default_rng(seed)`` and runs with ``torch.use_deterministic_algorithms(True,
warn_only=True)`` (restored afterwards); with the same seed and data, CPU predictions are identical.
Threads: ``PHONBENCH_NUM_THREADS`` (if set), else the class attribute ``num_threads`` (if not
``None``), fixes ``torch.set_num_threads`` during ``fit``/``predict`` (restored afterwards).
"""

from __future__ import annotations

import io
import math
import time
from abc import abstractmethod
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np

from phonbench.exceptions import ConfigError, ModelError
from phonbench.models.base import EpochCallback, Model
from phonbench.models.torch_utils import (
    BudgetCosine,
    WeightAverage,
    check_modes_per_site,
    compile_module,
    compile_wanted,
    deterministic,
    make_optimizer,
    masked_loss,
    num_threads_context,
    progress_enabled,
    resolve_device,
    to_device,
)

if TYPE_CHECKING:
    import torch

    from phonbench.datasets.base import PhononData, Task

WEIGHTS_FILE = "weights.pt"

#: Training hyperparameters shared by all torch models; a model merges them into its
#: ``default_params`` (``default_params = {**TRAIN_DEFAULTS, "lr": 5e-3, ...}``).
TRAIN_DEFAULTS: dict[str, Any] = {
    "batch_size": 32,  # materials per optimisation step
    "epochs": 100,  # maximum number of epochs
    "lr": 1e-3,  # initial learning rate of AdamW
    "weight_decay": 0.0,  # AdamW decoupled weight decay
    "lr_schedule": "exponential",  # exponential | cosine | plateau | none
    "lr_decay": 1.0,  # exponential: LR factor per epoch; plateau: factor on a plateau
    "patience": 20,  # early stopping: epochs without validation improvement (0 disables)
    "clip": 0.0,  # max gradient L2 norm (0 disables clipping)
    "max_time_s": 0.0,  # wall-clock budget of fit() in seconds (0 = unlimited)
    "loss": "mse",  # mse | l1, masked over real entries, in normalised target space
    "ema_decay": 0.0,  # exponential moving average of the weights per step (0 = off), e.g. 0.995
    "compile": False,  # torch.compile the training steps: true | false | auto (when a compiler is found)
    "ensemble": 1,  # independently seeded networks whose outputs are averaged (phonbench.models.ensemble)
}

_SCHEDULES = ("exponential", "cosine", "plateau", "none")


_LOSSES = ("mse", "l1")
_COMPILE_VALUES = ("true", "false", "auto", "1", "0", "yes", "no", "none", "")


class TorchModel(Model):
    """Base class of torch models (see the module docstring for the hooks and the loop).

    Class attributes:
        standardize_kinds: task kinds whose targets are standardised (mean/std) for training.
        predict_batch_size: materials per batch in :meth:`predict` and validation.
        num_threads: torch intra-op threads during ``fit``/``predict`` (``None``: torch's default);
            ``PHONBENCH_NUM_THREADS`` overrides it.
    """

    default_params: ClassVar[dict[str, Any]] = dict(TRAIN_DEFAULTS)
    #: declared types where the default's type is too narrow (``compile`` takes true, false or auto)
    param_types: ClassVar[dict[str, Any]] = {"compile": object}
    standardize_kinds: ClassVar[tuple[str, ...]] = ("modes", "scalar")
    predict_batch_size: ClassVar[int] = 128
    num_threads: ClassVar[int | None] = None

    def __init__(self, params: Mapping[str, Any] | None = None, *, seed: int = 0, device: str = "auto"):
        super().__init__(params, seed=seed, device=device)
        self._check_train_params()
        self.module: torch.nn.Module | None = None
        self.config_: dict[str, Any] = {}
        self.target_mean_: float = 0.0
        self.target_std_: float = 1.0
        self.best_epoch_: int | None = None

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def featurize(self, data: PhononData) -> list[Any]:
        """Per-material items (e.g. PyG ``Data``), one per row of ``data``, in order."""

    def collate(self, items: Sequence[Any]) -> Any:
        """Batch of items (default: ``torch_geometric.data.Batch.from_data_list``)."""
        from torch_geometric.data import Batch

        return Batch.from_data_list(list(items))

    def infer_config(self, task: Task, items: Sequence[Any]) -> dict[str, Any]:
        """JSON-serialisable module configuration derived from training items (default: ``{}``)."""
        return {}

    @abstractmethod
    def build_module(self, task: Task, config: Mapping[str, Any]) -> torch.nn.Module:
        """The network for ``task``; ``config`` is what :meth:`infer_config` returned."""

    def forward(self, module: torch.nn.Module, batch: Any) -> torch.Tensor:
        """``(B, d)`` predictions of ``batch`` in normalised target space."""
        return module(batch)

    def augment(self, items: Sequence[Any], rng: np.random.Generator) -> Sequence[Any]:
        """Training-time augmentation of one batch's items (default: none)."""
        return items

    def acoustic_zero(self, task: Task) -> float | None:
        """0 THz in the standardised target space, for models that pin the three acoustic Γ modes.

        Returns ``None`` unless ``task`` is a ``modes`` task and the model has a true
        ``acoustic_zeros`` parameter (see :func:`~phonbench.models.torch_utils.with_acoustic_zeros`;
        ``fit`` then checks that every mask holds 3 modes per site). Call from ``build_module``.
        """
        if task.kind != "modes" or not self.params.get("acoustic_zeros"):
            return None
        return -self.target_mean_ / self.target_std_

    # ------------------------------------------------------------------ checks
    def _check_train_params(self) -> None:
        p = self.params
        if p.get("lr_schedule", "none") not in _SCHEDULES:
            raise ConfigError(f"unknown lr_schedule {p['lr_schedule']!r}", f"use one of {_SCHEDULES}")
        if p.get("loss", "mse") not in _LOSSES:
            raise ConfigError(f"unknown loss {p['loss']!r}", f"use one of {_LOSSES}")
        if str(p.get("compile", False)).strip().lower() not in _COMPILE_VALUES:
            raise ConfigError(f"compile={p['compile']!r} is not true, false or auto", "use compile=auto or false")
        for key in ("batch_size", "epochs", "ensemble"):
            if key in p and (int(p[key]) < 1):
                raise ConfigError(f"{key}={p[key]!r} must be a positive integer")
        if "lr" in p and not float(p["lr"]) > 0:
            raise ConfigError(f"lr={p['lr']!r} must be positive")
        if "acoustic_zeros" in p and not isinstance(p["acoustic_zeros"], bool):
            raise ConfigError(f"acoustic_zeros={p['acoustic_zeros']!r} must be true or false")

    # ------------------------------------------------------------------ target scaling
    def _fit_scaler(self, data: PhononData) -> None:
        if data.task.kind in self.standardize_kinds:
            real = data.targets[data.effective_mask()]
            self.target_mean_ = float(real.mean())
            std = float(real.std())
            self.target_std_ = std if std > 1e-12 else 1.0
        else:
            self.target_mean_, self.target_std_ = 0.0, 1.0

    def _scaled_targets(self, data: PhononData) -> tuple[torch.Tensor, torch.Tensor | None]:
        import torch

        y = (data.targets - self.target_mean_) / self.target_std_
        y_t = torch.as_tensor(y, dtype=torch.float32)
        mask = None if data.mask is None else torch.as_tensor(data.mask, dtype=torch.bool)
        return y_t, mask

    # ------------------------------------------------------------------ fit
    def fit(
        self, train: PhononData, valid: PhononData | None = None, callbacks: Sequence[EpochCallback] = ()
    ) -> TorchModel:
        import torch

        from phonbench.models.ensemble import MeanEnsemble, member_seed

        start = time.perf_counter()
        self.check_task(train)
        self._check_train_params()  # again: check_task may have applied task_defaults
        if self.params.get("acoustic_zeros"):
            for part in (train, valid):
                if part is not None:
                    check_modes_per_site(part)
        device = resolve_device(self.device)
        self.device_used = str(device)
        with num_threads_context(self.num_threads), deterministic():
            self.threads_used = torch.get_num_threads()
            torch.manual_seed(self.seed)
            rng = np.random.default_rng(self.seed)
            train_items = self.featurize(train)
            valid_items = self.featurize(valid) if valid is not None and len(valid) else None
            self._fit_scaler(train)
            self.config_ = dict(self.infer_config(train.task, train_items))
            y_train, m_train = self._scaled_targets(train)
            valid_batches = None
            if valid_items is not None:
                y_valid, m_valid = self._scaled_targets(valid)  # type: ignore[arg-type]
                valid_batches = self._fixed_batches(valid_items, y_valid, m_valid, device)
            n_members, budget = int(self.params.get("ensemble", 1)), float(self.params.get("max_time_s", 0.0) or 0.0)
            members, best_epochs = [], []
            self.history, self.stops = [], []
            for j in range(n_members):
                seed = member_seed(self.seed, j)
                torch.manual_seed(seed)
                module = self.build_module(train.task, self.config_).to(device)
                rng = rng if j == 0 else np.random.default_rng(seed)
                self.module = module
                member_start = time.perf_counter()
                elapsed = member_start - start
                share = (budget - elapsed) / (n_members - j) if budget else 0.0
                # member 0's clock starts with fit (featurisation counts against it), the others' with themselves
                clock, member_budget = (start, elapsed + share) if j == 0 else (member_start, max(share, 1e-9))
                self._train_loop(module, train_items, y_train, m_train, valid_batches, rng, device, callbacks,
                                 clock, member_budget if budget else 0.0, member=j if n_members > 1 else None)
                members.append(module)
                best_epochs.append(self.best_epoch_)
            self.module = members[0] if n_members == 1 else MeanEnsemble(members)
            self.best_epoch_ = best_epochs[0] if n_members == 1 else best_epochs
        return self

    def _fixed_batches(self, items, y, mask, device) -> list[tuple[Any, Any, Any]]:
        """Validation batches, collated once: ``(batch, targets, mask or None)``."""
        bs = self.predict_batch_size
        return [(to_device(self.collate(items[lo : lo + bs]), device), y[lo : lo + bs].to(device),
                 None if mask is None else mask[lo : lo + bs].to(device)) for lo in range(0, len(items), bs)]

    def _train_loop(self, module, items, y, mask, valid_batches, rng, device, callbacks, start, budget,
                    member: int | None = None) -> None:
        """Train one network; appends to ``self.history`` (with ``member`` for ensembles).

        ``budget`` (s, 0 = none) is counted from ``start``; callbacks get a running epoch number
        over all members, so it keeps increasing through an ensemble.
        """
        import torch
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        p = self.params
        epochs, patience = int(p["epochs"]), int(p.get("patience", 0) or 0)
        loss_kind = p.get("loss", "mse")
        opt, sched = make_optimizer(module, self.params, budget)
        compiling = compile_wanted(p.get("compile"), device, epochs)
        step_module = compile_module(module, self.name) if compiling else module
        ema = WeightAverage(module, p["ema_decay"]) if float(p.get("ema_decay", 0.0) or 0.0) > 0 else None
        offset, mine, reason = len(self.history), [], "epochs reached"
        best_loss, best_state, best_epoch, stale = math.inf, None, None, 0
        label = self.name if member is None else f"{self.name} [{member + 1}/{p['ensemble']}]"
        columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[info]}"))
        with Progress(*columns, transient=True, disable=not progress_enabled()) as progress:
            note = "torch.compile of the training step (once, 1-2 min; -p compile=false skips it)"
            bar = progress.add_task("epochs", total=epochs, info=note if compiling else "")
            for epoch in range(1, epochs + 1):
                t0 = time.perf_counter()
                if budget and mine:
                    mean_epoch = float(np.mean([h["epoch_time_s"] for h in mine]))
                    if (t0 - start) + mean_epoch > budget:
                        reason = "time budget (max_time_s)"
                        break
                if isinstance(sched, BudgetCosine):
                    sched.set_lr(epoch, t0 - start)
                lr = float(opt.param_groups[0]["lr"])
                train_loss = self._train_epoch(step_module, items, y, mask, opt, ema, rng, device, epoch)
                record: dict[str, float] = {"epoch": epoch, "train_loss": train_loss, "lr": lr}
                if member is not None:
                    record["member"] = member
                monitor = train_loss
                with ema.applied() if ema is not None else nullcontext():
                    if valid_batches is not None:
                        monitor = record["valid_loss"] = self._evaluate(module, valid_batches, loss_kind)
                    if monitor < best_loss:
                        best_loss, best_epoch, stale = monitor, epoch, 0
                        best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                    else:
                        stale += 1
                if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    sched.step(monitor)
                elif sched is not None and not isinstance(sched, BudgetCosine):
                    sched.step()
                record["epoch_time_s"] = time.perf_counter() - t0
                self.history.append(record)
                mine.append(record)
                shown = [k for k in ("train_loss", "valid_loss") if k in record]
                info = " ".join(f"{k.split('_')[0]} {record[k]:.4g}" for k in shown)
                progress.update(bar, advance=1, info=info)
                for cb in callbacks:
                    cb(offset + epoch, dict(record))
                if patience and stale >= patience:
                    reason = "early stopping (patience)"
                    break
        if best_state is not None:
            module.load_state_dict(best_state)
        self.best_epoch_ = best_epoch
        self.stops.append({"member": member or 0, "epochs_run": len(mine), "best_epoch": best_epoch,
                           "stopped_by": reason})

    def _train_epoch(self, module, items, y, mask, opt, ema, rng, device, epoch: int) -> float:
        """One pass over shuffled ``items``; returns the mean training loss (weighted by entries).

        ``module`` may be the ``torch.compile`` wrapper of ``self.module`` (same parameters).
        """
        import torch

        n, bs, clip = len(items), int(self.params["batch_size"]), float(self.params.get("clip", 0.0) or 0.0)
        module.train()
        total, weight = 0.0, 0.0
        for idx in np.array_split(rng.permutation(n), max(1, math.ceil(n / bs))):
            batch = to_device(self.collate(self.augment([items[i] for i in idx], rng)), device)
            it = torch.as_tensor(idx)
            yb, mb = y[it].to(device), None if mask is None else mask[it].to(device)
            opt.zero_grad(set_to_none=True)
            loss = masked_loss(self.forward(module, batch), yb, mb, self.params.get("loss", "mse"))
            if not torch.isfinite(loss):
                raise ModelError(f"model {self.name!r}: training loss became {loss.item()} at epoch {epoch}",
                                 "lower lr or enable gradient clipping (clip > 0)")
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
            opt.step()
            if ema is not None:
                ema.update()
            w = float(mb.sum()) if mb is not None else float(yb.numel())
            total, weight = total + float(loss.detach()) * w, weight + w
        return total / max(weight, 1.0)

    def _evaluate(self, module, batches, loss_kind: str) -> float:
        import torch

        module.eval()
        total, weight = 0.0, 0.0
        with torch.no_grad():
            for batch, yb, mb in batches:
                loss = masked_loss(self.forward(module, batch), yb, mb, loss_kind)
                w = float(mb.sum()) if mb is not None else float(yb.numel())
                total, weight = total + float(loss) * w, weight + w
        return total / max(weight, 1.0)

    # ------------------------------------------------------------------ predict
    def predict(self, data: PhononData) -> np.ndarray:
        """Predictions ``(len(data), task.n_outputs)`` in the task's unit (float64)."""
        import torch

        task = self.check_fitted()
        if self.module is None:
            raise ModelError(f"model {self.name!r} has no network", "call fit() or load() first")
        if len(data) == 0:
            return np.zeros((0, task.n_outputs))
        device = next(iter(self.module.parameters())).device
        with num_threads_context(self.num_threads), deterministic():
            items = self.featurize(data)
            self.module.eval()
            outs = []
            with torch.no_grad():
                for lo in range(0, len(items), self.predict_batch_size):
                    batch = to_device(self.collate(items[lo : lo + self.predict_batch_size]), device)
                    outs.append(self.forward(self.module, batch).detach().cpu().double().numpy())
        pred = np.concatenate(outs, axis=0)
        return pred * self.target_std_ + self.target_mean_

    def n_parameters(self) -> int | None:
        if self.module is None:
            return None
        return int(sum(p.numel() for p in self.module.parameters() if p.requires_grad))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write ``model.json`` (params, task, scaler, config, history) and ``weights.pt``."""
        import torch

        from phonbench.io import write_bytes_atomic

        if self.module is None:
            raise ModelError(f"model {self.name!r} is not fitted", "call fit() before save()")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.module.state_dict().items()}, buf)
        write_bytes_atomic(path / WEIGHTS_FILE, buf.getvalue())
        meta = {"target_mean": self.target_mean_, "target_std": self.target_std_, "config": self.config_,
                "best_epoch": self.best_epoch_, "n_parameters": self.n_parameters(), "history": self.history}
        self._write_meta(path, meta)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> TorchModel:
        """Read a model written by :meth:`save` (weights loaded with ``weights_only=True``)."""
        import torch

        path = Path(path)
        model, meta = cls._read_meta(path)
        assert isinstance(model, TorchModel)
        model.device = device
        model.target_mean_ = float(meta.get("target_mean", 0.0))
        model.target_std_ = float(meta.get("target_std", 1.0))
        model.config_ = dict(meta.get("config") or {})
        model.best_epoch_ = meta.get("best_epoch")
        model.history = list(meta.get("history") or [])
        weights = path / WEIGHTS_FILE
        if not weights.exists():
            raise ModelError(f"no weights file {weights}", "pass a directory written by save()")
        dev = resolve_device(device)
        from phonbench.models.ensemble import MeanEnsemble

        members = [model.build_module(model.check_fitted(), model.config_)
                   for _ in range(int(model.params.get("ensemble", 1)))]
        module = members[0] if len(members) == 1 else MeanEnsemble(members)
        try:
            state = torch.load(weights, map_location=dev, weights_only=True)
            module.load_state_dict(state)
        except (RuntimeError, OSError, KeyError) as exc:
            raise ModelError(f"cannot load weights from {weights}: {exc}", "re-save the model") from exc
        model.module = module.to(dev)
        return model
