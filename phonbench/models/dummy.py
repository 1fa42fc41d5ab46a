"""``dummy``: predicts the training-set mean of every output (masked mean for padded modes).

Every leaderboard shows it as the floor a real model must beat.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from phonbench.models.base import EpochCallback, Model

if TYPE_CHECKING:
    from phonbench.datasets.base import PhononData


class DummyModel(Model):
    """Mean baseline: ``predict`` returns the per-output training mean, shape ``(n, d)``.

    For ``modes`` tasks each output's mean is taken over the materials where that mode is real;
    an output that is padding in every training material predicts 0.
    """

    name = "dummy"
    task_kinds = ("spectrum", "modes", "scalar")
    description = "training-set mean of every output (masked mean for padded modes)"
    default_params: dict = {}

    def fit(
        self, train: PhononData, valid: PhononData | None = None, callbacks: Sequence[EpochCallback] = ()
    ) -> DummyModel:
        self.check_task(train)
        mask = train.effective_mask()
        counts = mask.sum(axis=0)
        sums = np.where(mask, train.targets, 0.0).sum(axis=0)
        self.mean_ = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        return self

    def predict(self, data: PhononData) -> np.ndarray:
        self.check_fitted()
        return np.tile(self.mean_, (len(data), 1))

    def n_parameters(self) -> int:
        return int(self.mean_.size) if hasattr(self, "mean_") else 0

    def save(self, path: str | Path) -> None:
        self._write_meta(Path(path), {"mean": self.mean_.tolist()})

    @classmethod
    def load(cls, path: str | Path) -> DummyModel:
        model, meta = cls._read_meta(Path(path))
        model.mean_ = np.asarray(meta["mean"], dtype=np.float64)
        return model
