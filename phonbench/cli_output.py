"""Rich renderings used by the CLI: metric tables, fold summaries, dataset info, learning curves.

Kept apart from :mod:`phonbench.cli` so the command module stays a thin parser.
"""

from __future__ import annotations


def _console():
    from rich.console import Console

    return Console()


def learning_curve(console, records, out) -> None:
    """Test metrics against training-set size (Nguyen et al. Fig. 7b): table + plot."""
    from rich.table import Table

    primary = records[0].primary_metric
    table = Table(title="learning curve (test)", title_justify="left")
    for col in ("train fraction", "n_train", f"{primary} (mean over folds)"):
        table.add_column(col, justify="right")
    by_fraction: dict[float, list] = {}
    for r in records:
        by_fraction.setdefault(r.dataset["train_fraction"], []).append(r)
    for fraction, recs in sorted(by_fraction.items()):
        values = [r.metrics["test"][primary] for r in recs]
        table.add_row(f"{fraction:g}", str(recs[0].dataset["sizes"]["train"]), f"{sum(values) / len(values):.5g}")
    console.print(table)
    from pathlib import Path

    from phonbench.learning_curves import learning_curve_table, plot_learning_curve
    from phonbench.records import utc_now

    curve = learning_curve_table([r.to_dict() for r in records])
    first = records[0]
    name = f"learning_curve-{first.dataset['name']}-{first.model['name']}-{utc_now()[:19].replace(':', '')}"
    path = plot_learning_curve(curve, Path(out) / "learning_curves" / f"{name}.png", primary)
    curve.to_csv(path.with_suffix(".csv"), index=False)
    console.print(f"learning curve: {path}")


def metrics_table(record):
    from rich.table import Table

    ds = record.dataset
    fit_s = record.timings.get("fit_s")
    fit = f"fit {fit_s:.1f} s" if fit_s is not None else "external model"
    title = f"{record.model['name']} on {ds['name']} — split {ds['split']} fold {ds['fold']} (seed {record.seed}, {fit})"
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    splits = [s for s in ("valid", "test") if s in record.metrics]
    for s in splits:
        table.add_column(s, justify="right")
    names = sorted({m for s in splits for m in record.metrics[s]})
    for name in names:
        mark = " *" if name == record.primary_metric else ""
        table.add_row(name + mark, *[f"{record.metrics[s].get(name, float('nan')):.5g}" for s in splits])
    return table


def summary_table(summary):
    from rich.table import Table

    table = Table(title=f"{summary['model']} on {summary['dataset']}: mean ± std over "
                        f"{len(summary['runs'])} folds", title_justify="left")
    table.add_column("metric")
    for s in ("valid", "test"):
        table.add_column(s, justify="right")
    names = sorted({m for s in ("valid", "test") for m in summary["metrics"].get(s, {})})
    for name in names:
        cells = []
        for s in ("valid", "test"):
            v = summary["metrics"].get(s, {}).get(name)
            cells.append(f"{v['mean']:.5g} ± {v['std']:.2g}" if v else "")
        table.add_row(name + (" *" if name == summary["primary_metric"] else ""), *cells)
    return table


def _agreement_text(agreement: dict) -> str:
    def fmt(metrics: dict) -> str:
        return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())

    return (f"{agreement['n_compared']} of {agreement['n_shared']} shared materials scored as predictions of "
            f"Petretto's {agreement['task']} targets: {fmt(agreement['metrics'])}; on the "
            f"{agreement['n_test']} in its {agreement['test_split']} test split: {fmt(agreement['test_metrics'])}")


def print_info(info: dict) -> None:
    from rich.table import Table

    console = _console()
    card = info["card"]
    task = card["task"]
    table = Table(title=f"dataset {info['name']}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    grid = task.get("grid")
    task_text = f"{task['kind']} ({task['target']}, {task['n_outputs']} outputs, unit {task['unit']})"
    if grid:
        task_text += f"; grid {grid[0]:g}..{grid[-1]:g} {task.get('grid_unit') or ''} ({len(grid)} points)"
    rows = [("description", card["description"]), ("task", task_text), ("version", str(card["version"])),
            ("source", card["source"]), ("license", card["license"]), ("citation", card["citation"]),
            ("splits", f"{', '.join(card['splits'])} (default {card['default_split']})"),
            ("metrics", f"{', '.join(card['default_metrics'])} (primary {card['primary_metric']})")]
    described = [(f"  {name}", text) for name, text in (info.get("split_descriptions") or {}).items() if text]
    rows[-1:-1] = described  # one row per split description, right under the split list
    if card.get("notes"):
        rows.append(("notes", card["notes"]))
    if info.get("counts"):
        rows.append(("materials", str(info["counts"]["materials"])))
        rows.append(("extras", ", ".join(info.get("extras") or [])))
    stats = info.get("target_stats")
    if stats:
        rows.append(("targets", f"min {stats['min']:.4g}, max {stats['max']:.4g}, mean {stats['mean']:.4g}, "
                                f"std {stats['std']:.4g} {stats['unit']}; real entries {stats['mask_fraction']:.1%}"))
    agreement = info.get("label_agreement")
    if agreement:
        rows.append(("vs Petretto", _agreement_text(agreement)))
    checks = info.get("checksums") or {}
    files = ", ".join(f"{f} {'ok' if ok else 'MISMATCH'}" for f, ok in (checks.get("files") or {}).items())
    rows.append(("checksums", f"{checks.get('verdict', 'n/a')}" + (f" ({files})" if files else "")))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    split = info.get("split")
    if split:
        grouped = split.get("group_kind") if all("groups" in f for f in split["folds"]) else None
        title = f"split {split['name']} (seed {split['seed']})"
        if grouped:
            title += f", grouped by {grouped}; groups = {split.get('group_label') or grouped}"
        st = Table(title=title, title_justify="left")
        parts = ("train", "valid", "test")
        for col in ("fold", *parts, *((f"{p} groups" for p in parts) if grouped else ())):
            st.add_column(col, justify="right")
        for fold in split["folds"]:
            groups = [str(fold["groups"][p]) for p in parts] if grouped else []
            st.add_row(str(fold["name"]), *(str(fold[p]) for p in parts), *groups)
        console.print(st)
