"""On-disk cache for featurizations.

Entries live under :func:`cache_dir` (``PHONBENCH_CACHE_DIR`` or the platform user cache) as
``<kind>/<key>.npz`` where ``key = sha256(structures, params, featurizer version)``. A changed
parameter or featurizer version gives a new key, so stale features are never reused silently.
Files are written atomically; a corrupt entry is recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from phonbench.io import write_bytes_atomic

CACHE_ENV = "PHONBENCH_CACHE_DIR"
DISABLE_ENV = "PHONBENCH_NO_CACHE"


def cache_dir() -> Path:
    """Root of the feature cache (created on demand)."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("phonbench")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def structures_fingerprint(structures: Iterable[Any]) -> str:
    """sha256 (hex) over lattices, species/occupancies and fractional coordinates.

    Args:
        structures: pymatgen ``Structure`` objects.
    """
    h = hashlib.sha256()
    for s in structures:
        h.update(np.ascontiguousarray(np.round(s.lattice.matrix, 8)).tobytes())
        h.update(np.ascontiguousarray(np.round(s.frac_coords, 8)).tobytes())
        h.update(";".join(str(site.species) for site in s).encode())
    return h.hexdigest()


def cache_key(*parts: Any) -> str:
    """Stable 24-hex key from JSON-serialisable parts (dict keys sorted)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_arrays(
    kind: str, key: str, compute: Callable[[], Mapping[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Return arrays stored under ``kind/key``, computing and storing them on a miss.

    Args:
        kind: featurizer name (sub-folder), e.g. ``"graphs"``.
        key: from :func:`cache_key`.
        compute: returns a mapping of name → numpy array (no object arrays).
    """
    if os.environ.get(DISABLE_ENV):
        return {k: np.asarray(v) for k, v in compute().items()}
    path = cache_dir() / kind / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            path.unlink(missing_ok=True)  # corrupt entry: recompute below
    arrays = {k: np.asarray(v) for k, v in compute().items()}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())
    return arrays
