"""Small torch helpers of the shared trainer (:mod:`phonbench.models.training`).

Device choice, masked losses, moving tensors/batches between devices, the progress-bar switch,
thread and determinism context managers, the weight moving average and the time-aware cosine
LR schedule. Each is independent of :class:`~phonbench.models.training.TorchModel`.
"""

from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from phonbench.exceptions import ConfigError, ModelError

if TYPE_CHECKING:
    import torch

NO_PROGRESS_ENV = "PHONBENCH_NO_PROGRESS"
NUM_THREADS_ENV = "PHONBENCH_NUM_THREADS"
NO_COMPILE_ENV = "PHONBENCH_NO_COMPILE"  # set: compile="auto" means eager (tests, debugging)


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu``/``cuda[:i]`` as given.

    Raises:
        ConfigError: ``cuda`` requested but not available, or an unknown device string.
    """
    import torch

    name = str(device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available", "use device='auto' or 'cpu'")
        return torch.device(name)
    raise ConfigError(f"unknown device {device!r}", "use 'auto', 'cpu' or 'cuda'")


def masked_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, kind: str = "mse") -> torch.Tensor:
    """Mean of the element-wise loss over entries where ``mask`` is True.

    Args:
        pred: ``(B, d)`` predictions (normalised target space).
        target: ``(B, d)`` targets.
        mask: ``(B, d)`` bool (True = real entry) or ``None`` (all real).
        kind: ``mse`` or ``l1``.
    """
    diff = pred - target
    err = diff * diff if kind == "mse" else diff.abs()
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype)
    return (err * m).sum() / m.sum().clamp_min(1.0)


def with_acoustic_zeros(pred: torch.Tensor, n_atoms: torch.Tensor, zero: float) -> torch.Tensor:
    """Γ-point modes with the three acoustic modes pinned at zero frequency (acoustic sum rule).

    A material with ``N`` atoms has ``3N`` Γ modes, three of them acoustic with frequency exactly
    0. The first ``3N - 3`` entries of ``pred`` are read as the optical modes; three entries equal
    to ``zero`` (0 THz in the network's target space) join them and the ``3N`` values are sorted
    in descending order, like the targets (imaginary modes, stored as negative frequencies, stay
    below the zeros). Entries from ``3N`` on (padding) are returned unchanged. Differentiable.

    Args:
        pred: ``(B, d)`` network outputs, ``d = 3 N_max``.
        n_atoms: ``(B,)`` atoms per material.
        zero: value of 0 THz in the target space of ``pred`` (``-mean / std`` when standardised).
    """
    import torch

    position = torch.arange(pred.shape[1], device=pred.device)[None, :]
    n_modes = 3 * n_atoms.to(torch.long)[:, None]
    filled = torch.where(position < n_modes - 3, pred, torch.where(position < n_modes, zero, -math.inf))
    ordered = filled.sort(dim=1, descending=True).values
    return torch.where(position < n_modes, ordered, pred)


def check_modes_per_site(data: Any) -> None:
    """Raise :class:`DataError` unless every masked ``modes`` row holds 3 × (sites) modes.

    :func:`with_acoustic_zeros` reads a row as all Γ modes of its cell; ``data`` is a
    :class:`~phonbench.datasets.base.PhononData` (rows without a mask or structure are not checked).
    """
    from phonbench.exceptions import DataError

    if data.task.kind != "modes" or data.mask is None:
        return
    for i, (structure, count) in enumerate(zip(data.structures, data.mask.sum(axis=1))):
        if structure is not None and count != 3 * len(structure):
            raise DataError(
                f"material {data.ids[i]!r} has {count} real modes for {len(structure)} sites, not 3 per site",
                "acoustic_zeros needs every Γ mode of the cell; pass acoustic_zeros=false",
            )


def to_device(obj: Any, device: torch.device) -> Any:
    """Move a tensor, PyG batch (anything with ``.to``) or a tuple/list/dict of them to ``device``."""
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if hasattr(obj, "to"):
        return obj.to(device)
    return obj


def progress_enabled() -> bool:
    """True when a progress bar should be drawn (stderr is a TTY and not disabled by env)."""
    return not os.environ.get(NO_PROGRESS_ENV) and sys.stderr.isatty()


@contextmanager
def num_threads_context(default: int | None = None) -> Iterator[None]:
    """Use ``PHONBENCH_NUM_THREADS`` (else ``default``; else torch's setting) torch threads inside."""
    import torch

    value = os.environ.get(NUM_THREADS_ENV) or (str(default) if default else "")
    if not value:
        yield
        return
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{NUM_THREADS_ENV}={value!r} is not a positive integer", "unset it or give e.g. 2")
    old = torch.get_num_threads()
    torch.set_num_threads(int(value))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def deterministic() -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` inside, previous state after.

    Costs ~1 % of an ``e3nn`` training step on CPU (measured), where results are already
    reproducible; it matters for CUDA scatter/index kernels.
    """
    import torch

    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


class WeightAverage:
    """Exponential moving average of a module's parameters (warm-up: ``min(d, (1+t)/(10+t))``)."""

    def __init__(self, module: Any, decay: float):
        self.decay, self.steps = float(decay), 0
        self.params = [p for p in module.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]

    def update(self) -> None:
        import torch

        self.steps += 1
        d = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        with torch.no_grad():
            torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Temporarily load the averaged weights into the module."""
        import torch

        backup = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            torch._foreach_copy_([p.data for p in self.params], self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_([p.data for p in self.params], backup)


class BudgetCosine:
    """Cosine annealing from the initial LR to 0 over an epoch budget and an optional time budget.

    Before epoch ``e`` (1-based) that starts ``elapsed_s`` seconds into ``fit``, the progress is
    ``max((e - 1) / epochs, elapsed_s / max_time_s)`` (the time term only when ``max_time_s > 0``)
    and the LR is ``lr0 * (1 + cos(pi * progress)) / 2``. Without a time budget this is exactly
    ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=epochs)``.
    """

    def __init__(self, opt: Any, epochs: int, max_time_s: float = 0.0):
        self.opt, self.epochs, self.max_time_s = opt, max(int(epochs), 1), float(max_time_s)
        self.base_lrs = [float(g["lr"]) for g in opt.param_groups]

    def progress(self, epoch: int, elapsed_s: float) -> float:
        frac = (epoch - 1) / self.epochs
        if self.max_time_s > 0:
            frac = max(frac, elapsed_s / self.max_time_s)
        return min(max(frac, 0.0), 1.0)

    def set_lr(self, epoch: int, elapsed_s: float) -> None:
        scale = 0.5 * (1.0 + math.cos(math.pi * self.progress(epoch, elapsed_s)))
        for group, base in zip(self.opt.param_groups, self.base_lrs):
            group["lr"] = base * scale


class _CompiledStep:
    """Calls a ``torch.compile`` wrapper, turning a compiler failure into one :class:`ModelError`."""

    def __init__(self, compiled: Any, name: str):
        self.compiled, self.name = compiled, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.compiled(*args, **kwargs)
        except Exception as exc:  # inductor/dynamo raise many types (missing compiler, unsupported op)
            if "dynamo" not in type(exc).__module__ and "inductor" not in type(exc).__module__:
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"model {self.name!r}: torch.compile failed ({first})",
                             "set compile=false (e.g. --param compile=false)") from exc

    def train(self, mode: bool = True) -> Any:
        return self.compiled.train(mode)

    def eval(self) -> Any:
        return self.compiled.eval()


def compile_module(module: Any, name: str) -> Any:
    """``torch.compile(module, dynamic=True)`` (graphs vary in size) behind a clear-error wrapper.

    Compilation happens on the first call (tens of seconds on CPU, where it needs a C++ compiler);
    the compiled module shares ``module``'s parameters, so optimisers, EMA and checkpoints are
    unaffected.
    """
    import torch

    return _CompiledStep(torch.compile(module, dynamic=True), name)


#: ``compile="auto"`` compiles only runs of at least this many epochs: compiling costs one to two
#: minutes on CPU and saves ~28 % of an e3nn epoch, so short runs (smoke tests, tuning trials with
#: a few epochs) are faster eager (a 2-epoch e3nn run: 150 s compiled vs 2 s eager).
COMPILE_MIN_EPOCHS = 50


def compile_wanted(setting: Any, device: torch.device, epochs: int | None = None) -> bool:
    """Whether to ``torch.compile`` the training steps for the ``compile`` parameter ``setting``.

    ``True``/``False`` (or their spellings ``"true"``/``"false"``/``1``/``0``) are obeyed;
    ``"auto"`` compiles when it pays and the backend can: ``epochs`` (when given) is at least
    :data:`COMPILE_MIN_EPOCHS`, and on CPU a C++ compiler (``$CXX``, ``c++``, ``g++`` or
    ``clang++``) is on the PATH, on CUDA ``triton`` is importable — and never when
    ``PHONBENCH_NO_COMPILE`` is set.

    Raises:
        ConfigError: any other value.
    """
    import importlib.util
    import shutil

    text = str(setting).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", "none", ""):
        return False
    if text != "auto":
        raise ConfigError(f"compile={setting!r} is not true, false or auto", "use compile=auto (the default)")
    if os.environ.get(NO_COMPILE_ENV) or (epochs is not None and epochs < COMPILE_MIN_EPOCHS):
        return False
    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    compilers = [os.environ.get("CXX", ""), "c++", "g++", "clang++"]
    return device.type == "cpu" and any(c and shutil.which(c) for c in compilers)


def make_optimizer(module: Any, params: Any, budget: float = 0.0) -> tuple[Any, Any]:
    """AdamW over ``module``'s parameters and the LR schedule named by ``params["lr_schedule"]``.

    Uses ``params`` keys ``lr``, ``weight_decay``, ``lr_schedule`` (exponential | cosine | plateau |
    none), ``lr_decay``, ``epochs`` and ``patience``; ``budget`` (s) is the time budget the cosine
    schedule anneals over (0 = epochs only). The fused AdamW kernel (CPU and CUDA, float32; the same
    update rule) is ~2x faster per step than the default loop. Returns ``(optimizer, scheduler or None)``.
    """
    import torch

    p = params
    weights = list(module.parameters())
    fused = all(q.dtype == torch.float32 and q.device.type in ("cpu", "cuda") for q in weights)
    opt = torch.optim.AdamW(weights, lr=float(p["lr"]), weight_decay=float(p.get("weight_decay", 0.0)),
                            fused=fused or None)
    kind = p.get("lr_schedule", "exponential")
    decay = float(p.get("lr_decay", 1.0))
    if kind == "exponential":
        return opt, torch.optim.lr_scheduler.ExponentialLR(opt, gamma=decay)
    if kind == "cosine":
        return opt, BudgetCosine(opt, int(p["epochs"]), budget)
    if kind == "plateau":
        factor = decay if 0 < decay < 1 else 0.5
        patience = max(1, int(p.get("patience", 20)) // 4)
        return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=factor, patience=patience)
    return opt, None
