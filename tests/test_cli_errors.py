"""Every bad command-line input ends with a clear one- or two-line message, a non-zero exit, no traceback
and no file outside the temporary output folder (each case runs ``phonbench`` in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

POSCARS = [str(Path(__file__).resolve().parent / "data" / f"example_POSCAR_JVASP-{i}") for i in (5, 60582)]
QUICK = str(Path(__file__).resolve().parents[1] / "benchmarks" / "quick.toml")
SUITE_BAD_SECOND = """
[suite]
name = "bad-second"
[[entry]]
model = "dummy"
dataset = "synthetic"
dataset_params = { size = 30 }
[[entry]]
model = "no_such_model"
dataset = "synthetic"
"""


def phonbench(args: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the console entry point in a subprocess, from ``cwd``."""
    env = {**os.environ, "PHONBENCH_NO_PROGRESS": "1", "COLUMNS": "200", "MLFLOW_TRACKING_URI": ""}
    env.pop("PHONBENCH_OUT", None)
    return subprocess.run([sys.executable, "-m", "phonbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_clear(proc: subprocess.CompletedProcess, code: int | None = None, says: str | None = None) -> None:
    """Non-zero exit (or ``code``), at most two lines on stderr, no traceback, ``says`` in the message."""
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 2, proc.stderr
    assert proc.returncode != 0 if code is None else proc.returncode == code, (proc.returncode, text)
    if says:
        assert says.lower() in proc.stderr.lower(), proc.stderr


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A results folder with one saved dummy run, bad structure files, a file where a folder belongs."""
    root = tmp_path_factory.mktemp("cli-errors")
    out = root / "out"
    done = phonbench(["run", "-m", "dummy", "-d", "synthetic", "--dataset-param", "size=30", "--no-tracking",
                      "--no-plots", "--out", str(out)], cwd=root)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (out / "runs").iterdir()
    (root / "corrupt.cif").write_text("data_x\n_cell_length_a oops\nthis is not a cif\n")
    (root / "empty.cif").write_text("")
    (root / "empty_folder").mkdir()
    (root / "a_file").write_text("not a folder\n")
    (root / "bad_second.toml").write_text(SUITE_BAD_SECOND)
    return {"root": root, "out": out, "run": str(run_dir)}


@pytest.fixture
def cwd(tmp_path):
    """An empty working folder; the test checks that nothing appears in it."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    yield folder
    assert list(folder.iterdir()) == [], "a command wrote outside its --out folder"


USAGE = [
    (["run", "-m", "dummy"], "--dataset"),
    (["run", "-m", "dummy", "-d", "synthetic", "--sed", "1"], "no such option"),
    (["run", "-m", "dummy", "-d", "synthetic", "--seed", "abc"], "--seed"),
    (["predict", "x.cif", "--run", "r", "-T", "abc"], "--temperature"),
    (["tune", "-m", "dummy"], "--dataset"),
    (["leaderboard", "build", "--bogus"], "no such option"),
]


@pytest.mark.parametrize("args, says", USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_are_two_lines_with_status_2(args, says, cwd):
    proc = phonbench(args, cwd)
    assert_clear(proc, code=2, says=says)
    assert "--help" in proc.stderr.splitlines()[-1]


@pytest.mark.parametrize("args", [[], ["data"], ["leaderboard"], ["--help"]], ids=["bare", "data", "leaderboard", "help"])
def test_bare_groups_show_help_and_succeed(args, cwd):
    proc = phonbench(args, cwd)
    assert proc.returncode == 0 and "Usage" in proc.stdout and "Traceback" not in proc.stderr


def _bad_inputs(w: dict) -> list[tuple[str, list[str], str]]:
    out, root, run = str(w["out"]), w["root"], w["run"]
    a_file = str(root / "a_file")
    run_base = ["run", "-m", "dummy", "-d", "synthetic", "--dataset-param", "size=30", "--no-plots"]
    return [
        ("unknown model", ["run", "-m", "nope", "-d", "synthetic", "--out", out], "valid models"),
        ("unknown dataset", ["run", "-m", "dummy", "-d", "nope", "--out", out], "valid datasets"),
        ("unknown split", [*run_base, "--split", "nope", "--out", out], "use one of"),
        ("epochs=abc", ["run", "-m", "e3nn", "-d", "synthetic", "-p", "epochs=abc", "--out", out], "integer"),
        ("lr=abc", ["run", "-m", "deeper_gatgnn", "-d", "synthetic", "-p", "lr=abc", "--out", out], "number"),
        ("batch_size=abc", ["run", "-m", "cnn3d", "-d", "synthetic", "-p", "batch_size=abc", "--out", out], "integer"),
        ("cutoff=abc", ["run", "-m", "deeper_gatgnn", "-d", "dos", "-p", "cutoff=abc", "--out", out], "cutoff"),
        ("unknown param", [*run_base, "-p", "nope=1", "--out", out], "valid parameters"),
        ("run --out file", [*run_base, "--out", a_file], "not a folder"),
        ("run --out file, no tracking", [*run_base, "--no-tracking", "--out", a_file], "not a folder"),
        ("tune --out file", ["tune", "-m", "dummy", "-d", "synthetic", "--out", a_file], "not a folder"),
        ("bench --out file", ["bench", QUICK, "--out", a_file], "not a folder"),
        ("predict --out file", ["predict", str(root / "corrupt.cif"), "--run", run, "--out", a_file], "not a folder"),
        ("leaderboard --out file", ["leaderboard", "build", "--records", out, "--out", a_file], "not a folder"),
        ("mysql storage", ["tune", "-m", "dummy", "-d", "synthetic", "--storage", "mysql://u@h/db", "--out", out],
         "unsupported optuna storage"),
        ("unreachable MLflow", [*run_base, "--tracking-uri", "http://127.0.0.1:9", "--out", out], "unreachable"),
        ("no test rows", ["run", "-m", "dummy", "-d", "synthetic", "--dataset-param", "size=3", "--no-tracking",
                          "--out", out], "no test rows"),
        ("ignored dataset param", ["run", "-m", "dummy", "-d", "dos", "--dataset-param", "size=50", "--out", out],
         "takes no options"),
        ("bench --only nothing", ["bench", QUICK, "--only", "nope/nope", "--out", out],
         "matches no entry"),
        ("tune --trials 0", ["tune", "-m", "dummy", "-d", "synthetic", "--trials", "0", "--out", out], "--trials"),
        ("tune --workers 0", ["tune", "-m", "dummy", "-d", "synthetic", "--workers", "0", "--out", out], "--workers"),
        ("tune --timeout -1", ["tune", "-m", "dummy", "-d", "synthetic", "--timeout", "-1", "--out", out],
         "--timeout"),
        ("train fraction", [*run_base, "--train-fraction", "0", "--out", out], "train fraction"),
        ("predict corrupt cif", ["predict", str(root / "corrupt.cif"), "--run", run, "--out", out + "/p"],
         "corrupt.cif"),
        ("predict empty cif", ["predict", str(root / "empty.cif"), "--run", run, "--out", out + "/p"], "empty.cif"),
        ("predict empty folder", ["predict", str(root / "empty_folder"), "--run", run, "--out", out + "/p"],
         "empty_folder"),
        ("predict missing path", ["predict", str(root / "nowhere.cif"), "--run", run, "--out", out + "/p"],
         "nowhere.cif"),
        ("alloy series twice", ["predict", "--run", run, "--alloy-series", POSCARS[0], "--alloy-series", POSCARS[1],
                                "--out", out + "/p"], "sites"),
        ("alloy series, three files", ["predict", POSCARS[0], "--run", run, "--alloy-series", POSCARS[1],
                                       "--alloy-series", str(root / "empty.cif"), "--out", out + "/p"],
         "two end-member files"),
        ("unknown run", ["predict", str(root / "corrupt.cif"), "--run", "nope", "--results", out], "not found"),
    ]


CASES = [c[0] for c in _bad_inputs({"out": "o", "root": Path("r"), "run": "x"})]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_clear_line(case, workspace, cwd):
    (args, says), = [(a, s) for name, a, s in _bad_inputs(workspace) if name == case]
    before = sorted(p.relative_to(workspace["out"]) for p in workspace["out"].rglob("*"))
    proc = phonbench(args, cwd)
    assert_clear(proc, says=says)
    assert proc.stderr.startswith("error: ")
    after = sorted(p.relative_to(workspace["out"]) for p in workspace["out"].rglob("*"))
    assert after == before, "a failed command left files behind"


def test_bench_checks_every_entry_before_training(workspace, cwd, tmp_path):
    out = tmp_path / "bench-out"
    proc = phonbench(["bench", str(workspace["root"] / "bad_second.toml"), "--no-tracking", "--out", str(out)], cwd)
    assert_clear(proc, code=1, says="entry 2")
    assert not (out / "runs").exists(), "entry 1 trained before entry 2 was checked"


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(cwd, monkeypatch):
    from phonbench import cli_errors

    lines: list[str] = []
    assert cli_errors.classify(ZeroDivisionError("boom\nsecond line"), lines.append) == 1
    assert lines == ["error: unexpected ZeroDivisionError: boom — rerun with --debug for the traceback"]

    def broken(**_):
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError):
        cli_errors.guarded_main(broken, [], debug=True)
    assert cli_errors.guarded_main(broken, [], debug=False) == 1


def test_a_server_that_is_not_mlflow_is_one_line(workspace, cwd):
    """A loopback HTTP server that answers 404 to everything stands in for a wrong --tracking-uri."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        proc = phonbench(["run", "-m", "dummy", "-d", "synthetic", "--dataset-param", "size=30", "--tracking-uri", uri,
                          "--out", str(workspace["out"])], cwd)
    finally:
        server.shutdown()
    assert_clear(proc, code=1, says="did not work")
