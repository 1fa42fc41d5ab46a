"""Tests of the ``e3nn`` model (Chen et al. 2021) on tiny crystals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from phonbench.datasets.base import PhononData, Task
from phonbench.exceptions import ConfigError, DataError
from phonbench.models.e3nn_model import E3NNModel
from phonbench.physics import CHEN_GRID_CM1

SMALL = {"mul": 4, "em_dim": 8, "radial_neurons": 8, "epochs": 2, "batch_size": 2, "cutoff": 4.0, "max_time_s": 0.0,
         "ema_decay": 0.0, "ensemble": 1}
SPECTRUM = Task("spectrum", 51, "a.u.", "dos", tuple(CHEN_GRID_CM1), "cm^-1")
MODES = Task("modes", 15, "THz", "gamma_modes")  # 3 × 5 atoms (SrTiO3)
SCALAR = Task("scalar", 1, "cm^-1", "last_peak")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PHONBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PHONBENCH_NO_PROGRESS", "1")


def crystals() -> list[Structure]:
    """Four small, partly distorted crystals (2–5 atoms, low symmetry where it matters)."""
    rng = np.random.default_rng(0)
    nacl = Structure(Lattice.from_parameters(4.0, 4.1, 3.9, 60, 62, 58), ["Na", "Cl"], [[0, 0, 0], [0.52, 0.49, 0.5]])
    cscl = Structure(Lattice.cubic(3.4), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    frac = frac + rng.normal(0, 0.02, (5, 3))
    srtio3 = Structure(Lattice.from_parameters(3.9, 3.95, 4.0, 89, 91, 90), ["Sr", "Ti", "O", "O", "O"], frac)
    gaas = Structure(Lattice.from_parameters(4.0, 4.0, 4.0, 60, 60, 60), ["Ga", "As"], [[0, 0, 0], [0.26, 0.25, 0.24]])
    return [nacl, cscl, srtio3, gaas]


def make_data(task: Task, structures: list[Structure] | None = None, seed: int = 0) -> PhononData:
    structures = structures or crystals()
    n, rng = len(structures), np.random.default_rng(seed)
    mask = None
    if task.kind == "spectrum":
        y = rng.random((n, task.n_outputs))
        y /= y.max(axis=1, keepdims=True)
    elif task.kind == "modes":
        n_modes = np.array([3 * len(s) for s in structures])[:, None]
        y = np.sort(rng.uniform(1, 20, (n, task.n_outputs)), axis=1)[:, ::-1]  # descending optical modes
        mask = np.arange(task.n_outputs)[None, :] < n_modes
        y = np.where(np.arange(task.n_outputs)[None, :] < n_modes - 3, y, 0.0)  # 3 acoustic zeros, padding
    else:
        y = rng.uniform(100, 500, (n, 1))
    return PhononData([f"m{i}" for i in range(n)], structures, y, task, mask)


@pytest.fixture(scope="module")
def spectrum_model() -> E3NNModel:
    return E3NNModel(SMALL, seed=1, device="cpu").fit(make_data(SPECTRUM))


@pytest.fixture(scope="module")
def scalar_model() -> E3NNModel:
    # trained until predictions differ between materials (from ~the mean at initialisation)
    return E3NNModel({**SMALL, "epochs": 20, "lr": 0.02}, seed=1, device="cpu").fit(make_data(SCALAR))


def test_output_shapes_per_task_kind(spectrum_model, scalar_model):
    data = make_data(SPECTRUM)
    pred = spectrum_model.predict(data)
    assert pred.shape == (4, 51) and pred.min() >= 0.0
    np.testing.assert_allclose(pred.max(axis=1), 1.0, rtol=1e-6)
    assert scalar_model.predict(make_data(SCALAR)).shape == (4, 1)
    pair = E3NNModel({**SMALL, "ensemble": 2}, seed=1, device="cpu").fit(make_data(SPECTRUM))
    averaged = pair.predict(data)  # mean of two max-normalised spectra: max <= 1, not renormalised
    assert averaged.min() >= 0.0 and (averaged.max(axis=1) <= 1.0 + 1e-6).all()
    np.testing.assert_allclose(pair.module.members[0](pair.collate(pair.featurize(data))).detach().numpy(), pred,
                               rtol=1e-5)  # member 0 is the single model of the same seed
    modes = E3NNModel(SMALL, seed=1, device="cpu").fit(make_data(MODES))
    assert modes.predict(make_data(MODES)).shape == (4, 15)
    assert np.isfinite(modes.predict(make_data(MODES))).all()


def _rotated(s: Structure, rot: np.ndarray) -> Structure:
    return Structure(Lattice(s.lattice.matrix @ rot.T), s.species, s.frac_coords)


@pytest.mark.parametrize("fixture", ["spectrum_model", "scalar_model"])
def test_rotation_translation_permutation_invariance(fixture, request):
    model = request.getfixturevalue(fixture)
    task = model.task
    base = crystals()
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))
    rot = q * np.sign(np.linalg.det(q))  # proper rotation
    rotated = [_rotated(s, rot) for s in base]
    shifted = [s.copy() for s in base]
    for s in shifted:
        s.translate_sites(list(range(len(s))), [0.13, -0.27, 0.41])
    permuted = [Structure(s.lattice, [s.species[i] for i in p], s.frac_coords[p])
                for s, p in ((s, np.random.default_rng(5).permutation(len(s))) for s in base)]
    ref = model.predict(make_data(task, base))
    scale = model.target_std_  # 1 for spectra; the standardisation scale for scalars
    for variant in (rotated, shifted, permuted):
        np.testing.assert_allclose(model.predict(make_data(task, variant)), ref, atol=1e-4 * scale)
    # ... while the geometry does matter: a 7 % compression changes the prediction
    strained = [Structure(Lattice(s.lattice.matrix * 0.93), s.species, s.frac_coords) for s in base]
    assert np.abs(model.predict(make_data(task, strained)) - ref).max() > 1e-3 * scale


def test_inversion_is_also_invariant(spectrum_model):
    base = crystals()
    inverted = [Structure(Lattice(-s.lattice.matrix), s.species, s.frac_coords) for s in base]
    ref = spectrum_model.predict(make_data(SPECTRUM, base))
    np.testing.assert_allclose(spectrum_model.predict(make_data(SPECTRUM, inverted)), ref, atol=1e-4)


def test_supercell_predicts_same_normalised_dos(spectrum_model, scalar_model):
    base = crystals()
    supercells = [s.copy() for s in base]
    for s in supercells:
        s.make_supercell([2, 1, 1])
    for model, task in ((spectrum_model, SPECTRUM), (scalar_model, SCALAR)):
        ref = model.predict(make_data(task, base))
        got = model.predict(make_data(task, supercells))
        np.testing.assert_allclose(got, ref, atol=1e-4 * model.target_std_)


def test_save_load_round_trip(tmp_path, spectrum_model):
    spectrum_model.save(tmp_path / "e3nn")
    loaded = E3NNModel.load(tmp_path / "e3nn")
    data = make_data(SPECTRUM)
    np.testing.assert_array_equal(loaded.predict(data), spectrum_model.predict(data))
    assert loaded.config_["num_neighbors"] == pytest.approx(spectrum_model.config_["num_neighbors"])


def test_same_seed_same_predictions(spectrum_model):
    data = make_data(SPECTRUM)
    again = E3NNModel(SMALL, seed=1, device="cpu").fit(data)
    np.testing.assert_array_equal(again.predict(data), spectrum_model.predict(data))
    other = E3NNModel(SMALL, seed=2, device="cpu").fit(data)
    assert not np.array_equal(other.predict(data), spectrum_model.predict(data))


def test_bad_structures_raise_data_error(spectrum_model):
    empty = crystals()[:3] + [Structure(Lattice.cubic(3.0), [], [])]
    with pytest.raises(DataError, match="empty"):
        E3NNModel(SMALL, device="cpu").fit(make_data(SPECTRUM, empty))
    nan = crystals()[:3] + [Structure(Lattice.cubic(3.0), ["Na", "Cl"], [[np.nan, 0, 0], [0.5, 0.5, 0.5]])]
    with pytest.raises(DataError, match="NaN"):
        spectrum_model.predict(make_data(SPECTRUM, nan))


def test_default_widths_match_e3nn_reference_network():
    """Same irreps/widths as e3nn's gate_points_2101 Network (+ the 118→64 embedding) → same size."""
    from e3nn import o3
    from e3nn.nn.models.gate_points_2101 import Network

    model = E3NNModel()
    ours = model.build_module(SPECTRUM, {"num_neighbors": 30.0})
    ref = Network("64x0e", "32x0e+32x0o+32x1e+32x1o", "51x0e", "64x0e", o3.Irreps.spherical_harmonics(1),
                  2, 5.0, 10, 1, 100, 30.0, 8.0)
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == sum(p.numel() for p in ref.parameters()) + 118 * 64 + 64
    assert [str(c.tp.irreps_out) for c in ours.convs] == [str(lay.first.tp.irreps_out) for lay in ref.layers[:-1]] + [
        str(ref.layers[-1].tp.irreps_out)
    ]
    assert torch.get_num_threads() >= 1


@pytest.mark.parametrize("pool", ["max", "attention"])
def test_max_and_attention_pools_are_intensive_and_invariant(pool):
    model = E3NNModel({**SMALL, "pool": pool}, seed=2, device="cpu").fit(make_data(SCALAR))
    base = crystals()
    supercells = [s.copy() for s in base]
    for s in supercells:
        s.make_supercell([2, 1, 1])
    permuted = [Structure(s.lattice, [s.species[i] for i in p], s.frac_coords[p])
                for s, p in ((s, np.random.default_rng(6).permutation(len(s))) for s in base)]
    ref = model.predict(make_data(SCALAR, base))
    assert ref.shape == (len(base), 1) and np.isfinite(ref).all()
    for variant in (supercells, permuted):
        np.testing.assert_allclose(model.predict(make_data(SCALAR, variant)), ref, atol=1e-4 * model.target_std_)
    modes = E3NNModel({**SMALL, "pool": pool}, seed=2, device="cpu").fit(make_data(MODES))
    assert modes.predict(make_data(MODES)).shape == (4, 15)


def test_modes_pin_three_acoustic_zeros_and_check_the_mode_count():
    data = make_data(MODES)
    n_modes = [3 * len(s) for s in data.structures]
    pinned = E3NNModel(SMALL, seed=0, device="cpu").fit(data).predict(data)
    free = E3NNModel({**SMALL, "acoustic_zeros": False}, seed=0, device="cpu").fit(data).predict(data)
    for row, unpinned, n in zip(pinned, free, n_modes):
        assert (np.abs(row[:n]) < 1e-5).sum() == 3 and (np.diff(row[:n]) <= 1e-6).all()
        assert (np.abs(unpinned[:n]) < 1e-5).sum() == 0
    short = data.mask.copy()
    short[0, n_modes[0] - 1] = False
    with pytest.raises(DataError, match="3 per site"):
        E3NNModel(SMALL, device="cpu").fit(PhononData(data.ids, data.structures, data.targets, data.task, short))
    with pytest.raises(ConfigError, match="acoustic_zeros"):
        E3NNModel({**SMALL, "acoustic_zeros": "yes"}).fit(data)


def test_modes_and_scalar_tasks_take_their_task_defaults_unless_given():
    scalar = E3NNModel(SMALL, seed=0, device="cpu").fit(make_data(SCALAR))
    assert {k: scalar.params[k] for k in ("pool", "loss", "lr_schedule", "patience", "weight_decay")} == {
        "pool": "attention", "loss": "l1", "lr_schedule": "cosine", "patience": 0, "weight_decay": 0.05}
    assert scalar.module.head == "attention"
    given = E3NNModel({**SMALL, "pool": "max"}, seed=0, device="cpu").fit(make_data(SCALAR))
    assert given.params["pool"] == "max" and given.params["loss"] == "l1"
    modes = E3NNModel(SMALL, seed=0, device="cpu").fit(make_data(MODES))
    assert modes.params["pool"] == "max" and modes.params["loss"] == "l1"
    spectra = E3NNModel(SMALL, seed=0, device="cpu").fit(make_data(SPECTRUM))
    assert spectra.params["loss"] == "mse" and spectra.params["weight_decay"] == 0.2  # the DoS defaults


def test_unknown_pool_is_a_config_error():
    from phonbench.exceptions import ConfigError

    with pytest.raises(ConfigError, match="pool='sum'"):
        E3NNModel({"pool": "sum"})
