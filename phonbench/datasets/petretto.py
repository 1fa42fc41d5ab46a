"""``dos`` and ``gamma``: the 1,521 Petretto et al. (2018) DFPT materials, bundled.

Both read the shared structure file ``petretto_structures.npz`` (PBEsol cells used for DFPT, plus
the e3nn tutorial's extra Mg3Bi2 entry) and their own target file. See :mod:`.build` for how the
files are made from the raw figshare JSONs.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from phonbench.datasets.base import GROUPED_SPLITS, DatasetCard, Fold, PhononData, Split, Task
from phonbench.datasets.bundled import BundledDataset, LazyStructures, card_files, unpack_modes
from phonbench.exceptions import DataError
from phonbench.physics import CHEN_GRID_CM1

STRUCTURES_FILE = "petretto_structures.npz"
PETRETTO_CITATION = (
    "G. Petretto, S. Dwaraknath, H. P. C. Miranda, D. Winston, M. Giantomassi, M. J. van Setten, X. Gonze, "
    "K. A. Persson, G. Hautier, G.-M. Rignanese, High-throughput density-functional perturbation theory "
    "phonons for inorganic materials, Sci. Data 5, 180065 (2018), doi:10.1038/sdata.2018.65"
)
CHEN_CITATION = (
    "Z. Chen, N. Andrejevic, T. Smidt et al., Direct prediction of phonon density of states with Euclidean neural networks, Adv. Sci. 8, 2004214 "
    "(2021), doi:10.1002/advs.202004214"
)
PETRETTO_SOURCE = (
    "figshare collection doi:10.6084/m9.figshare.c.3938023 (raw JSON copied from GitHub c-earth/KAN-E3NN "
    "@dedddb6); tutorial rows and split from ninarina12/phononDoS_tutorial and Kozlan-TA/phononDos"
)
PETRETTO_LICENSE = "CC BY 4.0 (Petretto figshare collection); e3nn tutorial split and Mg3Bi2 row: MIT"
GAMMA_N_MAX_ATOMS = 40

DOS_TASK = Task(
    kind="spectrum",
    n_outputs=len(CHEN_GRID_CM1),
    unit="a.u.",
    target="phonon_dos",
    grid=tuple(float(x) for x in CHEN_GRID_CM1),
    grid_unit="cm^-1",
)
GAMMA_TASK = Task(
    kind="modes", n_outputs=3 * GAMMA_N_MAX_ATOMS, unit="THz", target="gamma_frequencies", grid_unit="THz"
)

DOS_NOTES = (
    "Target: scipy savgol_filter(ph_dos, 101, 3) of the raw 1 cm^-1 DFPT DoS, linearly interpolated onto "
    "0, 20, ..., 1000 cm^-1 (zero outside the data), negatives clipped, divided by the maximum. This "
    "reproduces all 1521 rows of the e3nn tutorial table (max abs diff 4.9e-15). mp-2667 (CsAu) has only "
    "94 raw points, shorter than the window: the window shrinks to the largest odd length that fits (93), "
    "which reproduces its tutorial row exactly. Row 1521 'tutorial-Mg3Bi2' is the tutorial's extra entry "
    "(not in Petretto): its target is the tutorial's 51-point row, its structure the tutorial's ASE cell, "
    "and its dos_scale / cv_* are NaN. 200 materials have modes above 1000 cm^-1 that the grid cuts off. "
    "Extras: n_atoms; total_mass (amu per cell); dos_norm = trapezoid integral of the target over the grid "
    "(cm^-1), so 3N*target/dos_norm integrates to 3N (phonbench.physics.physical_dos); dos_scale = the "
    "smoothed raw DoS at the target maximum in states/(cm^-1 cell), so target*dos_scale is the physical "
    "smoothed DoS (integral 3N less any part above 1000 cm^-1); cv_100K/cv_300K/cv_800K = Petretto thermo "
    "C_v (given per mole of formula units) times Z, i.e. J/(K mol of unit cells), NaN for the 276 has_neg_fr materials without thermo; has_neg_fr flag. "
    "Splits: tutorial = the e3nn tutorial's element-balanced idx_train/valid/test (1192/141/189, "
    "seed-independent); random (80/10/10) and kfold5 are seeded; chemsys, cluster and element are the "
    "seeded grouped (out-of-distribution) protocols of phonbench.datasets.grouped_splits."
)
GAMMA_NOTES = (
    "Target: band-structure frequencies at the first q = (0,0,0) point of each material's path, cm^-1 "
    "converted to THz (1 THz = 33.35641 cm^-1), sorted descending, imaginary modes kept as negative values, "
    "zero-padded to 3*40 = 120 with a mask (mask.sum(1) == 3 * n_atoms). The DFPT band structures include "
    "the non-analytic (LO-TO) term, so for 1048 polar materials the Γ frequencies depend on the direction "
    "of approach and differ between Γ occurrences on the path; the first occurrence is used and the "
    "spread over occurrences is kept as the extra lo_to_spread (THz). Structures: the PBEsol DFPT cells "
    "shared with 'dos'. Extras: n_atoms, lo_to_spread, has_neg_fr. Splits: random (80/10/10) and kfold5 "
    "are seeded; chemsys, cluster and element are the seeded grouped (out-of-distribution) protocols of "
    "phonbench.datasets.grouped_splits."
)


def _structures(ds: BundledDataset, ids: np.ndarray) -> LazyStructures:
    arrays = ds.arrays(STRUCTURES_FILE)
    position = {str(m): i for i, m in enumerate(arrays["ids"])}
    missing = [str(m) for m in ids if str(m) not in position]
    if missing:
        raise DataError(f"{len(missing)} ids (first {missing[0]}) have no structure in {STRUCTURES_FILE}")
    return LazyStructures(arrays).take(np.array([position[str(m)] for m in ids]))


class DosDataset(BundledDataset):
    """Chen et al. (2021) 51-point max-normalised phonon DoS of 1,522 materials (spectrum task)."""

    bundled_files: ClassVar[tuple[str, ...]] = (STRUCTURES_FILE, "dos.npz")
    card = DatasetCard(
        name="dos",
        description="Phonon DoS on 0-1000 cm^-1 (51 points, max-normalised) of the Petretto DFPT set, "
        "as in Chen et al. 2021 / the e3nn phonon DoS tutorial",
        task=DOS_TASK,
        citation=f"{PETRETTO_CITATION}; {CHEN_CITATION}",
        license=PETRETTO_LICENSE,
        source=PETRETTO_SOURCE,
        version="1",
        default_split="tutorial",
        splits=("tutorial", "random", "kfold5", *GROUPED_SPLITS),
        default_metrics=(
            "mse", "mae", "r2_aggregated", "mean_frequency_error", "wasserstein", "heat_capacity_error"
        ),
        primary_metric="mse",
        files=card_files((STRUCTURES_FILE, "dos.npz")),
        size=1522,
        notes=DOS_NOTES,
    )
    split_descriptions: ClassVar[dict[str, str]] = {
        "tutorial": "The e3nn phonon DoS tutorial's element-balanced train/valid/test rows (1192/141/189, "
        "seed-independent).",
    }
    _EXTRAS: ClassVar[tuple[str, ...]] = (
        "n_atoms", "total_mass", "dos_norm", "dos_scale", "cv_100K", "cv_300K", "cv_800K", "has_neg_fr",
    )

    def _load(self) -> PhononData:
        arrays = self.arrays("dos.npz")
        self._tutorial = {p: arrays[f"tutorial_{p}"] for p in ("train", "valid", "test")}
        if not np.allclose(arrays["grid"], DOS_TASK.grid_array()):
            raise DataError("dos.npz grid differs from the task grid", "rebuild with python -m phonbench.datasets.build")
        ids = arrays["ids"]
        return PhononData(
            [str(m) for m in ids],
            _structures(self, ids),
            arrays["targets"],
            DOS_TASK,
            extras={k: arrays[k] for k in self._EXTRAS},
        )

    def _make_split(self, name: str, seed: int) -> Split:
        if name != "tutorial":
            return super()._make_split(name, seed)
        self.load()
        parts = self._tutorial
        return Split("tutorial", (Fold(parts["train"], parts["valid"], parts["test"], "0"),), None)


class GammaDataset(BundledDataset):
    """Γ-point phonon frequencies (THz, 3N modes padded to 120) of the 1,521 Petretto materials."""

    bundled_files: ClassVar[tuple[str, ...]] = (STRUCTURES_FILE, "gamma.npz")
    card = DatasetCard(
        name="gamma",
        description="Γ-point phonon frequencies (THz) of the 1,521 Petretto DFPT materials, "
        "sorted descending and zero-padded with a mask",
        task=GAMMA_TASK,
        citation=PETRETTO_CITATION,
        license="CC BY 4.0 (Petretto figshare collection)",
        source=PETRETTO_SOURCE,
        version="1",
        default_split="random",
        splits=("random", "kfold5", *GROUPED_SPLITS),
        default_metrics=("mae", "r2_aggregated", "mean_frequency_error", "mse", "mae_optical"),
        primary_metric="mae",
        files=card_files((STRUCTURES_FILE, "gamma.npz")),
        size=1521,
        notes=GAMMA_NOTES,
    )

    def _load(self) -> PhononData:
        arrays = self.arrays("gamma.npz")
        targets, mask = unpack_modes(arrays, GAMMA_TASK.n_outputs, "gamma.npz")
        ids = arrays["ids"]
        return PhononData(
            [str(m) for m in ids],
            _structures(self, ids),
            targets,
            GAMMA_TASK,
            mask=mask,
            extras={
                "n_atoms": (mask.sum(axis=1) // 3).astype(np.int32),
                "lo_to_spread": arrays["lo_to_spread"],
                "has_neg_fr": arrays["has_neg_fr"],
            },
        )
