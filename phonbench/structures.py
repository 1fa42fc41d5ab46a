"""Reading, validating and encoding crystal structures.

Every structure that enters phonbench goes through :func:`validate_structure`: it must have atoms,
finite coordinates, a three-dimensional cell of positive volume, and no two atoms (periodic images
included) closer than :data:`MIN_DISTANCE` Å. Files are read with pymatgen (CIF, POSCAR/CONTCAR,
pymatgen JSON) or ASE (extxyz/xyz, converted with pymatgen's ``AseAtomsAdaptor``); gzip, bzip2 and xz
compressed files are read transparently.

Disordered (alloy) sites are encoded as in Chen et al., *Adv. Sci.* 8, 2004214 (2021), eq. 1: the
one-hot element vector of a site is replaced by its occupancy-weighted multi-hot vector
(:func:`site_species_weights`); :func:`site_masses` gives the occupancy-weighted masses.
"""

from __future__ import annotations

import glob
import io
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Union

import numpy as np

from phonbench.exceptions import DataError

if TYPE_CHECKING:
    from pymatgen.core import Structure

PathLike = Union[str, "os.PathLike[str]"]

#: smallest allowed interatomic distance (Å), periodic images included
MIN_DISTANCE = 0.5
#: smallest allowed cell volume (Å^3); below it the lattice counts as degenerate
MIN_VOLUME = 1e-3
#: number of elements in the multi-hot encoding (H … Og)
N_ELEMENTS = 118

COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".lzma")
#: file suffix → format read by :func:`read_structure`
SUFFIX_FORMATS = {
    ".cif": "cif",
    ".vasp": "poscar",
    ".poscar": "poscar",
    ".xyz": "extxyz",
    ".extxyz": "extxyz",
    ".json": "json",
}
#: names containing these (case-insensitive) are VASP structure files, unless their suffix is in
#: :data:`NOT_STRUCTURE_SUFFIXES` (``POSCAR``, ``POSCAR-mp-1``, ``example_POSCAR_x``, ``CONTCAR``)
POSCAR_NAMES = ("POSCAR", "CONTCAR")
NOT_STRUCTURE_SUFFIXES = (".txt", ".csv", ".md", ".log", ".py", ".npy", ".npz", ".png", ".pdf", ".toml")
FORMATS = ("cif", "poscar", "extxyz", "json")
_KNOWN = "CIF (*.cif), POSCAR/CONTCAR (*POSCAR*, *CONTCAR*, *.vasp), extxyz (*.extxyz, *.xyz), pymatgen JSON (*.json)"


def _plain_name(path: Path) -> str:
    """File name without a compression suffix."""
    name = path.name
    for suffix in COMPRESSION_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def structure_format(path: PathLike) -> str | None:
    """Format of a structure file from its name (``cif``, ``poscar``, ``extxyz``, ``json``) or ``None``."""
    name = _plain_name(Path(path))
    suffix = Path(name).suffix.lower()
    if suffix in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[suffix]
    if any(key in name.upper() for key in POSCAR_NAMES) and suffix not in NOT_STRUCTURE_SUFFIXES:
        return "poscar"
    return None


def is_structure_file(path: PathLike) -> bool:
    """True when ``path`` has a structure-file name known to :func:`read_structure`."""
    return structure_format(path) is not None


def structure_key(path: PathLike) -> str:
    """Name of a structure file without compression and format suffixes (``a/b.cif.gz`` → ``b``)."""
    name = _plain_name(Path(path))
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in SUFFIX_FORMATS else name


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _read_text(path: Path) -> str:
    from monty.io import zopen

    with zopen(path, mode="rt", encoding="utf-8") as fh:
        return fh.read()


def _parse(text: str, fmt: str, path: Path) -> Structure:
    from pymatgen.core import Structure

    if fmt in ("cif", "poscar"):
        return Structure.from_str(text, fmt=fmt)
    if fmt == "json":
        obj = json.loads(text)
        if not isinstance(obj, dict) or "lattice" not in obj or "sites" not in obj:
            raise ValueError("not a pymatgen Structure dict (needs 'lattice' and 'sites')")
        return Structure.from_dict(obj)
    # extxyz / xyz through ASE
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = ase.io.read(io.StringIO(text), index=":", format="extxyz")
    if len(frames) != 1:
        raise ValueError(f"holds {len(frames)} frames; put one structure per file")
    atoms = frames[0]
    if atoms.cell.rank < 3:
        raise ValueError("has no 3-D periodic cell (write extxyz with a Lattice=\"...\" header)")
    return AseAtomsAdaptor.get_structure(atoms)


def read_structure(path: PathLike, fmt: str | None = None, min_distance: float = MIN_DISTANCE) -> Structure:
    """Read and validate one periodic crystal structure.

    Args:
        path: structure file; the format comes from its name (see :func:`structure_format`)
            unless ``fmt`` is given.
        fmt: force a format: ``cif``, ``poscar``, ``extxyz`` or ``json`` (pymatgen ``as_dict``).
        min_distance: smallest allowed interatomic distance in Å.

    Returns:
        A pymatgen ``Structure`` (lattice in Å, fractional coordinates).

    Raises:
        DataError: missing or unreadable file, unknown format, or a structure that fails
            :func:`validate_structure`; the message names the file.
    """
    path = Path(path)
    if fmt is None:
        fmt = structure_format(path)
        if fmt is None:
            raise DataError(f"unknown structure file type for {path}", f"name it as one of: {_KNOWN}")
    elif fmt not in FORMATS:
        raise DataError(f"unknown structure format {fmt!r} for {path}", f"use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise DataError(f"structure file {path} not found", "check the path and the file name")
    try:
        text = _read_text(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = _parse(text, fmt, path)
    except Exception as exc:  # pymatgen/ASE raise many exception types on bad input
        raise DataError(
            f"cannot read {fmt} structure file {path}: {_one_line(exc)}",
            f"repair or replace the file (readable types: {_KNOWN})",
        ) from exc
    return validate_structure(structure, str(path), min_distance)


def check_featurizable(structure: Any, index: int = 0) -> None:
    """Cheap checks before featurizing material ``index`` (no distance check).

    Raises:
        DataError: not a pymatgen Structure, no sites, NaN/inf coordinates or lattice, zero volume.
    """
    if not hasattr(structure, "lattice") or not hasattr(structure, "frac_coords"):
        raise DataError(
            f"material {index}: expected a pymatgen Structure, got {type(structure).__name__}",
            "convert it with pymatgen (e.g. AseAtomsAdaptor.get_structure)",
        )
    if len(structure) == 0:
        raise DataError(f"material {index} has an empty structure (no sites)", "drop it from the data")
    if not (np.isfinite(structure.frac_coords).all() and np.isfinite(structure.lattice.matrix).all()):
        raise DataError(f"material {index} has NaN or inf coordinates or lattice", "repair or drop the structure")
    if not abs(structure.lattice.volume) > 1e-6:
        raise DataError(f"material {index} has a zero-volume lattice", "repair or drop the structure")


def validate_structure(structure: Structure, name: str = "structure", min_distance: float = MIN_DISTANCE) -> Structure:
    """Check that ``structure`` is a usable periodic crystal; return it unchanged.

    Args:
        structure: pymatgen ``Structure``.
        name: how the structure is named in error messages (file name or material id).
        min_distance: smallest allowed distance in Å between two atoms, periodic images included.

    Raises:
        DataError: no atoms, NaN/inf lattice or coordinates, degenerate lattice (volume below
            :data:`MIN_VOLUME` Å^3), or two atoms closer than ``min_distance``.
    """
    if structure is None or not hasattr(structure, "lattice"):
        raise DataError(f"{name} is not a periodic structure (got {type(structure).__name__})",
                        "pass a pymatgen Structure")
    if len(structure) == 0:
        raise DataError(f"{name} has no atoms", "give a structure with at least one site")
    matrix = np.asarray(structure.lattice.matrix, dtype=np.float64)
    frac = np.asarray(structure.frac_coords, dtype=np.float64)
    if not (np.isfinite(matrix).all() and np.isfinite(frac).all()):
        raise DataError(f"{name} has NaN or infinite lattice vectors or coordinates", "repair the structure")
    volume = abs(float(np.linalg.det(matrix)))
    if volume < MIN_VOLUME:
        raise DataError(f"{name} has a degenerate lattice (cell volume {volume:.3g} Å^3)",
                        "give three linearly independent lattice vectors")
    if min_distance > 0:
        _check_distances(structure, name, min_distance)
    return structure


def _check_distances(structure: Structure, name: str, min_distance: float) -> None:
    centers, points, images, distances = structure.get_neighbor_list(min_distance, exclude_self=False)
    if len(centers) == 0:
        return
    is_self = (centers == points) & np.all(np.asarray(images).reshape(-1, 3) == 0, axis=1)
    close = np.flatnonzero(~is_self)
    if len(close) == 0:
        return
    k = close[np.argmin(distances[close])]
    i, j = int(centers[k]), int(points[k])
    what = "its own periodic image" if i == j else f"site {j} ({structure[j].species_string})"
    raise DataError(
        f"{name}: site {i} ({structure[i].species_string}) is {distances[k]:.3f} Å from {what}, "
        f"closer than {min_distance} Å",
        "remove duplicate atoms or fix the cell/coordinates (units are Å)",
    )


def expand_paths(items: PathLike | Iterable[PathLike]) -> list[Path]:
    """Structure files named by files, folders and glob patterns.

    Files are kept as given; folders are searched recursively for structure files (known suffixes
    or names containing ``POSCAR``/``CONTCAR``, hidden entries skipped); glob patterns (``*``, ``?``, ``[``;
    ``**`` recursive) are expanded and each match treated as above.

    Args:
        items: one path/pattern or an iterable of them.

    Returns:
        Absolute paths, sorted and without duplicates.

    Raises:
        DataError: a path that does not exist or a pattern that matches nothing.
    """
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    found: set[Path] = set()
    for item in items:
        text = os.fspath(item)
        if any(ch in text for ch in "*?["):
            matches = glob.glob(os.path.expanduser(text), recursive=True)
            if not matches:
                raise DataError(f"pattern {text!r} matches no files", "check the pattern and the folder")
            candidates = [Path(m) for m in matches]
        else:
            path = Path(text).expanduser()
            if not path.exists():
                raise DataError(f"structure path {path} does not exist", "check the path")
            candidates = [path]
        for path in candidates:
            if path.is_dir():
                found.update(_walk(path))
            elif path.is_file():
                found.add(path.resolve())
    return sorted(found)


def _walk(folder: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        out.extend(Path(root, f).resolve() for f in files if not f.startswith(".") and is_structure_file(f))
    return out


def site_species_weights(structure: Structure, normalize: bool = False) -> np.ndarray:
    """Occupancy-weighted multi-hot element encoding of every site (Chen et al. 2021, eq. 1).

    An ordered site gives a one-hot row; a disordered site ``{A: x, B: 1-x}`` gives ``x`` in A's
    column and ``1-x`` in B's. Column ``Z - 1`` belongs to atomic number ``Z``.

    Args:
        structure: pymatgen ``Structure`` (ordered or disordered).
        normalize: divide each row by its total occupancy (sites with vacancies then sum to 1).

    Returns:
        ``(n_sites, 118)`` float64 array of occupancies.

    Raises:
        DataError: a species without an atomic number (dummy species or vacancy placeholder).
    """
    weights = np.zeros((len(structure), N_ELEMENTS), dtype=np.float64)
    for i, site in enumerate(structure):
        for species, occupancy in site.species.items():
            z = int(getattr(species, "Z", 0) or 0)
            if not 1 <= z <= N_ELEMENTS:
                raise DataError(f"site {i} has species {species} without an atomic number",
                                "replace dummy species by real elements")
            weights[i, z - 1] += float(occupancy)
    if normalize:
        totals = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(totals > 0, totals, 1.0)
    return weights


def site_masses(structure: Structure) -> np.ndarray:
    """Occupancy-weighted atomic mass of every site, ``Σ_species occupancy × mass``.

    Args:
        structure: pymatgen ``Structure``.

    Returns:
        ``(n_sites,)`` float64 array in amu.
    """
    return np.array([float(site.species.weight) for site in structure], dtype=np.float64)
