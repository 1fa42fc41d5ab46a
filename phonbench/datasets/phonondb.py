"""``phonondb_dos``, ``phonondb_gamma``, ``phonondb_thermo``: Togo's phonon database, bundled.

The 10,034 materials of the phonon database version 2018-04-17 (VASP PBEsol force sets,
finite displacements, Born charges for insulators), processed with phonopy by
:mod:`phonbench.datasets.phonondb_build` into ``phonondb_*.npz`` package files (see
:mod:`phonbench.datasets.phonondb_pack` for their arrays). The three datasets share the structure
file and the splits:

* ``random`` (seeded 80/10/10) and ``kfold5``;
* ``petretto_holdout``: test = the materials whose mp-id is also in Petretto et al. 2018 (the
  ``dos`` dataset's ids), train/valid = all others (seeded 10 % valid). In this first version the
  test materials are scored on phonondb's own (PBEsol finite-displacement) targets, not on
  Petretto's DFPT targets.

Until the build has been run, loading raises a one-line :class:`~phonbench.exceptions.DataError`
that names the build command.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from phonbench.datasets.base import (
    DatasetCard,
    Fold,
    PhononData,
    Split,
    Task,
    fold_from_test,
)
from phonbench.datasets.bundled import (
    BundledDataset,
    LazyStructures,
    card_files,
    read_manifest,
    unpack_modes,
)
from phonbench.datasets.petretto import DOS_TASK
from phonbench.exceptions import ChecksumError, ConfigError, DataError

STRUCTURES_FILE = "phonondb_structures.npz"
VERSION = "2018-04-17"
GAMMA_N_MAX_ATOMS = 200
CITATION = (
    'A. Togo, "First-principles phonon calculations with phonopy and phono3py", J. Phys. Soc. Jpn. 92, '
    "012001 (2023), doi:10.7566/JPSJ.92.012001; phonon database version 2018-04-17, "
    "https://github.com/atztogo/phonondb, http://phonondb.mtl.kyoto-u.ac.jp/"
)
LICENSE = "CC BY 4.0 (phonon database by A. Togo)"
SOURCE = (
    "Togo's phonon database version 2018-04-17 (10,034 materials) as mirrored in github.com/WMD-group/phononDB "
    "(phonon_db_tarred/*.tar.lzma); processed with phonopy by phonbench.datasets.phonondb_build"
)
BUILD_FIX = ("python -m phonbench.datasets.phonondb_build --mirror <WMD-group/phononDB git dir or folder of "
             ".tar.lzma> --cache <cache dir> (writes the package files)")
SPLITS = ("random", "petretto_holdout", "kfold5")
PROCESSING = (
    "Per material: POSCAR-unitcell, DIM and PRIMITIVE_AXIS from phonopy.conf, FORCE_SETS and (when present, "
    "4908 of 10034) BORN read from the archive in memory; phonopy 4.10 force constants (traditional, "
    "symmetrised with the symfc projector), NAC (Gonze) from BORN. Cell = phonopy primitive cell (N atoms). "
    "Mesh: gamma-centred, symmetry-reduced, phonopy mesh length 60 A (numbers ~ 60 |b_i|; convergence check "
    "in docs/benchmarks/phonondb_mesh.md). Failed materials are left out (listed in the manifest)."
)
SPLIT_NOTES = (
    "Splits: random (seeded 80/10/10), kfold5, petretto_holdout = test on the materials whose mp-id is also in "
    "Petretto et al. 2018 (the 'dos' dataset's ids), train/valid (seeded 10 % valid) on all others; in this "
    "first version the test materials are scored on phonondb's own targets, not on Petretto's DFPT targets."
)
GAMMA_GAP = GAMMA_N_MAX_ATOMS * 3


def _built_size() -> int | None:
    return read_manifest(None).get("phonondb", {}).get("checks", {}).get("n_materials")


def petretto_ids() -> set[str]:
    """mp-ids of the Petretto materials (the bundled ``dos`` dataset, tutorial-only row excluded)."""
    from phonbench.datasets.petretto import DosDataset

    return {str(m) for m in DosDataset().arrays("dos.npz")["ids"] if str(m).startswith("mp-")}


class PhonondbBundled(BundledDataset):
    """Shared loading (files, structures, splits) of the three phonondb datasets."""

    target_file: ClassVar[str] = ""
    split_descriptions: ClassVar[dict[str, str]] = {
        "petretto_holdout": "Test: the materials whose mp-id is also in Petretto et al. 2018 (scored on phonondb's "
        "own targets); train and a seeded 10% valid: all other materials.",
    }

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """Verified arrays of ``name``; a one-line DataError naming the build when not built.

        Raises:
            DataError: the file (or its manifest entry) is absent.
            ChecksumError: the file does not match its recorded sha256.
        """
        manifest = read_manifest(self.directory)
        recorded = manifest.get("files", {}) if manifest else self.card.files
        if not (self.directory / name).is_file() or name not in recorded:
            raise DataError(f"phonondb files not built ({name} not in {self.directory})", BUILD_FIX)
        try:
            return super().arrays(name)
        except ChecksumError as err:
            raise ChecksumError(err.message, BUILD_FIX) from err

    def structures(self, ids: np.ndarray) -> LazyStructures:
        """Lazy structures of ``ids`` from :data:`STRUCTURES_FILE`.

        Raises:
            DataError: the structure file's ids differ from ``ids``.
        """
        arrays = self.arrays(STRUCTURES_FILE)
        if not np.array_equal(arrays["ids"], ids):
            raise DataError(f"{STRUCTURES_FILE} and {self.target_file} hold different materials", BUILD_FIX)
        return LazyStructures(arrays)

    def _make_split(self, name: str, seed: int) -> Split:
        if name != "petretto_holdout":
            return super()._make_split(name, seed)
        data = self.load()
        test = np.flatnonzero(np.isin(np.array(data.ids), sorted(petretto_ids())))
        fold: Fold = fold_from_test(len(data), test, seed)
        return Split(name, (fold,), seed)


def _card(name: str, description: str, task: Task, notes: str, metrics: tuple[str, ...], primary: str,
          files: tuple[str, ...]) -> DatasetCard:
    return DatasetCard(
        name=name, description=description, task=task, citation=CITATION, license=LICENSE, source=SOURCE,
        version=VERSION, default_split="random", splits=SPLITS, default_metrics=metrics, primary_metric=primary,
        files=card_files(files), size=_built_size(), notes=f"{PROCESSING} {notes} {SPLIT_NOTES}",
    )


DOS_NOTES = (
    "Target: the 'dos' dataset's 51-point target made by the same function (phonbench.physics.chen_dos_target: "
    "Savitzky-Golay 101/3 on the 1 cm^-1 DoS, interpolated onto 0, 20, ..., 1000 cm^-1, clipped, divided by "
    "its maximum). The 1 cm^-1 DoS is the tetrahedron-method DoS averaged over 1 cm^-1 bins (integrates to "
    "exactly 3N states per primitive cell); it stays in the build cache (phonondb_dos_1cm.npz), not in the "
    "package. Materials with modes above 1000 cm^-1 are cut off by the grid (see manifest checks). Extras: "
    "n_atoms, total_mass (amu per cell), dos_norm (integral of the target, cm^-1), dos_scale (states/(cm^-1 "
    "cell) at the target maximum), cv_300K (phonopy C_V, J/(K mol of cells)), omega_min (cm^-1, lowest mesh "
    "frequency), has_imaginary (omega_min < -0.1 THz)."
)
GAMMA_NOTES = (
    f"Target: phonopy frequencies at q = 0 with the non-analytic term taken along the reduced direction "
    f"(1, 0, 0) of the primitive reciprocal lattice (a*) for materials with BORN, in THz, sorted descending, "
    f"imaginary modes as negative values, zero-padded to 3*{GAMMA_N_MAX_ATOMS} = {GAMMA_GAP} (the largest "
    f"primitive cell has {GAMMA_N_MAX_ATOMS} atoms; 'gamma' pads to 120) with a mask (mask.sum(1) == 3N). "
    "The three acoustic modes are ~0 (|w| < 1e-3 THz after the acoustic sum rule). Stored as float32. Extras: "
    "n_atoms, lo_to_spread (THz: largest change of a sorted mode between q-directions a*, b*, c*, a*+b*+c*), "
    "lo_to_splitting (THz: largest change between the target and the analytic, TO-only Γ modes), has_born, "
    "has_imaginary."
)


class PhonondbDosDataset(PhonondbBundled):
    """51-point max-normalised phonon DoS (the ``dos`` target) of the phonondb materials."""

    target_file = "phonondb_dos.npz"
    #: task of :mod:`phonbench.datasets.label_agreement` shown by ``phonbench data info``
    agreement_task: ClassVar[str] = "dos"
    bundled_files: ClassVar[tuple[str, ...]] = (STRUCTURES_FILE, "phonondb_dos.npz")
    card = _card("phonondb_dos", "Phonon DoS on 0-1000 cm^-1 (51 points, max-normalised, as 'dos') of the "
                 "phonondb materials (PBEsol, finite displacements)", DOS_TASK, DOS_NOTES,
                 ("mse", "mae", "r2_aggregated", "mean_frequency_error", "wasserstein", "heat_capacity_error"),
                 "mse", bundled_files)
    _EXTRAS: ClassVar[tuple[str, ...]] = (
        "n_atoms", "total_mass", "dos_norm", "dos_scale", "cv_300K", "omega_min", "has_imaginary",
    )

    def _load(self) -> PhononData:
        arrays = self.arrays(self.target_file)
        if not np.allclose(arrays["grid"], DOS_TASK.grid_array()):
            raise DataError(f"{self.target_file} grid differs from the task grid", BUILD_FIX)
        ids = arrays["ids"]
        return PhononData([str(m) for m in ids], self.structures(ids), arrays["targets"], DOS_TASK,
                          extras={k: arrays[k] for k in self._EXTRAS})


GAMMA_TASK = Task(kind="modes", n_outputs=GAMMA_GAP, unit="THz", target="gamma_frequencies", grid_unit="THz")


class PhonondbGammaDataset(PhonondbBundled):
    """Γ-point phonon frequencies (THz, 3N modes padded to 600) of the phonondb materials."""

    target_file = "phonondb_gamma.npz"
    agreement_task: ClassVar[str] = "gamma"
    bundled_files: ClassVar[tuple[str, ...]] = (STRUCTURES_FILE, "phonondb_gamma.npz")
    card = _card("phonondb_gamma", "Γ-point phonon frequencies (THz, NAC along a*) of the phonondb materials, "
                 "sorted descending and zero-padded with a mask", GAMMA_TASK, GAMMA_NOTES,
                 ("mae", "r2_aggregated", "mean_frequency_error", "mse", "mae_optical"), "mae", bundled_files)

    def _load(self) -> PhononData:
        arrays = self.arrays(self.target_file)
        targets, mask = unpack_modes(arrays, GAMMA_GAP, self.target_file)
        ids = arrays["ids"]
        extras = {"n_atoms": (mask.sum(axis=1) // 3).astype(np.int32),
                  **{k: arrays[k] for k in ("lo_to_spread", "lo_to_splitting", "has_born", "has_imaginary")}}
        return PhononData([str(m) for m in ids], self.structures(ids), targets, GAMMA_TASK, mask=mask, extras=extras)


#: ``target=`` option of ``phonondb_thermo``: (array key, task target, unit, description)
THERMO_TARGETS: dict[str, tuple[str, str, str, str]] = {
    "cv": ("cv", "heat_capacity_300K", "J/(K mol of atoms)", "heat capacity C_V at 300 K per mole of atoms"),
    "entropy": ("entropy", "entropy_300K", "J/(K mol of atoms)", "vibrational entropy S at 300 K per mole of atoms"),
    "free_energy": ("free_energy", "free_energy_300K", "kJ/mol of atoms",
                    "harmonic vibrational free energy F at 300 K (zero-point energy included) per mole of atoms"),
    "omega_max": ("omega_max", "omega_max", "cm^-1", "highest phonon frequency on the mesh"),
}
THERMO_NOTES = (
    "Targets (dataset option target=, default cv): phonopy thermal properties on the mesh at 300 K (Γ acoustic "
    "modes excluded, imaginary modes ignored by phonopy) divided by the atoms of the primitive cell, so per "
    "mole of atoms: cv and entropy in J/(K mol of atoms) (C_V -> 3R = 24.94 at high T), free_energy in kJ/mol "
    "of atoms; omega_max = highest mesh frequency in cm^-1 (as matbench_phonons' last DoS peak). One dataset "
    "with an option (not four) so the four targets share files, materials and splits; records keep the "
    "target in the task name and unit. Extras: n_atoms, has_imaginary."
)


def _thermo_card(target: str) -> DatasetCard:
    _, name, unit, desc = THERMO_TARGETS[target]
    task = Task(kind="scalar", n_outputs=1, unit=unit, target=name)
    return _card("phonondb_thermo", f"{desc} ({unit}) of the phonondb materials", task, THERMO_NOTES,
                 ("mae", "rmse", "r2_aggregated"), "mae", PhonondbThermoDataset.bundled_files)


class _ThermoCardAttribute:
    """The default (``cv``) card on the class, the chosen target's card on an instance."""

    def __get__(self, obj: Any, owner: type) -> DatasetCard:
        return _thermo_card("cv" if obj is None else obj.target)


class PhonondbThermoDataset(PhonondbBundled):
    """Scalar C_V, S, F (300 K, per atom) or ω_max of the phonondb materials (option ``target``).

    Args:
        data_dir: folder of rebuilt files (default: package data).
        target: ``cv`` (default), ``entropy``, ``free_energy`` or ``omega_max``.

    Raises:
        ConfigError: an unknown target or option.
    """

    target_file = "phonondb_thermo.npz"
    bundled_files: ClassVar[tuple[str, ...]] = (STRUCTURES_FILE, "phonondb_thermo.npz")
    card = _ThermoCardAttribute()  # type: ignore[assignment]

    def __init__(self, data_dir: str | None = None, target: str = "cv", **options: Any):
        super().__init__(data_dir=data_dir, **options)
        if options:
            raise ConfigError(f"unknown option(s) {', '.join(sorted(options))} for dataset 'phonondb_thermo'",
                              "valid options: data_dir, target")
        key = str(target).strip().lower()
        if key not in THERMO_TARGETS:
            raise ConfigError(f"unknown phonondb_thermo target {target!r}", f"use one of {', '.join(THERMO_TARGETS)}")
        self.target = key

    def _load(self) -> PhononData:
        arrays = self.arrays(self.target_file)
        ids = arrays["ids"]
        values = np.asarray(arrays[THERMO_TARGETS[self.target][0]], dtype=np.float64)[:, None]
        return PhononData([str(m) for m in ids], self.structures(ids), values, self.card.task,
                          extras={k: arrays[k] for k in ("n_atoms", "has_imaginary")})
