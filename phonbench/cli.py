"""Command-line interface (Typer + rich). Thin: parses options, calls the API, prints.

Errors derived from :class:`~phonbench.exceptions.PhonbenchError` are printed on one line and
exit with status 1 (``--debug`` shows the traceback). Heavy modules are imported inside commands
so ``phonbench --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from typing import Any, List, Optional

import typer

from phonbench.cli_leaderboard import board_app
from phonbench.cli_output import learning_curve, metrics_table, print_info, summary_table
from phonbench.cli_protocol import export_cmd, score_cmd
from phonbench.exceptions import PhonbenchError

app = typer.Typer(
    name="phonbench",
    help="Benchmark suite for machine-learned phonon properties of crystals.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(help="Inspect and export datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(board_app, name="leaderboard")
app.command("score")(score_cmd)
data_app.command("export")(export_cmd)

_STATE: dict[str, Any] = {"debug": False}


def _console():
    from rich.console import Console

    return Console()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """phonbench: datasets, models and metrics for phonon ML, with records and MLflow tracking."""
    _STATE["debug"] = debug


# ---------------------------------------------------------------------------- list
@app.command("list")
def list_cmd(
    kind: Optional[str] = typer.Argument(None, help="datasets | models | metrics (default: all)."),
    plugins: bool = typer.Option(False, "--plugins", help="Show providing distribution and version."),
) -> None:
    """List registered datasets, models and metrics."""
    from rich.table import Table

    from phonbench.registry import DATASETS, METRICS, MODELS

    registries = {"datasets": DATASETS, "models": MODELS, "metrics": METRICS}
    if kind is not None and kind not in registries:
        raise PhonbenchError(f"unknown kind {kind!r}", "use datasets, models or metrics")
    console = _console()
    for label, registry in registries.items():
        if kind and label != kind:
            continue
        table = Table(title=label, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("task kinds")
        table.add_column("description")
        if plugins:
            table.add_column("distribution")
        for name in registry.names():
            try:
                kinds, description = _describe(label, registry, name)
            except PhonbenchError as exc:
                console.print(f"[yellow]warning: {exc}[/yellow]")
                continue
            row = [name, kinds, description]
            if plugins:
                prov = registry.provider(name)
                row.append(f"{prov.distribution} {prov.version}".strip())
            table.add_row(*row)
        console.print(table)


def _describe(label: str, registry: Any, name: str) -> tuple[str, str]:
    """(task kinds, one-line description) of an entry; models are described without importing torch."""
    if label == "datasets":
        card = registry.get(name).card
        return card.task.kind, card.description.split("\n")[0]
    if label == "models":
        info = registry.summary(name)
        return ", ".join(info["task_kinds"] or ()), str(info["description"] or "")
    obj = registry.get(name)
    return ", ".join(getattr(obj, "task_kinds", ())), getattr(obj, "description", "")


# ---------------------------------------------------------------------------- run
@app.command("run")
def run_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Model name (see `phonbench list models`)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name (see `phonbench list datasets`)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split protocol (default: the dataset's)."),
    seed: int = typer.Option(0, "--seed", help="Random seed for split and model."),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="Hyperparameter key=value (repeatable)."),
    dataset_param: Optional[List[str]] = typer.Option(
        None, "--dataset-param", help="Dataset option key=value, e.g. size=200 (repeatable)."
    ),
    fold: Optional[List[int]] = typer.Option(None, "--fold", help="Only these fold indices (repeatable)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    out: str = typer.Option(None, "--out", "-o", help="Output directory [default: ./phonbench-results]."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI."),
    no_tracking: bool = typer.Option(False, "--no-tracking", help="Do not log to MLflow."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder with user-provided data."),
    train_fraction: str = typer.Option(
        "1.0", "--train-fraction", help="Fraction(s) of the training rows, e.g. 0.25,0.5,1.0 (learning curve)."
    ),
    no_save_model: bool = typer.Option(False, "--no-save-model", help="Do not keep the fitted model."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Do not draw the run's figures."),
) -> None:
    """Train MODEL on DATASET, score valid and test, write a record and log to MLflow."""
    from phonbench.runner import run_spec
    from phonbench.spec import RunSpec, parse_params

    console = _console()
    fractions = _fractions(train_fraction)
    specs = [RunSpec.build(model, dataset, split=split, seed=seed, params=parse_params(param), device=device,
                           out=out, tracking_uri=tracking_uri, tracking=not no_tracking, data_dir=data_dir,
                           dataset_options=parse_params(dataset_param), folds=fold or None, train_fraction=f,
                           save_model=not no_save_model, plots=not no_plots, origin=_origin())
             for f in fractions]
    all_records = []
    for spec in specs:
        result = run_spec(spec, on_fold=lambda record: console.print(metrics_table(record)),
                          on_warning=lambda text: console.print(f"[yellow]warning: {text}[/yellow]"))
        all_records.extend(result.records)
        if result.summary:
            console.print(summary_table(result.summary))
            _path(console, "summary", result.summary_path)
        for path in result.run_dirs:
            _path(console, "record", path / "record.json")
    if len(fractions) > 1:
        learning_curve(console, all_records, specs[0].outputs.out)
    if result.tracking_uri:
        console.print(f"MLflow: mlflow ui --backend-store-uri {result.tracking_uri}", soft_wrap=True)


def _fractions(text: str) -> list[float]:
    try:
        fractions = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise PhonbenchError(f"bad --train-fraction {text!r}", "give numbers like 0.25,0.5,1.0") from None
    if not fractions:
        raise PhonbenchError(f"bad --train-fraction {text!r}", "give numbers like 0.25,0.5,1.0")
    return fractions


def _origin() -> dict[str, str]:
    """The command line that produced a record (provenance)."""
    import shlex

    return {"command": " ".join(["phonbench", *map(shlex.quote, sys.argv[1:])])}


def _path(console, label: str, path) -> None:
    """Print ``label: path`` without wrapping the path mid-word (copy-pasteable)."""
    console.print(f"{label}: {path}", soft_wrap=True, highlight=False)


# ---------------------------------------------------------------------------- tune
@app.command("tune")
def tune_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Model name."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name."),
    split: Optional[str] = typer.Option(None, "--split", help="Split protocol (default: the dataset's)."),
    fold: Optional[List[int]] = typer.Option(None, "--fold", help="Only these folds (default: all)."),
    trials: int = typer.Option(20, "--trials", help="Finished trials wanted in total per study."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds for this worker's search."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL or .journal path."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name prefix."),
    workers: int = typer.Option(1, "--workers", help="Local worker processes."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe | random."),
    pruner: str = typer.Option("median", "--pruner", help="median | hyperband | none."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="Fixed hyperparameter key=value."),
    dataset_param: Optional[List[str]] = typer.Option(None, "--dataset-param", help="Dataset option key=value."),
    out: str = typer.Option(None, "--out", "-o", help="Output directory [default: ./phonbench-results]."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI."),
    no_tracking: bool = typer.Option(False, "--no-tracking", help="Do not log to MLflow."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder with user-provided data."),
    no_refit: bool = typer.Option(False, "--no-refit", help="Only search; skip the final test refit."),
    worker_index: int = typer.Option(0, "--worker-index", hidden=True),
) -> None:
    """Tune MODEL on DATASET with Optuna (validation data only), then refit and score on test."""
    from phonbench.spec import RunSpec, parse_params
    from phonbench.tuning import TuneOptions, refit

    if workers < 1:
        raise PhonbenchError(f"--workers {workers} must be at least 1", "e.g. --workers 2")
    options = TuneOptions(trials, timeout, storage, study, sampler, pruner, False, worker_index).check()
    spec = RunSpec.build(model, dataset, split=split, folds=fold or None, seed=seed, device=device,
                         params=parse_params(param), dataset_options=parse_params(dataset_param), out=out,
                         tracking_uri=tracking_uri, tracking=not no_tracking, data_dir=data_dir, origin=_origin())
    console = _console()
    children = _start_workers(workers, spec.outputs.out)
    try:
        result = _search(console, spec, options)
    finally:
        failed = [p.args for p in children if p.wait() != 0]
    if failed:
        raise PhonbenchError(f"{len(failed)} tuning worker(s) failed", "rerun the same command to resume")
    for info in result.studies:
        best = info.get("best_value")
        console.print(f"study {info['study']}: {info['n_finished']} finished trials, best valid "
                      f"{'n/a' if best is None else f'{best:.5g}'} (trial {info.get('best_trial', 'n/a')}) "
                      f"params {info.get('best_params', {})}", soft_wrap=True)
    if not no_refit:
        for record in refit(spec, result.studies,
                            on_warning=lambda text: console.print(f"[yellow]warning: {text}[/yellow]")):
            console.print(metrics_table(record))
            _path(console, "record", spec.outputs.out / "runs" / record.run_id / "record.json")
    console.print(f"dashboard: optuna-dashboard {spec.outputs.out}/optuna/<study>.journal (or your --storage URL)",
                  soft_wrap=True)


def _start_workers(workers: int, out) -> list:
    """Start ``workers - 1`` extra local worker processes on the same studies (no refit)."""
    import subprocess

    base = _drop_option([a for a in sys.argv[1:] if a != "--debug"], "--workers")
    cmd = [sys.executable, "-m", "phonbench.cli", *base, "--workers", "1", "--no-refit", "--out", str(out)]
    return [subprocess.Popen([*cmd, "--worker-index", str(i)]) for i in range(1, workers)]


def _search(console, spec, options):
    """The studies of ``spec`` with a progress bar per study."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from phonbench.tuning import tune_spec

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, disable=bool(os.environ.get("PHONBENCH_NO_PROGRESS"))) as bar:
        tasks: dict[str, Any] = {}

        def on_trial(info: dict) -> None:
            key = info["study"]
            if key not in tasks:
                tasks[key] = bar.add_task(key, total=info["target"])
            best = "—" if info["best"] is None else f"{info['best']:.5g}"
            bar.update(tasks[key], completed=info["finished"], description=f"{key} best {best}")

        return tune_spec(spec, options, on_trial)


def _drop_option(args: list[str], name: str) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == name:
            skip = True
            continue
        if a.startswith(name + "="):
            continue
        out.append(a)
    return out


# ---------------------------------------------------------------------------- bench
@app.command("bench")
def bench_cmd(
    suite: str = typer.Argument(..., help="Suite file, e.g. benchmarks/quick.toml."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Only this model/dataset pair (repeatable)."),
    rerun: bool = typer.Option(False, "--rerun", help="Run finished entries again."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    out: str = typer.Option(None, "--out", "-o", help="Output directory [default: ./phonbench-results]."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI."),
    no_tracking: bool = typer.Option(False, "--no-tracking", help="Do not log to MLflow."),
    save_models: bool = typer.Option(False, "--save-models", help="Keep fitted models in the run dirs."),
) -> None:
    """Run a declarative benchmark suite; an interrupted suite continues where it stopped."""
    from phonbench.bench import run_suite
    from phonbench.spec import default_out

    console = _console()
    state = run_suite(suite, out=default_out(out), only=only, rerun=rerun, device=device, tracking=not no_tracking,
                      tracking_uri=tracking_uri, save_models=save_models,
                      log=lambda text: console.print(text, soft_wrap=True, highlight=False))
    console.print(f"{len(state['done'])} entries done")


# ---------------------------------------------------------------------------- predict / plot
def _resolve_run(run: str, out: str | None) -> Any:
    """A run directory from a path or a run id under ``<out>/runs``."""
    from pathlib import Path

    from phonbench.spec import default_out

    path = Path(run)
    if path.is_dir():
        return path
    candidate = default_out(out) / "runs" / run
    if candidate.is_dir():
        return candidate
    raise PhonbenchError(f"run {run!r} not found (looked for {path} and {candidate})",
                         "pass a run directory or a run id together with --out")


@app.command("predict")
def predict_cmd(
    structures: Optional[List[str]] = typer.Argument(None, help="Structure files, folders or globs (CIF/POSCAR/extxyz)."),
    run: Optional[str] = typer.Option(None, "--run", help="Run id or run directory whose model to use."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Saved model directory instead of --run."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Where to write predictions [default: ./predictions]."),
    results: Optional[str] = typer.Option(None, "--results", help="Results dir holding runs/ (for --run ids)."),
    temperature: Optional[List[float]] = typer.Option(None, "--temperature", "-T", help="Temperatures (K) for C_V."),
    top: int = typer.Option(0, "--top", help="Rank and show the best K candidates."),
    by: str = typer.Option("cv", "--by", help="cv | mean_frequency | any numeric column."),
    alloy_series: Optional[List[str]] = typer.Option(
        None, "--alloy-series", help="Two end-member files A B: predict the composition series between them."),
    steps: int = typer.Option(11, "--steps", help="Points of the alloy series (with --alloy-series)."),
) -> None:
    """Predict DoS (or Γ modes), ω̄ and C_V(T) for structures; rank candidates; alloy series."""
    from pathlib import Path

    from rich.table import Table

    from phonbench import predict as pr

    from phonbench.spec import check_out_dir

    if bool(run) == bool(checkpoint):
        raise PhonbenchError("give exactly one of --run or --checkpoint", "e.g. --run <run id> --results DIR")
    source = _resolve_run(run, results) if run else Path(checkpoint)
    out_dir = Path(out or "predictions")
    if out_dir.exists() and not out_dir.is_dir():
        check_out_dir(out_dir)  # one-line error before the model is loaded
    model = pr.load_model(source)
    temps = tuple(temperature or (300.0,))
    console = _console()
    if alloy_series:
        _alloy(console, model, alloy_series, structures or [], steps, out_dir)
        return
    if not structures:
        raise PhonbenchError("no structures given", "pass CIF/POSCAR/extxyz files, folders or globs")
    table = pr.predict_structures(model, structures, temperatures=temps, out_dir=out_dir)
    failed = table[~table["ok"]]
    for _, row in failed.iterrows():
        console.print(f"[yellow]skipped {row['file']}: {row['error']}[/yellow]")
    shown = pr.rank_candidates(table, top=top, by=by) if top else table[table["ok"]]
    view = Table(title=f"{len(table) - len(failed)} predicted, {len(failed)} skipped", title_justify="left")
    columns = [c for c in shown.columns if c not in ("ok", "error", "file")]
    for col in columns:
        view.add_column(col, justify="right")
    for _, row in shown.head(max(top, 20)).iterrows():
        view.add_row(*[f"{v:.5g}" if isinstance(v, float) else str(v) for v in row[columns]])
    console.print(view)
    console.print(f"written: {out_dir / 'predictions.csv'}, {out_dir / 'predictions.json'}")


def _alloy(console, model, ends: List[str], extra: List[str], steps: int, out_dir) -> None:
    import numpy as np

    from phonbench import predict as pr
    from phonbench.structures import read_structure

    files = list(dict.fromkeys([*ends, *extra]))
    if len(files) != 2:
        raise PhonbenchError(f"--alloy-series needs two end-member files, got {len(files)} ({', '.join(files)})",
                             "e.g. --alloy-series Mg3Sb2.cif Mg3Bi2.cif or --alloy-series A.cif --alloy-series B.cif")
    if steps < 2:
        raise PhonbenchError(f"--steps {steps} must be at least 2", "e.g. --steps 11")
    series = pr.alloy_series(read_structure(files[0]), read_structure(files[1]), steps)
    result = pr.predict(model, series, ids=[f"p={p:.2f}" for p in np.linspace(0, 1, steps)])
    if result.dos is None:
        raise PhonbenchError("the alloy series plot needs a spectrum (DoS) model", "use a model trained on dos")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = pr.plot_alloy_series(result.grid_cm1, result.dos, np.linspace(0, 1, steps), out_dir / "alloy_series.png")
    result.table.to_csv(out_dir / "alloy_series.csv", index=False)
    console.print(result.table.to_string(index=False))
    console.print(f"written: {path}, {out_dir / 'alloy_series.csv'}")


@app.command("plot")
def plot_cmd(
    run: str = typer.Argument(..., help="Run id or run directory."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Results dir holding runs/ (for run ids)."),
) -> None:
    """(Re)generate a run's figures: parity, error histograms, DoS quartiles, training curves."""
    from phonbench.plots import plot_run

    for path in plot_run(_resolve_run(run, out)):
        _console().print(f"written: {path}")


# ---------------------------------------------------------------------------- data
@data_app.command("info")
def data_info_cmd(
    name: str = typer.Argument(..., help="Dataset name."),
    split: Optional[str] = typer.Option(None, "--split", help="Split to describe (default: the dataset's)."),
    seed: int = typer.Option(0, "--seed"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder with user-provided data."),
    dataset_param: Optional[List[str]] = typer.Option(None, "--dataset-param", help="Dataset option key=value."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw JSON."),
) -> None:
    """Print a dataset's card, counts, split sizes, target statistics and checksum verdict."""
    import json

    from phonbench.datasets.info import dataset_info
    from phonbench.runner import load_dataset, parse_params

    ds = load_dataset(name, data_dir, **parse_params(dataset_param))
    info = dataset_info(ds, split=split, seed=seed)
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
    else:
        print_info(info)
    if info.get("error"):
        raise PhonbenchError(info["error"])


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the app inside the error boundary and exits with its status.

    See :mod:`phonbench.cli_errors` for how each outcome maps to an exit status and one line.
    """
    from phonbench.cli_errors import guarded_main

    args = sys.argv[1:] if argv is None else list(argv)
    code = guarded_main(app, args, debug="--debug" in args)
    if code:
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
