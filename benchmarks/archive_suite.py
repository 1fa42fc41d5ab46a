"""Archive the finished runs of a suite into a leaderboard records folder.

Only the entries of the suite file as it is now count (runs of entries that were edited since, e.g.
an older budget, stay out), and ``--skip`` leaves out runs that would duplicate rows already on the
boards (same model, split and settings run by another suite)::

    python benchmarks/archive_suite.py benchmarks/generalisation.toml --results results-generalisation \
        --records leaderboards/records --skip dummy/dos/tutorial --skip composition/dos/tutorial
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def finished_runs(suite_path: Path, results: Path, skip: set[str]) -> list[Path]:
    """Run directories of the suite's current entries that the state file marks done."""
    from phonbench.bench import load_suite

    suite = load_suite(suite_path)
    state = json.loads((results / "bench" / suite.name / "state.json").read_text())["done"]
    runs = []
    for entry in suite.entries:
        label = f"{entry.model}/{entry.dataset}/{entry.split or 'default'}"
        if label in skip:
            continue
        for seed in entry.seeds:
            runs += [results / "runs" / run_id for run_id in state.get(entry.key(seed), [])]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("--results", type=Path, required=True, help="the suite's -o folder")
    parser.add_argument("--records", type=Path, default=Path("leaderboards/records"))
    parser.add_argument("--skip", action="append", default=[], help="model/dataset/split to leave out")
    args = parser.parse_args()
    from phonbench.records import archive_run

    for run_dir in finished_runs(args.suite, args.results, set(args.skip)):
        print(f"added: {archive_run(run_dir, args.records)}")


if __name__ == "__main__":
    main()
