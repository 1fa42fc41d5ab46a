"""Periodic crystal graphs: neighbour lists within a cutoff radius → torch-geometric ``Data``.

Each material becomes one ``torch_geometric.data.Data`` with (``n`` atoms, ``E`` directed edges):

* ``z`` ``(n,)`` int64 — atomic number (for a disordered site, its dominant species),
* ``x_species`` ``(n, 118)`` float32 — occupancy-weighted multi-hot of the elements Z = 1..118
  (a one-hot for ordered sites; Chen et al. 2021 eq. 1 uses these weights for alloy sites),
* ``mass`` ``(n,)`` float32 — occupancy-weighted atomic mass in amu,
* ``pos`` ``(n, 3)`` float32 — Cartesian positions in Å; ``lattice`` ``(1, 3, 3)`` float32, rows = lattice
  vectors in Å,
* ``edge_index`` ``(2, E)`` int64 — ``[source, target]``: the source atom (at some periodic image) is a
  neighbour of the target atom within ``cutoff``; messages flow source → target,
* ``edge_shift`` ``(E, 3)`` float32 — Cartesian image shift of the source atom in Å,
* ``edge_vec`` ``(E, 3)`` float32 — ``pos[source] + edge_shift - pos[target]`` in Å (points from the
  target atom to the neighbour image),
* ``edge_len`` ``(E,)`` float32 — ``|edge_vec|`` in Å.

Edges are sorted by target atom, then distance. With ``max_neighbors=k`` the ``k`` nearest
neighbours of every target atom are kept, plus any neighbour tied in distance with the ``k``-th
(so the graph does not depend on the order of the atoms, e.g. 12 equidistant O around Sr). Self-pairs at zero distance are excluded; an atom's own periodic images are
included. Neighbour search is pymatgen's compiled ``find_points_in_spheres``.

The concatenated arrays of a featurisation (plus per-material atom/edge counts) are cached on disk
with :func:`phonbench.cache.cached_arrays` under a key of the structures' fingerprint, the parameters
and :data:`FEATURIZER_VERSION`; ``Data`` objects are rebuilt from them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from phonbench.cache import cache_key, cached_arrays, structures_fingerprint
from phonbench.exceptions import ConfigError, DataError
from phonbench.structures import check_featurizable

if TYPE_CHECKING:
    from torch_geometric.data import Data

#: bump when the computed arrays change (invalidates cached graphs)
FEATURIZER_VERSION = "2"  # 2: neighbours tied with the k-th are kept
#: distance (Å) within which a neighbour counts as tied with the k-th nearest
TIE_TOLERANCE = 1e-4
N_ELEMENTS = 118
_NUMERICAL_TOL = 1e-8


@lru_cache(maxsize=1)
def element_masses() -> np.ndarray:
    """Atomic masses in amu of Z = 1..118, shape ``(118,)`` (index ``Z - 1``)."""
    from pymatgen.core.periodic_table import Element

    return np.array([float(Element.from_Z(z).atomic_mass) for z in range(1, N_ELEMENTS + 1)])


def _neighbors(structure: Any, cutoff: float) -> tuple[np.ndarray, ...]:
    """``(target, source, image (E,3) int, distance)`` within ``cutoff`` Å, self-pairs excluded."""
    try:
        from pymatgen.optimization.neighbors import find_points_in_spheres
    except ImportError:  # pragma: no cover - pymatgen without compiled extension
        center, point, images, dist = structure.get_neighbor_list(cutoff)
        return center, point, np.asarray(images).astype(np.int64), dist
    cart = np.ascontiguousarray(structure.cart_coords, dtype=float)
    center, point, images, dist = find_points_in_spheres(
        cart, cart, r=float(cutoff), pbc=np.ascontiguousarray(structure.pbc, dtype=np.int64),
        lattice=np.ascontiguousarray(structure.lattice.matrix, dtype=float), tol=_NUMERICAL_TOL,
    )
    keep = ~((center == point) & (dist <= _NUMERICAL_TOL))
    return center[keep], point[keep], np.asarray(images[keep]).astype(np.int64), dist[keep]


def _select_edges(target: np.ndarray, source: np.ndarray, images: np.ndarray, dist: np.ndarray, k: int | None):
    """Order of edges sorted by (target, distance, source, image); the ``k`` nearest per target.

    Neighbours tied in distance with the ``k``-th (within :data:`TIE_TOLERANCE` Å) are all kept, so
    the graph — and any model on it — does not depend on the order of the atoms.
    """
    order = np.lexsort((images[:, 2], images[:, 1], images[:, 0], source, np.round(dist, 8), target))
    if k is None or len(order) == 0:
        return order
    t, d = target[order], dist[order]
    first = np.searchsorted(t, t, side="left")  # t is sorted: start of each target's group
    last = np.searchsorted(t, t, side="right") - 1
    rank = np.arange(len(t)) - first
    kth = d[np.minimum(first + k - 1, last)]
    return order[(rank < k) | (d <= kth + TIE_TOLERANCE)]


def graph_arrays(
    structures: Sequence[Any], cutoff: float = 5.0, max_neighbors: int | None = None
) -> dict[str, np.ndarray]:
    """Concatenated graph arrays of ``structures`` (no caching).

    Returns:
        dict with ``n_atoms`` ``(n,)``, ``n_edges`` ``(n,)``, ``z`` ``(N,)``, ``mass`` ``(N,)`` amu,
        ``pos`` ``(N, 3)`` Å, ``lattice`` ``(n, 3, 3)`` Å, ``sp_site``/``sp_elem``/``sp_weight`` ``(K,)``
        (sparse species weights; ``sp_site`` is a global atom index), ``edge_src``/``edge_dst`` ``(E,)``
        (atom indices local to each material), ``edge_image`` ``(E, 3)`` int32 and ``edge_len`` ``(E,)`` Å,
        where ``N`` and ``E`` are totals over all materials.

    Raises:
        DataError: empty structure, NaN/inf coordinates, zero-volume cell or not a Structure.
        ConfigError: non-positive ``cutoff`` or ``max_neighbors``.
    """
    from phonbench.structures import site_species_weights

    cutoff, max_neighbors = _check_params(cutoff, max_neighbors)
    masses = element_masses()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (
        "n_atoms", "n_edges", "z", "mass", "pos", "lattice", "sp_site", "sp_elem", "sp_weight",
        "edge_src", "edge_dst", "edge_image", "edge_len",
    )}
    atom_offset = 0
    for i, s in enumerate(structures):
        check_featurizable(s, i)
        n = len(s)
        dense = site_species_weights(s)  # (n, 118) occupancies
        site, elem = np.nonzero(dense)
        weight = dense[site, elem]
        z = np.argmax(dense, axis=1) + 1
        target, source, images, dist = _neighbors(s, cutoff)
        order = _select_edges(target, source, images, dist, max_neighbors)
        parts["n_atoms"].append(np.array([n]))
        parts["n_edges"].append(np.array([len(order)]))
        parts["z"].append(z)
        parts["mass"].append(dense @ masses)  # = phonbench.structures.site_masses
        parts["pos"].append(np.asarray(s.cart_coords, dtype=np.float64))
        parts["lattice"].append(np.asarray(s.lattice.matrix, dtype=np.float64)[None])
        parts["sp_site"].append(site + atom_offset)
        parts["sp_elem"].append(elem)
        parts["sp_weight"].append(weight)
        parts["edge_src"].append(source[order])
        parts["edge_dst"].append(target[order])
        parts["edge_image"].append(images[order])
        parts["edge_len"].append(dist[order])
        atom_offset += n
    if not parts["n_atoms"]:
        raise DataError("no structures to featurize", "pass at least one structure")
    out = {k: np.concatenate(v) for k, v in parts.items()}
    for key in ("n_atoms", "n_edges", "z", "sp_site", "sp_elem", "edge_src", "edge_dst"):
        out[key] = out[key].astype(np.int64)
    out["edge_image"] = out["edge_image"].reshape(-1, 3).astype(np.int32)
    return out


def _check_params(cutoff: float, max_neighbors: int | None) -> tuple[float, int | None]:
    if not float(cutoff) > 0:
        raise ConfigError(f"graph cutoff {cutoff!r} must be a positive radius in Å", "use e.g. cutoff=5.0")
    if max_neighbors is not None and int(max_neighbors) < 1:
        raise ConfigError(f"max_neighbors={max_neighbors!r} must be >= 1", "or None for all neighbours in the cutoff")
    return float(cutoff), None if max_neighbors is None else int(max_neighbors)


def arrays_to_graphs(arrays: dict[str, np.ndarray]) -> list[Data]:
    """Rebuild one ``Data`` per material from :func:`graph_arrays` output (see module docstring)."""
    import torch
    from torch_geometric.data import Data

    n_atoms, n_edges = arrays["n_atoms"], arrays["n_edges"]
    atom_start = np.concatenate([[0], np.cumsum(n_atoms)])
    edge_mat = np.repeat(np.arange(len(n_atoms)), n_edges)
    lattice = arrays["lattice"]
    src, dst = arrays["edge_src"], arrays["edge_dst"]
    shift = np.einsum("ej,ejk->ek", arrays["edge_image"].astype(np.float64), lattice[edge_mat])
    pos = arrays["pos"]
    gsrc, gdst = src + atom_start[edge_mat], dst + atom_start[edge_mat]
    vec = pos[gsrc] + shift - pos[gdst]
    species = np.zeros((len(pos), N_ELEMENTS), dtype=np.float32)
    species[arrays["sp_site"], arrays["sp_elem"]] = arrays["sp_weight"]

    def split(a: np.ndarray, counts: np.ndarray, dtype) -> tuple[Any, ...]:
        return torch.split(torch.as_tensor(np.ascontiguousarray(a), dtype=dtype), counts.tolist())

    f32, i64 = torch.float32, torch.int64
    z_t, m_t = split(arrays["z"], n_atoms, i64), split(arrays["mass"], n_atoms, f32)
    pos_t, sp_t = split(pos, n_atoms, f32), split(species, n_atoms, f32)
    ei_t = split(np.stack([src, dst]).T, n_edges, i64)
    sh_t, vec_t = split(shift, n_edges, f32), split(vec, n_edges, f32)
    len_t = split(np.linalg.norm(vec, axis=1), n_edges, f32)
    lat_t = torch.as_tensor(lattice, dtype=f32)
    graphs = []
    for i in range(len(n_atoms)):
        graphs.append(Data(
            z=z_t[i], x_species=sp_t[i], mass=m_t[i], pos=pos_t[i], lattice=lat_t[i : i + 1],
            edge_index=ei_t[i].T.contiguous(), edge_shift=sh_t[i], edge_vec=vec_t[i], edge_len=len_t[i],
            num_nodes=int(n_atoms[i]),
        ))
    return graphs


def periodic_graphs(
    structures: Sequence[Any], cutoff: float = 5.0, max_neighbors: int | None = None, *, cache: bool = True
) -> list[Data]:
    """Periodic graphs of ``structures`` (one ``Data`` per structure, same order), cached on disk.

    Args:
        structures: pymatgen ``Structure`` objects (ordered or disordered).
        cutoff: neighbour radius in Å.
        max_neighbors: keep only the nearest ``k`` neighbours of each atom (``None`` = all).
        cache: read/write the on-disk cache (``PHONBENCH_NO_CACHE`` also disables it).

    Raises:
        DataError: empty structure, NaN/inf coordinates, zero-volume cell.
        ConfigError: bad ``cutoff``/``max_neighbors``.
    """
    cutoff, max_neighbors = _check_params(cutoff, max_neighbors)
    structures = list(structures)
    if not structures:
        return []
    for i, s in enumerate(structures):
        check_featurizable(s, i)
    if not cache:
        return arrays_to_graphs(graph_arrays(structures, cutoff, max_neighbors))
    params = {"cutoff": cutoff, "max_neighbors": max_neighbors}
    key = cache_key(structures_fingerprint(structures), params, FEATURIZER_VERSION)
    arrays = cached_arrays("graphs", key, lambda: graph_arrays(structures, cutoff, max_neighbors))
    return arrays_to_graphs(arrays)
