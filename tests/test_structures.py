"""Structure reading, validation, path expansion and alloy site encodings."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from phonbench.exceptions import DataError
from phonbench.structures import (
    expand_paths,
    is_structure_file,
    read_structure,
    site_masses,
    site_species_weights,
    structure_format,
    structure_key,
    validate_structure,
)

DATA = Path(__file__).resolve().parent / "data"


def rock_salt() -> Structure:
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    ).get_primitive_structure()


@pytest.fixture
def files(tmp_path):
    """One rock-salt NaCl cell written in every supported format."""
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    s = rock_salt()
    s.to(filename=str(tmp_path / "a.cif"))
    s.to(filename=str(tmp_path / "b.vasp"), fmt="poscar")
    s.to(filename=str(tmp_path / "POSCAR"), fmt="poscar")
    (tmp_path / "c.json").write_text(json.dumps(s.as_dict()))
    write(tmp_path / "d.extxyz", AseAtomsAdaptor.get_atoms(s), format="extxyz")
    (tmp_path / "e.cif.gz").write_bytes(gzip.compress((tmp_path / "a.cif").read_bytes()))
    return tmp_path


@pytest.mark.parametrize("name", ["a.cif", "b.vasp", "POSCAR", "c.json", "d.extxyz", "e.cif.gz"])
def test_read_every_format(files, name):
    s = read_structure(files / name)
    assert s.composition.reduced_formula == "NaCl"
    assert len(s) == 2
    assert s.volume == pytest.approx(5.64**3 / 4, rel=1e-5)


def test_read_author_example_poscars():
    ti = read_structure(DATA / "example_POSCAR_JVASP-5")
    assert ti.composition.formula == "Ti2 O4"
    assert ti.volume == pytest.approx(4.632142**2 * 2.971761, rel=1e-6)
    # velocity block after the coordinates is ignored
    co = read_structure(DATA / "example_POSCAR_JVASP-60582")
    assert co.composition.formula == "Co1 Te1 O4"
    assert len(co) == 6


def test_forced_format_for_file_without_extension(tmp_path):
    rock_salt().to(filename=str(tmp_path / "x.vasp"), fmt="poscar")
    (tmp_path / "mp-1").write_text((tmp_path / "x.vasp").read_text())
    with pytest.raises(DataError, match="unknown structure file type for .*mp-1"):
        read_structure(tmp_path / "mp-1")
    assert read_structure(tmp_path / "mp-1", fmt="poscar").composition.reduced_formula == "NaCl"


@pytest.mark.parametrize(
    "name, text, pattern",
    [
        ("bad.cif", "garbage\n", r"cannot read cif structure file .*bad\.cif"),
        ("nocell.xyz", "2\n\nNa 0 0 0\nCl 2.8 0 0\n", r"nocell\.xyz: has no 3-D periodic cell"),
        ("bad.json", '{"a": 1}', r"bad\.json: not a pymatgen Structure dict"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, name, text, pattern):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=pattern) as info:
        read_structure(tmp_path / name)
    assert "\n" not in str(info.value)
    assert "fix:" in str(info.value)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_structure(tmp_path / "nothing.cif")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="unknown structure file type"):
        read_structure(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="unknown structure format 'pdb'"):
        read_structure(tmp_path / "notes.txt", fmt="pdb")


def test_read_rejects_overlapping_atoms(tmp_path):
    (tmp_path / "dup.vasp").write_text(
        "dup\n1.0\n4 0 0\n0 4 0\n0 0 4\nNa Cl\n1 1\ndirect\n0 0 0\n0.05 0 0\n"
    )
    with pytest.raises(DataError, match=r"dup\.vasp: site 0 \(Na\) is 0\.200 Å from site 1 \(Cl\)"):
        read_structure(tmp_path / "dup.vasp")


def test_validate_structure_problems():
    good = rock_salt()
    assert validate_structure(good, "nacl") is good
    with pytest.raises(DataError, match="empty has no atoms"):
        validate_structure(Structure(Lattice.cubic(3), [], []), "empty")
    nan = Structure(Lattice.cubic(3), ["Na"], [[0, 0, 0]])
    nan.lattice = Lattice(np.array([[np.nan, 0, 0], [0, 3, 0], [0, 0, 3]]))
    with pytest.raises(DataError, match="nan has NaN or infinite"):
        validate_structure(nan, "nan")
    flat = Structure(Lattice([[3, 0, 0], [0, 3, 0], [3, 3, 0]]), ["Na"], [[0, 0, 0]])
    with pytest.raises(DataError, match="flat has a degenerate lattice"):
        validate_structure(flat, "flat")
    tiny = Structure(Lattice.cubic(0.4), ["Fe"], [[0, 0, 0]])
    with pytest.raises(DataError, match="0.400 Å from its own periodic image"):
        validate_structure(tiny, "tiny")
    same = Structure(Lattice.cubic(4), ["Na", "Cl"], [[0, 0, 0], [0, 0, 0.999999]])
    with pytest.raises(DataError, match="site 0 .* from site 1"):
        validate_structure(same, "same")
    assert validate_structure(same, "same", min_distance=0) is same
    with pytest.raises(DataError, match="not a periodic structure"):
        validate_structure(None, "none")  # type: ignore[arg-type]


def test_structure_names():
    assert structure_format("x/POSCAR") == "poscar"
    assert structure_format("POSCAR-mp-149") == "poscar"
    assert structure_format("CONTCAR.gz") == "poscar"
    assert structure_format("example_POSCAR_JVASP-5") == "poscar"
    assert structure_format("a.CIF") == "cif"
    assert structure_format("a.extxyz.bz2") == "extxyz"
    assert structure_format("POSCAR_notes.txt") is None
    assert structure_format("targets.csv") is None
    assert structure_key("dir/mp-1.cif.gz") == "mp-1"
    assert structure_key("POSCAR") == "POSCAR"
    assert is_structure_file("b.vasp") and not is_structure_file("README.md")


def test_expand_paths(tmp_path):
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ["a.cif", "sub/b.vasp", "sub/deep/POSCAR", "sub/notes.txt", ".hidden/c.cif", "sub/.d.cif"]:
        (tmp_path / name).write_text("x")
    root = tmp_path.resolve()
    found = expand_paths(tmp_path)
    assert found == sorted([root / "a.cif", root / "sub/b.vasp", root / "sub/deep/POSCAR"])
    # files, folders and globs together; duplicates removed, result sorted
    mixed = expand_paths([tmp_path / "a.cif", str(tmp_path / "sub"), str(tmp_path / "*.cif"), str(tmp_path / "**/*.vasp")])
    assert mixed == sorted([root / "a.cif", root / "sub/b.vasp", root / "sub/deep/POSCAR"])
    # an explicitly named file is kept whatever its name
    assert expand_paths([tmp_path / "sub" / "notes.txt"]) == [root / "sub/notes.txt"]
    with pytest.raises(DataError, match="does not exist"):
        expand_paths([tmp_path / "missing"])
    with pytest.raises(DataError, match="matches no files"):
        expand_paths([str(tmp_path / "*.json")])


def test_site_species_weights_ordered_and_alloy():
    nacl = rock_salt()
    w = site_species_weights(nacl)
    assert w.shape == (2, 118)
    assert w.sum(axis=1).tolist() == [1.0, 1.0]
    assert sorted(np.flatnonzero(w.sum(axis=0)).tolist()) == [10, 16]  # Na (Z=11), Cl (Z=17)

    alloy = Structure(
        Lattice.cubic(4.0),
        [{"Mg": 0.75, "Bi": 0.25}, "Cl", {"Sb": 0.5}],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]],
    )
    w = site_species_weights(alloy)
    assert w[0, 11] == 0.75 and w[0, 82] == 0.25 and w[0].sum() == 1.0
    assert w[1, 16] == 1.0
    assert w[2, 50] == 0.5 and w[2].sum() == 0.5  # half-empty site keeps its occupancy
    assert site_species_weights(alloy, normalize=True)[2, 50] == 1.0
    m = site_masses(alloy)
    assert m.shape == (3,)
    assert m[0] == pytest.approx(0.75 * 24.305 + 0.25 * 208.98, abs=1e-3)
    assert m[1] == pytest.approx(35.453, abs=1e-3)
    assert m[2] == pytest.approx(0.5 * 121.76, abs=1e-3)


def test_site_species_weights_rejects_dummy_species():
    from pymatgen.core.periodic_table import DummySpecies

    s = Structure(Lattice.cubic(4.0), [DummySpecies("X")], [[0, 0, 0]])
    with pytest.raises(DataError, match="without an atomic number"):
        site_species_weights(s)
