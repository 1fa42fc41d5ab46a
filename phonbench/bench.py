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
    variant = "short budget"         # optional: its own board row, "model (short budget)"

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
              "optional", "variant"}


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
    variant: str | None = None  # board row label for a non-default budget (record tag ``variant:<name>``)

    @property
    def label(self) -> str:
        return f"{self.model}/{self.dataset}"

    def key(self, seed: int) -> str:
        """Stable identity of one entry × seed in the state file."""
        body = {"model": self.model, "dataset": self.dataset, "split": self.split, "folds": self.folds,
                "params": dict(self.params), "dataset_params": dict(self.dataset_params),
                "tune": dict(self.tune) if self.tune else None, "seed": seed}
        if self.variant:
            body["variant"] = self.variant
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
            optional=bool(item.get("optional", False)), variant=item.get("variant"),
        ))
    if not entries:
        raise ConfigError(f"suite {path.name} has no [[entry]] tables", "add at least one entry")
    return Suite(meta.get("name", path.stem), entries, path)


def plan_suite(suite: Suite, *, out: str | Path, only: list[str] | None = None, tracking: bool = True,
               tracking_uri: str | None = None, device: str = "auto",
               save_models: bool = False) -> list[tuple[BenchEntry, int, Any, Any]]:
    """Every (entry, seed, RunSpec, TuneOptions or None) of ``suite`` to run, all validated up front.

    Raises:
        ConfigError: ``only`` matches no entry, or an entry has a bad name, parameter or option
            (named with its position in the suite file) — before anything trains.
    """
    from phonbench.exceptions import PhonbenchError
    from phonbench.registry import normalize_name
    from phonbench.spec import RunSpec, check_out_dir
    from phonbench.tuning import TuneOptions

    wanted = None if not only else {"/".join(normalize_name(p) for p in o.split("/")) for o in only}
    labels = ["/".join(normalize_name(p) for p in e.label.split("/")) for e in suite.entries]
    if wanted is not None and not wanted & set(labels):
        raise ConfigError(f"--only {', '.join(only or [])} matches no entry of suite {suite.name}",
                          f"entries: {', '.join(sorted(set(labels)))}")
    check_out_dir(out)
    plan = []
    for number, (entry, label) in enumerate(zip(suite.entries, labels), start=1):
        if wanted is not None and label not in wanted:
            continue
        try:
            tune = TuneOptions(**dict(entry.tune)).check() if entry.tune else None
            for seed in entry.seeds:
                spec = RunSpec.build(entry.model, entry.dataset, params=entry.params, split=entry.split, seed=seed,
                                     device=device, out=out, tracking=tracking, tracking_uri=tracking_uri,
                                     save_model=save_models, data_dir=entry.data_dir,
                                     dataset_options=entry.dataset_params, folds=entry.folds,
                                     tags=("default", f"variant:{entry.variant}") if entry.variant else ("default",),
                                     origin={"suite": suite.name, "entry": number, "label": entry.label},
                                     check_outputs=number == 1 and seed == entry.seeds[0])
                plan.append((entry, seed, spec, tune))
        except TypeError as exc:
            raise ConfigError(f"suite {suite.path.name} entry {number} ({entry.label}): bad tune options ({exc})",
                              "tune takes trials, timeout, storage, study, sampler, pruner") from None
        except PhonbenchError as exc:
            raise type(exc)(f"suite {suite.path.name} entry {number} ({entry.label}): {exc.message}", exc.fix) from None
    return plan


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

    Every entry is validated before the first one trains (:func:`plan_suite`).

    Args:
        only: restrict to entries whose ``model/dataset`` label is listed (``-`` = ``_``, any case).
        rerun: run finished entries again.
        save_models: keep fitted models in the run directories (off: suites only need records).

    Raises:
        Interrupted: Ctrl-C; finished entries stay in the state file and a rerun continues.
    """
    from phonbench.exceptions import Interrupted

    suite = load_suite(path)
    out = Path(out)
    plan = plan_suite(suite, out=out, only=only, tracking=tracking, tracking_uri=tracking_uri, device=device,
                      save_models=save_models)
    state_path = out / "bench" / suite.name / "state.json"
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {"done": {}}
    skipped_optional: set[int] = set()
    done_now = 0
    try:
        for entry, seed, spec, tune in plan:
            key = entry.key(seed)
            if id(entry) in skipped_optional:
                continue
            if key in state["done"] and not rerun:
                log(f"skip {entry.label} seed {seed}: done ({len(state['done'][key])} records)")
                continue
            log(f"run {entry.label} seed {seed}" + (" (tuned)" if tune else ""))
            try:
                records = _run_entry(spec, tune, log)
            except DataError as exc:
                if not entry.optional:
                    raise
                log(f"skip {entry.label}: optional dataset not available ({exc.message})")
                skipped_optional.add(id(entry))
                continue
            state = _record_done(state_path, key, [r.run_id for r in records])
            done_now += 1
    except (KeyboardInterrupt, Interrupted):
        raise Interrupted(f"interrupted: suite {suite.name}: {done_now} entries finished in this run, "
                          f"{len(state['done'])} done in all (state {state_path}); rerun the same command to "
                          "continue") from None
    return state


def _run_entry(spec: Any, tune: Any, log: Callable[[str], None]) -> list[Any]:
    """Run (or tune and refit) one planned entry × seed; log each record's path and primary score."""
    from phonbench.runner import run_spec
    from phonbench.tuning import tune_spec

    records = tune_spec(spec, tune, on_warning=log).run if tune else run_spec(spec, on_warning=log).records
    for record in records:
        value = record.metrics.get("test", {}).get(record.primary_metric)
        score = f"test {record.primary_metric} {value:.5g}" if value is not None else "no test score"
        log(f"  {score}: {spec.outputs.out / 'runs' / record.run_id / 'record.json'}")
    return records


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
