"""Bundled (package-data) dataset files: location, sha256 verification, compact structures.

Processed files live in ``phonbench/datasets/data/`` next to ``manifest.json`` (written by
:mod:`phonbench.datasets.build`), which maps each file name to its sha256. Every load verifies the
file against the manifest of the directory it is read from (or, without one there, against the
dataset card, whose ``files`` come from the package manifest); a mismatch raises
:class:`~phonbench.exceptions.ChecksumError`.

Structures are stored as arrays, never pickled: ``lattice`` ``(n, 3, 3)`` Å, ``site_offsets``
``(n + 1,)``, ``numbers`` ``(n_sites,)`` atomic numbers and ``frac_coords`` ``(n_sites, 3)``.
:class:`LazyStructures` turns them into pymatgen ``Structure`` objects on first access.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from phonbench.datasets.base import Dataset
from phonbench.exceptions import ChecksumError, DataError
from phonbench.io import sha256_file, write_bytes_atomic

MANIFEST_NAME = "manifest.json"
REBUILD_FIX = "reinstall phonbench or rebuild with python -m phonbench.datasets.build"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
STRUCTURE_KEYS = ("lattice", "site_offsets", "numbers", "frac_coords")


def package_data_dir() -> Path:
    """Directory of the bundled data files inside the installed package."""
    return Path(str(resources.files("phonbench.datasets").joinpath("data")))


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """``data_dir`` as a Path, or the package data directory when ``None``."""
    return package_data_dir() if data_dir is None else Path(data_dir)


def read_manifest(data_dir: str | Path | None = None) -> dict[str, Any]:
    """Parsed ``manifest.json`` of ``data_dir`` (``{}`` when it does not exist).

    Raises:
        ChecksumError: the manifest exists but is not valid JSON.
    """
    path = resolve_data_dir(data_dir) / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ChecksumError(f"cannot read dataset manifest {path}: {err}", REBUILD_FIX) from err


@lru_cache(maxsize=1)
def _package_manifest_files() -> dict[str, str]:
    return dict(read_manifest(None).get("files", {}))


def card_files(names: Sequence[str]) -> dict[str, str]:
    """``{name: sha256}`` of bundled ``names`` from the package manifest (missing ones omitted)."""
    files = _package_manifest_files()
    return {name: files[name] for name in names if name in files}


def verify_file(path: Path, expected: str) -> None:
    """Raise :class:`ChecksumError` unless ``path`` exists and has sha256 ``expected``."""
    if not path.is_file():
        raise ChecksumError(f"bundled dataset file {path} is missing", REBUILD_FIX)
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"dataset file {path} has sha256 {actual[:12]}…, expected {expected[:12]}…", REBUILD_FIX
        )


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file (``allow_pickle=False``)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ChecksumError(f"cannot read dataset file {path}: {err}", REBUILD_FIX) from err


def unpack_modes(arrays: Mapping[str, np.ndarray], width: int, file: str) -> tuple[np.ndarray, np.ndarray]:
    """Padded ``(n, width)`` targets and mask from ragged ``mode_offsets`` (n + 1) + ``frequencies``.

    Raises:
        DataError: a material holds more modes than ``width``.
    """
    counts = np.diff(arrays["mode_offsets"])
    if counts.max(initial=0) > width:
        raise DataError(f"{file} holds {counts.max()} modes for one material, more than {width}")
    mask = np.arange(width)[None, :] < counts[:, None]
    targets = np.zeros(mask.shape)
    targets[mask] = arrays["frequencies"]  # row-major fill keeps each material's descending order
    return targets, mask


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Deterministic ``.npz`` bytes: members in sorted name order, fixed timestamps, deflate.

    Object arrays are refused so that loading never needs pickle.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            arr = np.ascontiguousarray(arrays[name])
            if arr.dtype == object:
                raise DataError(f"array {name!r} has dtype object", "store strings as fixed-width unicode")
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, member.getvalue(), compresslevel=9)
    return buf.getvalue()


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Atomically write :func:`npz_bytes` of ``arrays`` to ``path``."""
    return write_bytes_atomic(path, npz_bytes(arrays))


def pack_structures(structures: Sequence[Any], coords_dtype: Any = np.float64) -> dict[str, np.ndarray]:
    """Arrays (see module docstring) for ordered pymatgen structures; fractional coordinates in
    ``coords_dtype`` (float32 keeps ~1e-7 of a lattice vector, ~1e-6 Å: enough for every model here).

    Raises:
        DataError: a structure has partial occupancies.
    """
    lattice = np.zeros((len(structures), 3, 3))
    offsets = np.zeros(len(structures) + 1, dtype=np.int64)
    numbers, frac = [], []
    for i, s in enumerate(structures):
        if not s.is_ordered:
            raise DataError(f"structure {i} ({s.composition.reduced_formula}) is disordered")
        lattice[i] = s.lattice.matrix
        numbers.append([site.specie.Z for site in s])
        frac.append(s.frac_coords)
        offsets[i + 1] = offsets[i] + len(s)
    return {
        "lattice": lattice,
        "site_offsets": offsets,
        "numbers": np.concatenate(numbers).astype(np.uint8),
        "frac_coords": np.concatenate(frac).astype(coords_dtype),
    }


class LazyStructures(Sequence):
    """Read-only sequence of pymatgen ``Structure`` objects built on first access and cached.

    Args:
        arrays: the :data:`STRUCTURE_KEYS` arrays of :func:`pack_structures`.
        index: rows of ``arrays`` exposed by this view (default: all).
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], index: np.ndarray | None = None):
        self._arrays = {k: arrays[k] for k in STRUCTURE_KEYS}
        n_all = len(self._arrays["lattice"])
        self._index = np.arange(n_all) if index is None else np.asarray(index, dtype=np.int64)
        self._cache: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._index)

    def _build(self, row: int) -> Any:
        from pymatgen.core import Lattice, Structure

        a = self._arrays
        lo, hi = int(a["site_offsets"][row]), int(a["site_offsets"][row + 1])
        return Structure(
            Lattice(a["lattice"][row]),
            [int(z) for z in a["numbers"][lo:hi]],
            a["frac_coords"][lo:hi],
            coords_are_cartesian=False,
        )

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        row = int(self._index[i])
        if row not in self._cache:
            self._cache[row] = self._build(row)
        return self._cache[row]

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))

    def take(self, index: np.ndarray) -> LazyStructures:
        """A view on rows ``index`` of this sequence, sharing arrays and cache."""
        view = LazyStructures(self._arrays, self._index[np.asarray(index, dtype=np.int64)])
        view._cache = self._cache
        return view

    def n_sites(self) -> np.ndarray:
        """``(len(self),)`` number of sites of each structure (no structure is built)."""
        offsets = self._arrays["site_offsets"]
        return (offsets[self._index + 1] - offsets[self._index]).astype(np.int64)


class BundledDataset(Dataset):
    """Dataset whose records come from verified ``.npz`` files in a data directory.

    ``data_dir`` (constructor argument) overrides the package data directory, e.g. to load a
    rebuilt copy. Subclasses list their files in ``bundled_files``.
    """

    bundled_files: ClassVar[tuple[str, ...]] = ()

    @property
    def directory(self) -> Path:
        """Directory the files are read from."""
        return resolve_data_dir(self.data_dir)

    def expected_sha256(self, name: str) -> str:
        """Recorded sha256 of ``name``: the data directory's manifest, else the card.

        Raises:
            ChecksumError: no hash is recorded for ``name``.
        """
        manifest = read_manifest(self.directory)
        files = manifest.get("files", {}) if manifest else self.card.files
        if name not in files:
            raise ChecksumError(f"no sha256 recorded for dataset file {name!r} in {self.directory}", REBUILD_FIX)
        return files[name]

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """Verified arrays of bundled file ``name``.

        Raises:
            ChecksumError: file missing, corrupted or without a recorded sha256.
        """
        path = self.directory / name
        verify_file(path, self.expected_sha256(name))
        return load_npz(path)

    def verify(self) -> dict[str, bool]:
        """``{file: sha256 matches}`` for every bundled file (never raises on a mismatch)."""
        out = {}
        for name in self.bundled_files:
            try:
                verify_file(self.directory / name, self.expected_sha256(name))
                out[name] = True
            except ChecksumError:
                out[name] = False
        return out
