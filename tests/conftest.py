"""Shared fixtures: tiny crystals, tiny datasets, isolated caches and the shared-data path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory):
    """Feature cache in a temp dir, no progress bars, no MLflow server from the environment."""
    old = dict(os.environ)
    os.environ["PHONBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["PHONBENCH_NO_PROGRESS"] = "1"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("PHONBENCH_DISABLE_PLUGINS", None)
    yield
    os.environ.clear()
    os.environ.update(old)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def make_crystals():
    """Eight tiny ordered crystals (2–5 atoms) covering common prototypes."""
    from pymatgen.core import Lattice, Structure

    fcc = Lattice.cubic
    return [
        Structure.from_spacegroup("Fm-3m", fcc(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).get_primitive_structure(),
        Structure.from_spacegroup("Pm-3m", fcc(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure.from_spacegroup("F-43m", fcc(5.43), ["Si", "C"], [[0, 0, 0], [0.25, 0.25, 0.25]]).get_primitive_structure(),
        Structure.from_spacegroup("Fm-3m", fcc(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).get_primitive_structure(),
        Structure.from_spacegroup("Pm-3m", fcc(3.90), ["Sr", "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]]),
        Structure.from_spacegroup("Fm-3m", fcc(5.46), ["Ca", "F"], [[0, 0, 0], [0.25, 0.25, 0.25]]).get_primitive_structure(),
        Structure.from_spacegroup("Pm-3m", fcc(2.87), ["Fe"], [[0, 0, 0]]),
        Structure.from_spacegroup("F-43m", fcc(5.65), ["Ga", "As"], [[0, 0, 0], [0.25, 0.25, 0.25]]).get_primitive_structure(),
    ]


def make_data(kind: str = "spectrum", n_repeat: int = 2, seed: int = 0):
    """A tiny :class:`PhononData` of ``8 * n_repeat`` materials with random targets of ``kind``."""
    from phonbench.datasets.base import PhononData, Task

    rng = np.random.default_rng(seed)
    structures = make_crystals() * n_repeat
    n = len(structures)
    ids = [f"m{i:03d}" for i in range(n)]
    n_atoms = np.array([len(s) for s in structures])
    if kind == "spectrum":
        task = Task("spectrum", 11, "a.u.", "dos", tuple(np.linspace(0, 1000, 11)), "cm^-1")
        y = rng.random((n, 11))
        return PhononData(ids, structures, y / y.max(axis=1, keepdims=True), task, extras={"n_atoms": n_atoms})
    if kind == "modes":
        d = 3 * int(n_atoms.max())
        task = Task("modes", d, "THz", "gamma_frequencies")
        mask = np.arange(d)[None, :] < 3 * n_atoms[:, None]
        y = np.where(mask, -np.sort(-rng.random((n, d)) * 20, axis=1), 0.0)
        return PhononData(ids, structures, y, task, mask=mask, extras={"n_atoms": n_atoms})
    task = Task("scalar", 1, "cm^-1", "last_phdos_peak")
    return PhononData(ids, structures, rng.random((n, 1)) * 500, task, extras={"n_atoms": n_atoms})


def install_fake_distribution(root: Path, dist: str, version: str, module: str, body: str,
                              entries: dict[str, dict[str, str]]) -> None:
    """Write ``<module>.py`` and a ``<dist>-<version>.dist-info`` with entry points under ``root``.

    Args:
        entries: ``{group: {name: "module:attr"}}``.
    """
    import textwrap

    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    text = ""
    for group, names in entries.items():
        text += f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in names.items())
    (info / "entry_points.txt").write_text(text)


@pytest.fixture
def crystals():
    return make_crystals()


@pytest.fixture(params=["spectrum", "modes", "scalar"])
def tiny_data(request):
    return make_data(request.param)
