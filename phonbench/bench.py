"""Declarative benchmark suites (``benchmarks/*.toml``) run pair by pair, resumable.

A suite file::

    [suite]
    name = "quick"
    seeds = [0]                      # default seeds of every entry

    [[entry]]
    model = "dummy"
    dataset = "synthetic"
    split = "random"                 # optional, default: the dataset's
    seeds = [0, 1, 2]                # optional
    folds = [0]                      # optional, default: all folds of the split
    params = { epochs = 5 }          # optional fixed hyperparameters (the budget)
    dataset_params = { size = 200 }  # optional dataset options
    tune = { trials = 10, timeout = 600 }   # optional: tune instead of a default run
    optional = true                  # optional: skip when the dataset's files are absent

Progress is kept in ``<out>/bench/<suite>/state.json`` (written atomically after each finished
entry × seed): rerunning the command skips what is done unless ``rerun=True``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from phonbench.exceptions import ConfigError, DataError
from phonbench.io import write_json_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENTRY_KEYS = {"model", "dataset", "split", "seeds", "folds", "params", "dataset_params", "tune", "data_dir",
              "optional"}


@dataclass(frozen=True)
class BenchEntry:
    """One (model, dataset) pair of a suite with its budget."""

    model: str
    dataset: str
    split: str | None = None
    seeds: tuple[int, ...] = (0,)
    folds: tuple[int, ...] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    dataset_params: Mapping[str, Any] = field(default_factory=dict)
    tune: Mapping[str, Any] | None = None
    data_dir: str | None = None
    optional: bool = False  # skip (with a message) when the dataset's files are not present

    @property
    def label(self) -> str:
        return f"{self.model}/{self.dataset}"

    def key(self, seed: int) -> str:
        """Stable identity of one entry × seed in the state file."""
        body = {"model": self.model, "dataset": self.dataset, "split": self.split, "folds": self.folds,
                "params": dict(self.params), "dataset_params": dict(self.dataset_params),
                "tune": dict(self.tune) if self.tune else None, "seed": seed}
        return json.dumps(body, sort_keys=True)


@dataclass
class Suite:
    name: str
    entries: list[BenchEntry]
    path: Path


def load_suite(path: str | Path) -> Suite:
    """Parse and validate a suite TOML file.

    Raises:
        ConfigError: unreadable TOML, missing ``model``/``dataset``, or unknown keys.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read suite {path}: {exc}", "check the path and the TOML syntax") from exc
    meta = raw.get("suite", {})
    default_seeds = tuple(meta.get("seeds", [0]))
    entries = []
    for i, item in enumerate(raw.get("entry", [])):
        unknown = set(item) - ENTRY_KEYS
        if unknown or "model" not in item or "dataset" not in item:
            raise ConfigError(f"suite {path.name} entry {i + 1}: needs model and dataset; unknown keys "
                              f"{sorted(unknown) or 'none'}", f"allowed keys: {', '.join(sorted(ENTRY_KEYS))}")
        entries.append(BenchEntry(
            model=item["model"], dataset=item["dataset"], split=item.get("split"),
            seeds=tuple(item.get("seeds", default_seeds)),
            folds=tuple(item["folds"]) if "folds" in item else None,
            params=dict(item.get("params", {})), dataset_params=dict(item.get("dataset_params", {})),
            tune=dict(item["tune"]) if "tune" in item else None, data_dir=item.get("data_dir"),
            optional=bool(item.get("optional", False)),
        ))
    if not entries:
        raise ConfigError(f"suite {path.name} has no [[entry]] tables", "add at least one entry")
    return Suite(meta.get("name", path.stem), entries, path)


def run_suite(
    path: str | Path,
    *,
    out: str | Path = "phonbench-results",
    only: list[str] | None = None,
    rerun: bool = False,
    tracking: bool = True,
    tracking_uri: str | None = None,
    device: str = "auto",
    save_models: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every entry × seed of a suite that is not finished yet; return the state dict.

    Args:
        only: restrict to entries whose ``model/dataset`` label is listed (``-`` = ``_``, any case).
        rerun: run finished entries again.
        save_models: keep fitted models in the run directories (off: suites only need records).
    """
    from phonbench.registry import normalize_name
    from phonbench.runner import run
    from phonbench.tuning import tune

    suite = load_suite(path)
    out = Path(out)
    state_path = out / "bench" / suite.name / "state.json"
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {"done": {}}
    wanted = None if not only else {"/".join(normalize_name(p) for p in o.split("/")) for o in only}
    for entry in suite.entries:
        label = "/".join(normalize_name(p) for p in entry.label.split("/"))
        if wanted is not None and label not in wanted:
            continue
        for seed in entry.seeds:
            key = entry.key(seed)
            if key in state["done"] and not rerun:
                log(f"skip {entry.label} seed {seed}: done ({len(state['done'][key])} records)")
                continue
            log(f"run {entry.label} seed {seed}" + (" (tuned)" if entry.tune else ""))
            common = dict(split=entry.split, seed=seed, device=device, out=out, tracking=tracking,
                          save_model=save_models,
                          tracking_uri=tracking_uri, data_dir=entry.data_dir,
                          dataset_options=entry.dataset_params,
                          folds=list(entry.folds) if entry.folds is not None else None)
            try:
                if entry.tune:
                    res = tune(entry.model, entry.dataset, fixed_params=entry.params, **common, **dict(entry.tune))
                    run_ids = [r.run_id for r in res.run]
                else:
                    res = run(entry.model, entry.dataset, params=entry.params, **common)
                    run_ids = [r.run_id for r in res.records]
            except DataError as exc:
                if not entry.optional:
                    raise
                log(f"skip {entry.label}: optional dataset not available ({exc.message})")
                break
            state = _record_done(state_path, key, run_ids)
    return state


def _record_done(state_path: Path, key: str, run_ids: list[str]) -> dict[str, Any]:
    """Add one finished entry to the state file under a lock (suites may run in parallel)."""
    import contextlib

    state_path.parent.mkdir(parents=True, exist_ok=True)
    with open(state_path.with_suffix(".lock"), "w") as lock:
        with contextlib.suppress(ImportError):
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(state_path.read_text()) if state_path.exists() else {"done": {}}
        state["done"][key] = run_ids
        write_json_atomic(state_path, state)
    return state
