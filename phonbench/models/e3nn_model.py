"""``e3nn``: Euclidean neural network of Chen et al. 2021 (Adv. Sci. 8, 2004214) for phonon DoS.

Architecture (our implementation from e3nn 0.6 building blocks, following the paper and the e3nn
``gate_points_2101`` network it used):

* **Input.** Node input ``x`` = mass-weighted multi-hot of the 118 elements (Chen et al. eq. 1:
  ``Σ_j c_j m_j e_j`` over the species ``j`` of a site with occupancies ``c_j``; masses divided by
  ``mass_scale`` = 100 amu so inputs are O(1) — the tutorial uses raw amu) and node attribute ``z`` =
  the occupancy multi-hot itself; both go through one shared ``Linear(118, em_dim)`` + ReLU
  embedding (64 scalars), as in the tutorial.
* **Edges.** Periodic neighbours within ``cutoff`` (5 Å) from :mod:`phonbench.featurizers.graphs`;
  edge attributes ``Y(r̂) · u(r/r_c)`` with spherical harmonics up to l = 1 (``component``
  normalisation) and e3nn's smooth cutoff ``u``; lengths embedded in ``n_basis`` (10) Gaussians
  (``soft_one_hot_linspace``) and mapped by a radial MLP (``radial_layers`` × ``radial_neurons``,
  SiLU, ``e3nn.nn.FullyConnectedNet``) to per-edge tensor-product weights.
* **Convolution.** ``out = sin(π/8)·SC(x, z) + cos(π/8)·Lin2(Σ_neighbours TP(Lin1(x, z), Y; w(r)) /
  √n_neighbours, z)`` where TP is an ``o3.TensorProduct`` with ``uvu`` paths and ``SC``, ``Lin1``,
  ``Lin2`` are linear maps whose weights depend linearly on the 64 scalar attributes ``z`` — the same
  bilinear map as e3nn's ``FullyConnectedTensorProduct(x, z)`` for scalar ``z``.
* **Gates.** ``layers`` (2) convolution + ``e3nn.nn.Gate`` blocks with hidden irreps
  ``mul×0e + mul×0o + mul×1e + mul×1o`` (mul = 32, l ≤ 1; SiLU/tanh on scalars, sigmoid/tanh gates),
  then a final convolution to ``n_outputs`` scalars per atom.
* **Heads.** ``spectrum``: ReLU per atom, sum over atoms, division by the per-material maximum (so
  the output is max-normalised like the target and a supercell predicts the same DoS as its
  primitive cell); MSE loss. ``modes`` and ``scalar``: a pooling over atoms (``pool``; ``mean``
  below) of the per-atom outputs, no activation, trained on standardised targets (mean/std over
  real training entries, undone in ``predict``) — a mean keeps the prediction intensive, so a
  supercell of a crystal predicts the same values as its primitive cell; the loss is masked for
  modes. ``pool`` = ``max`` (per-output
  maximum over atoms) or ``attention`` (softmax-weighted mean, logits from one extra output
  channel) are intensive too, and suit max-like targets such as the last DoS peak, which one light
  atom can carry. ``scalar`` tasks default to attention pooling, ``modes`` to max pooling, both
  with an L1 loss on the masked entries, weight decay 0.05 and a cosine schedule over the time
  budget (``E3NNModel.task_defaults``; measured in ``benchmarks/README.md``). ``modes`` are read
  as the 3N Γ modes of an N-site cell: with ``acoustic_zeros`` (default) the first 3N − 3 pooled
  outputs are the optical modes and three zeros are sorted in among them
  (:func:`phonbench.models.torch_utils.with_acoustic_zeros`; false for other wavevectors).

Speed on CPU (everything is exact, nothing approximated): spherical harmonics, cutoff factors and
radial bases are computed once per featurisation, not per epoch; the radial MLP runs once per
*distinct* bond length of a material (crystal symmetry makes ~10× fewer distinct lengths than
edges); the attribute-dependent linear maps are evaluated through per-species weights (one weight
set per distinct species row in a batch instead of a 64-fold contraction per atom), and layer-one
node operations, which depend on species only, run once per distinct species.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Data

from phonbench.models.torch_utils import with_acoustic_zeros
from phonbench.models.training import TRAIN_DEFAULTS, TorchModel

_SIN, _COS = math.sin(math.pi / 8), math.cos(math.pi / 8)
POOLS = ("mean", "max", "attention")  # atom pooling of the modes/scalar heads
_LEN_DECIMALS = 6  # bond lengths equal to 1e-6 Å share one radial-MLP evaluation


def smooth_cutoff(x: np.ndarray) -> np.ndarray:
    """e3nn's smooth step: 1 for ``x ≤ 0.5``, ``(1 - cos(2π(x - 1)))/2`` on (0.5, 1), 0 for ``x ≥ 1``."""
    y = (1.0 - np.cos(2.0 * np.pi * (x - 1.0))) / 2.0
    return np.where(x <= 0.5, 1.0, np.where(x >= 1.0, 0.0, y))


class _AttrLinear(nn.Module):
    """``out = Σ_k z_k W_k x``: an equivariant linear map whose weights depend on scalar attributes.

    Equals e3nn's ``FullyConnectedTensorProduct(irreps_in, f"{n_attr}x0e", irreps_out)`` up to the
    weight normalisation, but is evaluated with one weight set per distinct attribute row.
    """

    def __init__(self, irreps_in: Any, irreps_out: Any, n_attr: int):
        super().__init__()
        from e3nn import o3

        self.lin = o3.Linear(irreps_in, irreps_out, internal_weights=False, shared_weights=False)
        self.weight = nn.Parameter(torch.randn(n_attr, self.lin.weight_numel))
        self.scale = n_attr**-0.5
        self.output_mask = self.lin.output_mask

    def forward(self, x: torch.Tensor, attr: torch.Tensor, inv: torch.Tensor | None) -> torch.Tensor:
        """``x`` (N, dim_in); ``attr`` (S, n_attr) distinct attribute rows; ``inv`` (N,) row of each x."""
        w = (attr @ self.weight) * self.scale
        return self.lin(x, w if inv is None else torch.index_select(w, 0, inv))


class _Convolution(nn.Module):
    """Equivariant point convolution with self-connection (see module docstring)."""

    def __init__(self, irreps_in, irreps_sh, irreps_out, n_attr, n_basis, radial_layers, radial_neurons):
        super().__init__()
        from e3nn import o3
        from e3nn.nn import FullyConnectedNet

        irreps_in, irreps_sh, irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_sh), o3.Irreps(irreps_out)
        self.sc = _AttrLinear(irreps_in, irreps_out, n_attr)
        self.lin1 = _AttrLinear(irreps_in, irreps_in, n_attr)
        mid, instructions = [], []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_sh) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in irreps_out:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        irreps_mid, perm, _ = o3.Irreps(mid).sort()
        instructions = [(a, b, perm[k], mode, train) for a, b, k, mode, train in instructions]
        self.tp = o3.TensorProduct(
            irreps_in, irreps_sh, irreps_mid, instructions, internal_weights=False, shared_weights=False
        )
        self.fc = FullyConnectedNet(
            [n_basis] + radial_layers * [radial_neurons] + [self.tp.weight_numel], torch.nn.functional.silu
        )
        self.lin2 = _AttrLinear(irreps_mid, irreps_out, n_attr)
        mask = self.sc.output_mask.to(torch.get_default_dtype())
        self.register_buffer("c_x", (1.0 - mask) + _COS * mask, persistent=False)

    def forward(self, x, attr, inv, node_level: bool, edge_src, edge_dst, edge_sh, radial, n_nodes, norm):
        """``node_level`` False: ``x`` holds one row per distinct species (gathered by ``inv``)."""
        if node_level:
            s, h = self.sc(x, attr, inv), self.lin1(x, attr, inv)
        else:  # layer one: x and attr are per species; compute once per species, then gather
            s = torch.index_select(self.sc(x, attr, None), 0, inv)
            h = torch.index_select(self.lin1(x, attr, None), 0, inv)
        weight = torch.index_select(self.fc(radial[0]), 0, radial[1])  # radial MLP once per distinct length
        msg = self.tp(torch.index_select(h, 0, edge_src), edge_sh, weight)
        agg = torch.zeros(n_nodes, msg.shape[1], dtype=msg.dtype, device=msg.device)
        agg.index_add_(0, edge_dst, msg)
        return _SIN * s + self.c_x * self.lin2(agg * norm, attr, inv)


class E3NNNetwork(nn.Module):
    """Gated equivariant network on periodic graphs; ``forward(batch) -> (B, n_outputs)``.

    Args:
        n_outputs: output channels per material.
        head: ``"spectrum"`` (ReLU, sum, max-normalise), ``"mean"`` (mean over atoms), ``"max"``
            (per-output maximum over atoms) or ``"attention"`` (softmax-weighted mean over atoms, the
            weight logit being one extra output channel of the last convolution).
        num_neighbors: typical number of neighbours (messages are summed and divided by its root).
        em_dim, mul, lmax, layers, n_basis, radial_layers, radial_neurons, mass_scale: see
            :class:`E3NNModel`.
    """

    def __init__(self, n_outputs: int, head: str, num_neighbors: float, em_dim: int = 64, mul: int = 32,
                 lmax: int = 1, layers: int = 2, n_basis: int = 10, radial_layers: int = 1,
                 radial_neurons: int = 100, mass_scale: float = 100.0, acoustic_zero: float | None = None):
        super().__init__()
        from e3nn import o3
        from e3nn.nn import Gate

        from phonbench.featurizers.graphs import element_masses

        self.head, self.acoustic_zero = head, acoustic_zero
        self.norm = float(num_neighbors) ** -0.5
        self.em = nn.Linear(118, em_dim)
        self.register_buffer("mass", torch.tensor(element_masses() / mass_scale, dtype=torch.get_default_dtype()))
        irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        hidden = o3.Irreps([(mul, (l, p)) for l in range(lmax + 1) for p in (-1, 1)])
        act = {1: torch.nn.functional.silu, -1: torch.tanh}
        act_gate = {1: torch.sigmoid, -1: torch.tanh}

        def reachable(irreps, ir) -> bool:
            return any(ir in a * b for _, a in irreps for _, b in irreps_sh)

        irreps = o3.Irreps(f"{em_dim}x0e")
        self.convs, self.gates = nn.ModuleList(), nn.ModuleList()
        for _ in range(layers):
            scalars = o3.Irreps([(m, ir) for m, ir in hidden if ir.l == 0 and reachable(irreps, ir)])
            gated = o3.Irreps([(m, ir) for m, ir in hidden if ir.l > 0 and reachable(irreps, ir)])
            gate_ir = "0e" if reachable(irreps, o3.Irrep("0e")) else "0o"
            gates = o3.Irreps([(m, gate_ir) for m, _ in gated])
            gate = Gate(scalars, [act[ir.p] for _, ir in scalars], gates, [act_gate[ir.p] for _, ir in gates], gated)
            self.convs.append(_Convolution(irreps, irreps_sh, gate.irreps_in, em_dim, n_basis,
                                           radial_layers, radial_neurons))
            self.gates.append(gate)
            irreps = gate.irreps_out
        extra = 1 if head == "attention" else 0
        self.convs.append(_Convolution(irreps, irreps_sh, o3.Irreps(f"{n_outputs + extra}x0e"), em_dim, n_basis,
                                       radial_layers, radial_neurons))

    def forward(self, batch: Any) -> torch.Tensor:
        out = self._pooled(batch)
        if self.acoustic_zero is None:
            return out
        counts = torch.bincount(batch.batch, minlength=out.shape[0])
        return with_acoustic_zeros(out, counts, self.acoustic_zero)

    def _pooled(self, batch: Any) -> torch.Tensor:
        species, inv = torch.unique(batch.x_species, dim=0, return_inverse=True)
        attr = torch.relu(self.em(species))  # (S, em_dim) node attributes z
        x = torch.relu(self.em(species * self.mass))  # (S, em_dim) layer-one input, per species
        src, dst = batch.edge_index
        radial = (batch.rad_emb, batch.edge_uid)
        n = batch.x_species.shape[0]
        for i, conv in enumerate(self.convs):
            x = conv(x, attr, inv, i > 0, src, dst, batch.edge_sh, radial, n, self.norm)
            if i < len(self.gates):
                x = self.gates[i](x)
        n_graphs = int(batch.num_graphs)
        out = torch.zeros(n_graphs, x.shape[1], dtype=x.dtype, device=x.device)
        if self.head == "spectrum":
            out.index_add_(0, batch.batch, torch.relu(x))
            return out / out.max(dim=1, keepdim=True).values.clamp_min(1e-12)
        if self.head == "max":
            index = batch.batch[:, None].expand_as(x)
            return out.scatter_reduce(0, index, x, reduce="amax", include_self=False)
        if self.head == "attention":
            from torch_geometric.utils import softmax

            weight = softmax(x[:, -1], batch.batch, num_nodes=n_graphs)
            pooled = torch.zeros(n_graphs, x.shape[1] - 1, dtype=x.dtype, device=x.device)
            return pooled.index_add_(0, batch.batch, x[:, :-1] * weight[:, None])
        out.index_add_(0, batch.batch, x)
        counts = torch.bincount(batch.batch, minlength=n_graphs).clamp_min(1).to(x.dtype)
        return out / counts[:, None]


class E3Graph(Data):
    """PyG ``Data`` whose ``edge_uid`` indexes its own ``rad_emb`` rows (offset when batched)."""

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "edge_uid":
            return self.rad_emb.size(0)
        return super().__inc__(key, value, *args, **kwargs)


class E3NNModel(TorchModel):
    """Chen et al. 2021 Euclidean neural network (see the module docstring for the architecture).

    Parameters (besides the shared training ones of :data:`TRAIN_DEFAULTS`): ``cutoff`` (Å),
    ``max_neighbors`` (None = all in the cutoff), ``n_basis`` Gaussian radial bases, radial MLP
    ``radial_layers`` × ``radial_neurons``, ``em_dim`` embedding width, ``mul`` multiplicity of the
    hidden irreps, ``lmax`` (≤ 1 hidden/edge angular order), ``layers`` gated convolutions,
    ``mass_scale`` (amu) dividing masses in the input encoding, ``acoustic_zeros`` (``modes``: pin
    three acoustic Γ modes at 0 THz).

    Heads: spectra are ReLU'd, summed over atoms and max-normalised; ``modes``/``scalar`` pool the
    per-atom outputs (``pool``: mean, max or attention) on standardised targets (intensive,
    supercell-invariant); ``modes`` and ``scalar`` tasks use the :attr:`task_defaults` below.

    Training defaults: AdamW, lr 5e-3 × 0.96 per epoch (as in the e3nn tutorial), batch 8, weight
    decay 0.2, weight EMA 0.999 per step, early stopping after 25 epochs without validation
    improvement, ``torch.compile`` of the training steps when a compiler is available
    (``compile="auto"``, ~28 % less time per epoch), and an **ensemble of 2** independently seeded
    networks whose max-normalised spectra are averaged (``ensemble=2``; ``ensemble=1`` is the single
    network of the paper), all within ``max_time_s`` = 840 s of ``fit``. The tutorial's weight decay
    0.05 at batch 16 over-fits ``dos`` (train MSE ~0.004 vs valid ~0.022 from epoch ~15); a smaller
    batch and a stronger decoupled decay (8× more decay per epoch) regularise it. Measured
    2026-11-23 on ``dos`` (tutorial split, 1 thread on a 2-core machine shared with other jobs),
    single networks, seed 0, valid / test:

    ============================================  ===============  ====================  ===========
    setting                                       MSE valid/test   agg. R² valid/test    ω̄ MAE cm⁻¹
    ============================================  ===============  ====================  ===========
    batch 16, wd 0.05, EMA 0.995 (old defaults)   0.0219 / 0.0188  0.723 / 0.753         17.7 / 16.6
    batch 8, wd 0.2, EMA 0.995                    0.0206 / –       0.740 / –             16.7 / –
    batch 8, wd 0.5, EMA 0.995                    0.0237 / –       0.701 / –             17.8 / –
    batch 8, wd 0.2, EMA 0.999 (chosen)           0.0205 / 0.0181  0.740 / 0.763         16.5 / 15.7
    ============================================  ===============  ====================  ===========

    A single network stops early after 40–55 epochs (best epoch 17–29); seed 1 gave valid MSE
    0.0215. The mean of the seed-0 and seed-1 networks reached valid MSE 0.0193 / R² 0.756 (vs
    0.0205–0.0215 / 0.728–0.740 alone; renormalising the mean to max 1 was worse, 0.0203), so the
    default is that 2-network ensemble, chosen on the validation split. Test results over 3 seeds
    are in ``benchmarks/README.md``.
    """

    name = "e3nn"
    task_kinds = ("spectrum", "modes", "scalar")
    #: many small tensor ops: one thread is nearly as fast as two on 2 cores and does not collapse
    #: (10-20x slower) when other processes share the cores; PHONBENCH_NUM_THREADS overrides it
    num_threads = 1
    description = ("E(3)-equivariant gated convolution network (Chen et al. 2021) on periodic graphs; "
                   "default: mean of 2 seeded networks (ensemble=1: one)")
    default_params = {
        **TRAIN_DEFAULTS,
        "batch_size": 8, "epochs": 200, "lr": 5e-3, "weight_decay": 0.2, "lr_decay": 0.96,
        "patience": 25, "clip": 0.0, "max_time_s": 840.0, "ema_decay": 0.999, "compile": "auto", "ensemble": 2,
        "pool": "mean", "acoustic_zeros": True,
        "cutoff": 5.0, "max_neighbors": None, "n_basis": 10, "radial_layers": 1, "radial_neurons": 100,
        "em_dim": 64, "mul": 32, "lmax": 1, "layers": 2, "mass_scale": 100.0,
    }

    #: models saved before the acoustic zeros existed were trained without them
    legacy_params = {"acoustic_zeros": False}

    #: scalar targets (matbench_phonons' last DoS peak): attention pooling, L1 loss, weaker decay and a
    #: cosine schedule over the whole budget without early stopping — chosen on the validation rows
    #: of the five matbench folds (mean valid MAE 32.5 cm⁻¹, max pooling 34.1, DoS defaults 80.8).
    #: modes (gamma): the same recipe with max pooling (valid MAE 1.40 THz, attention 1.46, DoS
    #: defaults 2.07; seed 0). See benchmarks/README.md. Parameters passed explicitly always win.
    task_defaults = {
        "scalar": {"pool": "attention", "loss": "l1", "lr_schedule": "cosine", "patience": 0, "weight_decay": 0.05},
        "modes": {"pool": "max", "loss": "l1", "lr_schedule": "cosine", "patience": 0, "weight_decay": 0.05},
    }

    @classmethod
    def search_space(cls, trial: Any) -> dict[str, Any]:
        return {
            "lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 0.01, 0.5, log=True),
            "lr_decay": trial.suggest_float("lr_decay", 0.9, 0.99),
            "batch_size": trial.suggest_categorical("batch_size", [4, 8, 16]),
            "mul": trial.suggest_categorical("mul", [16, 32]),
        }

    def _check_train_params(self) -> None:
        from phonbench.exceptions import ConfigError

        super()._check_train_params()
        if int(self.params["lmax"]) not in (0, 1):
            raise ConfigError(f"lmax={self.params['lmax']!r} is not supported", "use lmax 0 or 1")
        if self.params["pool"] not in POOLS:
            raise ConfigError(f"pool={self.params['pool']!r} is not one of {POOLS}", "use pool=mean")

    def featurize(self, data: Any) -> list[Any]:
        """One graph per material with precomputed edge harmonics and per-length radial bases."""
        from e3nn import o3
        from e3nn.math import soft_one_hot_linspace

        from phonbench.featurizers.graphs import periodic_graphs

        p = self.params
        cutoff, n_basis = float(p["cutoff"]), int(p["n_basis"])
        graphs = periodic_graphs(data.structures, cutoff, p["max_neighbors"])
        irreps_sh = o3.Irreps.spherical_harmonics(int(p["lmax"]))
        items = []
        for g in graphs:
            vec = g.edge_vec.double()
            length = g.edge_len.double().numpy()
            sh = o3.spherical_harmonics(irreps_sh, vec, True, normalization="component") if len(vec) else (
                torch.zeros(0, irreps_sh.dim, dtype=torch.float64))
            sh = sh * torch.as_tensor(smooth_cutoff(length / cutoff))[:, None]
            uniq, uid = np.unique(np.round(length, _LEN_DECIMALS), return_inverse=True)
            emb = soft_one_hot_linspace(torch.as_tensor(uniq), 0.0, cutoff, n_basis, basis="gaussian",
                                        cutoff=False) * n_basis**0.5
            items.append(E3Graph(
                x_species=g.x_species, edge_index=g.edge_index, edge_sh=sh.float(),
                rad_emb=emb.float().reshape(-1, n_basis), edge_uid=torch.as_tensor(uid.reshape(-1), dtype=torch.int64),
                num_nodes=g.num_nodes,
            ))
        return items

    def infer_config(self, task: Any, items: Sequence[Any]) -> dict[str, Any]:
        n_edges = sum(int(g.edge_index.shape[1]) for g in items)
        n_nodes = sum(int(g.num_nodes) for g in items)
        return {"num_neighbors": max(n_edges / max(n_nodes, 1), 1.0)}

    def build_module(self, task: Any, config: Mapping[str, Any]) -> nn.Module:
        p = self.params
        return E3NNNetwork(
            task.n_outputs, "spectrum" if task.kind == "spectrum" else str(p["pool"]), config["num_neighbors"],
            em_dim=int(p["em_dim"]), mul=int(p["mul"]), lmax=int(p["lmax"]), layers=int(p["layers"]),
            n_basis=int(p["n_basis"]), radial_layers=int(p["radial_layers"]),
            radial_neurons=int(p["radial_neurons"]), mass_scale=float(p["mass_scale"]),
            acoustic_zero=self.acoustic_zero(task),
        )
