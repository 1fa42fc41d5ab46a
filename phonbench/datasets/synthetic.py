"""``synthetic``: seeded crystals labelled by a harmonic spring model (no downloads, any size).

Each crystal is one of nine prototypes (2–8 atoms per primitive cell) with random elements from a
pool of 33 common cations and anions and a lattice constant at which the tightest first-shell bond
equals the sum of the atomic radii (touching spheres), times ``1 + 0.03 ε`` (``ε`` standard
normal); looser bonds are longer and so softer. Labels come from
:mod:`phonbench.lattice_dynamics`: central springs on the first two coordination shells of every
atom (first-shell springs alone leave tetrahedral and rutile-type cells floppy, with extra zero
modes at Γ), ``k_ij = √(k_i k_j) (d0_ij/d)^6`` eV/Å², pymatgen masses. Typical highest
frequencies are 120–640 cm⁻¹ (5th–95th percentile), lowest optical modes reach a few cm⁻¹ (loose
"rattling" atoms), and about 0.2% of crystals exceed 1000 cm⁻¹.

Tasks (constructor option ``task``):

* ``modes`` (default): Γ-point frequencies in THz, sorted descending (three ≈ 0 acoustic modes
  last), zero-padded to ``3 · 8 = 24`` columns with a boolean mask.
* ``spectrum``: phonon DoS on a Monkhorst–Pack ``mesh³`` q-mesh, Gaussian-broadened (``sigma``
  cm⁻¹) onto the 51-point grid 0, 20, …, 1000 cm⁻¹ and divided by its maximum (as Chen et al.).

Crystals are generated in blocks of :data:`BLOCK` with ``numpy.random.default_rng([seed, block])``,
so a smaller ``size`` with the same ``seed`` gives a prefix of a larger one. Arrays are cached on
disk (:func:`phonbench.cache.cached_arrays`); pymatgen structures are built lazily on access.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from phonbench import lattice_dynamics as ld
from phonbench.cache import cache_key, cached_arrays
from phonbench.datasets.base import GROUPED_SPLITS, Dataset, DatasetCard, PhononData, Task
from phonbench.datasets.bundled import LazyStructures
from phonbench.exceptions import ConfigError
from phonbench.physics import CHEN_GRID_CM1, CM1_PER_THZ

#: bump when generated crystals or labels change (invalidates cached arrays)
GENERATOR_VERSION = "1"
#: crystals per random block (prefix stability across sizes)
BLOCK = 1024
#: relative standard deviation of the lattice constant around the radius-sum estimate
LATTICE_NOISE = 0.03
#: largest primitive cell of any prototype (atoms); modes are padded to 3 × this
MAX_ATOMS = 8

CATIONS = ("Li", "Na", "K", "Rb", "Cs", "Mg", "Ca", "Sr", "Ba", "Al", "Ga", "In", "Zn", "Cd",
           "Ti", "Zr", "Fe", "Ni", "Cu", "Ag", "Sn", "Pb")  # fmt: skip
ANIONS = ("N", "O", "F", "P", "S", "Cl", "As", "Se", "Br", "Te", "I")


@dataclass(frozen=True)
class Prototype:
    """A crystal prototype in units of its lattice constant ``a``.

    Attributes:
        name: prototype name.
        lattice: ``(3, 3)`` primitive lattice vectors (rows) for ``a = 1``.
        frac_coords: ``(N, 3)`` fractional coordinates.
        sites: ``(N,)`` sublattice index of each site.
        kinds: ``"cation"`` or ``"anion"`` per sublattice (elements differ within a kind).
    """

    name: str
    lattice: np.ndarray
    frac_coords: np.ndarray
    sites: tuple[int, ...]
    kinds: tuple[str, ...]


def _prototypes() -> tuple[Prototype, ...]:
    fcc = 0.5 * np.array([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]])
    sc = np.eye(3)
    hexa = np.array([[1.0, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [0, 0, np.sqrt(8 / 3)]])  # ideal c/a
    tet = np.diag([1.0, 1.0, 0.644])  # rutile c/a
    bct = np.array([[-0.5, 0.5, 1.0], [0.5, -0.5, 1.0], [0.5, 0.5, -1.0]])  # chalcopyrite, c = 2a
    chalco_conv = np.array([[0, 0, 0], [0, 0.5, 0.25], [0, 0, 0.5], [0, 0.5, 0.75],
                            [0.25, 0.25, 0.125], [-0.25, 0.75, 0.125], [0.75, 0.25, 0.875],
                            [0.25, -0.25, 0.875]])  # fmt: skip  (I-42d, ideal x = 1/4)
    chalco = (chalco_conv @ np.diag([1.0, 1.0, 2.0])) @ np.linalg.inv(bct)
    u = 0.305  # rutile oxygen parameter
    ca, cca = ("cation", "anion"), ("cation", "cation", "anion")
    specs = [
        ("rocksalt", fcc, [[0, 0, 0], [0.5, 0.5, 0.5]], (0, 1), ca),
        ("cscl", sc, [[0, 0, 0], [0.5, 0.5, 0.5]], (0, 1), ca),
        ("zincblende", fcc, [[0, 0, 0], [0.25, 0.25, 0.25]], (0, 1), ca),
        ("wurtzite", hexa, [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.375],
                            [2 / 3, 1 / 3, 0.875]], (0, 0, 1, 1), ca),  # fmt: skip
        ("fluorite", fcc, [[0, 0, 0], [0.25, 0.25, 0.25], [0.75, 0.75, 0.75]], (0, 1, 1), ca),
        ("heusler", fcc, [[0.25, 0.25, 0.25], [0.75, 0.75, 0.75], [0, 0, 0], [0.5, 0.5, 0.5]],
         (0, 0, 1, 2), cca),  # fmt: skip
        ("perovskite", sc, [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
         (0, 1, 2, 2, 2), cca),  # fmt: skip
        ("rutile", tet, [[0, 0, 0], [0.5, 0.5, 0.5], [u, u, 0], [1 - u, 1 - u, 0],
                         [0.5 + u, 0.5 - u, 0.5], [0.5 - u, 0.5 + u, 0.5]], (0, 0, 1, 1, 1, 1), ca),  # fmt: skip
        ("chalcopyrite", bct, chalco, (0, 0, 1, 1, 2, 2, 2, 2), cca),
    ]
    return tuple(
        Prototype(name, np.asarray(lat, float), np.asarray(fc, float) % 1.0, sites, kinds)
        for name, lat, fc, sites, kinds in specs
    )


PROTOTYPES: tuple[Prototype, ...] = _prototypes()
PROTOTYPE_NAMES: tuple[str, ...] = tuple(p.name for p in PROTOTYPES)
_BONDS: dict[tuple[int, int], ld.Bonds] = {}


def prototype_bonds(index: int, shells: int = 2) -> ld.Bonds:
    """Bonds of prototype ``index`` at ``a = 1`` (topology is scale-invariant; memoised)."""
    key = (index, shells)
    if key not in _BONDS:
        p = PROTOTYPES[index]
        _BONDS[key] = ld.find_bonds(p.lattice, p.frac_coords, shells=shells)
    return _BONDS[key]


def _symbols_to_z(symbols: tuple[str, ...]) -> np.ndarray:
    from pymatgen.core import Element

    return np.array([Element(s).Z for s in symbols], dtype=np.int64)


def generate_crystals(size: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded crystals as arrays (no pymatgen objects).

    Returns:
        ``prototype (n,)`` index into :data:`PROTOTYPES`, ``species (n, 8)`` atomic numbers (0 past
        ``n_atoms``), ``n_atoms (n,)`` and ``a (n,)`` lattice constant in Å.
    """
    cat_z, an_z = _symbols_to_z(CATIONS), _symbols_to_z(ANIONS)
    parts: list[tuple[np.ndarray, ...]] = []
    for block in range((size + BLOCK - 1) // BLOCK):
        rng = np.random.default_rng([seed, block])
        proto = rng.integers(0, len(PROTOTYPES), BLOCK)
        cations = np.argsort(rng.random((BLOCK, len(CATIONS))), axis=1)[:, :3]  # distinct picks
        anions = np.argsort(rng.random((BLOCK, len(ANIONS))), axis=1)[:, :3]
        parts.append((proto, cat_z[cations], an_z[anions], rng.standard_normal(BLOCK)))
    proto, cat, an, eps = (np.concatenate(x)[:size] for x in zip(*parts))
    numbers = np.zeros((size, MAX_ATOMS), dtype=np.int64)
    a = np.zeros(size)
    for index, p in enumerate(PROTOTYPES):
        rows = np.nonzero(proto == index)[0]
        counters = {"cation": 0, "anion": 0}
        sub_z = []
        for kind in p.kinds:
            pool = cat if kind == "cation" else an
            sub_z.append(pool[rows, counters[kind]])
            counters[kind] += 1
        z = np.stack([sub_z[s] for s in p.sites], axis=1)  # (rows, N)
        numbers[rows, : len(p.sites)] = z
        first = prototype_bonds(index, shells=1)  # first-shell bonds set the lattice constant
        r = ld.atomic_radii(z)
        ratio = (r[:, first.i] + r[:, first.j]) / first.length
        a[rows] = ratio.max(axis=1) * (1.0 + LATTICE_NOISE * eps[rows])  # touching spheres
    n_atoms = np.array([len(PROTOTYPES[i].sites) for i in proto], dtype=np.int64)
    return {"prototype": proto.astype(np.int64), "species": numbers, "n_atoms": n_atoms, "a": a}


def label_crystals(
    crystals: dict[str, np.ndarray], task: str, mesh: int = 4, sigma_cm1: float = 20.0, shells: int = 2
) -> np.ndarray:
    """Targets of ``crystals`` (from :func:`generate_crystals`) for ``task``.

    Returns:
        ``modes``: ``(n, 24)`` Γ frequencies in THz, descending, zero-padded; ``spectrum``:
        ``(n, 51)`` max-normalised DoS on :data:`~phonbench.physics.CHEN_GRID_CM1`.
    """
    n = len(crystals["prototype"])
    if task == "modes":
        qpoints, weights = np.zeros((1, 3)), np.ones(1)
        out = np.zeros((n, 3 * MAX_ATOMS))
    else:
        qpoints, weights = ld.monkhorst_pack(mesh)
        out = np.zeros((n, len(CHEN_GRID_CM1)))
    for index, p in enumerate(PROTOTYPES):
        rows = np.nonzero(crystals["prototype"] == index)[0]
        if len(rows) == 0:
            continue
        z = crystals["species"][rows, : len(p.sites)]
        bonds = prototype_bonds(index, shells)
        k = ld.spring_constants(bonds, z, scale=crystals["a"][rows])
        f = ld.frequencies(bonds, k, ld.atomic_masses(z), qpoints)  # (rows, Q, 3N) THz
        if task == "modes":
            out[rows, : f.shape[2]] = f[:, 0, ::-1]
        else:
            dos = ld.gaussian_dos(f * CM1_PER_THZ, weights, CHEN_GRID_CM1, sigma_cm1)
            out[rows] = dos / dos.max(axis=1, keepdims=True)
    return out


def structure_arrays(crystals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Arrays for :class:`~phonbench.datasets.bundled.LazyStructures` (lattice in Å)."""
    proto, n_atoms = crystals["prototype"], crystals["n_atoms"]
    lattice = np.stack([PROTOTYPES[i].lattice for i in range(len(PROTOTYPES))])[proto]
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    frac = np.concatenate([PROTOTYPES[i].frac_coords for i in proto]) if len(proto) else np.zeros((0, 3))
    numbers = crystals["species"][np.arange(MAX_ATOMS)[None, :] < n_atoms[:, None]]
    return {
        "lattice": lattice * crystals["a"][:, None, None],
        "site_offsets": offsets.astype(np.int64),
        "numbers": numbers.astype(np.uint8),
        "frac_coords": frac,
    }


_DESCRIPTION = (
    "Seeded synthetic crystals (9 prototypes, 2-8 atoms, 33 elements) labelled by a harmonic "
    "central-spring model.\n"
    "Springs join every atom to its first two coordination shells with k_ij = sqrt(k_i k_j) "
    f"(d0/d)^6 eV/A^2, k_i = {ld.STIFFNESS_SCALE:g} chi_i / r_i^2 (Pauling electronegativity, atomic "
    "radius), d0 = r_i + r_j; masses from pymatgen. Frequencies are the square roots of the "
    "eigenvalues of the mass-weighted dynamical matrix D(q). Lattice constants make the tightest "
    "nearest-neighbour bond equal the sum of atomic radii, with 3% noise. "
    "Options: task=modes|spectrum, size, seed, mesh, sigma, shells."
)
_MODES_TASK = Task("modes", 3 * MAX_ATOMS, "THz", "gamma_frequencies")
_SPECTRUM_TASK = Task("spectrum", len(CHEN_GRID_CM1), "a.u.", "dos", tuple(CHEN_GRID_CM1.tolist()), "cm^-1")
_BASE_CARD = dict(
    name="synthetic",
    description=_DESCRIPTION,
    license="CC0 (generated)",
    citation="phonbench synthetic harmonic dataset (cite the phonbench package and version)",
    source="generated by phonbench.datasets.synthetic (no download)",
    version=GENERATOR_VERSION,
    default_split="random",
    splits=("random", "kfold5", *GROUPED_SPLITS),
    size=1000,
)
CARDS: dict[str, DatasetCard] = {
    "modes": DatasetCard(
        task=_MODES_TASK,
        default_metrics=("mae", "r2_aggregated", "mean_frequency_error", "mse"),
        primary_metric="mae",
        notes="Gamma-point frequencies (THz), descending, zero-padded to 24 with a mask.",
        **_BASE_CARD,
    ),
    "spectrum": DatasetCard(
        task=_SPECTRUM_TASK,
        default_metrics=("mse", "mae", "r2_aggregated", "mean_frequency_error"),
        primary_metric="mse",
        notes="Phonon DoS on a Monkhorst-Pack mesh, Gaussian-broadened onto 0..1000 cm^-1, max = 1.",
        **_BASE_CARD,
    ),
}


class _TaskCard:
    """Descriptor: the default (``modes``) card on the class, the task's card on an instance."""

    def __get__(self, obj: Any, owner: type) -> DatasetCard:
        if obj is None:
            return CARDS["modes"]
        return dataclasses.replace(CARDS[obj.task], size=obj.size)


class SyntheticDataset(Dataset):
    """Seeded synthetic crystals with spring-model phonon labels.

    Args:
        data_dir: unused (nothing is read); accepted for interface compatibility.
        task: ``"modes"`` (Γ frequencies, THz) or ``"spectrum"`` (51-point DoS).
        size: number of crystals (>= 1).
        seed: generator seed (>= 0); same ``(seed, size)`` gives identical data.
        mesh: Monkhorst–Pack mesh per direction for ``spectrum`` (``mesh³`` q-points).
        sigma: Gaussian broadening of the DoS in cm⁻¹.
        shells: coordination shells joined by springs (2; 1 leaves some prototypes floppy).

    Raises:
        ConfigError: an option out of range or of the wrong type.
    """

    card = _TaskCard()  # type: ignore[assignment]

    def __init__(
        self,
        data_dir: str | None = None,
        task: str = "modes",
        size: int = 1000,
        seed: int = 0,
        mesh: int = 4,
        sigma: float = 20.0,
        shells: int = 2,
        **options: Any,
    ):
        if options:
            raise ConfigError(
                f"unknown synthetic dataset option(s) {sorted(options)}",
                "use task, size, seed, mesh, sigma or shells",
            )
        task = str(task).lower()
        if task not in CARDS:
            raise ConfigError(f"synthetic dataset has no task {task!r}", "use task=modes or task=spectrum")
        self.task = task
        self.size = _int_option("size", size, 1)
        self.seed = _int_option("seed", seed, 0)
        self.mesh = _int_option("mesh", mesh, 1)
        self.shells = _int_option("shells", shells, 1)
        if self.shells > 2:
            raise ConfigError(f"shells={self.shells} is not supported", "use shells=1 or shells=2")
        try:
            self.sigma = float(sigma)
        except (TypeError, ValueError):
            self.sigma = float("nan")
        if not self.sigma > 0 or not np.isfinite(self.sigma):
            raise ConfigError(f"sigma={sigma!r} is not a positive number of cm^-1", "use e.g. sigma=20")
        super().__init__(data_dir, task=task, size=self.size, seed=self.seed, mesh=self.mesh,
                         sigma=self.sigma, shells=self.shells)  # fmt: skip

    def arrays(self) -> dict[str, np.ndarray]:
        """Generated crystal and target arrays (cached on disk under ``synthetic/``)."""
        model = (ld.STIFFNESS_SCALE, ld.LENGTH_EXPONENT, LATTICE_NOISE, BLOCK)
        extra = (self.mesh, self.sigma) if self.task == "spectrum" else ()
        key = cache_key("synthetic", GENERATOR_VERSION, model, self.task, self.size, self.seed, self.shells, extra)

        def compute() -> dict[str, np.ndarray]:
            crystals = generate_crystals(self.size, self.seed)
            targets = label_crystals(crystals, self.task, self.mesh, self.sigma, self.shells)
            return {**crystals, **structure_arrays(crystals), "targets": targets}

        return cached_arrays("synthetic", key, compute)

    def _load(self) -> PhononData:
        arr = self.arrays()
        n_atoms = arr["n_atoms"].astype(np.int64)
        species = arr["species"]
        total_mass = np.where(species > 0, ld.atomic_masses(np.where(species > 0, species, 1)), 0.0).sum(axis=1)
        mask = None
        if self.task == "modes":
            mask = np.arange(3 * MAX_ATOMS)[None, :] < 3 * n_atoms[:, None]
        ids = [f"syn-s{self.seed}-{i:06d}" for i in range(self.size)]
        return PhononData(
            ids,
            LazyStructures(arr),
            arr["targets"],
            self.card.task,
            mask,
            extras={"n_atoms": n_atoms, "total_mass": total_mass, "prototype": arr["prototype"]},
        )


def _int_option(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int ``>= minimum`` or a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, str)):
        raise ConfigError(f"{name}={value!r} is not an integer", f"pass an integer >= {minimum}")
    try:
        as_float = float(value)
        out = int(as_float)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name}={value!r} is not an integer", f"pass an integer >= {minimum}") from None
    if out != as_float or out < minimum:
        raise ConfigError(f"{name}={value!r} is not an integer >= {minimum}", f"pass e.g. {name}={max(minimum, 1)}")
    return out
