"""Grouped split protocols (chemsys, cluster, element): grouping, coverage, determinism, errors."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import ClassVar

import numpy as np
import pytest

from phonbench.datasets.base import Dataset, DatasetCard, Fold, PhononData, Split, Task
from phonbench.datasets.grouped_splits import (
    GROUPED_SPLITS,
    carve_valid,
    chemical_systems,
    grouped_split,
    material_elements,
    most_common_elements,
)
from phonbench.datasets.info import dataset_info
from phonbench.datasets.synthetic import SyntheticDataset
from phonbench.exceptions import ConfigError, DataError
from phonbench.testing import tiny_crystals

CATIONS = ("Li", "Na", "K", "Rb", "Mg", "Ca", "Sr", "Ba", "Al", "Ga", "Zn", "Fe", "Cu", "Ti", "Zr", "Y")
ANIONS = ("O", "S", "F", "Cl", "N", "Se")


def formulas() -> list[str]:
    """~110 compositions; several chemical systems appear with more than one stoichiometry."""
    out = []
    for i, c in enumerate(CATIONS):
        for j, a in enumerate(ANIONS):
            if (i + j) % 2 == 0:
                out.append(f"{c}{a}")
            if (i + 2 * j) % 5 == 0:
                out.append(f"{c}2{a}3")
        out.append(f"{c}{CATIONS[(i + 3) % len(CATIONS)]}O3")
    return out


ITEMS = formulas()
crystals = lru_cache(maxsize=1)(tiny_crystals)  # building them takes about a second


def _split(name: str, seed: int = 0, items=ITEMS) -> Split:
    return grouped_split(name, items, seed, dataset="test")


def _parts(fold: Fold) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return fold.train, fold.valid, fold.test


def test_chemical_systems_of_structures_and_formulas():
    assert chemical_systems(crystals()) == ["Cl-Na", "Cl-Cs", "C-Si", "Mg-O", "O-Sr-Ti", "Ca-F", "Fe", "As-Ga"]
    assert chemical_systems(["Mg3Bi1.5Sb0.5", "Fe2O3", "OFe"]) == ["Bi-Mg-Sb", "Fe-O", "Fe-O"]
    assert material_elements(["SrTiO3"]) == [("O", "Sr", "Ti")]


def test_most_common_elements_skips_oxygen_and_breaks_ties_alphabetically():
    items = ["NaCl", "KCl", "NaF", "KF", "MgO", "CaO", "ZnO"]
    assert most_common_elements(items, 4) == [("Cl", 2), ("F", 2), ("K", 2), ("Na", 2)]
    assert most_common_elements(items, 6)[-2:] == [("Ca", 1), ("Mg", 1)]


@pytest.mark.parametrize("name", GROUPED_SPLITS)
def test_no_group_crosses_parts_and_folds_are_sorted_int64(name):
    split = _split(name)
    systems = chemical_systems(ITEMS)
    assert split.groups is not None and len(split.groups) == len(ITEMS) and split.group_kind == name
    for fold in split.folds:
        labels = [{split.groups[i] for i in part} for part in _parts(fold)]
        assert not (labels[0] & labels[1] or labels[0] & labels[2] or labels[1] & labels[2]), fold.name
        train_valid = [{systems[i] for i in part} for part in (fold.train, fold.valid)]
        assert not train_valid[0] & train_valid[1], f"train/valid share a chemical system in {fold.name}"
        for part in _parts(fold):
            assert part.dtype == np.int64 and len(part) > 0 and np.all(np.diff(part) > 0)
        # valid is about 10 % of the training rows (whole groups, so not exact)
        assert 0.03 <= len(fold.valid) / (len(fold.train) + len(fold.valid)) <= 0.2


@pytest.mark.parametrize("name", ["chemsys", "cluster"])
def test_test_parts_are_disjoint_and_cover_all_materials(name):
    split = _split(name)
    tests = np.concatenate([f.test for f in split.folds])
    assert len(split.folds) == 5 and len(tests) == len(ITEMS)
    np.testing.assert_array_equal(np.sort(tests), np.arange(len(ITEMS)))


def test_chemsys_no_system_in_two_test_folds_and_cluster_labels():
    split = _split("chemsys")
    systems = chemical_systems(ITEMS)
    owners = {}
    for fold in split.folds:
        for i in fold.test:
            assert owners.setdefault(systems[i], fold.name) == fold.name
    assert [f.name for f in split.folds] == ["0", "1", "2", "3", "4"]
    sizes = [len(f.test) for f in split.folds]
    assert max(sizes) - min(sizes) <= 3  # largest-first dealing balances the folds
    cluster = _split("cluster")
    assert [f.name for f in cluster.folds] == [f"cluster{k}" for k in range(5)]
    assert [len(f.test) for f in cluster.folds] == sorted((len(f.test) for f in cluster.folds), reverse=True)
    for fold in cluster.folds:
        assert {cluster.groups[i].split(":")[0] for i in fold.test} == {fold.name}


def test_element_folds_test_exactly_the_materials_with_the_element():
    split = _split("element")
    elements = [set(e) for e in material_elements(ITEMS)]
    chosen = most_common_elements(ITEMS)
    assert [f.name for f in split.folds] == [symbol for symbol, _ in chosen] and len(chosen) == 6
    assert "O" not in [f.name for f in split.folds]
    for fold, (symbol, count) in zip(split.folds, chosen):
        with_it = {i for i, e in enumerate(elements) if symbol in e}
        assert set(fold.test.tolist()) == with_it and len(fold.test) == count
        assert not any(symbol in elements[i] for i in np.concatenate([fold.train, fold.valid]))
        assert len(fold.train) + len(fold.valid) + len(fold.test) == len(ITEMS)
    assert f"{chosen[0][0]} {chosen[0][1]}" in split.description


@pytest.mark.parametrize("name", GROUPED_SPLITS)
def test_same_seed_gives_byte_identical_folds(name):
    a, b = _split(name, seed=7), _split(name, seed=7)
    assert a.groups == b.groups and a.description == b.description
    for fa, fb in zip(a.folds, b.folds):
        assert fa.name == fb.name
        for pa, pb in zip(_parts(fa), _parts(fb)):
            assert pa.tobytes() == pb.tobytes()


def test_different_seeds_give_different_chemsys_folds():
    a, b = _split("chemsys", seed=0), _split("chemsys", seed=1)
    assert any(fa.test.tobytes() != fb.test.tobytes() for fa, fb in zip(a.folds, b.folds))
    assert any(fa.valid.tobytes() != fb.valid.tobytes() for fa, fb in zip(a.folds, b.folds))


def test_carve_valid_takes_whole_groups_near_the_fraction():
    codes = np.repeat(np.arange(20), 5)  # 20 groups of 5 rows
    train, valid = carve_valid(np.arange(100), codes, np.random.default_rng(0), 0.1)
    assert len(valid) == 10 and len(train) == 90
    assert not set(codes[train]) & set(codes[valid])
    train, valid = carve_valid(np.arange(5), codes, np.random.default_rng(0))  # one group only
    assert len(valid) == 0 and len(train) == 5


class TinyDataset(Dataset):
    """A few tiny crystals with scalar targets, declaring the grouped splits."""

    card: ClassVar[DatasetCard] = DatasetCard(
        name="tiny", description="tiny crystals", task=Task("scalar", 1, "a.u."),
        splits=("random", *GROUPED_SPLITS),
    )

    def __init__(self, n: int = 3):
        super().__init__()
        self.n = n

    def _load(self) -> PhononData:
        structures = crystals()[: self.n]
        return PhononData([f"t{i}" for i in range(self.n)], structures, np.arange(self.n, dtype=float), self.card.task)


@pytest.mark.parametrize("name, fold", [("chemsys", "'3'"), ("cluster", None), ("element", "'Cl'")])
def test_too_small_a_dataset_is_a_one_line_data_error(name, fold):
    with pytest.raises(DataError) as err:
        TinyDataset(3).split(name)
    message = str(err.value)
    assert "\n" not in message and f"split {name!r}" in message and "random" in message
    if fold:
        assert f"fold {fold}" in message and "of dataset 'tiny'" in message
    else:
        assert "at least 5 distinct compositions" in message


def test_element_in_every_material_leaves_no_training_rows():
    with pytest.raises(DataError, match=r"split 'element' fold 'Cl'.*no train, valid rows.*random"):
        grouped_split("element", ["NaCl", "KCl", "CsCl"], 0, dataset="x")


def test_split_validates_groups_and_keeps_positional_construction():
    fold = Fold(np.array([0, 1]), np.array([2]), np.array([3]))
    plain = Split("random", (fold,), 0)
    assert plain.groups is None and plain.group_kind is None and plain.group_counts() is None
    grouped = Split("g", (fold,), 0, groups=("a", "a", "b", "c"), group_kind="chemsys")
    assert grouped.group_counts() == [{"train": 1, "valid": 1, "test": 1}]
    with pytest.raises(DataError, match="group 'a' is in two of train/valid/test"):
        Split("g", (fold,), 0, groups=("a", "b", "a", "c"))
    with pytest.raises(DataError, match="uses row 3 but has 2 group labels"):
        Split("g", (fold,), 0, groups=("a", "b"))


def test_datasets_declare_and_dispatch_the_grouped_splits():
    from phonbench.datasets.matbench import MatbenchPhononsDataset
    from phonbench.datasets.petretto import DosDataset, GammaDataset

    for cls in (DosDataset, GammaDataset, MatbenchPhononsDataset):
        assert set(GROUPED_SPLITS) <= set(cls.card.splits)
    ds = SyntheticDataset(size=60)
    assert set(GROUPED_SPLITS) <= set(ds.card.splits)
    split = ds.split("Chemsys", seed=2)
    assert split.name == "chemsys" and split.seed == 2 and len(split.groups) == 60
    with pytest.raises(ConfigError, match=r"no split 'chem'.*chemsys, cluster, element"):
        ds.split("chem")


def test_data_info_lists_descriptions_and_group_counts():
    ds = SyntheticDataset(size=60)
    info = dataset_info(ds, split="element", seed=1)
    json.dumps(info)
    descriptions = info["split_descriptions"]
    assert set(descriptions) == set(ds.card.splits) and all(descriptions.values())
    assert "k=5" in descriptions["cluster"] and "random_state=1" in descriptions["cluster"]
    split = info["split"]
    assert split["group_kind"] == "element" and split["description"] == descriptions["element"]
    for fold in split["folds"]:
        assert set(fold["groups"]) == {"train", "valid", "test"} and fold["groups"]["test"] >= 1
        assert f"{fold['name']} {fold['test']}" in descriptions["element"]  # test counts are stated
    plain = dataset_info(ds, split="random")["split"]
    assert plain["group_kind"] is None and "groups" not in plain["folds"][0]


def test_cli_data_info_prints_the_new_splits():
    from typer.testing import CliRunner

    from phonbench.cli import app

    result = CliRunner().invoke(app, ["data", "info", "synthetic", "--dataset-param", "size=60", "--split",
                                      "chemsys"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    out = result.output
    for name in GROUPED_SPLITS:
        assert f"  {name} " in out
    assert "5-fold grouped K-fold on the chemical system" in out and "Leave-one-cluster-out over k=5" in out
    assert "Leave-one-element-out" in out and "grouped by chemsys" in out and "test groups" in out


def test_real_dos_data():
    from phonbench.datasets.petretto import DosDataset

    ds = DosDataset()
    n = len(ds.load())
    systems = chemical_systems(ds.load().structures)
    for name in GROUPED_SPLITS:
        split = ds.split(name, seed=0)
        for fold in split.folds:
            assert len(fold.train) + len(fold.valid) + len(fold.test) == n
            test_systems = {systems[i] for i in fold.test}
            if name != "cluster":
                assert not test_systems & {systems[i] for i in np.concatenate([fold.train, fold.valid])}
    element = ds.split("element")
    assert [(f.name, len(f.test)) for f in element.folds] == [
        ("F", 204), ("K", 202), ("Cs", 177), ("Rb", 167), ("S", 154), ("Na", 153)
    ]
    assert [len(f.test) for f in ds.split("chemsys").folds] == [305, 305, 304, 304, 304]
