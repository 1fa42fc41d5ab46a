"""``phonbench leaderboard …`` commands: archive runs into a records folder, build, publish.

Registered on the main app by :mod:`phonbench.cli` (errors are reported there, on one line).
"""

from __future__ import annotations

from typing import List, Optional

import typer

board_app = typer.Typer(help="Archive runs, build and publish leaderboards from run records.", no_args_is_help=True)


def _console():
    from rich.console import Console

    return Console()


@board_app.command("add")
def leaderboard_add_cmd(
    runs: List[str] = typer.Argument(..., help="Run directories (runs/<run_id>) to add."),
    records: str = typer.Option("leaderboards/records", "--records", help="Records folder of the leaderboard."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite runs that are already there."),
) -> None:
    """Copy runs into a leaderboard's records folder (record.json + gzipped predictions)."""
    from phonbench.records import archive_run
    from phonbench.spec import check_out_dir

    check_out_dir(records)
    console = _console()
    for run in runs:
        console.print(f"added: {archive_run(run, records, replace=replace)}", soft_wrap=True, highlight=False)


@board_app.command("build")
def leaderboard_build_cmd(
    records: Optional[str] = typer.Option(None, "--records", help="Results dir with runs/*/record.json."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="Collect records from MLflow."),
    out: str = typer.Option("leaderboards", "--out", "-o", help="Output folder (tables + site/)."),
    strict: bool = typer.Option(False, "--strict", help="Fail if any record is rejected."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Skip the figures (PNG and SVG)."),
    force: bool = typer.Option(False, "--force", help="Replace boards in --out built from other records."),
    reported: Optional[str] = typer.Option(
        None, "--reported", help="Published results to show (default: <out>/reported.toml if present)."),
) -> None:
    """Validate records and build per-dataset tables (md/CSV/JSON) and a static HTML site."""
    from pathlib import Path

    from phonbench.leaderboard import build_leaderboard
    from phonbench.spec import check_out_dir

    check_out_dir(out)
    report = build_leaderboard(Path(records) if records else None, tracking_uri, Path(out),
                               with_figures=not no_figures, strict=strict, force=force,
                               reported=Path(reported) if reported else None)
    console = _console()
    for line in report.lines():
        console.print(line, soft_wrap=True, highlight=False)
    console.print(f"site: {report.site_index}", soft_wrap=True, highlight=False)


@board_app.command("publish")
def leaderboard_publish_cmd(
    to: str = typer.Option(..., "--to", help="Destination folder for the self-contained site."),
    out: str = typer.Option("leaderboards", "--out", "-o", help="Folder the site was built in."),
) -> None:
    """Copy the built static site to a folder ready for any static host."""
    from pathlib import Path

    from phonbench.leaderboard import publish_site

    _console().print(f"published: {publish_site(Path(out), Path(to))}", soft_wrap=True, highlight=False)
