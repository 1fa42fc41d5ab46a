"""The plugin contract kit (phonbench.testing) run on every built-in dataset, model and metric."""

from __future__ import annotations

import pytest

from phonbench.registry import DATASETS, METRICS, MODELS
from phonbench.testing import DatasetContract, MetricContract, ModelContract

#: small, fast settings of each built-in model for the contract checks
FAST_PARAMS = {
    "dummy": {},
    "composition": {"n_estimators": 10},
    "e3nn": {"epochs": 2},
    "deeper_gatgnn": {"epochs": 2, "n_layers": 2},
    "cnn3d": {"epochs": 2},
}
NON_STRUCTURE = {"dummy", "composition"}
BUNDLED_DATASETS = ["dos", "gamma", "matbench_phonons"]


@pytest.fixture(params=sorted(FAST_PARAMS))
def builtin_model(request):
    if request.param not in MODELS:
        pytest.skip(f"{request.param} not installed")
    return request.param


class TestBuiltinModels(ModelContract):
    @pytest.fixture
    def model_factory(self, builtin_model):
        cls = MODELS.get(builtin_model)
        self.structure_model = builtin_model not in NON_STRUCTURE
        return lambda seed=0: cls(FAST_PARAMS[builtin_model], seed=seed, device="cpu")


class TestBundledDatasets(DatasetContract):
    @pytest.fixture(params=BUNDLED_DATASETS + ["synthetic"])
    def dataset(self, request):
        cls = DATASETS.get(request.param)
        return cls(size=80) if request.param == "synthetic" else cls()


class TestBuiltinMetrics(MetricContract):
    @pytest.fixture(params=sorted(METRICS.names()))
    def metric(self, request):
        return METRICS.get(request.param)
