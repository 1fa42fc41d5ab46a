"""Ctrl-C (SIGINT) in ``run``, ``tune`` and ``bench``: exit status 130, one line saying what was kept,
complete records only, MLflow runs ended as KILLED, and a rerun that finishes the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_tuning import plugin  # noqa: F401 - the fixture installing the slow `shrink` model and `line` data

from phonbench.records import read_record


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PHONBENCH_NO_PROGRESS": "1", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "phonbench.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(condition, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("the command never reached the point to interrupt")


def _interrupt(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _records(out: Path) -> list[dict]:
    runs = out / "runs"
    return [read_record(d) for d in sorted(runs.iterdir()) if not d.name.startswith(".")] if runs.is_dir() else []


def test_run_interrupted_keeps_finished_folds_and_the_hint_finishes_the_rest(plugin, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    args = ["run", "-m", "shrink", "-d", "line", "--split", "kfold5", "-p", "sleep=0.4", "-p", "epochs=4",
            "--no-plots", "--out", str(out)]
    proc = _start(args, tmp_path)
    _wait_for(lambda: len(_records(out)) >= 1)
    code, err = _interrupt(proc)
    line = _one_line(err)
    assert code == 130 and line.startswith("interrupted: ") and "folds kept at" in line
    kept = _records(out)  # every record on disk is complete (its hash verifies)
    assert 1 <= len(kept) < 5 and not [p for p in (out / "runs").iterdir() if p.name.startswith(".tmp")]
    assert f"{len(kept)} of 5 folds kept" in line
    from phonbench.tracking import Tracker

    client = Tracker(out).client
    experiment = client.get_experiment_by_name("phonbench/line").experiment_id
    parents = [r for r in client.search_runs([experiment]) if r.data.tags.get("phonbench.kind") == "folds"]
    assert [r.info.status for r in parents] == ["KILLED"]
    rest = line.split("rerun the same command with ")[1].split(" to finish")[0].split()
    done = subprocess.run([sys.executable, "-m", "phonbench.cli", *args, *rest], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(r["dataset"]["fold"] for r in _records(out)) == ["0", "1", "2", "3", "4"]


def test_tune_interrupted_exits_130_and_resumes(plugin, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    args = ["tune", "-m", "shrink", "-d", "line", "--trials", "6", "--no-tracking", "--no-refit", "--pruner", "none",
            "-p", "sleep=0.3", "-p", "epochs=4", "--out", str(out)]
    proc = _start(args, tmp_path)
    journal = lambda: sorted((out / "optuna").glob("*.journal")) if (out / "optuna").is_dir() else []  # noqa: E731
    _wait_for(lambda: journal() and "worker" in journal()[0].read_text())
    time.sleep(3.0)  # a trial takes 4 x 0.3 s: at least one finishes, the next is in flight
    code, err = _interrupt(proc)
    line = _one_line(err)
    assert code == 130 and line.startswith("interrupted: study ") and "rerun the same command to resume" in line
    done = subprocess.run([sys.executable, "-m", "phonbench.cli", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "6 finished trials" in done.stdout


SUITE = """
[suite]
name = "interruptible"
[[entry]]
model = "shrink"
dataset = "line"
params = {{ sleep = 0.1, epochs = 2 }}
[[entry]]
model = "shrink"
dataset = "line"
params = {{ sleep = {slow}, epochs = 4 }}
"""


def test_bench_interrupted_exits_130_and_continues(plugin, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(slow=2.0))
    args = ["bench", str(suite), "--no-tracking", "--out", str(out)]
    proc = _start(args, tmp_path)
    state = out / "bench" / "interruptible" / "state.json"
    _wait_for(lambda: state.is_file() and len(json.loads(state.read_text())["done"]) == 1)
    code, err = _interrupt(proc)
    line = _one_line(err)
    assert code == 130 and "suite interruptible" in line and "1 done in all" in line
    suite.write_text(SUITE.format(slow=2.0))
    done = subprocess.run([sys.executable, "-m", "phonbench.cli", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "skip shrink/line seed 0: done" in done.stdout and "2 entries done" in done.stdout


def test_interrupt_before_any_fold_says_nothing_was_written(plugin, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    proc = _start(["run", "-m", "shrink", "-d", "line", "-p", "sleep=5", "-p", "epochs=2", "--out", str(out)], tmp_path)
    _wait_for(lambda: (out / "mlflow.db").is_file())  # the store is opened before training starts
    time.sleep(1.5)
    code, err = _interrupt(proc)
    line = _one_line(err)
    assert code == 130 and line.startswith("interrupted: 0 of 1 folds finished, nothing written")
    assert _records(out) == []
