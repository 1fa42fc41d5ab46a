"""``cnn3d``: the 3D convolutional baseline of Chen et al. 2021 (Adv. Sci., supplement Table S3).

Input: the two-channel voxel grid of :mod:`phonbench.featurizers.voxels` (ρ_Z, ρ_m on 32³ points
spanning the cell), standardised per channel with the training-set mean and standard deviation.

Network (``width = 1``): four ``Conv3d`` layers with kernels 5/3/3/3, stride 2, padding
``kernel // 2`` = 2/1/1/1 and ReLU, channels 2 → 1 → 2 → 4 → 8, so 32³ → 16³ → 8³ → 4³ → 2³ and
the flattened map has 8 × 2³ = 64 features → ``Linear(64, 64)`` + ReLU → ``Linear(64, d)``. Padding is circular
(``padding_mode="circular"``) by default because the densities are periodic in the cell; ``zeros``
reproduces a plain CNN. ``width`` multiplies every conv channel count.

Output heads: spectra use ``sigmoid`` by default (each bin in (0, 1), like the max-normalised
targets) or ``relu_max`` (ReLU, then division by the per-material maximum, as in the e3nn tutorial).
With this 64-feature network ``relu_max`` trains badly: bins whose pre-activation turns negative for
every material stop learning (20 of 51 bins were stuck at 0 on the ``dos`` tutorial split, test MSE
0.056 vs 0.034 for ``sigmoid`` after the same 150 s of training);
``modes`` and ``scalar`` tasks use the linear output in standardised target space (the shared
trainer standardises and masks the padded modes).

Augmentation (Chen et al.: four copies of each training cell with randomly shifted origins): every
training material gets ``augment_shifts`` fixed random origin shifts on the voxel lattice (seeded by
the model seed and the material's position in the training set); each time the material is drawn
in a batch one of them, or the unshifted grid, is used. A shift by whole voxels is an exact
``torch.roll`` of the periodic grid, so no re-voxelisation is needed.

Symmetry: the grid is laid out along the lattice vectors, so predictions are invariant to rotations
of the Cartesian frame and to site order, and to translations by whole voxels; a translation by a
fraction of a voxel or another choice of lattice vectors for the same crystal changes the input
(the augmentation teaches approximate translation invariance only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from phonbench.exceptions import ConfigError
from phonbench.models.training import TRAIN_DEFAULTS, TorchModel

if TYPE_CHECKING:
    import torch

    from phonbench.datasets.base import PhononData, Task

SPECTRUM_HEADS: tuple[str, ...] = ("sigmoid", "relu_max")
PADDING_MODES: tuple[str, ...] = ("circular", "zeros")
_KERNELS = (5, 3, 3, 3)
_BASE_CHANNELS = (1, 2, 4, 8)


def build_cnn3d(
    n_outputs: int,
    *,
    n_grid: int = 32,
    width: int = 1,
    hidden: int = 64,
    padding_mode: str = "circular",
    spectrum_head: str | None = None,
    channel_mean: Sequence[float] = (0.0, 0.0),
    channel_std: Sequence[float] = (1.0, 1.0),
) -> torch.nn.Module:
    """The Chen et al. 3D CNN as a ``torch.nn.Module`` mapping ``(B, 2, n, n, n)`` → ``(B, d)``.

    Args:
        n_outputs: output size ``d``.
        n_grid: voxels per direction of the input (32 in the paper; must be divisible by 16).
        width: multiplier of the conv channel counts 1/2/4/8.
        hidden: size of the hidden fully connected layer (64 in the paper).
        padding_mode: ``circular`` (periodic grids) or ``zeros``.
        spectrum_head: ``relu_max``, ``sigmoid`` or ``None`` (linear output).
        channel_mean, channel_std: per-channel input standardisation (stored as buffers).
    """
    import torch
    from torch import nn

    class CNN3D(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            c_in = 2
            for k, c in zip(_KERNELS, _BASE_CHANNELS):
                c_out = c * width
                layers += [nn.Conv3d(c_in, c_out, k, stride=2, padding=k // 2, padding_mode=padding_mode), nn.ReLU()]
                c_in = c_out
            self.convs = nn.Sequential(*layers)
            n_flat = c_in * (n_grid // 16) ** 3
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(n_flat, hidden), nn.ReLU(), nn.Linear(hidden, n_outputs))
            self.register_buffer("mean", torch.tensor(list(channel_mean), dtype=torch.float32).view(1, 2, 1, 1, 1))
            self.register_buffer("std", torch.tensor(list(channel_std), dtype=torch.float32).view(1, 2, 1, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.head(self.convs((x - self.mean) / self.std))
            if spectrum_head == "relu_max":
                out = torch.relu(out)
                out = out / out.amax(dim=1, keepdim=True).clamp_min(1e-6)
            elif spectrum_head == "sigmoid":
                out = torch.sigmoid(out)
            return out

    return CNN3D()


class CNN3DModel(TorchModel):
    """Voxel-grid 3D CNN (Chen et al. 2021, Table S3); ``predict`` returns ``(n, d)``.

    Params (besides the shared trainer's): ``n_grid`` (voxels per direction, divisible by 16),
    ``width`` (conv channel multiplier), ``hidden`` (FC size), ``padding_mode``
    (``circular``/``zeros``), ``spectrum_head`` (``sigmoid``/``relu_max``), ``augment_shifts``
    (random origin shifts per training cell; 0 disables augmentation).
    """

    name = "cnn3d"
    task_kinds = ("spectrum", "modes", "scalar")
    description = "3D CNN on Gaussian Z/mass voxel grids (Chen et al. 2021 baseline)"
    default_params: dict[str, Any] = {
        **TRAIN_DEFAULTS,
        "lr": 3e-3,
        "lr_decay": 0.98,
        "epochs": 200,
        "patience": 30,
        "n_grid": 32,
        "width": 1,
        "hidden": 64,
        "padding_mode": "circular",
        "spectrum_head": "sigmoid",
        "augment_shifts": 4,
    }

    def __init__(self, params: Mapping[str, Any] | None = None, *, seed: int = 0, device: str = "auto"):
        super().__init__(params, seed=seed, device=device)
        p = self.params
        n_grid = p["n_grid"]
        if isinstance(n_grid, bool) or not isinstance(n_grid, (int, np.integer)) or n_grid < 16 or n_grid % 16:
            raise ConfigError(f"n_grid={n_grid!r} must be a positive multiple of 16", "use 32 (the paper's grid)")
        for key in ("width", "hidden"):
            if isinstance(p[key], bool) or not isinstance(p[key], (int, np.integer)) or p[key] < 1:
                raise ConfigError(f"{key}={p[key]!r} must be a positive integer")
        if p["padding_mode"] not in PADDING_MODES:
            raise ConfigError(f"unknown padding_mode {p['padding_mode']!r}", f"use one of {PADDING_MODES}")
        if p["spectrum_head"] not in SPECTRUM_HEADS:
            raise ConfigError(f"unknown spectrum_head {p['spectrum_head']!r}", f"use one of {SPECTRUM_HEADS}")
        if isinstance(p["augment_shifts"], bool) or not isinstance(p["augment_shifts"], (int, np.integer)) or (
            p["augment_shifts"] < 0
        ):
            raise ConfigError(f"augment_shifts={p['augment_shifts']!r} must be an integer >= 0", "0 disables it")

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        """Learning rate, decay, batch size, width and the FC size."""
        return {
            "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
            "lr_decay": trial.suggest_float("lr_decay", 0.95, 1.0),
            "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64]),
            "width": trial.suggest_categorical("width", [1, 2, 4]),
            "hidden": trial.suggest_categorical("hidden", [64, 128]),
            "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        }

    # ------------------------------------------------------------------ hooks
    def featurize(self, data: PhononData) -> list[Any]:
        """One item per material: ``(grid, row)`` with grid a ``(2, n, n, n)`` float32 tensor."""
        import torch

        from phonbench.featurizers.voxels import voxelize

        grids = torch.from_numpy(voxelize(data.structures, int(self.params["n_grid"])))
        return [(grids[i], i) for i in range(len(grids))]

    def collate(self, items: Sequence[Any]) -> torch.Tensor:
        import torch

        return torch.stack([grid for grid, _ in items])

    def infer_config(self, task: Task, items: Sequence[Any]) -> dict[str, Any]:
        """Per-channel mean and standard deviation of the training grids."""
        import torch

        total = torch.zeros(2, dtype=torch.float64)
        total_sq = torch.zeros(2, dtype=torch.float64)
        count = 0
        for grid, _ in items:
            g = grid.reshape(2, -1).double()
            total += g.sum(dim=1)
            total_sq += (g * g).sum(dim=1)
            count += g.shape[1]
        mean = total / max(count, 1)
        std = (total_sq / max(count, 1) - mean * mean).clamp_min(0.0).sqrt()
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        return {"channel_mean": mean.tolist(), "channel_std": std.tolist()}

    def build_module(self, task: Task, config: Mapping[str, Any]) -> torch.nn.Module:
        p = self.params
        return build_cnn3d(
            task.n_outputs,
            n_grid=int(p["n_grid"]),
            width=int(p["width"]),
            hidden=int(p["hidden"]),
            padding_mode=str(p["padding_mode"]),
            spectrum_head=str(p["spectrum_head"]) if task.kind == "spectrum" else None,
            channel_mean=config.get("channel_mean", (0.0, 0.0)),
            channel_std=config.get("channel_std", (1.0, 1.0)),
        )

    def augment(self, items: Sequence[Any], rng: np.random.Generator) -> Sequence[Any]:
        """Replace each grid by one of its ``augment_shifts`` fixed origin shifts or itself."""
        import torch

        k = int(self.params["augment_shifts"])
        if k == 0:
            return items
        n = int(self.params["n_grid"])
        out = []
        for grid, row in items:
            choice = int(rng.integers(0, k + 1))  # 0 = the original cell
            if choice == 0:
                out.append((grid, row))
                continue
            shifts = np.random.default_rng([self.seed, int(row)]).integers(0, n, size=(k, 3))
            s = tuple(int(v) for v in shifts[choice - 1])
            out.append((torch.roll(grid, shifts=s, dims=(1, 2, 3)), row))
        return out
