"""Training and inference speed of the ``e3nn`` model vs e3nn's own reference network.

1. Seconds per training epoch on the ``dos`` tutorial train split (1,192 crystals): phonbench's
   ``E3NNNetwork`` vs ``e3nn.nn.models.gate_points_2101.Network`` with the same widths (64x0e input
   and attributes from one 118→64 embedding, hidden 32x0e+32x0o+32x1e+32x1o, 2 gates, 10 Gaussian
   bases, radial MLP 1×100, 51 outputs, ReLU + sum + max-normalisation head) fed the same periodic
   edges. The reference recomputes harmonics and bases every step and uses torch's default AdamW,
   as in the e3nn tutorial; ours uses what its trainer uses (fused AdamW) and, with ``--compile``,
   a third row trains a ``torch.compile`` copy (the ``compile=true`` model option; its one-off
   compilation time is printed separately). All run forward + backward + optimiser step on the
   same batches, alternating batch by batch in one process (so machine load affects all alike);
   collation is included.
2. Inference throughput: ``E3NNModel.predict`` on 4,346 structures (the ``dos`` structures
   repeated), cold (graphs computed) and with the graph cache warm.

Usage: ``python benchmarks/speed/bench_e3nn.py [--batch-size 16] [--threads 1] [--batches N] [--compile]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def reference_network(num_neighbors: float, num_nodes: float):
    """gate_points_2101.Network on precomputed periodic edges (the tutorial's PeriodicNetwork)."""
    import torch
    from e3nn import o3
    from e3nn.math import soft_one_hot_linspace
    from e3nn.nn.models.gate_points_2101 import Network, smooth_cutoff

    from phonbench.featurizers.graphs import element_masses

    class PeriodicReference(Network):
        def __init__(self) -> None:
            super().__init__("64x0e", "32x0e+32x0o+32x1e+32x1o", "51x0e", "64x0e", o3.Irreps.spherical_harmonics(1),
                             layers=2, max_radius=5.0, number_of_basis=10, radial_layers=1, radial_neurons=100,
                             num_neighbors=num_neighbors, num_nodes=num_nodes, reduce_output=False)
            self.em = torch.nn.Linear(118, 64)
            self.register_buffer("mass", torch.tensor(element_masses() / 100.0, dtype=torch.float32))

        def forward(self, data):  # type: ignore[override]
            x = torch.relu(self.em(data.x_species * self.mass))
            z = torch.relu(self.em(data.x_species))
            src, dst = data.edge_index
            vec = data.edge_vec
            sh = o3.spherical_harmonics(self.irreps_edge_attr, vec, True, normalization="component")
            length = vec.norm(dim=1)
            emb = soft_one_hot_linspace(length, 0.0, self.max_radius, self.number_of_basis, basis="gaussian",
                                        cutoff=False).mul(self.number_of_basis**0.5)
            attr = smooth_cutoff(length / self.max_radius)[:, None] * sh
            for layer in self.layers:
                x = layer(x, z, src, dst, attr, emb)
            out = torch.zeros(int(data.num_graphs), x.shape[1]).index_add_(0, data.batch, torch.relu(x))
            return out / out.max(dim=1, keepdim=True).values.clamp_min(1e-12)

    return PeriodicReference()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=0, help="time only N batches (0 = full epoch)")
    parser.add_argument("--compile", action="store_true", help="also time a torch.compile'd copy of ours")
    args = parser.parse_args()

    import numpy as np
    import torch
    from torch_geometric.data import Batch

    from phonbench.datasets.base import PhononData
    from phonbench.featurizers.graphs import periodic_graphs
    from phonbench.models.e3nn_model import E3NNModel
    from phonbench.registry import DATASETS

    torch.set_num_threads(args.threads)
    os.environ["PHONBENCH_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("PHONBENCH_NO_PROGRESS", "1")
    ds = DATASETS.get("dos")()
    data = ds.load()
    train = data.subset(ds.split("tutorial").folds[0].train)
    n = len(train)

    model = E3NNModel({"batch_size": args.batch_size}, seed=0)
    ours_items = model.featurize(train)
    ref_items = periodic_graphs(train.structures, 5.0)
    config = model.infer_config(train.task, ours_items)
    torch.manual_seed(0)
    ours = model.build_module(train.task, config)
    torch.manual_seed(0)
    ref = reference_network(config["num_neighbors"], float(np.mean([g.num_nodes for g in ref_items])))
    nets = {"ours": ours, "ref": ref}
    modules = dict(nets)  # the plain modules (for the optimisers)
    if args.compile:
        from phonbench.models.torch_utils import compile_module

        torch.manual_seed(0)
        plain = model.build_module(train.task, config)
        modules["compiled"], nets["compiled"] = plain, compile_module(plain, "e3nn")
    y = torch.as_tensor(train.targets, dtype=torch.float32)
    opts = {k: torch.optim.AdamW(m.parameters(), lr=5e-3, weight_decay=0.05, fused=k != "ref" or None)
            for k, m in modules.items()}
    n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in (("ours", ours), ("ref", ref))}

    def step(kind: str, idx: np.ndarray) -> float:
        t0 = time.perf_counter()
        net = nets[kind]
        if kind == "ref":
            batch = Batch.from_data_list([ref_items[i] for i in idx])
        else:
            batch = model.collate([ours_items[i] for i in idx])
        loss = ((net(batch) - y[idx]) ** 2).mean()
        opts[kind].zero_grad()
        loss.backward()
        opts[kind].step()
        return time.perf_counter() - t0

    batches = np.array_split(np.random.default_rng(0).permutation(n), int(np.ceil(n / args.batch_size)))
    warmup = {kind: step(kind, batches[0]) for kind in nets}  # compilation happens here
    if args.batches:
        batches = batches[: args.batches]
    totals = {kind: 0.0 for kind in nets}
    for idx in batches:
        for kind in nets:
            totals[kind] += step(kind, idx)
    scale = (n / args.batch_size) / len(batches)
    epoch = {k: v * scale for k, v in totals.items()}

    print(f"\ntraining epoch, dos train ({n} structures), batch {args.batch_size}, {args.threads} thread(s)")
    print(f"{'network':<44}{'params':>10}{'s/epoch':>10}")
    print(f"{'gate_points_2101.Network (periodic edges)':<44}{n_params['ref']:>10}{epoch['ref']:>10.2f}")
    print(f"{'phonbench E3NNNetwork':<44}{n_params['ours']:>10}{epoch['ours']:>10.2f}")
    if args.compile:
        print(f"{'phonbench E3NNNetwork, torch.compile':<44}{n_params['ours']:>10}{epoch['compiled']:>10.2f}")
    print(f"ratio ours/reference: {epoch['ours'] / epoch['ref']:.2f} (goal <= 0.5)")
    if args.compile:
        print(f"ratio compiled/reference: {epoch['compiled'] / epoch['ref']:.2f}; "
              f"one-off compilation {warmup['compiled'] - warmup['ours']:.0f} s")

    # ---------------------------------------------------------------- inference throughput
    fitted = E3NNModel({"epochs": 1}, seed=0).fit(train.subset(np.arange(32)))
    reps = -(-4346 // len(data))
    idx = np.tile(np.arange(len(data)), reps)[:4346]
    many = PhononData([f"s{i}" for i in range(len(idx))], [data.structures[int(i)] for i in idx],
                      data.targets[idx], data.task)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PHONBENCH_CACHE_DIR"] = tmp
        t0 = time.perf_counter()
        pred = fitted.predict(many)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        fitted.predict(many)
        warm = time.perf_counter() - t0
    assert pred.shape == (4346, 51)
    print(f"\ninference on {len(idx)} structures: {cold:.1f} s cold ({len(idx) / cold:.0f}/s), "
          f"{warm:.1f} s with cached graphs ({len(idx) / warm:.0f}/s) (goal <= 30 s)")


if __name__ == "__main__":
    main()
