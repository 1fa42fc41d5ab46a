"""Label agreement between phonondb and Petretto et al. 2018 on the materials both computed.

Both databases are PBEsol; phonondb uses finite displacements (VASP), Petretto DFPT (ABINIT). For
every shared mp-id, phonondb's processed target is scored *as if it were a model's prediction* of
Petretto's target, with the task's own metrics. The result is the noise floor of the task: a model
whose test error is near it cannot be told apart from a second DFT calculation.

* ``dos``: the 51-point max-normalised DoS of both (same processing function), every ``dos`` metric;
* ``gamma``: Γ frequencies (THz) of the materials whose cells have the same number of modes, both
  in the ``gamma`` layout (sorted, padded to 120, masked), every ``gamma`` metric.

Each is reported on all shared materials and on those in the Petretto task's default test split
(the materials the board rows are scored on).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phonbench.datasets.base import PhononData

PAIRS = {"dos": ("dos", "phonondb_dos"), "gamma": ("gamma", "phonondb_gamma")}


def _aligned(petretto: PhononData, phonondb: PhononData) -> tuple[np.ndarray, np.ndarray, int]:
    """Row indices ``(into petretto, into phonondb)`` of shared ids with comparable targets, and the
    number of shared ids left out (Γ mode counts that differ)."""
    where = {m: i for i, m in enumerate(phonondb.ids)}
    rows = [(i, where[m]) for i, m in enumerate(petretto.ids) if m in where]
    dropped = 0
    if petretto.mask is not None:
        width = petretto.task.n_outputs
        kept = []
        for i, j in rows:
            n_modes = int(phonondb.mask[j].sum())
            if n_modes == int(petretto.mask[i].sum()) and n_modes <= width:
                kept.append((i, j))
        dropped, rows = len(rows) - len(kept), kept
    a = np.array([i for i, _ in rows], dtype=np.int64)
    b = np.array([j for _, j in rows], dtype=np.int64)
    return a, b, dropped


def _as_prediction(phonondb: PhononData, rows: np.ndarray, width: int) -> np.ndarray:
    """phonondb targets of ``rows`` cut to ``width`` columns (modes are sorted and padded alike)."""
    return phonondb.targets[rows][:, :width]


def label_agreement(task: str) -> dict[str, Any]:
    """Petretto-vs-phonondb scores for ``task`` (``"dos"`` or ``"gamma"``).

    Returns:
        ``{"task", "n_shared", "n_compared", "n_left_out", "metrics": {metric: value},
        "test_split": name, "n_test": int, "test_metrics": {metric: value}}``.
    """
    from phonbench.metrics import score
    from phonbench.registry import DATASETS

    petretto_ds, phonondb_ds = (DATASETS.get(name)() for name in PAIRS[task])
    petretto, phonondb = petretto_ds.load(), phonondb_ds.load()
    a, b, dropped = _aligned(petretto, phonondb)
    ours = petretto.subset(a)
    pred = _as_prediction(phonondb, b, petretto.task.n_outputs)
    names = list(petretto_ds.card.default_metrics)

    def scores(sel: np.ndarray) -> dict[str, float]:
        part = ours.subset(sel)
        return score(names, part.targets, pred[sel], part.mask, part.task, extras=part.extras)

    split = petretto_ds.split(None, seed=0)
    test_ids = {petretto.ids[i] for i in split.folds[0].test}
    in_test = np.flatnonzero([m in test_ids for m in ours.ids])
    return {"task": task, "n_shared": int(len(a) + dropped), "n_compared": int(len(a)), "n_left_out": int(dropped),
            "metrics": scores(np.arange(len(a))), "test_split": split.name, "n_test": int(len(in_test)),
            "test_metrics": scores(in_test)}
