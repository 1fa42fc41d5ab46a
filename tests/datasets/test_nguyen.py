"""``rhombohedron`` / ``mix`` loaders on a tiny folder laid out like the authors' release."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from phonbench.datasets.base import PhononData
from phonbench.datasets.nguyen import (
    N_MODES,
    MixDataset,
    RhombohedronDataset,
    find_poscar,
    read_frequency_csv,
)
from phonbench.exceptions import ConfigError, DataError
from phonbench.testing import DatasetContract

REPO = Path(__file__).resolve().parents[2]
TEST_DATA = REPO / "tests" / "data"
SHARED = REPO / ".." / "shared" / "data"
LAYOUTS = ("{id}/POSCAR", "POSCAR/{id}", "{id}.vasp", "POSCAR-{id}")


FCC = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
PROTOTYPES = (  # (label, space group, lattice vectors / a, fractional coordinates)
    ("rocksalt", 225, FCC, [[0, 0, 0], [0.5, 0.5, 0.5]]),
    ("halfheusler", 216, FCC, [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]),
    ("heusler", 216, FCC, [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25], [0.75, 0.75, 0.75]]),
    ("perovskite", 221, np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]),
)


def _prototype(k: int, rng: np.random.Generator) -> tuple[Structure, int]:
    """Small cubic crystals with 2, 3, 4 or 5 atoms and varied elements and lattice constants."""
    _, sg, vectors, coords = PROTOTYPES[k % 4]
    a = (5.6 if sg != 221 else 3.9) + rng.uniform(-0.3, 0.3)
    pool = ["Na", "Mg", "Al", "Si", "Ga", "Zn", "Cd", "Sr", "Ba", "Ti"]
    cations = [pool[(k + j * 3) % len(pool)] for j in range(3)]
    anion = ["O", "S", "Se", "Te", "F", "Cl"][k % 6]
    species = (cations[: len(coords) - 1] + [anion]) if sg != 221 else cations[:2] + [anion] * 3
    return Structure(Lattice(a * vectors), species, coords), sg


def _frequencies(n_atoms: int, rng: np.random.Generator) -> np.ndarray:
    """3N plausible Γ frequencies in THz, sorted descending (3 acoustic ≈ 0), zero-padded to 42."""
    optical = rng.uniform(1.0, 15.0, 3 * n_atoms - 3)
    acoustic = rng.normal(0.0, 0.01, 3)
    out = np.zeros(N_MODES)
    out[: 3 * n_atoms] = np.sort(np.concatenate([optical, acoustic]))[::-1]
    return out


def _row(mid: str, s: Structure, freqs: np.ndarray) -> str:
    formula = "".join(f"{el}{int(n)}" for el, n in s.composition.items())
    return ",".join([mid, formula, str(len(s))] + [f"{f:.6f}" for f in freqs])


def make_nguyen_folder(root: Path, n: int = 20, n_test: int = 4, seed: int = 0) -> dict:
    """Write ``n`` structures (+ the 2 author example POSCARs) and trainSample/testSample CSVs.

    Returns:
        ``{"ids", "n_atoms", "freqs", "test_ids"}`` of what was written.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids, atoms, freqs, rows = [], [], [], []
    for k in range(n):
        s, sg = _prototype(k, rng)
        mid = f"{4 * len(s)}-{s.composition.reduced_formula}-{sg}-{1000 + k}"
        path = root / LAYOUTS[k % len(LAYOUTS)].format(id=mid)
        path.parent.mkdir(parents=True, exist_ok=True)
        s.to(filename=str(path), fmt="poscar")
        f = _frequencies(len(s), rng)
        ids.append(mid), atoms.append(len(s)), freqs.append(f), rows.append(_row(mid, s, f))
    for mid in ("JVASP-5", "JVASP-60582"):  # the authors' own example POSCARs, 6 atoms each
        (root / mid).mkdir(exist_ok=True)
        shutil.copy(TEST_DATA / f"example_POSCAR_{mid}", root / mid / "POSCAR")
        s = Structure.from_file(root / mid / "POSCAR")
        f = _frequencies(6, rng)
        ids.append(mid), atoms.append(6), freqs.append(f), rows.append(_row(mid, s, f))
    (root / "trainSample.csv").write_text("\n".join(rows[n_test:]) + "\n")
    (root / "testSample.csv").write_text("\n".join(rows[:n_test]) + "\n")
    order = list(range(n_test, len(ids))) + list(range(n_test))  # train file first, then test
    return {
        "ids": [ids[i] for i in order],
        "n_atoms": np.array([atoms[i] for i in order]),
        "freqs": np.array([freqs[i] for i in order]),
        "test_ids": ids[:n_test],
    }


@pytest.fixture(scope="module")
def _template(tmp_path_factory):
    root = tmp_path_factory.mktemp("nguyen") / "rhombohedron"
    return root, make_nguyen_folder(root)


@pytest.fixture
def folder(_template, tmp_path):
    """A fresh copy of the 22-material folder (tests may edit it)."""
    src, truth = _template
    root = tmp_path / "rhombohedron"
    shutil.copytree(src, root)
    return root, truth


def test_load_shapes_mask_and_values(folder):
    root, truth = folder
    ds = RhombohedronDataset(data_dir=str(root))
    data = ds.load()
    assert isinstance(data, PhononData)
    assert len(data) == 22
    assert data.ids == truth["ids"]
    assert data.targets.shape == (22, 42) and data.mask.shape == (22, 42)
    np.testing.assert_allclose(data.targets, truth["freqs"], atol=5e-7)
    np.testing.assert_array_equal(data.mask.sum(axis=1), 3 * truth["n_atoms"])
    np.testing.assert_array_equal(data.extras["n_atoms"], truth["n_atoms"])
    assert sorted(set(truth["n_atoms"].tolist())) == [2, 3, 4, 5, 6]
    assert (data.targets[~data.mask] == 0).all()
    assert [len(s) for s in data.structures] == truth["n_atoms"].tolist()
    jv = data.ids.index("JVASP-5")
    assert data.structures[jv].composition.formula == "Ti2 O4"
    assert ds.load() is data  # loaded once


def test_cards_and_registry():
    from phonbench.registry import DATASETS

    assert DATASETS.get("rhombohedron") is RhombohedronDataset
    assert DATASETS.get("mix") is MixDataset
    for cls, size in ((RhombohedronDataset, 35552), (MixDataset, 15000)):
        card = cls.card
        assert card.size == size
        assert card.task.kind == "modes" and card.task.n_outputs == 42
        assert card.task.unit == "THz" and card.task.target == "gamma_frequencies"
        assert card.default_split == "paper"
        assert set(card.splits) == {"paper", "files", "random", "kfold5"}
        assert "10.1021/acsomega.2c02765" in card.citation
        assert "MIT" in card.license and "MLEG" in card.license


@pytest.mark.parametrize("cls, n, n_train, n_test", [(RhombohedronDataset, 35552, 28441, 7111),
                                                      (MixDataset, 15000, 12000, 3000)])
def test_paper_split_sizes_at_full_size(cls, n, n_train, n_test):
    from phonbench.datasets.base import Task

    ds = cls(data_dir="unused")
    task = cls.card.task
    assert isinstance(task, Task)
    mask = np.zeros((n, 42), dtype=bool)
    mask[:, :24] = True
    ds._data = PhononData([str(i) for i in range(n)], [None] * n, np.zeros((n, 42)), task, mask)
    split = ds.split(seed=3)
    assert split.name == "paper" and split.seed == 3 and len(split.folds) == 1
    fold = split.folds[0]
    assert len(fold.test) == n_test
    assert len(fold.train) + len(fold.valid) == n_train
    assert len(fold.valid) == round(0.1 * n_train)


def test_splits(folder):
    root, truth = folder
    ds = RhombohedronDataset(data_dir=root)
    n = len(ds.load())
    paper = ds.split("paper", seed=0)
    fold = paper.folds[0]
    assert fold.sizes() == {"train": 15, "valid": 2, "test": 5}  # floor(0.8*22)=17 train+valid, round(1.7)=2 valid
    assert sorted(np.concatenate([fold.train, fold.valid, fold.test]).tolist()) == list(range(n))
    again = ds.split(seed=0).folds[0]
    np.testing.assert_array_equal(again.test, fold.test)
    other = ds.split("paper", seed=1).folds[0]
    assert not np.array_equal(other.test, fold.test)

    files = ds.split("files", seed=0).folds[0]
    assert sorted(ds.load().ids[i] for i in files.test) == sorted(truth["test_ids"])
    assert len(files.valid) == 2 and len(files.train) == 16

    kfold = ds.split("kfold5", seed=0)
    assert len(kfold.folds) == 5
    assert sorted(np.concatenate([f.test for f in kfold.folds]).tolist()) == list(range(n))
    assert ds.split("random", seed=0).folds[0].sizes() == {"train": 18, "valid": 2, "test": 2}
    with pytest.raises(ConfigError, match="has no split 'nope'"):
        ds.split("nope")


def test_files_split_needs_both_files(folder):
    root, _ = folder
    (root / "trainSample.csv").unlink()
    ds = RhombohedronDataset(data_dir=root)
    assert len(ds.load()) == 4
    with pytest.raises(ConfigError, match="split 'files' of 'rhombohedron' needs trainSample.csv and testSample.csv"):
        ds.split("files")


def test_dummy_model_runs_through(folder):
    from phonbench.metrics import score
    from phonbench.registry import MODELS

    root, _ = folder
    ds = RhombohedronDataset(data_dir=root)
    data = ds.load()
    fold = ds.split(seed=0).folds[0]
    train, valid, test = (data.subset(idx) for idx in (fold.train, fold.valid, fold.test))
    model = MODELS.get("dummy")(seed=0).fit(train, valid)
    pred = model.predict(test)
    assert pred.shape == (len(test), 42)
    m = train.mask
    expected = np.where(m, train.targets, 0).sum(0) / np.maximum(m.sum(0), 1)
    np.testing.assert_allclose(pred[0], expected)
    scores = score(list(ds.card.default_metrics), test.targets, pred, test.mask, test.task)
    assert set(scores) == {"mae", "rmse", "r2_aggregated", "r2_per_sample", "mean_frequency_error"}
    manual_mae = np.abs(test.targets - pred)[test.mask].mean()
    assert scores["mae"] == pytest.approx(manual_mae)
    assert 0 < scores["mae"] < 15


def test_env_var_and_nested_folder(tmp_path, monkeypatch):
    make_nguyen_folder(tmp_path / "mix", n=8, n_test=2)
    monkeypatch.setenv("PHONBENCH_DATA_DIR", str(tmp_path))
    assert len(MixDataset().load()) == 10
    monkeypatch.delenv("PHONBENCH_DATA_DIR")
    assert len(MixDataset(data_dir=str(tmp_path)).load()) == 10  # <data_dir>/mix/ is found


def test_authors_repo_layout_with_header(tmp_path):
    """``DATA/`` of the authors' repo: POSCAR-data/<id>/POSCAR + properties-reference/*.csv with a header."""
    src = tmp_path / "src"
    truth = make_nguyen_folder(src, n=6, n_test=2)
    data_dir = tmp_path / "DATA"
    (data_dir / "properties-reference").mkdir(parents=True)
    for mid in truth["ids"]:
        (data_dir / "POSCAR-data" / mid).mkdir(parents=True)
        shutil.copy(find_poscar(src, mid), data_dir / "POSCAR-data" / mid / "POSCAR")
    header = "ID,Formula,Num_Atoms," + ",".join(f"P_{i}" for i in range(42))
    rows = (src / "trainSample.csv").read_text() + (src / "testSample.csv").read_text()
    (data_dir / "properties-reference" / "vibrationfrequency.csv").write_text(header + "\n" + rows)
    data = RhombohedronDataset(data_dir=data_dir).load()
    assert data.ids == truth["ids"]
    np.testing.assert_allclose(data.targets, truth["freqs"], atol=5e-7)


def test_narrow_csv_is_padded_to_42(tmp_path):
    truth = make_nguyen_folder(tmp_path, n=4, n_test=1)
    for name in ("trainSample.csv", "testSample.csv"):  # keep 18 = 3·6 frequency columns
        path = tmp_path / name
        path.write_text("\n".join(",".join(line.split(",")[:21]) for line in path.read_text().splitlines()) + "\n")
    data = RhombohedronDataset(data_dir=tmp_path).load()
    assert data.targets.shape == (6, 42)
    np.testing.assert_allclose(data.targets, truth["freqs"], atol=5e-7)


def test_missing_data_message(monkeypatch):
    monkeypatch.delenv("PHONBENCH_DATA_DIR", raising=False)
    with pytest.raises(DataError) as info:
        RhombohedronDataset().load()
    msg = str(info.value)
    assert msg.startswith("rhombohedron data not found ($PHONBENCH_DATA_DIR is not set)")
    assert "$PHONBENCH_DATA_DIR/rhombohedron/" in msg and "--data-dir" in msg
    assert "42 zero-padded Γ frequencies in THz" in msg and "POSCAR" in msg
    assert "\n" not in msg


def test_missing_data_dir_and_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("PHONBENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"mix data not found \(\$PHONBENCH_DATA_DIR/mix = .* does not exist\)"):
        MixDataset().load()
    with pytest.raises(DataError, match="mix data folder .*nowhere does not exist"):
        MixDataset(data_dir=tmp_path / "nowhere").load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no frequency CSV in .*empty"):
        MixDataset(data_dir=tmp_path / "empty").load()


def test_several_csvs_need_the_csv_option(tmp_path):
    make_nguyen_folder(tmp_path, n=4, n_test=1)
    (tmp_path / "trainSample.csv").rename(tmp_path / "a.csv")
    (tmp_path / "testSample.csv").rename(tmp_path / "b.csv")
    with pytest.raises(DataError, match="several CSV files in .*: a.csv, b.csv .*csv=NAME.csv"):
        RhombohedronDataset(data_dir=tmp_path).load()
    assert len(RhombohedronDataset(data_dir=tmp_path, csv="b.csv").load()) == 1
    assert len(RhombohedronDataset(data_dir=tmp_path, csv=["a.csv", "b.csv"]).load()) == 6
    with pytest.raises(DataError, match="frequency CSV .*c.csv not found"):
        RhombohedronDataset(data_dir=tmp_path, csv="c.csv").load()
    with pytest.raises(ConfigError, match="unknown option"):
        RhombohedronDataset(data_dir=tmp_path, size=3)


def _edit_row(path: Path, row: int, col: int, value: str) -> str:
    lines = path.read_text().splitlines()
    cells = lines[row].split(",")
    cells[col] = value
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return cells[0]


def test_nan_target_is_an_error(folder):
    root, _ = folder
    mid = _edit_row(root / "trainSample.csv", 2, 4, "nan")
    with pytest.raises(DataError, match=f"NaN, empty or non-numeric frequencies .* 1 rows \\(first: {mid}\\)"):
        RhombohedronDataset(data_dir=root).load()


def test_n_atoms_mismatch_names_the_id(folder):
    root, truth = folder
    lines = (root / "testSample.csv").read_text().splitlines()
    mid, n = lines[0].split(",")[0], int(lines[0].split(",")[2])
    _edit_row(root / "testSample.csv", 0, 2, str(n + 1))  # padding zeros now count as real modes
    with pytest.raises(DataError, match=f"id {mid}: the CSV says n_atoms={n + 1} but .* has {n} atoms"):
        RhombohedronDataset(data_dir=root).load()


def test_nonzero_padding_and_too_many_atoms(folder):
    root, _ = folder
    mid = _edit_row(root / "trainSample.csv", 0, 44, "1.5")
    with pytest.raises(DataError, match=f"non-zero values after the 3·n_atoms real modes .*first: {mid}"):
        RhombohedronDataset(data_dir=root).load()
    _edit_row(root / "trainSample.csv", 0, 44, "0.0")
    mid = _edit_row(root / "trainSample.csv", 1, 2, "15")
    with pytest.raises(DataError, match=f"id {mid} has 15 atoms, i.e. 45 modes, more than the 42 outputs"):
        RhombohedronDataset(data_dir=root).load()
    _edit_row(root / "trainSample.csv", 1, 2, "x")
    with pytest.raises(DataError, match="n_atoms .* is not a positive integer for 1 rows"):
        RhombohedronDataset(data_dir=root).load()


def test_missing_poscar_lists_ids(folder):
    root, truth = folder
    gone = [truth["ids"][0], truth["ids"][1]]
    for mid in gone:
        path = find_poscar(root, mid)
        path.unlink()
    with pytest.raises(DataError) as info:
        RhombohedronDataset(data_dir=root).load()
    msg = str(info.value)
    assert f"no POSCAR for 2 of 22 ids in {root} (first: {gone[0]}, {gone[1]})" in msg
    assert "<dir>/{id}/POSCAR" in msg and "<dir>/POSCAR-{id}" in msg


def test_duplicate_ids_and_bad_poscar(folder):
    root, truth = folder
    first_test = (root / "testSample.csv").read_text().splitlines()[0]
    with open(root / "trainSample.csv", "a") as fh:
        fh.write(first_test + "\n")
    with pytest.raises(DataError, match=f"1 ids occur more than once .*first: {truth['test_ids'][0]}"):
        RhombohedronDataset(data_dir=root).load()


def test_unreadable_poscar_is_named(folder):
    root, truth = folder
    path = find_poscar(root, truth["ids"][3])
    path.write_text("not a poscar\n")
    with pytest.raises(DataError, match=f"cannot read poscar structure file {path}"):
        RhombohedronDataset(data_dir=root).load()


class TestNguyenContract(DatasetContract):
    @pytest.fixture(params=[RhombohedronDataset, MixDataset])
    def dataset(self, request, folder):
        return request.param(data_dir=folder[0])


@pytest.mark.needs_shared
def test_authors_test_csv_reads(tmp_path):
    raw = SHARED / "rhombohedron_vibfreq_test_targets_only" / "raw"
    if not (raw / "testSample.csv").is_file():
        pytest.skip(f"shared data not found at {raw}")
    table = read_frequency_csv(raw / "testSample.csv")
    assert len(table.ids) == 7111 and table.freqs.shape == (7111, 42)
    assert table.ids[0] == "36-NaTaSi6Te-216-8921253" and table.formulas[0] == "Na1Ta1Si6Te1"
    assert table.freqs[0, 0] == pytest.approx(12.646315)
    np.testing.assert_array_equal(np.unique(table.n_atoms, return_counts=True)[1], [2662, 3398, 1051])
    np.testing.assert_array_equal(table.mask().sum(axis=1), 3 * table.n_atoms)
    assert table.freqs.min() == pytest.approx(-323.891308) and table.freqs.max() == pytest.approx(386.885876)
    # the public copy has no structures: loading says which POSCARs are missing
    with pytest.raises(DataError, match="no POSCAR for 7111 of 7111 ids"):
        RhombohedronDataset(data_dir=raw).load()
