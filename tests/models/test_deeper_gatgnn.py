"""Contract and architecture tests of the ``deeper_gatgnn`` model (Omee et al. 2022)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch
from conftest import make_data
from pymatgen.core import Lattice, Structure

from phonbench.datasets.base import PhononData
from phonbench.exceptions import ConfigError, DataError, ModelError
from phonbench.metrics import score
from phonbench.models.deeper_gatgnn import DeeperGATGNNModel, _nn, build_deeper_gatgnn
from phonbench.registry import MODELS

#: a small network so that every fit takes well under a second
FAST = {"epochs": 2, "batch_size": 8, "n_layers": 2, "hidden": 16, "fc_hidden": 16, "max_time_s": 0.0}
_DATA: dict[str, PhononData] = {}
_FITTED: dict[str, DeeperGATGNNModel] = {}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny graphs: one torch thread is fastest, and avoids OpenMP stalls on a busy machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def data_of(kind: str) -> PhononData:
    """``conftest.make_data`` memoised per module."""
    if kind not in _DATA:
        _DATA[kind] = make_data(kind)
    return _DATA[kind]


def fitted(kind: str) -> DeeperGATGNNModel:
    """One small model fitted per task kind, shared by the read-only tests."""
    if kind not in _FITTED:
        data = data_of(kind)
        _FITTED[kind] = DeeperGATGNNModel({**FAST, "epochs": 3}, seed=0, device="cpu").fit(data, data)
    return _FITTED[kind]


def with_structures(data: PhononData, structures: list) -> PhononData:
    return PhononData(data.ids, structures, data.targets, data.task, data.mask, data.extras)


def test_registered_and_paper_defaults():
    assert MODELS.get("deeper_gatgnn") is DeeperGATGNNModel
    p = DeeperGATGNNModel.default_params
    assert (p["cutoff"], p["max_neighbors"], p["n_layers"], p["groups"], p["heads"]) == (8.0, 12, 10, 10, 4)
    assert (p["hidden"], p["n_gaussians"], p["loss"], p["lr_schedule"]) == (64, 50, "l1", "cosine")


@pytest.mark.parametrize("kind", ["spectrum", "modes", "scalar"])
def test_output_shapes_for_every_task_kind(kind):
    data = data_of(kind)
    model = fitted(kind)
    pred = model.predict(data)
    assert pred.shape == (len(data), data.task.n_outputs)
    assert np.isfinite(pred).all()
    assert len(model.history) == 3 and "valid_loss" in model.history[0]
    if kind == "spectrum":  # relu + max-normalisation head
        assert pred.min() >= 0.0
        np.testing.assert_allclose(pred.max(axis=1), 1.0, rtol=1e-5)
    assert model.predict(data.subset([])).shape == (0, data.task.n_outputs)


def test_modes_have_three_zero_acoustic_modes_unless_switched_off():
    data = data_of("modes")
    n_modes = 3 * data.extras["n_atoms"]
    assert DeeperGATGNNModel.default_params["acoustic_zeros"] is True
    pinned = fitted("modes")
    free = DeeperGATGNNModel({**FAST, "epochs": 3, "acoustic_zeros": False}, seed=0, device="cpu").fit(data, data)
    for row, unpinned, n in zip(pinned.predict(data), free.predict(data), n_modes):
        assert (np.abs(row[:n]) < 1e-4).sum() == 3 and (np.diff(row[:n]) <= 1e-6).all()
        assert (np.abs(unpinned[:n]) < 1e-4).sum() == 0
    short = data.mask.copy()
    short[0, 3 * data.extras["n_atoms"][0] - 1] = False  # one mode fewer than 3 per site
    with pytest.raises(DataError, match="3 per site"):
        DeeperGATGNNModel(FAST, device="cpu").fit(PhononData(data.ids, data.structures, data.targets, data.task, short))
    DeeperGATGNNModel({**FAST, "acoustic_zeros": False}, device="cpu").fit(
        PhononData(data.ids, data.structures, data.targets, data.task, short))


def test_sigmoid_spectrum_head_stays_in_unit_interval():
    data = data_of("spectrum")
    pred = DeeperGATGNNModel({**FAST, "spectrum_head": "sigmoid"}, seed=0, device="cpu").fit(data).predict(data)
    assert (pred > 0).all() and (pred < 1).all()


def _rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))  # proper rotation


@pytest.mark.parametrize("pool", ["attention", "attention_max", "attention_sum"])
def test_rotation_translation_and_permutation_invariance(pool):
    data = data_of("modes")
    model = fitted("modes") if pool == "attention" else DeeperGATGNNModel(
        {**FAST, "pool": pool}, seed=0, device="cpu").fit(data)
    reference = model.predict(data)
    rot = _rotation(7)
    rotated, shifted, permuted = [], [], []
    for i, s in enumerate(data.structures):
        rotated.append(Structure(Lattice(s.lattice.matrix @ rot.T), s.species, s.frac_coords))
        moved = s.copy()
        moved.translate_sites(list(range(len(s))), [0.13, -0.41, 0.27], frac_coords=True, to_unit_cell=True)
        shifted.append(moved)
        order = np.random.default_rng(i).permutation(len(s))
        permuted.append(Structure(s.lattice, [s.species[j] for j in order], s.frac_coords[order]))
    for structures in (rotated, shifted, permuted):
        pred = model.predict(with_structures(data, structures))
        np.testing.assert_allclose(pred, reference, rtol=1e-4, atol=1e-4)


def test_supercell_differs_only_through_the_size_feature():
    """Attention pooling is intensive: without ``size_feature`` a 2×1×1 supercell predicts the same."""
    data = data_of("scalar").subset([0, 3])
    bigger = with_structures(data, [s * (2, 1, 1) for s in data.structures])
    plain = DeeperGATGNNModel({**FAST, "size_feature": False}, seed=0, device="cpu").fit(data)
    np.testing.assert_allclose(plain.predict(bigger), plain.predict(data), rtol=1e-4)
    sized = DeeperGATGNNModel(FAST, seed=0, device="cpu").fit(data)
    assert not np.allclose(sized.predict(bigger), sized.predict(data), rtol=1e-4)


def test_save_load_roundtrip(tmp_path):
    data = data_of("modes")
    model = fitted("modes")
    model.save(tmp_path)
    loaded = DeeperGATGNNModel.load(tmp_path, device="cpu")
    assert loaded.params == model.params and loaded.n_parameters() == model.n_parameters()
    np.testing.assert_array_equal(loaded.predict(data), model.predict(data))


def test_model_saved_before_acoustic_zeros_loads_without_them(tmp_path):
    import json

    data = data_of("modes")
    old = DeeperGATGNNModel({**FAST, "acoustic_zeros": False}, seed=0, device="cpu").fit(data)
    old.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    del meta["params"]["acoustic_zeros"]  # as written before the parameter existed
    (tmp_path / "model.json").write_text(json.dumps(meta))
    loaded = DeeperGATGNNModel.load(tmp_path, device="cpu")
    assert loaded.params["acoustic_zeros"] is False
    np.testing.assert_array_equal(loaded.predict(data), old.predict(data))


def test_deterministic_with_seed():
    data = data_of("scalar")
    params = {**FAST, "dropout": 0.1}
    a = DeeperGATGNNModel(params, seed=3, device="cpu").fit(data).predict(data)
    b = DeeperGATGNNModel(params, seed=3, device="cpu").fit(data).predict(data)
    c = DeeperGATGNNModel(params, seed=4, device="cpu").fit(data).predict(data)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_padding_never_affects_training_or_the_score():
    data = data_of("modes")
    padded = PhononData(data.ids, data.structures, np.where(data.mask, data.targets, 1e6), data.task, data.mask)
    a = DeeperGATGNNModel(FAST, seed=1, device="cpu").fit(data).predict(data)
    b = DeeperGATGNNModel(FAST, seed=1, device="cpu").fit(padded).predict(data)
    np.testing.assert_array_equal(a, b)
    names = ["mae", "r2_aggregated", "mean_frequency_error"]
    before = score(names, data.targets, a, data.mask, data.task)
    assert score(names, data.targets, np.where(data.mask, a, -1e6), data.mask, data.task) == before


def test_layers_diffgroupnorm_and_attention_heads():
    ns = _nn()
    model = DeeperGATGNNModel({**FAST, "n_layers": 3, "groups": 5, "heads": 2}, seed=0, device="cpu")
    net = model.build_module(data_of("scalar").task, {})
    assert len(net.convs) == 3 and all(isinstance(c, ns.AGATLayer) and c.heads == 2 for c in net.convs)
    assert len(net.norms) == 3 and all(isinstance(n, ns.DiffGroupNorm) and n.groups == 5 for n in net.norms)
    assert sum(isinstance(m, ns.AGATLayer) for m in net.modules()) == 3
    assert isinstance(net.pool, ns.GlobalAttentionPool)
    deep = DeeperGATGNNModel({**FAST, "n_layers": 12}, seed=0).build_module(data_of("scalar").task, {})
    assert len(deep.convs) == 12 and deep.norms[0].groups == 10


def test_residual_skip_passes_the_embedding_through():
    """With every normalised AGAT update forced to zero, the pooled node features are the embeddings."""
    data = data_of("scalar")
    model = DeeperGATGNNModel(FAST, seed=0, device="cpu")
    net = model.build_module(data.task, {}).eval()
    batch = model.collate(model.featurize(data)[:4])
    for norm in net.norms:
        norm.register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))
    seen = {}
    net.pool.register_forward_hook(lambda module, inputs, output: seen.update(x=inputs[0]))
    with torch.no_grad():
        net(batch)
        embedded = torch.nn.functional.leaky_relu(net.node_embed(batch.x), 0.2)
    torch.testing.assert_close(seen["x"], embedded)


def test_attention_is_a_softmax_over_neighbours():
    """Per head, the weights on the incoming edges of an atom sum to one; the update is their head mean."""
    ns = _nn()
    torch.manual_seed(0)
    layer = ns.AGATLayer(8, 3, 0.0).eval()
    with torch.no_grad():
        layer.bias.normal_()
    x, e = torch.randn(3, 8), torch.randn(5, 8)
    edge_index = torch.tensor([[1, 2, 0, 2, 0], [0, 0, 1, 1, 2]])  # source → target
    with torch.no_grad():
        alpha, h_j = layer.attention(x, edge_index, e)
        out = layer(x, edge_index, e)
    assert alpha.shape == (5, 3) and h_j.shape == (5, 3, 8) and (alpha > 0).all()
    torch.testing.assert_close(torch.zeros(3, 3).index_add_(0, edge_index[1], alpha), torch.ones(3, 3))
    torch.testing.assert_close(out[2], h_j[4].mean(dim=0) + layer.bias)  # atom 2 has one neighbour
    expected0 = (alpha[:2, :, None] * h_j[:2]).sum(dim=0).mean(dim=0) + layer.bias
    torch.testing.assert_close(out[0], expected0)


@pytest.mark.parametrize("pool", ["attention_max", "attention_sum"])
def test_second_pool_appends_the_per_feature_maximum_or_sum_over_atoms(pool):
    """``attention_max``/``_sum``: the head reads [attention pool ‖ max or sum/10 over the atoms ‖ size]."""
    from torch_geometric.loader import DataLoader

    net = build_deeper_gatgnn(3, hidden=8, n_layers=1, heads=2, groups=2, dropout=0.0, cutoff=5.0,
                              n_gaussians=10, gaussian_width=0.2, n_fc=0, fc_hidden=8, size_feature=True,
                              self_loops=True, spectrum_head=None, pool=pool).eval()
    assert net.head[-1].in_features == 2 * 8 + 2
    graphs = DeeperGATGNNModel(FAST).featurize(data_of("scalar").subset([0, 1, 2]))
    batch = next(iter(DataLoader(graphs, batch_size=3)))
    seen: dict[str, tuple] = {}
    net.pool.register_forward_pre_hook(lambda module, args: seen.setdefault("nodes", args))
    net.head.register_forward_pre_hook(lambda module, args: seen.setdefault("pooled", args))
    with torch.no_grad():
        net(batch)
    x, _, node_batch, _ = seen["nodes"]
    (pooled,) = seen["pooled"]
    reduce = (lambda v: v.amax(dim=0)) if pool == "attention_max" else (lambda v: v.sum(dim=0) / 10.0)
    expected = torch.stack([reduce(x[node_batch == g]) for g in range(3)])
    torch.testing.assert_close(pooled[:, 8:16], expected)
    with pytest.raises(ConfigError, match="pool"):
        DeeperGATGNNModel({"pool": "sum"})


def test_build_function_and_gaussians():
    ns = _nn()
    expand = ns.GaussianExpansion(8.0, 50, 0.2)
    g = expand(torch.tensor([0.0, 8.0]))
    assert g.shape == (2, 50)
    assert g[0, 0].item() == pytest.approx(1.0) and g[1, -1].item() == pytest.approx(1.0)
    assert g[0, -1].item() == pytest.approx(np.exp(-0.5 * (8.0 / 1.6) ** 2), rel=1e-4)
    net = build_deeper_gatgnn(
        7, hidden=8, n_layers=1, heads=1, groups=2, dropout=0.0, cutoff=5.0, n_gaussians=10,
        gaussian_width=0.1, n_fc=0, fc_hidden=4, size_feature=False, self_loops=False, spectrum_head=None,
    )
    assert net.head[-1].out_features == 7 and len(net.head) == 1


def test_search_space_covers_the_tuned_knobs():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    params = DeeperGATGNNModel.search_space(trial)
    assert set(params) == {"lr", "n_layers", "hidden", "dropout", "batch_size"}
    DeeperGATGNNModel(params)  # every sampled value is valid


def test_bad_inputs():
    for bad in ({"n_layers": 0}, {"hidden": 2.5}, {"groups": True}, {"dropout": 1.0}, {"cutoff": -1.0},
                {"spectrum_head": "softmax"}, {"size_feature": "yes"}, {"acoustic_zeros": 1}, {"max_neighbors": 0},
                {"n_gaussians": 1}):
        with pytest.raises(ConfigError):
            DeeperGATGNNModel(bad)
    with pytest.raises(ConfigError, match="unknown parameter"):
        DeeperGATGNNModel({"n_layer": 3})
    with pytest.raises(ModelError):
        DeeperGATGNNModel(FAST).predict(data_of("scalar"))
    data = data_of("scalar")
    empty = list(data.structures)
    empty[0] = Structure(Lattice.cubic(3.0), [], [])
    with pytest.raises(DataError, match="empty"):
        DeeperGATGNNModel(FAST, device="cpu").fit(with_structures(data, empty))
    nan = list(data.structures)
    nan[1] = Structure(Lattice.cubic(3.0), ["Fe"], [[np.nan, 0.0, 0.0]])
    with pytest.raises(DataError, match="NaN"):
        DeeperGATGNNModel(FAST, device="cpu").fit(with_structures(data, nan))
    with pytest.raises(DataError, match="NaN"):
        fitted("scalar").predict(with_structures(data, nan))
