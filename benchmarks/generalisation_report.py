"""Per-fold breakdown of the out-of-distribution runs (benchmarks/generalisation.toml).

The boards (``leaderboards/<dataset>.md``) hold the mean ± std per protocol; this prints what the
mean hides: the score of every held-out cluster and element, per model, as a Markdown table::

    python benchmarks/generalisation_report.py leaderboards/records --dataset dos --split element
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path


def fold_scores(records: Path, dataset: str, split: str) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """``({row label: {fold: primary test score}}, {fold: test size})`` of one dataset and split."""
    from phonbench.leaderboard.collect import collect_dir
    from phonbench.leaderboard.tables import variant_of

    scores: dict[str, dict[str, float]] = defaultdict(dict)
    sizes: dict[str, int] = {}
    for run in collect_dir(records).runs:
        ds = run.record["dataset"]
        if ds["name"] != dataset or ds["split"] != split:
            continue
        variant = variant_of(run.record)
        label = run.record["model"]["name"] + ("" if variant == "default" else f" ({variant})")
        scores[label][str(ds["fold"])] = run.record["metrics"]["test"][run.record["primary_metric"]]
        sizes[str(ds["fold"])] = ds["sizes"]["test"]
    return scores, sizes


def markdown(scores: dict[str, dict[str, float]], sizes: dict[str, int]) -> str:
    folds = sorted(sizes, key=lambda f: -sizes[f])
    lines = ["| model | " + " | ".join(f"{f} ({sizes[f]})" for f in folds) + " |",
             "|---|" + "---|" * len(folds)]
    for label in sorted(scores):
        cells = [f"{scores[label][f]:.4g}" if f in scores[label] else "–" for f in folds]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path, help="folder with runs/<id>/record.json")
    parser.add_argument("--dataset", default="dos")
    parser.add_argument("--split", default="element")
    args = parser.parse_args()
    print(markdown(*fold_scores(args.records, args.dataset, args.split)))


if __name__ == "__main__":
    main()
