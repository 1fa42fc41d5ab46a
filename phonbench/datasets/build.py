"""Build the bundled ``dos``, ``gamma`` and ``matbench_phonons`` files from the raw source data.

Usage::

    python -m phonbench.datasets.build --raw PATH/TO/shared/data [--out phonbench/datasets/data] [--limit N]

``--raw`` is the folder documented in ``shared/data/README.md``. The Petretto JSONs are streamed
straight out of ``petretto2018_phonon_json.tar.xz`` (each one checked against the shipped sha256
list); nothing is unpacked to disk. The output is deterministic: ``.npz`` members in sorted order
with fixed zip timestamps, and a key-sorted ``manifest.json`` holding the sha256 of every file.
Any failed consistency check (missing Γ point, tutorial rows not reproduced, matbench folds or MAD
differing from the official ones) aborts the build with a :class:`~phonbench.exceptions.DataError`.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import json
import os
import re
import sys
import tarfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from phonbench.datasets.bundled import MANIFEST_NAME, pack_structures, save_npz
from phonbench.exceptions import DataError
from phonbench.io import sha256_file, write_json_atomic
from phonbench.physics import CHEN_GRID_CM1, CM1_PER_EV, CM1_PER_THZ, chen_dos_target, dos_integral

PETRETTO = Path("petretto2018_dfpt_phonons")
TAR = PETRETTO / "petretto2018_phonon_json.tar.xz"
TAR_SHA = PETRETTO / "petretto2018_phonon_json.sha256"
UNION = PETRETTO / "e3nn_tutorial_51grid" / "data_union.csv"
ROW_INDEX = PETRETTO / "e3nn_tutorial_51grid" / "row_index.csv"
SPLITS = {p: PETRETTO / "splits" / f"tutorial_idx_{p}.txt" for p in ("train", "valid", "test")}
MP_PBE = PETRETTO / "mp_pbe_structures" / "mp_pbe_structures_1521.json.gz"
MB = Path("matbench_phonons")
MB_CSV = MB / "matbench_phonons_targets_with_mp_id.csv"
MB_FOLDS = MB / "matbench_v0.1_validation_phonons_only.json"
MB_META = MB / "raw" / "matbench_v0.1_dataset_metadata.json"

TUTORIAL_ID = "tutorial-Mg3Bi2"
TUTORIAL_ROW = 1521
CV_TEMPERATURES_K = (100, 300, 800)
TUTORIAL_SIZES = {"train": 1192, "valid": 141, "test": 189}
REPRO_TOL = 1e-6
N_PETRETTO, N_MATBENCH = 1521, 1265
FILES = ("petretto_structures.npz", "dos.npz", "gamma.npz", "matbench_phonons.npz")


# ---------------------------------------------------------------------- raw readers
def iter_petretto_json(raw: Path, limit: int | None = None) -> Iterator[tuple[str, dict]]:
    """Stream ``(mp_id, document)`` from the tar.xz in archive order, verifying each sha256.

    Args:
        raw: shared data root.
        limit: stop after this many materials (``None``: all 1521).
    """
    expected = {}
    for line in (raw / TAR_SHA).read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            expected[Path(name.lstrip("*")).name] = digest
    count = 0
    with tarfile.open(raw / TAR, mode="r|xz") as tf:
        for member in tf:
            match = re.fullmatch(r"(?:.*/)?(mp-\d+)\.json", member.name)
            if not member.isfile() or match is None:
                continue
            blob = tf.extractfile(member).read()  # type: ignore[union-attr]
            name = f"{match.group(1)}.json"
            if hashlib.sha256(blob).hexdigest() != expected.get(name):
                raise DataError(f"raw file {name} does not match {TAR_SHA.name}", "re-copy the shared data")
            yield match.group(1), json.loads(blob)
            count += 1
            if limit is not None and count >= limit:
                return


def parse_ase_dict(text: str) -> dict[str, Any]:
    """Parse the ``str()`` of an ASE ``Atoms.todict()`` without ``eval``.

    ``array(x, dtype=...)`` calls are replaced by their first argument, then the expression is
    evaluated with :func:`ast.literal_eval`.
    """

    class _StripArray(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:
            if isinstance(node.func, ast.Name) and node.func.id == "array" and len(node.args) == 1:
                return self.visit(node.args[0])
            raise DataError(f"unexpected call {ast.unparse(node)[:40]!r} in ASE dict text")

    tree = _StripArray().visit(ast.parse(text.strip(), mode="eval"))
    return ast.literal_eval(ast.fix_missing_locations(tree))


def _tutorial_tables(raw: Path) -> tuple[Any, Any]:
    import pandas as pd

    union = pd.read_csv(raw / UNION)
    rows = pd.read_csv(raw / ROW_INDEX, dtype={"mp_id": str})
    return union, rows


# ---------------------------------------------------------------------- per-material processing
def process_petretto(mp_id: str, doc: dict) -> dict[str, Any]:
    """Targets and structure of one Petretto material.

    Returns:
        dict with ``structure`` (pymatgen), ``dos`` ``(51,)``, ``dos_scale`` (states/(cm⁻¹·cell)),
        ``gamma`` ``(3N,)`` THz sorted descending, ``lo_to_spread`` (THz), ``cv`` (J/(K·mol of
        unit cells) = Petretto's per-formula-unit C_v × Z, one per :data:`CV_TEMPERATURES_K`, NaN
        without thermo) and ``has_neg_fr``.

    Raises:
        DataError: no Γ point in the band structure, or inconsistent atom counts.
    """
    from pymatgen.core import Structure

    ph = doc["phonon"]
    dos, scale = chen_dos_target(np.asarray(ph["dos_frequencies"]), np.asarray(ph["ph_dos"]))
    bands, qpts = np.asarray(ph["ph_bandstructure"], float), np.asarray(ph["qpts"], float)
    at_gamma = np.flatnonzero(np.all(np.abs(qpts) < 1e-8, axis=1))
    if len(at_gamma) == 0:
        raise DataError(f"{mp_id}: no q = (0, 0, 0) point in the band structure")
    modes = np.sort(bands[at_gamma], axis=1)[:, ::-1] / CM1_PER_THZ
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = Structure.from_str(doc["metadata"]["structure"], fmt="cif")
    n = int(doc["metadata"]["nsites"])
    if len(structure) != n or bands.shape[1] != 3 * n:
        raise DataError(f"{mp_id}: {len(structure)} CIF sites, nsites {n}, {bands.shape[1]} bands")
    thermo = doc.get("thermo") or {}
    # Petretto's thermo is per mole of formula units: times Z gives per mole of unit cells.
    z_formula = structure.composition.get_reduced_composition_and_factor()[1]
    cv = []
    for t in CV_TEMPERATURES_K:
        hit = np.flatnonzero(np.isclose(thermo.get("temperature", []), t))
        cv.append(float(thermo["C_v"][hit[0]]) * z_formula if len(hit) else np.nan)
    return {
        "structure": structure,
        "dos": dos,
        "dos_scale": scale / CM1_PER_EV,
        "gamma": modes[0],
        "lo_to_spread": float(np.abs(modes - modes[0]).max()),
        "cv": cv,
        "has_neg_fr": bool(doc["flags"]["has_neg_fr"]),
    }


def _tutorial_structure(text: str) -> Any:
    from pymatgen.core import Lattice, Structure

    d = parse_ase_dict(text)
    cell = np.asarray(d["cell"], float)
    frac = np.asarray(d["positions"], float) @ np.linalg.inv(cell)
    return Structure(Lattice(cell), [int(z) for z in d["numbers"]], frac)


def _check_same_cell(mp_id: str, structure: Any, text: str) -> None:
    d = parse_ase_dict(text)
    volume = abs(np.linalg.det(np.asarray(d["cell"], float)))
    same_atoms = sorted(d["numbers"]) == sorted(site.specie.Z for site in structure)
    if not same_atoms or abs(volume / structure.volume - 1) > 1e-4:
        raise DataError(f"{mp_id}: CIF cell differs from the tutorial row (atoms or volume)")


def _masses(structures: list[Any]) -> np.ndarray:
    return np.array([float(sum(site.specie.atomic_mass for site in s)) for s in structures])


# ---------------------------------------------------------------------- dataset builders
def build_petretto(raw: Path, limit: int | None) -> tuple[dict[str, dict], dict[str, Any]]:
    """Arrays of ``petretto_structures.npz``, ``dos.npz``, ``gamma.npz`` and a check report."""
    union, rows = _tutorial_tables(raw)
    row_of = {mid: int(r) for r, mid in zip(rows["row"], rows["mp_id"]) if isinstance(mid, str)}
    recs = {mid: process_petretto(mid, doc) for mid, doc in iter_petretto_json(raw, limit)}
    ids = sorted(recs)
    if limit is None and len(ids) != N_PETRETTO:
        raise DataError(f"found {len(ids)} Petretto materials, expected {N_PETRETTO}")
    diffs = np.empty(len(ids))
    for i, mid in enumerate(ids):
        row = row_of[mid]
        _check_same_cell(mid, recs[mid]["structure"], union["structure"][row])
        diffs[i] = np.abs(recs[mid]["dos"] - np.asarray(json.loads(union["phdos"][row]))).max()
    n_bad = int((diffs > REPRO_TOL).sum())
    if n_bad > 1:
        raise DataError(f"{n_bad} materials differ from the tutorial DoS rows by more than {REPRO_TOL}")
    tut_dos = np.asarray(json.loads(union["phdos"][TUTORIAL_ROW]), float)
    structures = [recs[m]["structure"] for m in ids] + [_tutorial_structure(union["structure"][TUTORIAL_ROW])]
    all_ids = ids + [TUTORIAL_ID]
    index_of = {mid: i for i, mid in enumerate(all_ids)}
    tutorial = {}
    for part, path in SPLITS.items():
        tut_rows = [int(x) for x in (raw / path).read_text().split()]
        ids_part = [TUTORIAL_ID if r == TUTORIAL_ROW else rows["mp_id"][r] for r in tut_rows]
        tutorial[f"tutorial_{part}"] = np.sort([index_of[m] for m in ids_part if m in index_of]).astype(np.int64)
        if limit is None and len(tut_rows) != TUTORIAL_SIZES[part]:
            raise DataError(f"tutorial {part} split has {len(tut_rows)} rows, expected {TUTORIAL_SIZES[part]}")
    covered = np.sort(np.concatenate(list(tutorial.values())))
    if not np.array_equal(covered, np.arange(len(all_ids))):
        raise DataError("tutorial split indices do not cover every material exactly once")
    targets = np.vstack([recs[m]["dos"] for m in ids] + [tut_dos])
    cv = np.array([recs[m]["cv"] for m in ids] + [[np.nan] * len(CV_TEMPERATURES_K)])
    packed = pack_structures(structures)
    n_atoms = np.diff(packed["site_offsets"]).astype(np.int32)
    dos = {
        "ids": np.array(all_ids),
        "targets": targets,
        "grid": CHEN_GRID_CM1.copy(),
        "n_atoms": n_atoms,
        "total_mass": _masses(structures),
        "dos_norm": dos_integral(targets, CHEN_GRID_CM1),
        "dos_scale": np.array([recs[m]["dos_scale"] for m in ids] + [np.nan]),
        "has_neg_fr": np.array([recs[m]["has_neg_fr"] for m in ids] + [False]),
        **{f"cv_{t}K": cv[:, k] for k, t in enumerate(CV_TEMPERATURES_K)},
        **tutorial,
    }
    modes = [recs[m]["gamma"] for m in ids]
    gamma = {
        "ids": np.array(ids),
        "frequencies": np.concatenate(modes),
        "mode_offsets": np.concatenate([[0], np.cumsum([len(x) for x in modes])]).astype(np.int64),
        "lo_to_spread": np.array([recs[m]["lo_to_spread"] for m in ids]),
        "has_neg_fr": np.array([recs[m]["has_neg_fr"] for m in ids]),
    }
    report = {
        "n_petretto": len(ids),
        "repro_within_tol": int(len(ids) - n_bad),
        "repro_max_abs_diff": float(diffs.max()),
        "repro_quantiles": {q: float(np.quantile(diffs, q)) for q in (0.5, 0.9, 0.99, 1.0)},
        "n_lo_to_split": int((gamma["lo_to_spread"] > 1e-3 / CM1_PER_THZ).sum()),
        "n_thermo": int(np.isfinite(cv[:, 0]).sum()),
    }
    return {
        "petretto_structures.npz": {"ids": np.array(all_ids), **packed},
        "dos.npz": dos,
        "gamma.npz": gamma,
    }, report


def build_matbench(raw: Path, mp_ids: set[str] | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays of ``matbench_phonons.npz`` (restricted to ``mp_ids`` when given) and a check report.

    Raises:
        DataError: folds differ from the official matbench file, or the MAD from its metadata.
    """
    import pandas as pd
    from pymatgen.core import Structure

    table = pd.read_csv(raw / MB_CSV, dtype={"mbid": str, "mp_id": str})
    official = json.loads((raw / MB_FOLDS).read_text())["splits"]["matbench_phonons"]
    meta = json.loads((raw / MB_META).read_text())["matbench_phonons"]
    y_all = table["last_phdos_peak"].to_numpy(float)
    mad = float(np.abs(y_all - y_all.mean()).mean())
    if len(table) != N_MATBENCH or abs(mad - meta["mad"]) > 1e-9 * meta["mad"]:
        raise DataError(f"matbench table: {len(table)} rows and MAD {mad}, expected {N_MATBENCH}, {meta['mad']}")
    for k in range(5):
        ours = set(table["mbid"][table["official_test_fold"] == k])
        if ours != set(official[f"fold_{k}"]["test"]):
            raise DataError(f"matbench test fold {k} differs from {MB_FOLDS.name}")
    if mp_ids is not None:
        table = table[table["mp_id"].isin(mp_ids)].reset_index(drop=True)
    with gzip.open(raw / MP_PBE, "rt") as fh:
        pbe = json.load(fh)
    structures = [Structure.from_dict(pbe[m]) for m in table["mp_id"]]
    arrays = {
        "ids": np.array(table["mbid"].tolist()),
        "mp_ids": np.array(table["mp_id"].tolist()),
        "targets": table["last_phdos_peak"].to_numpy(np.float64),
        "official_test_fold": table["official_test_fold"].to_numpy(np.int8),
        **pack_structures(structures),
    }
    return arrays, {"n_matbench": len(table), "matbench_mad": mad}


# ---------------------------------------------------------------------- driver
def _keep_other_builds(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` plus what other build scripts (e.g. phonondb's) wrote into the same manifest file:
    their ``files`` entries and top-level sections survive a rebuild of the Petretto/matbench files."""
    if not path.is_file():
        return manifest
    old = json.loads(path.read_text())
    merged = {**{k: v for k, v in old.items() if k not in manifest}, **manifest}
    merged["files"] = {**{k: v for k, v in old.get("files", {}).items() if k not in FILES}, **manifest["files"]}
    return merged


def build(raw: str | Path, out: str | Path, limit: int | None = None) -> dict[str, Any]:
    """Write the bundled files and ``manifest.json`` into ``out``; return a report dict.

    Args:
        raw: shared data root (contains ``petretto2018_dfpt_phonons/`` and ``matbench_phonons/``).
        out: output directory (created).
        limit: only the first ``limit`` Petretto materials (and the matbench entries among them),
            for quick tests; full-size checks are skipped.
    """
    raw, out = Path(raw), Path(out)
    if not (raw / TAR).is_file():
        raise DataError(f"raw data not found: {raw / TAR}", "pass --raw pointing at the shared data folder")
    start = time.perf_counter()
    files, report = build_petretto(raw, limit)
    subset = None if limit is None else {str(m) for m in files["gamma.npz"]["ids"]}
    files["matbench_phonons.npz"], mb_report = build_matbench(raw, subset)
    report.update(mb_report)
    out.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name in FILES:
        save_npz(out / name, files[name])
        hashes[name] = sha256_file(out / name)
    sources = [TAR, TAR_SHA, UNION, ROW_INDEX, *SPLITS.values(), MP_PBE, MB_CSV, MB_FOLDS, MB_META]
    manifest = {
        "format": 1,
        "limit": limit,
        "files": hashes,
        "sources": {str(p): sha256_file(raw / p) for p in sources},
        "checks": {
            "tutorial_rows_within_1e-6": report["repro_within_tol"],
            "n_petretto": report["n_petretto"],
            "n_matbench": report["n_matbench"],
        },
    }
    write_json_atomic(out / MANIFEST_NAME, _keep_other_builds(out / MANIFEST_NAME, manifest))
    for name in (*FILES, MANIFEST_NAME):
        os.chmod(out / name, 0o644)  # temp files are created 0600; package data must be readable
    report["sizes"] = {name: (out / name).stat().st_size for name in FILES}
    report["seconds"] = time.perf_counter() - start
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", required=True, help="the raw data folder (shared/data of the project)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("data")), help="output folder")
    parser.add_argument("--limit", type=int, default=None, help="only the first N Petretto materials")
    args = parser.parse_args(argv)
    report = build(args.raw, args.out, args.limit)
    json.dump(report, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
