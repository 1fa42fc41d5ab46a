"""Provenance of a run: the machine, its load, the libraries, the source tree (record schema 2).

Everything here is cheap (no imports of heavy packages: versions come from package metadata) and
never raises: a value that cannot be determined is ``None``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

#: libraries whose version can change a result (distribution names)
FIELD_LIBRARIES = ("torch", "torch_geometric", "e3nn", "pymatgen", "matminer", "scikit-learn", "scipy", "ase",
                   "phonopy", "numpy", "optuna", "mlflow")


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def load_average() -> list[float] | None:
    """1-, 5- and 15-minute load averages (a value near or above ``cpu_count`` means shared cores)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def torch_threads() -> int | None:
    """torch's intra-op thread count, if torch is already imported (never imports it)."""
    torch = sys.modules.get("torch")
    try:
        return int(torch.get_num_threads()) if torch is not None else None
    except Exception:  # noqa: BLE001 - provenance must not fail a run
        return None


def library_versions() -> dict[str, str | None]:
    """``{distribution: version or None}`` of :data:`FIELD_LIBRARIES`."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for dist in FIELD_LIBRARIES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def git_state() -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the phonbench source tree.

    ``dirty`` is True when tracked files differ from the commit (untracked files do not count).
    """
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return {"commit": None, "dirty": None}

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = (git("rev-parse", "HEAD") or "").strip() or None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status.strip())}


def machine_state() -> dict[str, Any]:
    """CPU model, torch threads and the load average now (call at the start of a run)."""
    return {"cpu_model": cpu_model(), "torch_threads": torch_threads(), "load_average": load_average()}
