"""phonbench: a plugin-registry benchmark suite for machine-learned phonon properties of crystals.

Public API (imported lazily so ``import phonbench`` stays cheap)::

    from phonbench import DATASETS, MODELS, METRICS, load_dataset, run
    result = run("dummy", "synthetic", seed=0)

    from phonbench import Benchmark          # models trained anywhere: see phonbench.protocol
    bench = Benchmark("dos", split="tutorial")
"""

from __future__ import annotations

from typing import Any

from phonbench.exceptions import ConfigError, DataError, PhonbenchError, RegistryError
from phonbench.registry import DATASETS, METRICS, MODELS

__version__ = "0.1.0"

__all__ = [
    "DATASETS",
    "MODELS",
    "METRICS",
    "load_dataset",
    "run",
    "tune",
    "Benchmark",
    "PhonbenchError",
    "RegistryError",
    "DataError",
    "ConfigError",
    "__version__",
]


def load_dataset(name: str, data_dir: str | None = None, **options: Any):
    """The registered dataset ``name`` (call ``.load()`` for records, ``.split()`` for splits)."""
    from phonbench.runner import load_dataset as _load

    return _load(name, data_dir, **options)


def run(model: str, dataset: str, **kwargs: Any):
    """Train and score one (model, dataset) pair; see :func:`phonbench.runner.run`."""
    from phonbench.runner import run as _run

    return _run(model, dataset, **kwargs)


def tune(model: str, dataset: str, **kwargs: Any):
    """Optuna-tune one pair on validation data, then refit and score on test; see :func:`phonbench.tuning.tune`."""
    from phonbench.tuning import tune as _tune

    return _tune(model, dataset, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "Benchmark":  # lazy: the protocol imports the dataset and metric modules
        from phonbench.protocol import Benchmark

        return Benchmark
    raise AttributeError(f"module 'phonbench' has no attribute {name!r}")
