"""Distributed tuning on a throwaway PostgreSQL cluster (marked `postgres`, own CI stage).

Starts a private cluster on a free loopback port, runs `phonbench tune --workers 2` against it,
and checks: complete trials == requested, no trial number twice, both workers contributed, and
the tuned record exists. The cluster is stopped and deleted afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from phonbench.records import read_record
from test_tuning import plugin  # noqa: F401  (fixture: test plugin distribution)

pytestmark = pytest.mark.postgres


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb/postgres refuse to run as root: drop to the `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture
def pg_url(tmp_path):
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries not installed (CI's postgres stage installs them)")
    pytest.importorskip("psycopg")
    root = Path(tempfile.mkdtemp(prefix="phonbench-pg-"))  # pytest's tmp dirs are private to root
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(_as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "phonbench"]), check=True,
                   stdout=subprocess.DEVNULL)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    try:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={port} user=phonbench dbname=postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE optuna")
        yield f"postgresql://phonbench@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_study(plugin, pg_url, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "phonbench.cli", "tune", "--model", "shrink", "--dataset", "line",
           "--trials", "10", "--storage", pg_url, "--workers", "2", "--no-tracking", "--pruner", "none",
           "--param", "sleep=0.1", "--out", str(out)]
    subprocess.run(cmd, check=True, timeout=600, env={**os.environ, "PHONBENCH_NO_PROGRESS": "1"})

    import optuna

    from phonbench.tuning import make_storage

    storage = make_storage(pg_url, out, "")
    (name,) = [n for n in optuna.get_all_study_names(storage) if n.startswith("line-shrink-random-f0-")]
    study = optuna.load_study(study_name=name, storage=storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) >= 10  # a worker may finish one trial it had already started
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    workers = {t.user_attrs["worker"]["pid"] for t in complete}
    assert len(workers) == 2, "both workers must contribute trials"
    records = [read_record(p) for p in (out / "runs").iterdir()]
    assert len(records) == 1 and records[0]["tags"] == ["tuned"]
    assert records[0]["extra"]["tuning"]["best_value"] == pytest.approx(study.best_value)
