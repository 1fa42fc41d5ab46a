"""``knn_composition``: average target of the k training materials closest in composition.

Features are element fractions (118-vector, one per material); distance is Euclidean. Works for
every task kind; for padded ``modes`` targets each output is averaged over the neighbours where
that mode is real.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phonbench.models.base import Model


def element_fractions(structures) -> np.ndarray:
    """``(n, 118)`` atomic fractions of each structure's composition."""
    out = np.zeros((len(structures), 118))
    for i, s in enumerate(structures):
        comp = s.composition.fractional_composition
        for el, frac in comp.items():
            out[i, el.Z - 1] += frac
    return out


class KNNCompositionModel(Model):
    """k-nearest-neighbour regression on element fractions.

    Params:
        k: number of neighbours (default 5).
    """

    name = "knn_composition"
    description = "mean target of the k nearest training materials in element-fraction space"
    task_kinds = ("spectrum", "modes", "scalar")
    default_params = {"k": 5}

    @classmethod
    def search_space(cls, trial):
        return {"k": trial.suggest_int("k", 1, 20)}

    def fit(self, train, valid=None, callbacks=()):
        self.check_task(train)
        self.x_ = element_fractions(train.structures)
        self.y_ = np.where(train.effective_mask(), train.targets, 0.0)
        self.m_ = train.effective_mask().astype(float)
        return self

    def predict(self, data):
        self.check_fitted()
        x = element_fractions(data.structures)
        d = ((x[:, None, :] - self.x_[None, :, :]) ** 2).sum(-1)
        k = min(int(self.params["k"]), len(self.x_))
        nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
        weights = self.m_[nearest].sum(axis=1)
        return self.y_[nearest].sum(axis=1) / np.maximum(weights, 1.0)

    def save(self, path):
        path = Path(path)
        self._write_meta(path)
        np.savez(path / "arrays.npz", x=self.x_, y=self.y_, m=self.m_)

    @classmethod
    def load(cls, path):
        model, _ = cls._read_meta(Path(path))
        with np.load(Path(path) / "arrays.npz", allow_pickle=False) as f:
            model.x_, model.y_, model.m_ = f["x"], f["y"], f["m"]
        return model
