"""``phonbench data export``: a dataset's folds as plain files any code can read.

Layout of ``DIR`` (written under a temporary name and renamed when complete)::

    manifest.json                    dataset card, split, seed, task, sha256 of every file below
    fold_<name>/ids.json             {"train": [...], "valid": [...], "test": [...]}
    fold_<name>/<part>.extxyz        structures (ASE extended XYZ; ``info["id"]`` is the material id)
    fold_<name>/<part>.cif           the same structures, one ``data_<id>`` block each
    fold_<name>/<part>_targets.csv   targets in the layout of :mod:`phonbench.exchange`
    fold_<name>/test_template.csv    test ids with empty value columns (and the modes mask): fill it in
                                     and pass it to ``phonbench score``

``<part>`` is train, valid and test. The benchmark is open, so test targets are exported too, in
their own file (``test_targets.csv``); a model should be fitted on train (and valid) only.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from phonbench.datasets.base import PhononData
from phonbench.exceptions import ConfigError, DataError

PARTS = ("train", "valid", "test")
MANIFEST = "manifest.json"


def write_extxyz(path: Path, data: PhononData) -> None:
    """``data``'s structures as one extended-XYZ file (frame ``info["id"]`` = material id)."""
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = []
    for material, structure in zip(data.ids, data.structures):
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.info = {"id": material}
        frames.append(atoms)
    buf = io.StringIO()
    if frames:
        ase.io.write(buf, frames, format="extxyz")
    path.write_text(buf.getvalue())


def write_cif(path: Path, data: PhononData) -> None:
    """``data``'s structures as one multi-block CIF file (block ``data_<id>`` per material)."""
    from pymatgen.io.cif import CifWriter

    blocks = []
    for material, structure in zip(data.ids, data.structures):
        lines = str(CifWriter(structure)).splitlines()
        while lines and (lines[0].startswith("#") or lines[0].startswith("data_")):
            lines.pop(0)  # pymatgen's comment and its data_<formula> name: the block is named by id
        blocks.append("\n".join([f"data_{material}", *lines]))
    path.write_text("\n".join(blocks))


def export_fold(folder: Path, data: PhononData, fold: Any) -> None:
    """Write one fold's ids, structures and targets into ``folder`` (see the module docstring)."""
    from phonbench.exchange import table_csv

    folder.mkdir(parents=True)
    parts = {p: data.subset(getattr(fold, p)) for p in PARTS}
    (folder / "ids.json").write_text(json.dumps({p: parts[p].ids for p in PARTS}, indent=1) + "\n")
    for name, part in parts.items():
        write_extxyz(folder / f"{name}.extxyz", part)
        write_cif(folder / f"{name}.cif", part)
        (folder / f"{name}_targets.csv").write_text(table_csv(part.ids, part.targets, part.task, part.mask))
    test = parts["test"]
    (folder / "test_template.csv").write_text(table_csv(test.ids, None, test.task, test.mask))


def export_dataset(name: str, out: str | Path, *, split: str | None = None, seed: int = 0,
                   data_dir: str | None = None, dataset_options: Mapping[str, Any] | None = None,
                   progress: Callable[[str], None] | None = None) -> Path:
    """Export every fold of ``split`` of dataset ``name`` into ``out``; return the manifest path.

    Raises:
        ConfigError: ``out`` exists and is not an empty folder (nothing is overwritten).
        RegistryError / ConfigError / DataError: unknown dataset or split, unreadable data.
    """
    from phonbench import __version__
    from phonbench.io import sha256_file
    from phonbench.protocol import Benchmark
    from phonbench.records import utc_now

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"export folder {out} already exists and is not empty", "pass a new --out folder")
    bench = Benchmark(name, split, seed=seed, data_dir=data_dir, dataset_options=dataset_options)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for fold in bench.folds:
            if progress:
                progress(f"fold {fold.name}: {len(fold.fold.train)} train, {len(fold.fold.valid)} valid, "
                         f"{len(fold.fold.test)} test")
            export_fold(tmp / f"fold_{fold.name}", bench.data, fold.fold)
        files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {
            "dataset": bench.dataset.card.as_dict(), "split": bench.protocol.name, "split_seed": bench.protocol.seed,
            "folds": [f.name for f in bench.folds], "content_hash": bench.data.content_hash(),
            "options": bench.dataset_options, "phonbench": __version__, "created_at": utc_now(), "files": files,
            "score_with": f"phonbench score PREDICTIONS.csv --dataset {bench.dataset.name} --split "
                          f"{bench.protocol.name} --fold K --card MODEL.toml",
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / MANIFEST


def verify_export(folder: str | Path) -> list[str]:
    """Files of an export whose sha256 differs from its manifest (empty when intact)."""
    from phonbench.io import sha256_file

    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {folder / MANIFEST}: {exc}", "export again with `phonbench data export`") from exc
    return [name for name, sha in manifest["files"].items()
            if not (folder / name).is_file() or sha256_file(folder / name) != sha]
