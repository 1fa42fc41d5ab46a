"""``phonbench data export`` and ``phonbench score``: the open protocol's two commands.

Registered on the main app by :mod:`phonbench.cli` (errors are reported there, on one line).
"""

from __future__ import annotations

from typing import List, Optional

import typer


def _console():
    from rich.console import Console

    return Console()


def export_cmd(
    name: str = typer.Argument(..., help="Dataset name."),
    out: str = typer.Option(..., "--out", "-o", help="New folder for the exported files."),
    split: Optional[str] = typer.Option(None, "--split", help="Split protocol (default: the dataset's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of seeded splits."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder with user-provided data."),
    dataset_param: Optional[List[str]] = typer.Option(None, "--dataset-param", help="Dataset option key=value."),
) -> None:
    """Write every fold's structures (extxyz + CIF), targets (CSV), ids and a checksummed manifest."""
    from phonbench.export import export_dataset
    from phonbench.spec import parse_params

    console = _console()
    manifest = export_dataset(name, out, split=split, seed=seed, data_dir=data_dir,
                              dataset_options=parse_params(dataset_param), progress=console.print)
    console.print(f"manifest: {manifest}", soft_wrap=True, highlight=False)
    console.print("next: fill in fold_*/test_template.csv, then `phonbench score` it (docs/submit.md)")


def score_cmd(
    predictions: str = typer.Argument(..., help="Predictions CSV (the layout of the exported test_template.csv)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset the predictions are for."),
    card: str = typer.Option(..., "--card", help="Model card TOML (name required; see docs/submit.md)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split protocol (default: the dataset's)."),
    fold: Optional[int] = typer.Option(None, "--fold", help="Fold index (needed for multi-fold splits)."),
    seed: int = typer.Option(0, "--seed", help="Seed of seeded splits (as exported)."),
    out: str = typer.Option(None, "--out", "-o", help="Output directory [default: ./phonbench-results]."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder with user-provided data."),
    dataset_param: Optional[List[str]] = typer.Option(None, "--dataset-param", help="Dataset option key=value."),
) -> None:
    """Check predictions made anywhere against a fold's test ids, score them and write an external record."""
    from phonbench.cli_output import metrics_table
    from phonbench.model_card import ModelCard
    from phonbench.protocol import score_csv
    from phonbench.spec import check_out_dir, default_out, parse_params

    out_dir = default_out(out)
    check_out_dir(out_dir)
    model_card = ModelCard.read(card)
    bench = score_csv(predictions, dataset, model_card, split=split, fold=fold, seed=seed, data_dir=data_dir,
                      dataset_options=parse_params(dataset_param))
    console = _console()
    for record, _ in bench.recorded.values():
        console.print(metrics_table(record))
    for path in bench.save(out_dir):
        console.print(f"record: {path / 'record.json'}", soft_wrap=True, highlight=False)
        console.print(f"next: phonbench leaderboard add {path}", soft_wrap=True, highlight=False)
