"""Contract tests that plugin authors reuse: subclass, provide a fixture, inherit the checks.

Example (in a plugin's ``tests/test_contract.py``)::

    import pytest
    from phonbench.testing import ModelContract

    class TestMyModel(ModelContract):
        @pytest.fixture
        def model_factory(self):
            from my_plugin import MyModel
            return lambda seed=0: MyModel({"epochs": 2}, seed=seed, device="cpu")

The built-in datasets, models and metrics run the same kit in phonbench's own test-suite.
Tiny crystals (2–5 atoms) and targets are generated here, so the checks need no data files.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

from phonbench.datasets.base import Dataset, PhononData, Task
from phonbench.exceptions import DataError, PhonbenchError
from phonbench.metrics import Metric
from phonbench.registry import METRICS


def tiny_crystals() -> list[Any]:
    """Eight small ordered crystals (rock-salt, CsCl, zinc-blende, perovskite, fluorite, bcc)."""
    from pymatgen.core import Lattice, Structure

    cubic = Lattice.cubic

    def prim(group, a, species, coords):
        return Structure.from_spacegroup(group, cubic(a), species, coords).get_primitive_structure()

    return [
        prim("Fm-3m", 5.64, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure.from_spacegroup("Pm-3m", cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        prim("F-43m", 4.36, ["Si", "C"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
        prim("Fm-3m", 4.21, ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure.from_spacegroup("Pm-3m", cubic(3.90), ["Sr", "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]]),
        prim("Fm-3m", 5.46, ["Ca", "F"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
        Structure.from_spacegroup("Im-3m", cubic(2.87), ["Fe"], [[0, 0, 0]]).get_primitive_structure(),
        prim("F-43m", 5.65, ["Ga", "As"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    ]


def tiny_data(kind: str = "spectrum", n_repeat: int = 2, seed: int = 0) -> PhononData:
    """``8 * n_repeat`` tiny crystals with smooth, structure-dependent targets of task ``kind``.

    Targets depend on composition and density so that models have something to learn; ``modes``
    targets (Γ frequencies) are ``3N - 3`` positive optical modes sorted descending, the three zero
    acoustic modes, then zero padding to ``3 * max(n_atoms)`` with a mask.
    """
    rng = np.random.default_rng(seed)
    structures = tiny_crystals() * n_repeat
    n = len(structures)
    ids = [f"m{i:03d}" for i in range(n)]
    n_atoms = np.array([len(s) for s in structures])
    scale = np.array([10.0 / np.sqrt(s.composition.weight / len(s)) * (s.volume / len(s)) ** -0.3 for s in structures])
    scale = scale * (1 + 0.05 * rng.normal(size=n))
    extras = {"n_atoms": n_atoms}
    if kind == "spectrum":
        grid = np.linspace(0, 1000, 11)
        y = np.exp(-((grid[None, :] - 60 * scale[:, None]) ** 2) / (2 * 150.0**2))
        task = Task("spectrum", 11, "a.u.", "phonon_dos", tuple(grid), "cm^-1")
        return PhononData(ids, structures, y / y.max(axis=1, keepdims=True), task, extras=extras)
    if kind == "modes":
        d = 3 * int(n_atoms.max())
        mask = np.arange(d)[None, :] < 3 * n_atoms[:, None]
        optical = np.linspace(1.0, 0.1, d)[None, :] * scale[:, None]
        acoustic = np.arange(d)[None, :] >= 3 * n_atoms[:, None] - 3  # three zero modes at Γ, then padding
        modes = np.where(acoustic, 0.0, optical)
        task = Task("modes", d, "THz", "gamma_frequencies")
        return PhononData(ids, structures, np.where(mask, modes, 0.0), task, mask=mask, extras=extras)
    task = Task("scalar", 1, "cm^-1", "last_phdos_peak")
    return PhononData(ids, structures, 30 * scale[:, None], task, extras=extras)


def _rotated(data: PhononData, how: str) -> PhononData:
    """Copy of ``data`` with every structure rotated, translated or its sites permuted."""
    from pymatgen.core import Structure
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_euler("xyz", [0.3, -1.1, 0.7]).as_matrix()
    out = []
    for s in data.structures:
        if how == "rotate":
            lattice = s.lattice.matrix @ rot.T
            out.append(Structure(lattice, s.species, s.frac_coords))
        elif how == "translate":
            out.append(Structure(s.lattice, s.species, (s.frac_coords + [0.13, 0.27, 0.41]) % 1.0))
        else:
            order = np.arange(len(s))[::-1]
            out.append(Structure(s.lattice, [s.species[i] for i in order], s.frac_coords[order]))
    return PhononData(data.ids, out, data.targets, data.task, data.mask, data.extras)


class ModelContract:
    """Checks every model must pass. Provide a ``model_factory`` fixture: ``f(seed=0) -> Model``.

    Class attributes to override:
        structure_model: the model reads atomic positions (enables invariance checks).
        invariance_tol: absolute tolerance of the invariance checks.
    """

    structure_model: bool = True
    invariance_tol: float = 1e-4

    @pytest.fixture
    def model_factory(self) -> Callable[..., Any]:  # pragma: no cover - must be overridden
        raise NotImplementedError("provide a model_factory fixture")

    def _kinds(self, model_factory) -> list[str]:
        return list(model_factory().task_kinds)

    def test_output_shape_per_task_kind(self, model_factory):
        for kind in self._kinds(model_factory):
            data = tiny_data(kind)
            pred = model_factory().fit(data, data).predict(data)
            assert pred.shape == data.targets.shape, f"{kind}: {pred.shape} != {data.targets.shape}"
            assert np.isfinite(pred).all()

    def test_padding_values_do_not_matter(self, model_factory):
        if "modes" not in self._kinds(model_factory):
            pytest.skip("model does not support modes tasks")
        data = tiny_data("modes")
        garbage = data.targets.copy()
        garbage[~data.mask] = 1e3 * np.random.default_rng(1).random((~data.mask).sum())
        other = PhononData(data.ids, data.structures, garbage, data.task, data.mask, data.extras)
        a = model_factory(seed=0).fit(data, data).predict(data)
        b = model_factory(seed=0).fit(other, other).predict(data)
        np.testing.assert_allclose(a[data.mask], b[data.mask], rtol=1e-5, atol=1e-6)

    def test_same_seed_same_predictions(self, model_factory):
        kind = self._kinds(model_factory)[0]
        data = tiny_data(kind)
        a = model_factory(seed=3).fit(data, data).predict(data)
        b = model_factory(seed=3).fit(data, data).predict(data)
        np.testing.assert_array_equal(a, b)

    def test_save_load_round_trip(self, model_factory, tmp_path):
        kind = self._kinds(model_factory)[0]
        data = tiny_data(kind)
        model = model_factory().fit(data, data)
        model.save(tmp_path / "m")
        again = type(model).load(tmp_path / "m")
        np.testing.assert_allclose(again.predict(data), model.predict(data), rtol=1e-6, atol=1e-7)

    def test_predict_before_fit_is_a_clear_error(self, model_factory):
        with pytest.raises(PhonbenchError):
            model_factory().predict(tiny_data(self._kinds(model_factory)[0]))

    @pytest.mark.parametrize("how", ["rotate", "translate", "permute"])
    def test_invariance(self, model_factory, how):
        if not self.structure_model:
            pytest.skip("not a structure model")
        kind = self._kinds(model_factory)[0]
        data = tiny_data(kind, n_repeat=1)
        model = model_factory().fit(data, data)
        np.testing.assert_allclose(model.predict(_rotated(data, how)), model.predict(data),
                                   atol=self.invariance_tol, rtol=1e-3)

    def test_nan_coordinates_are_a_clear_error(self, model_factory):
        if not self.structure_model:
            pytest.skip("not a structure model")
        from pymatgen.core import Lattice, Structure

        kind = self._kinds(model_factory)[0]
        data = tiny_data(kind)
        model = model_factory().fit(data, data)
        bad = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [np.nan, 0.5, 0.5]])
        broken = PhononData(["bad"], [bad], data.targets[:1], data.task,
                            None if data.mask is None else data.mask[:1], {k: v[:1] for k, v in data.extras.items()})
        with pytest.raises(DataError):
            model.predict(broken)


class DatasetContract:
    """Checks every dataset must pass. Provide a ``dataset`` fixture returning a :class:`Dataset`."""

    @pytest.fixture
    def dataset(self) -> Dataset:  # pragma: no cover - must be overridden
        raise NotImplementedError("provide a dataset fixture")

    def test_card_is_complete(self, dataset):
        card = dataset.card
        for key in ("name", "description", "citation", "license", "source"):
            assert getattr(card, key), f"card.{key} is empty"
        assert card.default_split in card.splits
        assert card.primary_metric in card.default_metrics
        for name in card.default_metrics:
            assert card.task.kind in METRICS.get(name).task_kinds, f"{name} does not apply to {card.task.kind}"

    def test_records_match_the_task(self, dataset):
        data = dataset.load()
        assert data.targets.shape == (len(data), dataset.card.task.n_outputs)
        assert len(data.structures) == len(data.ids) == len(set(data.ids))
        if dataset.card.task.kind == "modes":
            assert data.mask is not None and data.mask.any(axis=1).all()
            assert (data.targets[~data.mask] == 0).all(), "padding must be zero"

    def test_splits_are_disjoint_and_cover(self, dataset):
        n = len(dataset.load())
        for name in dataset.card.splits:
            for fold in dataset.split(name, seed=0).folds:
                parts = np.concatenate([fold.train, fold.valid, fold.test])
                assert len(np.unique(parts)) == len(parts) and parts.min() >= 0 and parts.max() < n
                assert len(fold.train) > 0 and len(fold.test) > 0

    def test_checksums_verify(self, dataset):
        assert all(dataset.verify().values())


class MetricContract:
    """Checks every metric must pass. Provide a ``metric`` fixture returning a :class:`Metric`."""

    @pytest.fixture
    def metric(self) -> Metric:  # pragma: no cover - must be overridden
        raise NotImplementedError("provide a metric fixture")

    def _case(self, metric):
        kind = metric.task_kinds[0]
        data = tiny_data(kind)
        noise = 0.1 * np.random.default_rng(0).normal(size=data.targets.shape)
        return data, np.abs(data.targets + noise)

    def test_direction_and_unit_declared(self, metric):
        assert metric.direction in ("minimize", "maximize")
        assert metric.unit and metric.task_kinds and metric.description

    def test_perfect_prediction_is_best(self, metric):
        data, pred = self._case(metric)
        perfect = metric(data.targets, data.targets, data.mask, data.task, extras=data.extras)
        noisy = metric(data.targets, pred, data.mask, data.task, extras=data.extras)
        assert metric.better(perfect, noisy) or perfect == noisy

    def test_masked_entries_are_ignored(self, metric):
        if "modes" not in metric.task_kinds:
            pytest.skip("metric does not apply to padded tasks")
        data = tiny_data("modes")
        pred = data.targets + 0.1
        garbage = pred.copy()
        garbage[~data.mask] = 1e6
        score = lambda p: metric(data.targets, p, data.mask, data.task, extras=data.extras)  # noqa: E731
        assert score(pred) == score(garbage)
