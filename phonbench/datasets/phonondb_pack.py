"""Pack the phonondb per-material cache into the bundled files (last step of the phonondb build).

Package files (deterministic ``.npz``, see :func:`phonbench.datasets.bundled.npz_bytes`), rows in
mp-id order (numeric); failed materials and those :func:`exclusion_reason` rejects are left out
(both listed in the manifest):

* ``phonondb_structures.npz``: ``ids`` + the structure arrays of
  :func:`~phonbench.datasets.bundled.pack_structures` (phonopy primitive cells, Å).
* ``phonondb_dos.npz``: ``targets`` ``(n, 51)`` (the ``dos`` target), ``grid``, ``n_atoms``,
  ``total_mass`` (amu), ``dos_norm`` (cm⁻¹), ``dos_scale`` (states/(cm⁻¹·cell)), ``cv_300K``
  (J/(K·mol of cells)), ``omega_min`` (cm⁻¹), ``has_imaginary``.
* ``phonondb_gamma.npz``: ``frequencies`` (float32, THz, concatenated), ``mode_offsets``,
  ``lo_to_spread`` / ``lo_to_splitting`` (THz), ``has_born``, ``has_imaginary``.
* ``phonondb_thermo.npz``: ``cv``, ``entropy`` (J/(K·mol of atoms)), ``free_energy`` (kJ/mol of
  atoms), ``omega_max`` (cm⁻¹), ``n_atoms``, ``has_imaginary``.

Outside the package, in the cache: ``phonondb_dos_1cm.npz`` (``ids``, ``dos_start`` (cm⁻¹),
``offsets``, ``values`` float32 states/(cm⁻¹·cell) on ``dos_start + arange``) and
``failures.json``. ``manifest.json`` in the output folder gets the sha256 of the package files
and a ``phonondb`` section (source, settings, checks); its other entries are kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from phonbench.datasets.bundled import (
    MANIFEST_NAME,
    load_npz,
    pack_structures,
    read_manifest,
    save_npz,
)
from phonbench.exceptions import DataError
from phonbench.io import sha256_file, write_json_atomic
from phonbench.physics import CHEN_GRID_CM1, CM1_PER_THZ, dos_integral

FILES = ("phonondb_structures.npz", "phonondb_dos.npz", "phonondb_gamma.npz", "phonondb_thermo.npz")
DOS_1CM = "phonondb_dos_1cm.npz"
FAILURES = "failures.json"
#: a material whose lowest mesh frequency is below this (cm⁻¹) is flagged ``has_imaginary``
IMAGINARY_CM1 = -0.1 * CM1_PER_THZ
#: a material with a mesh frequency below this (cm⁻¹; an imaginary 30 THz) is left out of the package:
#: in the 2018-04-17 data the next-lowest after the five below −2000 cm⁻¹ is −734 cm⁻¹, and those five
#: are not soft modes (e.g. SrCuF4 and CaCuF4 with Γ modes of 80–88 THz: broken force sets)
EXCLUDE_OMEGA_MIN_CM1 = -1000.0
#: tolerance of the ∫ g dω = 3N check of the 1 cm⁻¹ DoS (states per cell)
NORM_TOL = 1e-6


def read_results(cache: Path, refs: Iterable[Any]) -> tuple[list[str], list[dict[str, np.ndarray]]]:
    """Ids and cached arrays of every ``ref`` computed successfully, in ``refs`` order."""
    from phonbench.datasets.phonondb_build import cache_paths

    ids, results = [], []
    for ref in refs:
        path = cache_paths(cache, ref.mp_id)[0]
        if path.is_file():
            ids.append(ref.mp_id)
            results.append(load_npz(path))
    return ids, results


def exclusion_reason(result: dict[str, np.ndarray]) -> str | None:
    """Why a computed material is left out of the package (``None``: kept)."""
    w_min = float(np.ravel(result["omega_min"])[0])
    if w_min < EXCLUDE_OMEGA_MIN_CM1:
        return (f"imaginary mode {w_min:.0f} cm^-1 (below {EXCLUDE_OMEGA_MIN_CM1:.0f}): no usable phonon spectrum "
                "(broken force set or a structure far from a minimum)")
    return None


def _structures(results: list[dict[str, np.ndarray]]) -> list[Any]:
    from pymatgen.core import Lattice, Structure

    return [Structure(Lattice(r["lattice"]), [int(z) for z in r["numbers"]], r["frac_coords"]) for r in results]


def assemble(ids: list[str], results: list[dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """The arrays of each file of :data:`FILES` and :data:`DOS_1CM` (module docstring).

    Raises:
        DataError: no results, or a 1 cm⁻¹ DoS that does not integrate to 3N.
    """
    if not results:
        raise DataError("no computed phonondb materials to pack", "run the build first")
    structures = _structures(results)
    def col(key: str, dtype: Any = np.float64) -> np.ndarray:
        return np.array([np.ravel(r[key])[0] for r in results], dtype=dtype)

    n_atoms = np.array([len(r["numbers"]) for r in results], dtype=np.int32)
    bad = np.flatnonzero(np.abs(col("dos_norm") - 3 * n_atoms) > NORM_TOL * np.maximum(1, 3 * n_atoms))
    if len(bad):
        raise DataError(f"{len(bad)} materials (first {ids[bad[0]]}) have a DoS not integrating to 3N")
    has_imag = col("omega_min") < IMAGINARY_CM1
    ids_arr = np.array(ids)
    targets = np.vstack([r["dos51"] for r in results])
    modes = [r["gamma"] for r in results]
    dos_values = [r["dos"].astype(np.float32) for r in results]
    return {
        # float32 coordinates halve the largest package file (6.8 of its 8.2 MB of arrays)
        "phonondb_structures.npz": {"ids": ids_arr, **pack_structures(structures, coords_dtype=np.float32)},
        "phonondb_dos.npz": {
            "ids": ids_arr, "targets": targets, "grid": CHEN_GRID_CM1.copy(), "n_atoms": n_atoms,
            "total_mass": np.array([s.composition.weight for s in structures], dtype=np.float64),
            "dos_norm": dos_integral(targets, CHEN_GRID_CM1), "dos_scale": col("dos_scale"),
            "cv_300K": col("cv") * n_atoms, "omega_min": col("omega_min"), "has_imaginary": has_imag,
        },
        "phonondb_gamma.npz": {
            "ids": ids_arr, "frequencies": np.concatenate(modes).astype(np.float32),
            "mode_offsets": np.concatenate([[0], np.cumsum([len(m) for m in modes])]).astype(np.int64),
            "lo_to_spread": col("lo_to_spread"), "lo_to_splitting": col("lo_to_splitting"), "has_born": col("has_born", bool), "has_imaginary": has_imag,
        },
        "phonondb_thermo.npz": {
            "ids": ids_arr, "cv": col("cv"), "entropy": col("s"), "free_energy": col("f"),
            "omega_max": col("omega_max"), "n_atoms": n_atoms, "has_imaginary": has_imag,
        },
        DOS_1CM: {
            "ids": ids_arr, "dos_start": col("dos_start", np.int32),
            "offsets": np.concatenate([[0], np.cumsum([len(v) for v in dos_values])]).astype(np.int64),
            "values": np.concatenate(dos_values),
        },
    }


def write_manifest(out: Path, hashes: dict[str, str], section: dict[str, Any]) -> Path:
    """Add ``hashes`` and the ``phonondb`` ``section`` to ``out/manifest.json``, keeping the rest."""
    manifest = read_manifest(out) or {"format": 1}
    manifest.setdefault("files", {}).update(hashes)
    manifest["phonondb"] = section
    path = write_json_atomic(out / MANIFEST_NAME, manifest)
    os.chmod(path, 0o644)
    return path


def pack(cache: Path, out: Path, refs: list[Any], info: dict[str, Any]) -> dict[str, Any]:
    """Write the package files into ``out`` and the 1 cm⁻¹ DoS / failures into ``cache``.

    Args:
        cache: the per-material cache.
        out: output folder (package data folder for a release build).
        refs: the archives of the build, in mp-id order.
        info: source and settings recorded in the manifest.

    Returns:
        report: counts, sizes in bytes, and where the files are.
    """
    from phonbench.datasets.phonondb_build import read_failures

    ids, results = read_results(cache, refs)
    excluded = {m: reason for m, r in zip(ids, results) if (reason := exclusion_reason(r))}
    kept = [(m, r) for m, r in zip(ids, results) if m not in excluded]
    ids, results = [m for m, _ in kept], [r for _, r in kept]
    files = assemble(ids, results)
    failures = read_failures(cache, refs)
    out.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name in FILES:
        save_npz(out / name, files[name])
        os.chmod(out / name, 0o644)  # temp files are created 0600; package data must be readable
        hashes[name] = sha256_file(out / name)
    save_npz(cache / DOS_1CM, files[DOS_1CM])
    write_json_atomic(cache / FAILURES, failures)
    thermo = files["phonondb_thermo.npz"]
    checks = {
        "n_materials": len(ids), "n_failed": len(failures), "n_excluded": len(excluded),
        "n_has_imaginary": int(thermo["has_imaginary"].sum()),
        "n_above_1000cm1": int((thermo["omega_max"] > CHEN_GRID_CM1[-1]).sum()),
        "max_atoms": int(thermo["n_atoms"].max()), "dos_1cm_sha256": sha256_file(cache / DOS_1CM),
    }
    write_manifest(out, hashes, {**info, "checks": checks, "failed": {f["mp_id"]: f["reason"] for f in failures},
                                 "excluded": excluded})
    sizes = {name: (out / name).stat().st_size for name in FILES}
    return {**checks, "sizes": sizes, "package_bytes": sum(sizes.values()),
            "dos_1cm_bytes": (cache / DOS_1CM).stat().st_size, "out": str(out), "cache": str(cache)}


def load_dos_1cm(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``phonondb_dos_1cm.npz``; ``values[offsets[i]:offsets[i+1]]`` is material ``ids[i]``."""
    return load_npz(Path(path))
