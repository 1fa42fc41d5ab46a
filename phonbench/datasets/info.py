"""Summary of a dataset for ``phonbench data info NAME``: card, counts, split sizes, statistics."""

from __future__ import annotations

from typing import Any

import numpy as np

from phonbench.datasets.base import Dataset, Split
from phonbench.datasets.bundled import REBUILD_FIX
from phonbench.datasets.grouped_splits import GROUP_LABELS


def _resolve(dataset: Dataset | str) -> Dataset:
    if isinstance(dataset, Dataset):
        return dataset
    from phonbench.registry import DATASETS

    return DATASETS.get(dataset)()


def _stats(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"min": None, "max": None, "mean": None, "std": None}
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "std": float(values.std()),
    }


def _split_info(split: Split, description: str) -> dict[str, Any]:
    """Sizes (and, for grouped splits, distinct group counts) of each fold of ``split``."""
    folds = [{"name": f.name, **f.sizes()} for f in split.folds]
    for fold, counts in zip(folds, split.group_counts() or []):
        fold["groups"] = counts
    return {
        "name": split.name,
        "seed": split.seed,
        "group_kind": split.group_kind,
        "group_label": GROUP_LABELS.get(split.group_kind or "") if split.groups is not None else None,
        "description": split.description or description,
        "folds": folds,
    }


def dataset_info(dataset: Dataset | str, split: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Everything ``phonbench data info`` prints, as a JSON-serialisable dict.

    Args:
        dataset: a :class:`Dataset` instance or a registered dataset name.
        split: split protocol to size (default: the card's default split).
        seed: seed of seeded splits.

    Returns:
        ``{"name", "card", "counts", "split", "split_descriptions", "target_stats", "extras",
        "checksums", "error"}`` where
        ``counts`` has ``materials``, ``outputs`` and ``real_entries`` (entries the mask marks real);
        ``split`` has ``name``, ``seed``, ``group_kind`` and ``group_label`` (what one group is;
        both ``None`` unless grouped), ``description``
        and ``folds`` (list of ``{"name", "train", "valid", "test"}`` sizes; grouped splits add
        ``"groups": {"train", "valid", "test"}``, the number of distinct groups in each part);
        ``split_descriptions`` maps every split of the card to its one-sentence description ("" when
        none is known); ``target_stats`` has ``min``/``max``/``mean``/``std`` over real entries
        (in ``unit``) and ``mask_fraction`` (fraction of the ``(n, d)`` target entries that are real;
        1.0 without padding); ``extras`` lists the per-material extra arrays; ``checksums`` has
        ``files`` (``{file: ok}``) and ``verdict`` (``"ok"``, ``"mismatch"`` or ``"no bundled files"``);
        ``error`` is ``None``, or on a checksum mismatch a one-line message, in which case the data is
        not loaded and ``counts``, ``split``, ``split_descriptions``, ``target_stats`` and
        ``extras`` are ``None``. Datasets with a second label source (phonondb) add
        ``label_agreement`` (see :mod:`phonbench.datasets.label_agreement`).

    Raises:
        RegistryError: unknown dataset name.
        ConfigError: unknown split name.
        DataError: a grouped split that leaves a fold without rows.
    """
    ds = _resolve(dataset)
    files = ds.verify()
    verdict = "no bundled files" if not files else ("ok" if all(files.values()) else "mismatch")
    if verdict == "mismatch":
        bad = ", ".join(name for name, ok in files.items() if not ok)
        return {
            "name": ds.name,
            "card": ds.card.as_dict(),
            "counts": None,
            "split": None,
            "split_descriptions": None,
            "target_stats": None,
            "extras": None,
            "checksums": {"files": files, "verdict": verdict},
            "error": f"sha256 mismatch for {bad} — fix: {REBUILD_FIX}",
        }
    data = ds.load()
    mask = data.effective_mask()
    real = data.targets[mask]
    chosen = ds.split(split, seed=seed)
    descriptions = {name: ds.split_description(name, seed) for name in ds.card.splits}
    return {
        "name": ds.name,
        "card": ds.card.as_dict(),
        "counts": {
            "materials": len(data),
            "outputs": int(data.task.n_outputs),
            "real_entries": int(mask.sum()),
        },
        "split": _split_info(chosen, descriptions.get(chosen.name, "")),
        "split_descriptions": descriptions,
        "target_stats": {
            **_stats(real),
            "unit": data.task.unit,
            "mask_fraction": float(mask.mean()) if mask.size else 0.0,
        },
        "extras": sorted(data.extras),
        "checksums": {"files": files, "verdict": verdict},
        "error": None,
        **_agreement(ds),
    }


def _agreement(ds: Dataset) -> dict[str, Any]:
    """``{"label_agreement": ...}`` for datasets that declare an ``agreement_task`` (phonondb), else ``{}``."""
    task = getattr(ds, "agreement_task", None)
    if not task:
        return {}
    from phonbench.datasets.label_agreement import label_agreement

    return {"label_agreement": label_agreement(task)}
