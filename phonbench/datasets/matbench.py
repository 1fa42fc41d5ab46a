"""``matbench_phonons``: last phonon-DoS peak (cm⁻¹) of 1,265 materials, matbench v0.1, bundled.

Rebuilt offline from the exact targets and the official five folds (see ``shared/data/README.md``
§2 and :mod:`.build`); structures are the Materials Project PBE cells matbench uses.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from phonbench.datasets.base import GROUPED_SPLITS, DatasetCard, PhononData, Split, Task, fold_from_test
from phonbench.datasets.bundled import BundledDataset, LazyStructures, card_files

MATBENCH_FILE = "matbench_phonons.npz"
N_FOLDS = 5
MATBENCH_MAD_CM1 = 323.78696979348734  #: official metadata MAD of the targets (cm⁻¹)

MATBENCH_TASK = Task(kind="scalar", n_outputs=1, unit="cm^-1", target="last_phdos_peak")
MATBENCH_NOTES = (
    "Target: frequency (cm^-1) of the last local maximum of the unsmoothed Petretto DFPT DoS (matbench "
    "'last phdos peak'); values and ids equal the official matbench v0.1 task (MAD 323.787 cm^-1). "
    "Ids are the matbench ids mb-phonons-0001..1265; the extra 'mp_id' links each entry to Petretto. "
    "Structures are the Materials Project PBE cells (about 5% larger volume than Petretto's PBEsol DFPT "
    "cells); their volume per atom matches matbench's featurised vpa within 0.1% for 1223 of 1265 entries "
    "(per the data README, matbench's own structure file was not available to compare the rest). "
    "Splits: matbench = the five official KFold(shuffle, random_state=18012019) test folds of "
    "matbench_v0.1_validation.json; train is the rest, of which a seeded 10% becomes valid. random "
    "(80/10/10) and kfold5 are seeded; chemsys, cluster and element are the seeded grouped "
    "(out-of-distribution) protocols of phonbench.datasets.grouped_splits."
)


class MatbenchPhononsDataset(BundledDataset):
    """matbench_phonons (scalar task, cm⁻¹) with the official five folds."""

    bundled_files: ClassVar[tuple[str, ...]] = (MATBENCH_FILE,)
    split_descriptions: ClassVar[dict[str, str]] = {
        "matbench": "The five official matbench v0.1 test folds (KFold shuffle, random_state=18012019); "
        "a seeded 10% of each fold's train part is valid.",
    }
    card = DatasetCard(
        final_fit="train+valid",  # matbench trains the recorded model on the whole training fold
        name="matbench_phonons",
        description="Frequency of the last phonon DoS peak (cm^-1) of 1,265 materials (matbench v0.1)",
        task=MATBENCH_TASK,
        citation=(
            "A. Dunn, Q. Wang, A. Ganose, D. Dopp, A. Jain, Benchmarking materials property prediction "
            "methods: the Matbench test set and Automatminer reference algorithm, npj Comput. Mater. 6, 138 "
            "(2020), doi:10.1038/s41524-020-00406-3; G. Petretto et al., Sci. Data 5, 180065 (2018), "
            "doi:10.1038/sdata.2018.65"
        ),
        license="CC BY 4.0 (Petretto data); matbench folds and metadata: MIT (matbench 0.6)",
        source=(
            "matbench v0.1 (matbench 0.6 wheel: folds, metadata); targets from modl-uclouvain/modnet-matbench "
            "@7cc50f7; MP PBE structures from RyotaroOKabe/gamma_phonon @271e9ab; Petretto figshare "
            "doi:10.6084/m9.figshare.c.3938023"
        ),
        version="1",
        default_split="matbench",
        splits=("matbench", "random", "kfold5", *GROUPED_SPLITS),
        default_metrics=("mae", "rmse", "r2_aggregated"),
        primary_metric="mae",
        files=card_files((MATBENCH_FILE,)),
        size=1265,
        notes=MATBENCH_NOTES,
    )

    def _load(self) -> PhononData:
        arrays = self.arrays(MATBENCH_FILE)
        self._test_fold = arrays["official_test_fold"].astype(np.int64)
        structures = LazyStructures(arrays)
        return PhononData(
            [str(m) for m in arrays["ids"]],
            structures,
            arrays["targets"],
            MATBENCH_TASK,
            extras={"mp_id": arrays["mp_ids"], "n_atoms": structures.n_sites().astype(np.int32)},
        )

    def _make_split(self, name: str, seed: int) -> Split:
        if name != "matbench":
            return super()._make_split(name, seed)
        n = len(self.load())
        folds = tuple(
            fold_from_test(n, np.flatnonzero(self._test_fold == k), seed, name=str(k)) for k in range(N_FOLDS)
        )
        return Split("matbench", folds, seed)
