"""Mesh convergence check of the phonondb build (``phonondb_build --convergence N``).

For N archives spread evenly over the mp-id-sorted mirror, the force constants are built once and
the gamma-centred symmetric mesh is rerun at each length of :data:`LENGTHS` (phonopy mesh length, Å:
mesh numbers ≈ length × |b_i|) and at the dense :data:`REFERENCE` length. Each mesh's quantities are
compared with the reference: the 51-point ``dos`` target (max-normalised, a.u.), C_V, S and F at
300 K (per atom) and ω_max (cm⁻¹). The table written by :func:`format_table` is the one in
``docs/benchmarks/phonondb_mesh.md``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from phonbench.io import write_text_atomic

LENGTHS = (10.0, 20.0, 30.0, 40.0, 60.0, 80.0)
REFERENCE = 120.0
QUANTITIES = ("cv", "s", "f", "omega_max")


def sample(refs: list[Any], n: int) -> list[Any]:
    """``n`` archives evenly spaced over ``refs`` (deterministic)."""
    step = max(1, len(refs) // n)
    return refs[::step][:n]


def converge_one(archive: Any, lengths: tuple[float, ...] = LENGTHS, reference: float = REFERENCE) -> dict[str, Any]:
    """Quantities of one archive at each mesh length and the reference.

    Returns:
        ``{"mp_id", "n_atoms", "load_s", "rows": {length: {"dos51", "cv", "s", "f", "omega_max",
        "seconds", "n_irr_q", "mesh"}}}`` (``cv``/``s`` J/(K·mol-atoms), ``f`` kJ/mol-atoms).
    """
    from phonbench.datasets.phonondb_calc import (
        dos_target,
        gamma_modes,
        load_phonopy,
        mesh_dos,
    )

    start = time.perf_counter()
    ph = load_phonopy(archive)
    gamma_modes(ph)
    load_s = time.perf_counter() - start
    n_atoms = len(ph.primitive)
    rows = {}
    for length in (*lengths, reference):
        t0 = time.perf_counter()
        res = mesh_dos(ph, length)
        target, _ = dos_target(res["dos_start"], res["dos"])
        rows[length] = {
            "dos51": target, "cv": res["cv"] / n_atoms, "s": res["s"] / n_atoms, "f": res["f"] / n_atoms,
            "omega_max": res["f_max"], "seconds": time.perf_counter() - t0, "n_irr_q": res["n_irr_q"],
            "mesh": res["mesh"].tolist(),
        }
    return {"mp_id": archive.mp_id, "n_atoms": n_atoms, "load_s": load_s, "rows": rows}


def summarise(results: list[dict[str, Any]], lengths: tuple[float, ...] = LENGTHS,
              reference: float = REFERENCE) -> list[dict[str, float]]:
    """One row per length: mean/max errors against the reference and mean cost."""
    table = []
    for length in lengths:
        err = {k: [] for k in ("mae51", "max51", *QUANTITIES, "seconds", "n_irr_q", "n_points")}
        for r in results:
            row, ref = r["rows"][length], r["rows"][reference]
            diff = np.abs(row["dos51"] - ref["dos51"])
            err["mae51"].append(diff.mean())
            err["max51"].append(diff.max())
            for q in QUANTITIES:
                err[q].append(abs(row[q] - ref[q]))
            err["seconds"].append(row["seconds"])
            err["n_irr_q"].append(row["n_irr_q"])
            err["n_points"].append(float(np.prod(row["mesh"])))
        entry: dict[str, float] = {"length": length}
        for key, values in err.items():
            values = np.asarray(values, dtype=np.float64)
            entry[f"{key}_mean"] = float(values.mean())
            entry[f"{key}_max"] = float(values.max())
            entry[f"{key}_p90"] = float(np.quantile(values, 0.9))
        table.append(entry)
    return table


def format_table(table: list[dict[str, float]], results: list[dict[str, Any]], reference: float = REFERENCE) -> str:
    """Markdown table of :func:`summarise` (means, with 90th percentile / max in brackets)."""
    ref_s = np.mean([r["rows"][reference]["seconds"] for r in results])
    atoms = np.array([r["n_atoms"] for r in results])
    lines = [
        (f"{len(results)} materials (atoms per primitive cell: median {np.median(atoms):.0f}, max {atoms.max()}); "
         f"reference mesh length {reference:g} Å (mean {ref_s:.2f} s per material). Force constants + Γ: "
         f"mean {np.mean([r['load_s'] for r in results]):.2f} s per material."),
        "",
        ("| length (Å) | mesh points mean | irr. q mean | 51-pt target MAE mean (p90 / max) | 51-pt max abs err mean (max) "
         "| C_V J/(K mol-at) mean (max) | S J/(K mol-at) mean (max) | F kJ/mol-at mean (max) | ω_max cm⁻¹ mean (max) "
         "| mesh + DoS s mean |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in table:
        lines.append(
            f"| {e['length']:g} | {e['n_points_mean']:.0f} | {e['n_irr_q_mean']:.0f} | {e['mae51_mean']:.2e} "
            f"({e['mae51_p90']:.2e} / {e['mae51_max']:.2e}) | {e['max51_mean']:.2e} ({e['max51_max']:.2e}) "
            f"| {e['cv_mean']:.3f} ({e['cv_max']:.3f}) | {e['s_mean']:.3f} ({e['s_max']:.3f}) "
            f"| {e['f_mean']:.4f} ({e['f_max']:.4f}) | {e['omega_max_mean']:.2f} ({e['omega_max_max']:.2f}) "
            f"| {e['seconds_mean']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _converge_ref(args: tuple[str, Any]) -> dict[str, Any] | str:
    from phonbench.datasets.phonondb_build import BlobReader
    from phonbench.datasets.phonondb_calc import read_archive
    from phonbench.exceptions import DataError

    mirror, ref = args
    reader = BlobReader(mirror)
    try:
        return converge_one(read_archive(reader.read(ref), ref.name))
    except DataError as err:
        return f"{ref.mp_id}: {err.message}"
    finally:
        reader.close()


def run_convergence(mirror: str | Path, n: int = 50, workers: int = 2, note: str | Path | None = None) -> dict[str, Any]:
    """Run the check on ``n`` archives of ``mirror``; optionally write the markdown table to ``note``.

    Returns:
        ``{"table": summarise(...), "failed": [...], "markdown": str}``.
    """
    import multiprocessing as mp
    import os

    from phonbench.datasets.phonondb_build import THREAD_ENV, list_archives

    refs = sample(list_archives(mirror), n)
    for var in THREAD_ENV:
        os.environ[var] = "1"
    with mp.get_context("spawn").Pool(max(1, workers)) as pool:
        out = pool.map(_converge_ref, [(str(mirror), r) for r in refs], chunksize=1)
    results = [r for r in out if isinstance(r, dict)]
    table = summarise(results)
    markdown = format_table(table, results)
    if note:
        write_text_atomic(note, markdown)
    return {"table": table, "failed": [r for r in out if isinstance(r, str)], "markdown": markdown,
            "materials": [r["mp_id"] for r in results]}
