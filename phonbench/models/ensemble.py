"""Seed ensembles of torch models: ``ensemble = k`` trains ``k`` networks and averages them.

:class:`~phonbench.models.training.TorchModel` trains member ``j`` (0-based) exactly like a single
model with seed ``seed + MEMBER_SEED_STRIDE * j`` (member 0 is the single model), each with its own
optimiser, schedule, early stopping and ``max_time_s / k`` share of the time left. The fitted
members are wrapped in :class:`MeanEnsemble`, so prediction, saving and loading treat the ensemble
as one module. Averaging happens in the normalised output space: for spectra that is the mean of
max-normalised spectra; for modes and scalars the mean of standardised outputs (undone afterwards).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

MEMBER_SEED_STRIDE = 1000


def member_seed(seed: int, member: int) -> int:
    """Seed of ensemble member ``member`` for a model with seed ``seed``."""
    return int(seed) + MEMBER_SEED_STRIDE * int(member)


class MeanEnsemble(nn.Module):
    """``forward(batch)`` = mean over ``members`` of ``member(batch)`` — shapes ``(B, d)``."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, batch: Any) -> torch.Tensor:
        return torch.stack([m(batch) for m in self.members]).mean(dim=0)
