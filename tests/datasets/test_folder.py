"""``folder`` dataset: the user's structures + targets CSV + phonbench.toml card."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from phonbench.datasets.folder import GENERIC_CARD, FolderDataset
from phonbench.exceptions import ConfigError, DataError
from phonbench.io import sha256_file
from phonbench.testing import DatasetContract, tiny_crystals

_tiny_crystals = lru_cache(maxsize=1)(tiny_crystals)  # about a second to build
FCC = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])


def crystal(k: int) -> Structure:
    """k-th tiny crystal: rock salt (2 atoms) or zinc blende (2) or CsCl (2) or fluorite (3)."""
    a = 5.0 + 0.1 * k
    kind = k % 4
    if kind == 0:
        return Structure(Lattice(a * FCC), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    if kind == 1:
        return Structure(Lattice(a * FCC), ["Ga", "As"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    if kind == 2:
        return Structure(Lattice.cubic(a - 1.0), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return Structure(Lattice(a * FCC), ["Ca", "F", "F"], [[0, 0, 0], [0.25, 0.25, 0.25], [0.75, 0.75, 0.75]])


def write_structure(folder: Path, mid: str, s: Structure, style: int) -> None:
    """Write ``s`` for id ``mid`` in one of six file styles."""
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    folder.mkdir(parents=True, exist_ok=True)
    style %= 6
    if style == 0:
        s.to(filename=str(folder / f"{mid}.cif"))
    elif style == 1:
        s.to(filename=str(folder / f"{mid}.vasp"), fmt="poscar")
    elif style == 2:
        write(folder / f"{mid}.extxyz", AseAtomsAdaptor.get_atoms(s), format="extxyz")
    elif style == 3:
        (folder / f"{mid}.json").write_text(json.dumps(s.as_dict()))
    elif style == 4:
        (folder / mid).mkdir()
        s.to(filename=str(folder / mid / "POSCAR"), fmt="poscar")
    else:
        (folder / f"{mid}.cif.gz").write_bytes(gzip.compress(s.to(fmt="cif").encode()))


def make_folder(root: Path, card: str, rows: list[str], n: int = 6, structures: str = "structures",
                crystal_of=crystal) -> Path:
    """Card text, targets.csv rows and ``n`` structures ``m0 … m{n-1}`` (``crystal_of(k)``) in mixed formats."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "phonbench.toml").write_text(card)
    (root / "targets.csv").write_text("\n".join(rows) + "\n")
    for k in range(n):
        write_structure(root / structures, f"m{k}", crystal_of(k), k)
    return root


SPECTRUM_CARD = '''
name = "my_set"
description = "tiny DoS set"
task = "spectrum"
unit = "a.u."
grid = [0, 20, 40, 60]
grid_unit = "cm^-1"
targets = "targets.csv"
structures = "structures/"
default_metrics = ["mae", "r2_per_sample"]
'''


def spectrum_rows(n: int = 6, header: bool = True) -> list[str]:
    rows = ["id,0,20,40,60"] if header else []
    return rows + [f"m{k},{k * 0.1:.1f},1.0,{0.5 + 0.05 * k:.2f},0.0" for k in range(n)]


def test_spectrum_folder_loads(tmp_path):
    root = make_folder(tmp_path / "set", SPECTRUM_CARD, spectrum_rows())
    ds = FolderDataset(data_dir=str(root))
    card = ds.card
    assert card.name == "folder" and ds.name == "folder"
    assert card.description == "my_set: tiny DoS set"
    assert card.task.kind == "spectrum" and card.task.grid == (0.0, 20.0, 40.0, 60.0)
    assert card.task.grid_unit == "cm^-1" and card.task.unit == "a.u."
    assert card.default_metrics == ("mae", "r2_per_sample") and card.primary_metric == "mae"
    assert card.version == sha256_file(root / "targets.csv")[:12]
    assert set(card.files) == {"targets.csv", "phonbench.toml"} and card.size == 6
    data = ds.load()
    assert data.ids == [f"m{k}" for k in range(6)]
    assert data.targets.shape == (6, 4) and data.mask is None
    np.testing.assert_allclose(data.targets[3], [0.3, 1.0, 0.65, 0.0])
    for k, s in enumerate(data.structures):  # every file style read back to the same crystal
        assert s.composition.reduced_formula == crystal(k).composition.reduced_formula
        assert s.volume == pytest.approx(crystal(k).volume, rel=1e-4)
    np.testing.assert_array_equal(data.extras["n_atoms"], [2, 2, 2, 3, 2, 2])
    split = ds.split(seed=0)
    assert split.name == "random" and split.folds[0].sizes() == {"train": 4, "valid": 1, "test": 1}
    assert len(ds.split("kfold5", seed=0).folds) == 5


def test_dummy_model_on_folder(tmp_path):
    from phonbench.metrics import score
    from phonbench.registry import MODELS

    root = make_folder(tmp_path / "set", SPECTRUM_CARD, spectrum_rows())
    ds = FolderDataset(data_dir=root)
    data = ds.load()
    fold = ds.split(seed=0).folds[0]
    model = MODELS.get("dummy")().fit(data.subset(fold.train))
    pred = model.predict(data.subset(fold.test))
    np.testing.assert_allclose(pred[0], data.targets[fold.train].mean(axis=0))
    test = data.subset(fold.test)
    scores = score(list(ds.card.default_metrics), test.targets, pred, test.mask, test.task)
    assert scores["mae"] == pytest.approx(np.abs(test.targets - pred).mean())


def test_grid_range_json_card_and_no_header(tmp_path):
    card = {"task": "spectrum", "grid_start": 0, "grid_stop": 60, "grid_points": 4, "structures": "."}
    root = make_folder(tmp_path / "set", "", spectrum_rows(header=False), structures=".")
    (root / "phonbench.toml").unlink()
    (root / "card.json").write_text(json.dumps(card))
    ds = FolderDataset(data_dir=root)
    assert ds.card.task.grid == (0.0, 20.0, 40.0, 60.0)
    assert ds.card.description.startswith("set: ")  # name defaults to the folder name
    assert ds.card.default_metrics == ("mae", "mse", "r2_per_sample", "mean_frequency_error")
    assert len(ds.load()) == 6


def test_scalar_with_path_ids_and_default_structures_dir(tmp_path):
    root = tmp_path / "set"
    (root / "sub").mkdir(parents=True)
    crystal(0).to(filename=str(root / "a.cif"))
    crystal(1).to(filename=str(root / "sub" / "b.vasp"), fmt="poscar")
    (root / "phonbench.toml").write_text('task = "scalar"\nunit = "cm^-1"\ntarget = "last_phdos_peak"\n')
    (root / "targets.csv").write_text("id,peak\na.cif,250.5\nsub/b,300\n")
    ds = FolderDataset(data_dir=root)
    data = ds.load()
    assert data.ids == ["a.cif", "sub/b"]
    np.testing.assert_allclose(data.targets[:, 0], [250.5, 300.0])
    assert data.task.target == "last_phdos_peak" and data.task.unit == "cm^-1"
    assert [s.composition.reduced_formula for s in data.structures] == ["NaCl", "GaAs"]


MODES_CARD = 'task = "modes"\nunit = "THz"\n'


def test_modes_mask_from_trailing_empty_cells(tmp_path):
    rows = ["m0,9,8,7,0.01,0.0,-0.01", "m1,5,4,3,2,1,0.0,,", "m2,6,5,4,,,"]
    root = make_folder(tmp_path / "set", MODES_CARD, rows, n=3)
    data = FolderDataset(data_dir=root).load()
    assert data.task.kind == "modes" and data.task.n_outputs == 6
    np.testing.assert_array_equal(data.mask.sum(axis=1), [6, 6, 3])
    np.testing.assert_allclose(data.targets[2], [6, 5, 4, 0, 0, 0])
    assert data.targets[0, 4] == 0.0 and data.mask[0, 4]  # a real zero mode stays real


def test_modes_zero_padding_and_n_outputs(tmp_path):
    rows = ["m0,9,8,7,0,0,0", "m1,5,4,3,2,1,0.5"]
    root = make_folder(tmp_path / "set", MODES_CARD + 'padding = "zero"\nn_outputs = 9\n', rows, n=2)
    data = FolderDataset(data_dir=root).load()
    assert data.targets.shape == (2, 9)
    np.testing.assert_array_equal(data.mask.sum(axis=1), [3, 6])


def test_modes_count_columns(tmp_path):
    rows = ["id,n_atoms,f1,f2,f3,f4,f5,f6", "m0,2,9,8,7,6,5,0.0", "m1,1,3,2,1,0,0,"]
    root = make_folder(tmp_path / "set", MODES_CARD, rows, n=2)
    data = FolderDataset(data_dir=root).load()
    np.testing.assert_array_equal(data.mask.sum(axis=1), [6, 3])
    np.testing.assert_allclose(data.targets[1], [3, 2, 1, 0, 0, 0])
    rows = ["id,f1,f2,f3,n_modes", "m0,9,8,,2", "m1,3,2,1,3"]
    root = make_folder(tmp_path / "set2", MODES_CARD, rows, n=2)
    np.testing.assert_array_equal(FolderDataset(data_dir=root).load().mask.sum(axis=1), [2, 3])


def _error(root: Path) -> str:
    with pytest.raises(DataError) as info:
        FolderDataset(data_dir=root).load()
    msg = str(info.value)
    assert "\n" not in msg and "fix:" in msg
    return msg


def test_missing_card_and_folder(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    assert "no card file (phonbench.toml or card.json) in" in _error(tmp_path / "empty")
    assert "does not exist" in _error(tmp_path / "nowhere")
    monkeypatch.delenv("PHONBENCH_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="folder dataset: no folder given .*--data-dir"):
        FolderDataset().load()
    assert FolderDataset.card is GENERIC_CARD  # the class-level card needs no folder
    with pytest.raises(ConfigError, match="unknown option"):
        FolderDataset(data_dir=tmp_path, task="scalar")


def test_env_var_folder(tmp_path, monkeypatch):
    make_folder(tmp_path / "folder", SPECTRUM_CARD, spectrum_rows())
    monkeypatch.setenv("PHONBENCH_DATA_DIR", str(tmp_path))
    assert len(FolderDataset().load()) == 6


@pytest.mark.parametrize(
    "card, pattern",
    [
        ('task = "dos"\n', r"task 'dos' in .*phonbench.toml is not a known task kind .*spectrum, modes, scalar"),
        ('task = "spectrum"\n', "spectrum task in .* has no grid"),
        ('task = "spectrum"\ngrid = [0, 10, 5]\n', "grid in .* is not at least 2 finite increasing numbers"),
        ('task = "scalar"\ncolour = "red"\n', "unknown key.* colour in"),
        ('task = "scalar"\ndefault_metrics = ["maee"]\n', "unknown metric.* maee in"),
        ('task = "modes"\nn_outputs = 0\n', "n_outputs 0 in .* is not a positive integer"),
        ('task = "scalar\n', "cannot parse .*phonbench.toml"),
    ],
)
def test_bad_cards(tmp_path, card, pattern):
    root = make_folder(tmp_path / "set", card, ["m0,1.0"], n=1)
    with pytest.raises(DataError, match=pattern):
        FolderDataset(data_dir=root).load()


def test_id_without_structure_file(tmp_path):
    rows = spectrum_rows() + ["zz,0,1,0,0", "yy,0,1,0,0"]
    msg = _error(make_folder(tmp_path / "set", SPECTRUM_CARD, rows))
    assert "no structure file in" in msg and "for 2 of 8 ids (first: zz, yy)" in msg
    assert "<id>.cif" in msg


def test_wrong_number_of_columns(tmp_path):
    rows = spectrum_rows() + ["m6,0,1,0"]
    msg = _error(make_folder(tmp_path / "a", SPECTRUM_CARD, rows, n=7))
    assert "id m6 has 3 value columns, expected exactly 4" in msg
    rows = ["id,peak", "m0,1.0,2.0"]
    msg = _error(make_folder(tmp_path / "b", 'task = "scalar"\n', rows, n=1))
    assert "id m0 has 2 value columns, expected exactly 1" in msg
    rows = ["m0,1,2", "m1,1,2,3,4"]
    msg = _error(make_folder(tmp_path / "c", MODES_CARD + "n_outputs = 3\n", rows, n=2))
    assert "id m1 has 4 value columns, expected at most 3" in msg


def test_nan_and_bad_targets(tmp_path):
    rows = spectrum_rows() + ["m6,0,nan,0,0", "m7,0,,0,0"]
    msg = _error(make_folder(tmp_path / "a", SPECTRUM_CARD, rows, n=8))
    assert "NaN or empty targets for 2 ids (first: m6, m7)" in msg
    msg = _error(make_folder(tmp_path / "b", 'task = "scalar"\n', ["id,y", "m0,1", "m1,"], n=2))
    assert "value columns, expected exactly 1" in msg  # an empty scalar cell is a missing column
    msg = _error(make_folder(tmp_path / "c", 'task = "scalar"\n', ["id,y", "m0,1", "m1,NaN"], n=2))
    assert "NaN or empty targets for 1 ids (first: m1)" in msg
    msg = _error(make_folder(tmp_path / "d", 'task = "scalar"\n', ["id,y", "m0,1", "m1,abc"], n=2))
    assert "value 'abc' of id m1 (value column 1) is not a number" in msg
    msg = _error(make_folder(tmp_path / "e", 'task = "scalar"\n', ["id,y", "m0,1", "m0,2"], n=1))
    assert "duplicate id(s) m0" in msg
    msg = _error(make_folder(tmp_path / "f", MODES_CARD, ["m0,9,,7", "m1,1,2,3"], n=2))
    assert "NaN or empty values among the real modes for 1 ids (first: m0)" in msg
    msg = _error(make_folder(tmp_path / "g", MODES_CARD, ["id,n_modes,a,b", "m0,2,1,1", "m1,3,1,1"], n=2))
    assert "id m1 declares 3 modes but the task has 2" in msg
    msg = _error(make_folder(tmp_path / "h", MODES_CARD, ["id,n_modes,a,b", "m0,1,1,1"], n=1))
    assert "id m0 has values after its declared modes" in msg


def test_unreadable_and_ambiguous_structures(tmp_path):
    root = make_folder(tmp_path / "a", SPECTRUM_CARD, spectrum_rows())
    bad = root / "structures" / "m1.vasp"
    bad.write_text("this is not a POSCAR\n")
    msg = _error(root)
    assert f"cannot read poscar structure file {bad.resolve()}" in msg or f"cannot read poscar structure file {bad}" in msg
    root = make_folder(tmp_path / "b", SPECTRUM_CARD, spectrum_rows())
    crystal(0).to(filename=str(root / "structures" / "m0.vasp"), fmt="poscar")  # m0.cif exists too
    assert "id m0 matches several files" in _error(root)


def test_bad_grid_values_and_metric_kinds(tmp_path):
    root = make_folder(tmp_path / "a", 'task = "spectrum"\ngrid = ["a", "b"]\n', ["m0,1,2"], n=1)
    assert "grid in" in _error(root) and "is not made of numbers" in _error(root)
    root = make_folder(tmp_path / "b", 'task = "spectrum"\ngrid_start = 0\ngrid_stop = "x"\ngrid_points = 2\n',
                       ["m0,1,2"], n=1)
    assert "is not made of numbers" in _error(root)
    root = make_folder(tmp_path / "c", 'task = "scalar"\ndefault_metrics = ["mae", "r2_per_sample"]\n', ["m0,1"], n=1)
    assert "metric(s) r2_per_sample in" in _error(root) and "do not apply to scalar tasks" in _error(root)
    root = make_folder(tmp_path / "d", 'task = "scalar"\ndefault_metrics = ["mae"]\nprimary_metric = "rmse"\n',
                       ["m0,1"], n=1)
    card = FolderDataset(data_dir=root).card
    assert card.default_metrics == ("mae", "rmse") and card.primary_metric == "rmse"


class TestFolderContract(DatasetContract):
    @pytest.fixture(params=["spectrum", "modes"])
    def dataset(self, request, tmp_path):
        # ten crystals of eight compositions: enough chemical systems for every grouped split
        tiny = _tiny_crystals()
        n, of = 10, lambda k: tiny[k % len(tiny)]
        if request.param == "spectrum":
            root = make_folder(tmp_path / "s", SPECTRUM_CARD, spectrum_rows(n), n=n, crystal_of=of)
        else:
            rows = [f"m{k},9,8,7,{k}.5" + ",1,0.1" * (k % 2) for k in range(n)]
            root = make_folder(tmp_path / "m", MODES_CARD, rows, n=n, crystal_of=of)
        return FolderDataset(data_dir=root)


def test_grouped_split_too_small_for_the_folder_is_a_one_line_error(tmp_path):
    root = make_folder(tmp_path / "s", SPECTRUM_CARD, spectrum_rows())  # 4 chemical systems
    ds = FolderDataset(data_dir=root)
    assert {"chemsys", "cluster", "element"} <= set(ds.card.splits)
    with pytest.raises(DataError, match=r"split 'chemsys' fold '4' of dataset 'folder' has no test rows.*random"):
        ds.split("chemsys")
    assert [f.name for f in ds.split("element").folds] == ["Cl", "As", "Ga", "Na", "Ca", "Cs"]
