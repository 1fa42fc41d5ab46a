"""Predict phonon properties of new structures with a fitted model, rank candidates, build alloys.

The screening workflow of Chen et al., *Adv. Sci.* 8, 2004214 (2021): predict the DoS of many
structures, derive the mean frequency ω̄ and the harmonic heat capacity C_V(T), and rank (Fig. 5);
:func:`alloy_series` builds the disordered structures of a composition series such as
Mg₃Sb₂₍₁₋ₚ₎Bi₂ₚ (Fig. 4) for models that read occupancy-weighted sites.

For ``spectrum`` models each predicted row is clipped at zero and rescaled to ∫ g dω = 3N states
per cell over the model's grid (N = number of sites), so C_V is in J/(K·mol of cells) and, divided
by the cell mass, in J/(kg·K). For ``modes`` models ω̄ is the mean of the first 3N predicted modes.
Unreadable files never stop a batch: they get a row with ``ok = False`` and the reason in ``error``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from phonbench.exceptions import ConfigError, DataError, ModelError, PhonbenchError
from phonbench.plots import plot_alloy_series, plot_predicted_dos
from phonbench.physics import frequency_to_cm1, heat_capacity, heat_capacity_per_kg, physical_dos

if TYPE_CHECKING:
    import pandas as pd
    from pymatgen.core import Structure

    from phonbench.models.base import Model

__all__ = [
    "Predictions", "alloy_series", "cv_column", "load_model", "plot_alloy_series", "predict",
    "predict_structures", "rank_candidates", "read_structures",
]


def cv_column(temperature_K: float, per: str = "mol") -> str:
    """Name of the C_V column at ``temperature_K``: per ``mol`` (J/(K·mol of cells)) or ``kg`` (J/(kg·K))."""
    if per not in ("mol", "kg"):
        raise ConfigError(f"unknown C_V basis {per!r}", "use per='mol' or per='kg'")
    return f"cv_{temperature_K:g}K_" + ("J_per_K_mol" if per == "mol" else "J_per_kg_K")


def load_model(source: Model | str | Path) -> Model:
    """A fitted model: a :class:`Model` itself, a run directory (``runs/<id>``) or a saved model dir.

    Raises:
        ModelError: the path holds neither ``record.json`` nor ``model.json``, or the model is unfitted.
    """
    from phonbench.models.base import Model

    if isinstance(source, Model):
        source.check_fitted()
        return source
    path = Path(source)
    if (path / "record.json").is_file():
        from phonbench.runner import load_run_model

        return load_run_model(path)
    meta = path / "model.json"
    if not meta.is_file():
        raise ModelError(f"{path} is neither a run directory nor a saved model",
                         "pass runs/<run_id> or a folder written by Model.save()")
    from phonbench.registry import MODELS

    name = json.loads(meta.read_text()).get("model")
    return MODELS.get(str(name)).load(path)


def _error_text(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, PhonbenchError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _unique_ids(files: Sequence[Path]) -> list[str]:
    from phonbench.structures import structure_key

    ids = [structure_key(f) for f in files]
    counts = Counter(ids)
    ids = [f"{f.parent.name}/{k}" if counts[k] > 1 else k for f, k in zip(files, ids)]
    counts = Counter(ids)
    return [str(f) if counts[k] > 1 else k for f, k in zip(files, ids)]


def read_structures(items: str | Path | Iterable[str | Path]) -> tuple[list[str], list[Path], list[Structure], list[dict[str, str]]]:
    """Read structure files, folders and glob patterns; unreadable ones are collected, not raised.

    Returns:
        ``(ids, files, structures, failed)`` where ``failed`` is a list of ``{"file", "error"}``.
    """
    from phonbench.structures import expand_paths, read_structure

    if isinstance(items, (str, Path)):
        items = [items]
    files: list[Path] = []
    seen: set[Path] = set()
    failed: list[dict[str, str]] = []
    for item in items:
        try:
            found = expand_paths(item)
        except PhonbenchError as exc:
            failed.append({"file": str(item), "error": _error_text(exc)})
            continue
        if not found:
            failed.append({"file": str(item), "error": "holds no structure file of a readable type"})
        new = [f for f in found if f not in seen]
        files.extend(new)
        seen.update(new)
    ok_files, structures = [], []
    for file in files:
        try:
            structures.append(read_structure(file))
            ok_files.append(file)
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the batch
            failed.append({"file": str(file), "error": _error_text(exc)})
    return _unique_ids(ok_files), ok_files, structures, failed


@dataclass
class Predictions:
    """Predictions for in-memory structures.

    Attributes:
        table: one row per structure (see :func:`predict`).
        grid_cm1: ``(d,)`` DoS grid in cm⁻¹ (spectrum models) or ``None``.
        dos: ``(n, d)`` DoS in states/(cm⁻¹·cell), rescaled to 3N (rows of failed structures are NaN),
            or ``None`` for non-spectrum models.
        raw: ``(n, d)`` model outputs in the task unit (NaN rows for failures).
    """

    table: pd.DataFrame
    grid_cm1: np.ndarray | None = None
    dos: np.ndarray | None = None
    raw: np.ndarray | None = None


def _model_outputs(model: Model, ids: list[str], structures: list[Any]) -> tuple[np.ndarray, list[str]]:
    """Predict all rows; if the batch fails, predict one by one and record each failure."""
    from phonbench.datasets.base import PhononData

    task = model.check_fitted()
    d = task.n_outputs
    n_atoms = np.array([len(s) for s in structures], dtype=np.int64)
    errors = [""] * len(ids)
    if task.kind == "modes":
        for i, n in enumerate(n_atoms):
            if 3 * n > d:
                errors[i] = f"{n} atoms need {3 * n} modes but the model predicts at most {d}"
    out = np.full((len(ids), d), np.nan)
    todo = [i for i, e in enumerate(errors) if not e]

    def run(rows: list[int]) -> np.ndarray:
        mask = np.arange(d)[None, :] < 3 * n_atoms[rows, None] if task.kind == "modes" else None
        data = PhononData([ids[i] for i in rows], [structures[i] for i in rows], np.zeros((len(rows), d)),
                          task, mask, {"n_atoms": n_atoms[rows]})
        pred = np.asarray(model.predict(data), dtype=np.float64)
        if pred.shape != (len(rows), d):
            raise ModelError(f"model returned shape {pred.shape}, expected {(len(rows), d)}")
        return pred

    if todo:
        try:
            out[todo] = run(todo)
        except Exception:  # noqa: BLE001 - isolate the structures the model cannot handle
            for i in todo:
                try:
                    out[i] = run([i])[0]
                except Exception as exc:  # noqa: BLE001
                    errors[i] = f"prediction failed: {_error_text(exc)}"
    return out, errors


def predict(
    model: Model | str | Path,
    structures: Sequence[Structure],
    ids: Sequence[str] | None = None,
    temperatures: Sequence[float] = (300.0,),
) -> Predictions:
    """Predict phonon properties of in-memory structures (ordered or disordered).

    Table columns: ``id, formula, n_atoms, mass_amu, ok, error, mean_frequency_cm1`` and, for
    spectrum models, :func:`cv_column` ``(T, "mol")`` and ``(T, "kg")`` per temperature; scalar
    models add ``prediction`` (task unit). A predicted DoS that is zero everywhere gives NaN ω̄/C_V.

    Args:
        model: fitted model, run directory or saved-model directory.
        structures: pymatgen structures.
        ids: names (default ``s0, s1, ...``).
        temperatures: temperatures in K for C_V.
    """
    import pandas as pd

    from phonbench.structures import site_masses

    model = load_model(model)
    task = model.check_fitted()
    structures = list(structures)
    ids = [f"s{i}" for i in range(len(structures))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(structures):
        raise DataError(f"{len(ids)} ids for {len(structures)} structures", "give one id per structure")
    temps = np.atleast_1d(np.asarray(temperatures, dtype=np.float64))
    if len(temps) and not (temps > 0).all():
        raise ConfigError(f"temperatures must be positive kelvin values, got {temps.tolist()}")
    n_atoms = np.array([len(s) for s in structures], dtype=np.int64)
    table = pd.DataFrame({
        "id": ids,
        "formula": [s.composition.reduced_formula for s in structures],
        "n_atoms": n_atoms,
        "mass_amu": [float(site_masses(s).sum()) for s in structures],
    })
    raw, errors = _model_outputs(model, ids, structures) if structures else (np.zeros((0, task.n_outputs)), [])
    table["ok"] = [not e for e in errors]
    table["error"] = errors
    result = Predictions(table, raw=raw)
    if task.kind == "spectrum":
        grid = frequency_to_cm1(task.grid_array(), task.grid_unit)
        g = physical_dos(np.clip(np.nan_to_num(raw, nan=0.0), 0.0, None), n_atoms, grid)
        has_weight = (g.sum(axis=1) > 0) & table["ok"].to_numpy()
        g[~table["ok"].to_numpy()] = np.nan
        safe = np.where(has_weight[:, None], g, 0.0)
        table["mean_frequency_cm1"] = np.where(has_weight, (safe * grid).sum(1) / np.where(has_weight, safe.sum(1), 1), np.nan)
        if len(temps):
            cv = np.where(has_weight[:, None], heat_capacity(grid, safe, temps), np.nan)
            cv_kg = heat_capacity_per_kg(cv, table["mass_amu"].to_numpy())
            for j, t in enumerate(temps):
                table[cv_column(t, "mol")] = cv[:, j]
                table[cv_column(t, "kg")] = cv_kg[:, j]
        result.grid_cm1, result.dos = grid, g
    elif task.kind == "modes":
        real = np.arange(task.n_outputs)[None, :] < 3 * n_atoms[:, None]
        mean = np.where(real, raw, 0.0).sum(1) / np.maximum(real.sum(1), 1)
        table["mean_frequency_cm1"] = np.where(table["ok"], frequency_to_cm1(mean, task.unit), np.nan)
    else:
        table["prediction"] = raw[:, 0]
    return result


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "structure"


def predict_structures(
    model: Model | str | Path,
    paths: str | Path | Iterable[str | Path],
    temperatures: Sequence[float] = (300.0,),
    out_dir: str | Path | None = None,
    plots: bool = True,
) -> pd.DataFrame:
    """Predict every structure named by ``paths`` (files, folders, globs) and optionally write results.

    Args:
        model: fitted model, run directory (``runs/<id>``) or saved-model directory.
        paths: CIF/POSCAR/extxyz/pymatgen-JSON files, folders or glob patterns.
        temperatures: temperatures in K for C_V (spectrum models).
        out_dir: if given, writes ``predictions.csv``, ``predictions.json`` and, for spectrum models,
            ``dos.csv`` (DoS in states/(cm⁻¹·cell); columns are frequencies in cm⁻¹) and
            ``plots/<id>.png``.
        plots: write the per-structure DoS plots (with ``out_dir``).

    Returns:
        The table of :func:`predict` plus a ``file`` column; unreadable files and patterns that
        match nothing are extra rows with ``ok = False`` and the reason in ``error``.
    """
    import pandas as pd

    model = load_model(model)
    ids, files, structures, failed = read_structures(paths)
    if not structures:
        raise DataError(nothing_readable(failed), "pass CIF/POSCAR/extxyz/pymatgen-JSON files, folders or globs")
    result = predict(model, structures, ids, temperatures)
    table = result.table
    table.insert(1, "file", [str(f) for f in files])
    if failed:
        bad = pd.DataFrame({"id": [Path(f["file"]).name for f in failed], "file": [f["file"] for f in failed],
                            "ok": False, "error": [f["error"] for f in failed]})
        table = pd.concat([table, bad], ignore_index=True) if len(table) else bad.reindex(columns=table.columns)
        table["ok"] = table["ok"].astype(bool)
        table["n_atoms"] = table["n_atoms"].astype("Int64")
    if out_dir is not None:
        _write_outputs(Path(out_dir), model, table, result, temperatures, plots)
    return table


def nothing_readable(failed: list[dict[str, str]], shown: int = 5) -> str:
    """One line naming each input that gave no structure (the first ``shown``, then a count)."""
    if not failed:
        return "no structure files given"
    parts = [f"{f['file']} ({f['error']})" for f in failed[:shown]]
    more = f" and {len(failed) - shown} more" if len(failed) > shown else ""
    return f"no readable structure in {len(failed)} input(s): {'; '.join(parts)}{more}"


def _write_outputs(out: Path, model: Model, table: pd.DataFrame, result: Predictions,
                   temperatures: Sequence[float], plots: bool) -> None:
    from phonbench.io import write_json_atomic, write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "predictions.csv", table.to_csv(index=False))
    ok = table[table["ok"].astype(bool)]
    write_json_atomic(out / "predictions.json", {
        "model": model.name,
        "task": model.check_fitted().as_dict(),
        "temperatures_K": [float(t) for t in temperatures],
        "results": json.loads(ok.to_json(orient="records")),
        "failed": [{"file": r.file, "error": r.error} for r in table[~table["ok"].astype(bool)].itertuples()],
    })
    if result.dos is None:
        return
    header = ",".join(["id"] + [f"{w:g}" for w in result.grid_cm1])
    lines = [header] + [",".join([str(i)] + [f"{v:.6g}" for v in row])
                        for i, row, good in zip(result.table["id"], result.dos, result.table["ok"]) if good]
    write_text_atomic(out / "dos.csv", "\n".join(lines) + "\n")
    if plots:
        t0 = float(temperatures[0]) if len(temperatures) else None
        for row, g in zip(result.table.itertuples(index=False), result.dos):
            if not row.ok:
                continue
            title = f"{row.id} ({row.formula}): ω̄ = {row.mean_frequency_cm1:.0f} cm⁻¹"
            if t0 is not None:
                title += f", C_V({t0:g} K) = {getattr(row, cv_column(t0, 'kg')):.0f} J/(kg·K)"
            plot_predicted_dos(result.grid_cm1, g, out / "plots" / f"{_safe_name(str(row.id))}.png", title=title)


def rank_candidates(
    df: pd.DataFrame, top: int = 10, by: str = "cv", *, temperature: float | None = None, per: str = "kg",
    ascending: bool = False,
) -> pd.DataFrame:
    """The ``top`` structures by predicted property (screening, Chen et al. 2021, Fig. 5).

    Args:
        df: output of :func:`predict_structures` / :attr:`Predictions.table`.
        top: number of rows to keep.
        by: ``cv`` (heat capacity), ``mean_frequency`` (ω̄ in cm⁻¹) or any numeric column name.
        temperature: for ``by="cv"``, which temperature (default: the first C_V column).
        per: for ``by="cv"``, ``kg`` (J/(kg·K), default) or ``mol`` (J/(K·mol of cells)).
        ascending: rank smallest first (default: largest first).

    Returns:
        The selected rows (failed and NaN rows dropped) with a 1-based ``rank`` column first.

    Raises:
        ConfigError: unknown ``by`` column (e.g. ``cv`` for a modes model) or ``top < 1``.
    """
    if top < 1:
        raise ConfigError(f"top must be at least 1, got {top}")
    if by == "cv":
        suffix = cv_column(0, per).split("K_", 1)[1]
        columns = [c for c in df.columns if c.startswith("cv_") and c.endswith(suffix)]
        column = cv_column(temperature, per) if temperature is not None else (columns[0] if columns else "")
    else:
        column = "mean_frequency_cm1" if by == "mean_frequency" else by
    if column not in df.columns:
        raise ConfigError(f"cannot rank by {by!r}: no column {column or 'cv_*'!r} in the predictions",
                          "C_V needs a spectrum model and the temperature among those predicted")
    ok = df["ok"].astype(bool) if "ok" in df.columns else np.ones(len(df), dtype=bool)
    kept = df[ok & df[column].notna()].sort_values(column, ascending=ascending, kind="stable").head(top)
    kept = kept.reset_index(drop=True)
    kept.insert(0, "rank", np.arange(1, len(kept) + 1))
    return kept


def alloy_series(structure_a: Structure, structure_b: Structure, steps: int, max_shift: float = 1.0) -> list[Structure]:
    """Disordered structures between end members A (p = 0) and B (p = 1), ``p = linspace(0, 1, steps)``.

    The lattice matrix and the fractional coordinates (nearest periodic image) are interpolated
    linearly; site ``i`` gets species ``(1 − p)·A_i + p·B_i`` (occupancies of an ordered pair sum to 1),
    e.g. the Sb/Bi site of Mg₃Sb₂₍₁₋ₚ₎Bi₂ₚ. The end points are copies of A and B.

    Args:
        structure_a, structure_b: end members with the same number of sites in matching order.
        steps: number of compositions (≥ 2).
        max_shift: largest allowed distance in Å between matching sites of A and B.

    Raises:
        DataError: different site counts, or sites that do not match (order differs).
        ConfigError: ``steps < 2``.
    """
    from pymatgen.core import Lattice, Structure

    if steps < 2:
        raise ConfigError(f"an alloy series needs at least 2 steps, got {steps}")
    a, b = structure_a, structure_b
    if len(a) != len(b):
        raise DataError(f"end members have {len(a)} and {len(b)} sites",
                        "give two structures of the same prototype with the same number of sites")
    shift = np.asarray(b.frac_coords) - np.asarray(a.frac_coords)
    shift -= np.round(shift)
    mid = 0.5 * (np.asarray(a.lattice.matrix) + np.asarray(b.lattice.matrix))
    distance = np.linalg.norm(shift @ mid, axis=1)
    if len(distance) and distance.max() > max_shift:
        i = int(distance.argmax())
        raise DataError(f"site {i} ({a[i].species_string} / {b[i].species_string}) is {distance[i]:.2f} Å apart "
                        f"in the two end members", "order the sites of both structures the same way")
    series = []
    for p in np.linspace(0.0, 1.0, steps):
        if p == 0.0 or p == 1.0:
            series.append((a if p == 0.0 else b).copy())
            continue
        lattice = Lattice((1 - p) * np.asarray(a.lattice.matrix) + p * np.asarray(b.lattice.matrix))
        species = [sa.species * float(1 - p) + sb.species * float(p) for sa, sb in zip(a, b)]
        series.append(Structure(lattice, species, np.asarray(a.frac_coords) + p * shift))
    return series
