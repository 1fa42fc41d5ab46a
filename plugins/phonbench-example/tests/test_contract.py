"""The example plugin passes phonbench's contract kit and is found through entry points."""

from __future__ import annotations

import pytest

from phonbench.registry import DATASETS, METRICS, MODELS
from phonbench.testing import DatasetContract, MetricContract, ModelContract


class TestKNNModel(ModelContract):
    structure_model = False  # composition only

    @pytest.fixture
    def model_factory(self):
        from phonbench_example.model import KNNCompositionModel

        return lambda seed=0: KNNCompositionModel({"k": 3}, seed=seed)


class TestToyDataset(DatasetContract):
    @pytest.fixture
    def dataset(self):
        return DATASETS.get("rocksalt_toy")()


class TestPeakMetric(MetricContract):
    @pytest.fixture
    def metric(self):
        return METRICS.get("peak_position_error")


def test_registered_through_entry_points():
    assert MODELS.provider("knn_composition").distribution == "phonbench-example"
    assert DATASETS.provider("rocksalt_toy").distribution == "phonbench-example"
    assert METRICS.provider("peak_position_error").distribution == "phonbench-example"


def test_toy_target_by_hand():
    data = DATASETS.get("rocksalt_toy")().load()
    # ω = sqrt(2k(1/m1+1/m2)) with k = 60/a²; for any entry the frequency is within phonon range
    assert 1.0 < data.targets.min() and data.targets.max() < 30.0
