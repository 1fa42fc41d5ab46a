"""Build the bundled ``phonondb`` files from a mirror of Togo's phonon database (2018-04-17).

Usage::

    python -m phonbench.datasets.phonondb_build --mirror MIRROR [--cache DIR] [--out DIR]
        [--workers 2] [--limit N] [--retry-failed] [--no-pack]
    python -m phonbench.datasets.phonondb_build --mirror MIRROR --convergence 50 [--note FILE]

``MIRROR`` is a git directory of ``WMD-group/phononDB`` (archives read as blobs of
``HEAD:phonon_db_tarred/``) or a folder of ``materials-id-*.tar.lzma`` files. Each archive is read
into memory, checked and run through phonopy (:mod:`.phonondb_calc`) by ``--workers`` processes.
Every result goes atomically into a per-material cache (``DIR/materials/mp-<n>.npz``; a material
that fails gets ``DIR/failed/mp-<n>.json`` with the reason), so an interrupted build resumes where
it stopped: rerun the same command. When every selected archive is done or failed, the cache is
packed (:mod:`.phonondb_pack`) into ``phonondb_*.npz`` files plus ``manifest.json`` entries in
``--out``, the 1 cm⁻¹ DoS into ``DIR/phonondb_dos_1cm.npz`` and all failures into
``DIR/failures.json``. ``--convergence N`` instead runs the mesh convergence check
(:mod:`.phonondb_mesh`) on N archives.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from phonbench.datasets.bundled import save_npz
from phonbench.datasets.phonondb_calc import (
    CALC_VERSION,
    MESH_LENGTH,
    NAC_Q_DIRECTION,
    compute_material,
    read_archive,
)
from phonbench.exceptions import DataError
from phonbench.io import write_json_atomic

ARCHIVE_RE = re.compile(r"materials-id-(\d+)-[^/]*\.tar\.lzma")
GIT_TREE = "phonon_db_tarred"
CACHE_FORMAT = 1
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")
N_PHONONDB = 10034
FIX_MIRROR = "pass --mirror pointing at a WMD-group/phononDB git dir or a folder of .tar.lzma files"


# ---------------------------------------------------------------------- archive sources
@dataclass(frozen=True)
class ArchiveRef:
    """One archive of the mirror: file ``name``, its ``mp_id`` and ``key`` (git blob sha or path)."""

    name: str
    mp_id: str
    key: str


def natural_key(mp_id: str) -> tuple[str, int]:
    """Sort key ordering ``mp-2`` before ``mp-10``."""
    prefix, _, number = mp_id.rpartition("-")
    return prefix, int(number) if number.isdigit() else -1


def is_git_dir(path: Path) -> bool:
    """Whether ``path`` is a (bare) git directory."""
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def _git(mirror: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", f"--git-dir={mirror}", *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise DataError(f"git {' '.join(args)} failed in {mirror}: {err}", FIX_MIRROR) from err
    return done.stdout


def list_archives(mirror: str | Path) -> list[ArchiveRef]:
    """All archives of ``mirror``, sorted by mp-id (numerically).

    Raises:
        DataError: ``mirror`` is neither a git directory nor a folder with archives.
    """
    mirror = Path(mirror)
    refs = []
    if is_git_dir(mirror):
        for line in _git(mirror, "ls-tree", "HEAD", f"{GIT_TREE}/").splitlines():
            meta, _, path = line.partition("\t")
            match = ARCHIVE_RE.fullmatch(Path(path).name)
            if match and meta.split()[1] == "blob":
                refs.append(ArchiveRef(Path(path).name, f"mp-{match.group(1)}", meta.split()[2]))
    elif mirror.is_dir():
        for path in mirror.iterdir():
            match = ARCHIVE_RE.fullmatch(path.name)
            if match and path.is_file():
                refs.append(ArchiveRef(path.name, f"mp-{match.group(1)}", str(path)))
    if not refs:
        raise DataError(f"no materials-id-*.tar.lzma archives found in {mirror}", FIX_MIRROR)
    return sorted(refs, key=lambda r: (natural_key(r.mp_id), r.name))


def source_info(mirror: str | Path) -> dict[str, Any]:
    """Provenance of the mirror: git commit of ``HEAD`` (or the folder path) and archive count."""
    mirror = Path(mirror)
    info: dict[str, Any] = {"repository": "github.com/WMD-group/phononDB", "version": "2018-04-17"}
    if is_git_dir(mirror):
        info["commit"] = _git(mirror, "rev-parse", "HEAD").strip()
    return info


class BlobReader:
    """Reads archive bytes from a git directory (one ``git cat-file --batch`` process) or files."""

    def __init__(self, mirror: str | Path):
        self.mirror = Path(mirror)
        self._proc: subprocess.Popen | None = None

    def read(self, ref: ArchiveRef) -> bytes:
        """The compressed bytes of ``ref``.

        Raises:
            DataError: the blob or file cannot be read.
        """
        if not is_git_dir(self.mirror):
            return Path(ref.key).read_bytes()
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(["git", f"--git-dir={self.mirror}", "cat-file", "--batch"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{ref.key}\n".encode())
        self._proc.stdin.flush()
        header = self._proc.stdout.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            raise DataError(f"{ref.name}: git blob {ref.key} not readable ({b' '.join(header).decode()})", FIX_MIRROR)
        blob = self._proc.stdout.read(int(header[2]))
        self._proc.stdout.read(1)  # trailing newline
        return blob

    def close(self) -> None:
        """Stop the git process (if any)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.stdin.close()  # type: ignore[union-attr]
            self._proc.wait(timeout=30)
        self._proc = None


# ---------------------------------------------------------------------- cache
def cache_paths(cache: Path, mp_id: str) -> tuple[Path, Path]:
    """``(result .npz, failure .json)`` paths of ``mp_id`` in ``cache``."""
    return cache / "materials" / f"{mp_id}.npz", cache / "failed" / f"{mp_id}.json"


def cache_settings(mesh: float) -> dict[str, Any]:
    """What a cached result depends on; a cache built with other settings is refused."""
    import phonopy

    return {"format": CACHE_FORMAT, "calc_version": CALC_VERSION, "mesh_length_A": float(mesh),
            "nac_q_direction": list(NAC_Q_DIRECTION), "phonopy": phonopy.__version__}


def open_cache(cache: Path, mesh: float) -> None:
    """Create ``cache`` with its ``settings.json``, or check an existing one matches.

    Raises:
        DataError: the cache was built with different settings.
    """
    settings = cache_settings(mesh)
    path = cache / "settings.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != settings:
            raise DataError(f"cache {cache} was built with {old}, not {settings}",
                            "use another --cache folder (or delete this one)")
        return
    (cache / "materials").mkdir(parents=True, exist_ok=True)
    (cache / "failed").mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def cache_state(cache: Path, refs: Iterable[ArchiveRef]) -> tuple[list[ArchiveRef], list[ArchiveRef], list[ArchiveRef]]:
    """``(done, failed, todo)`` of ``refs`` according to the cache files."""
    done, failed, todo = [], [], []
    for ref in refs:
        ok, bad = cache_paths(cache, ref.mp_id)
        (done if ok.is_file() else failed if bad.is_file() else todo).append(ref)
    return done, failed, todo


def read_failures(cache: Path, refs: Iterable[ArchiveRef]) -> list[dict[str, str]]:
    """Failure records (``mp_id``, ``archive``, ``reason``) of ``refs``, in their order."""
    out = []
    for ref in refs:
        bad = cache_paths(cache, ref.mp_id)[1]
        if bad.is_file():
            out.append(json.loads(bad.read_text()))
    return out


# ---------------------------------------------------------------------- workers
_READER: BlobReader | None = None


def _init_worker(mirror: str) -> None:
    global _READER
    _READER = BlobReader(mirror)


def process_one(ref: ArchiveRef, cache: Path, mesh: float, reader: BlobReader) -> tuple[str, bool, float]:
    """Compute ``ref`` and write its cache entry (result, or failure with the reason).

    Returns:
        ``(mp_id, succeeded, seconds)``.
    """
    start = time.perf_counter()
    ok_path, bad_path = cache_paths(cache, ref.mp_id)
    try:
        archive = read_archive(reader.read(ref), ref.name)
        if archive.mp_id != ref.mp_id:
            raise DataError(f"{ref.name}: directory is {archive.mp_id}, not {ref.mp_id}")
        save_npz(ok_path, compute_material(archive, mesh))
        return ref.mp_id, True, time.perf_counter() - start
    except Exception as err:  # noqa: BLE001 - recorded per material, never stops the build
        reason = err.message if isinstance(err, DataError) else f"{type(err).__name__}: {err}"
        write_json_atomic(bad_path, {"mp_id": ref.mp_id, "archive": ref.name, "reason": " ".join(reason.split())})
        return ref.mp_id, False, time.perf_counter() - start


def _work(args: tuple[ArchiveRef, str, float]) -> tuple[str, bool, float]:
    assert _READER is not None
    ref, cache, mesh = args
    return process_one(ref, Path(cache), mesh, _READER)


class Progress:
    """Prints ``done/total (failed) | materials/s | elapsed | ETA`` lines at most every ``every`` s."""

    def __init__(self, total: int, already: int, stream: TextIO = sys.stderr, every: float = 15.0):
        self.total, self.count, self.failed = total, already, 0
        self.new, self.stream, self.every = 0, stream, every
        self.start = self.last = time.monotonic()

    def update(self, ok: bool, force: bool = False) -> None:
        self.count += 1
        self.new += 1
        self.failed += not ok
        now = time.monotonic()
        if force or now - self.last >= self.every or self.count == self.total:
            self.last = now
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.start
        rate = self.new / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else float("inf")
        def fmt(seconds: float) -> str:
            return "?" if not np.isfinite(seconds) else time.strftime("%H:%M:%S", time.gmtime(seconds))

        return (f"[phonondb] {self.count}/{self.total} ({self.failed} failed this run) | {rate:.2f} materials/s"
                f" | elapsed {fmt(elapsed)} | ETA {fmt(eta)}")


def compute_all(mirror: str | Path, cache: str | Path, refs: list[ArchiveRef], workers: int = 2,
                mesh: float = MESH_LENGTH, stream: TextIO = sys.stderr,
                on_result: Callable[[str, bool], None] | None = None) -> dict[str, int]:
    """Compute every ``ref`` not yet cached; returns counts ``done``, ``failed``, ``computed``.

    Args:
        mirror: git dir or archive folder.
        cache: cache folder (created).
        refs: archives to cover.
        workers: processes (1: in this process).
        mesh: phonopy mesh length in Å.
        stream: where progress lines go.
        on_result: called with ``(mp_id, succeeded)`` after each material (tests use it to interrupt).
    """
    cache = Path(cache)
    open_cache(cache, mesh)
    done, failed, todo = cache_state(cache, refs)
    # seeded shuffle: the rate (and ETA) is representative from the start; cache order is irrelevant
    todo = [todo[i] for i in np.random.default_rng(0).permutation(len(todo))]
    progress = Progress(len(refs), len(done) + len(failed), stream)
    stream.write(f"[phonondb] {len(done)} cached, {len(failed)} failed before, {len(todo)} to compute "
                 f"with {workers} worker(s), mesh {mesh} A\n")
    stream.flush()
    if todo and workers <= 1:
        reader = BlobReader(mirror)
        try:
            for ref in todo:
                mp_id, ok, _ = process_one(ref, cache, mesh, reader)
                progress.update(ok)
                if on_result:
                    on_result(mp_id, ok)
        finally:
            reader.close()
    elif todo:
        import multiprocessing as mp

        for var in THREAD_ENV:  # one BLAS/rayon thread per worker, inherited by the spawned processes
            os.environ[var] = "1"
        with mp.get_context("spawn").Pool(workers, _init_worker, (str(mirror),)) as pool:
            for mp_id, ok, _ in pool.imap_unordered(_work, [(r, str(cache), mesh) for r in todo], chunksize=1):
                progress.update(ok)
                if on_result:
                    on_result(mp_id, ok)
    done, failed, todo = cache_state(cache, refs)
    return {"done": len(done), "failed": len(failed), "todo": len(todo), "computed": progress.new}


def select(refs: list[ArchiveRef], limit: int | None = None, ids: Iterable[str] | None = None) -> list[ArchiveRef]:
    """The first ``limit`` archives (in mp-id order), or those with ``ids``.

    Raises:
        DataError: an id in ``ids`` has no archive.
    """
    if ids is not None:
        wanted = set(ids)
        chosen = [r for r in refs if r.mp_id in wanted]
        missing = wanted - {r.mp_id for r in chosen}
        if missing:
            raise DataError(f"no archive for {', '.join(sorted(missing)[:5])}", "check the mp-ids")
        return chosen
    return refs if limit is None else refs[:limit]


def build(mirror: str | Path, cache: str | Path, out: str | Path | None = None, workers: int = 2,
          limit: int | None = None, mesh: float = MESH_LENGTH, retry_failed: bool = False,
          pack_files: bool = True, stream: TextIO = sys.stderr) -> dict[str, Any]:
    """Compute (resuming) and, once complete, pack; returns a report dict.

    Args:
        mirror: git dir or archive folder.
        cache: per-material cache folder (outside the repository).
        out: folder for the ``phonondb_*.npz`` files and ``manifest.json`` (default: package data).
        workers: worker processes.
        limit: only the first ``limit`` archives in mp-id order (``None``: all).
        mesh: phonopy mesh length in Å.
        retry_failed: forget recorded failures first, so those materials are tried again.
        pack_files: pack when complete (``False``: compute only).
    """
    from phonbench.datasets.bundled import package_data_dir
    from phonbench.datasets.phonondb_pack import pack

    cache = Path(cache)
    refs = select(list_archives(mirror), limit)
    if retry_failed:
        for ref in refs:
            cache_paths(cache, ref.mp_id)[1].unlink(missing_ok=True)
    report: dict[str, Any] = compute_all(mirror, cache, refs, workers, mesh, stream)
    if pack_files and report["todo"] == 0:
        info = {**source_info(mirror), "limit": limit, "n_archives": len(refs), **cache_settings(mesh)}
        report.update(pack(cache, Path(out) if out else package_data_dir(), refs, info))
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirror", required=True, help="phononDB git dir or folder of .tar.lzma archives")
    parser.add_argument("--cache", default=None, help="per-material cache (default: phonbench cache/phonondb)")
    parser.add_argument("--out", default=None, help="output folder (default: the package data folder)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N archives (mp-id order)")
    parser.add_argument("--mesh", type=float, default=MESH_LENGTH, help="phonopy mesh length (A)")
    parser.add_argument("--retry-failed", action="store_true", help="retry materials that failed before")
    parser.add_argument("--no-pack", action="store_true", help="compute only; do not write the package files")
    parser.add_argument("--convergence", type=int, default=None, metavar="N", help="mesh convergence check on N")
    parser.add_argument("--note", default=None, help="with --convergence: write the table to this file")
    args = parser.parse_args(argv)
    if args.convergence:
        from phonbench.datasets.phonondb_mesh import run_convergence

        report = run_convergence(args.mirror, args.convergence, args.workers, args.note)
    else:
        from phonbench.cache import cache_dir

        cache = Path(args.cache) if args.cache else cache_dir() / "phonondb"
        report = build(args.mirror, cache, args.out, args.workers, args.limit, args.mesh,
                       args.retry_failed, not args.no_pack)
    json.dump(report, sys.stdout, indent=2, sort_keys=True, default=str)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
