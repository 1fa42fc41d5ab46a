"""Speed of periodic graph featurisation on the ``dos`` structures (1,522 crystals).

Compares, in one process and on the same structures:

* ``periodic_graphs`` cold (empty cache: neighbour search + writing the cache + building ``Data``),
* ``periodic_graphs`` cached (reading the cache + building ``Data``),
* a plain per-structure loop over pymatgen's ``Structure.get_all_neighbors`` (``Neighbor`` objects),
  the straightforward way of building the same edge lists.

Usage: ``python benchmarks/speed/bench_featurize.py [--cutoff 5.0] [--repeat 3]``. Falls back to the
``synthetic`` dataset when ``dos`` cannot be loaded. Uses one torch thread.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def _structures() -> tuple[str, list]:
    from phonbench.registry import DATASETS

    for name in ("dos", "synthetic"):
        try:
            return name, list(DATASETS.get(name)().load().structures)
        except Exception as exc:  # noqa: BLE001 - benchmark: report and fall back
            print(f"[bench] dataset {name!r} unavailable ({exc}); trying the next one")
    raise SystemExit("no dataset with structures could be loaded")


def _pymatgen_loop(structures, cutoff: float) -> int:
    n_edges = 0
    for s in structures:
        n_edges += sum(len(nbs) for nbs in s.get_all_neighbors(cutoff))
    return n_edges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3, help="best of N timings")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from phonbench.featurizers.graphs import periodic_graphs

    name, structures = _structures()
    n = len(structures)
    periodic_graphs(structures[:2], args.cutoff, cache=False)  # warm up imports

    def best(fn) -> tuple[float, object]:
        times, out = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    def cold():
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["PHONBENCH_CACHE_DIR"] = tmp
            return periodic_graphs(structures, args.cutoff)

    t_cold, graphs = best(cold)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PHONBENCH_CACHE_DIR"] = tmp
        periodic_graphs(structures, args.cutoff)
        t_cached, _ = best(lambda: periodic_graphs(structures, args.cutoff))
    t_loop, n_edges_ref = best(lambda: _pymatgen_loop(structures, args.cutoff))
    n_edges = sum(int(g.edge_index.shape[1]) for g in graphs)
    assert n_edges == n_edges_ref, (n_edges, n_edges_ref)

    print(f"\ndataset {name}: {n} structures, cutoff {args.cutoff} Å, {n_edges} directed edges\n")
    print(f"{'method':<36}{'seconds':>10}{'structures/s':>15}{'speed-up':>10}")
    for label, t in (
        ("pymatgen get_all_neighbors loop", t_loop),
        ("periodic_graphs cold (no cache)", t_cold),
        ("periodic_graphs cached", t_cached),
    ):
        print(f"{label:<36}{t:>10.3f}{n / t:>15.0f}{t_loop / t:>9.1f}x")


if __name__ == "__main__":
    main()
