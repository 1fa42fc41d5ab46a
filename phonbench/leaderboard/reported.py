"""Published results shown beside the boards: "reported, not re-run".

``leaderboards/reported.toml`` lists numbers from papers and other leaderboards on the same data,
each with its citation and protocol. They are not records (no predictions to verify), so they never
get a rank or a tier; tables place them after the phonbench rows they would rank among. Format::

    [[reported]]
    dataset = "matbench_phonons"     # phonbench dataset name
    split = "matbench"               # phonbench split the number corresponds to
    metric = "mae"                   # phonbench metric name
    value = 28.76
    std = 1.2                        # optional
    unit = "cm^-1"
    model = "MegNet (kgcnn v2.1.0)"
    citation = "..."
    source = "where the number was read"
    protocol = "how it was measured"
    comparable = true                # false: the protocol differs (then `note` says how)
    note = ""
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from phonbench.exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FILE_NAME = "reported.toml"
REQUIRED = ("dataset", "split", "metric", "value", "model", "citation", "protocol")
OPTIONAL = ("std", "unit", "source", "comparable", "note")


@dataclass(frozen=True)
class Reported:
    """One published number (see the module docstring for the fields)."""

    dataset: str
    split: str
    metric: str
    value: float
    model: str
    citation: str
    protocol: str
    std: float | None = None
    unit: str = ""
    source: str = ""
    comparable: bool = True
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.model} (reported{'' if self.comparable else ', other protocol'})"


def load_reported(path: str | Path | None) -> list[Reported]:
    """Parse and check a reported-results file (``[]`` for ``None``).

    Raises:
        ConfigError: unreadable TOML, a missing or unknown field, a non-finite value, or an entry
            marked ``comparable = false`` without a ``note`` (named with its position).
    """
    if path is None:
        return []
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read reported results {path}: {exc}", "check the path and the TOML syntax") from exc
    out = []
    for i, item in enumerate(raw.get("reported", []), start=1):
        where = f"{path.name} entry {i}"
        missing = [k for k in REQUIRED if k not in item]
        unknown = sorted(set(item) - set(REQUIRED) - set(OPTIONAL))
        if missing or unknown:
            raise ConfigError(f"{where}: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}",
                              f"fields: {', '.join(REQUIRED + OPTIONAL)}")
        entry = Reported(**{k: item[k] for k in REQUIRED + OPTIONAL if k in item})
        if not isinstance(entry.value, (int, float)) or not math.isfinite(entry.value):
            raise ConfigError(f"{where}: value must be a finite number (got {entry.value!r})", "value = 28.76")
        if not entry.comparable and not entry.note.strip():
            raise ConfigError(f"{where}: comparable = false needs a note saying how the protocol differs",
                              'add note = "..."')
        out.append(entry)
    return out


def for_table(reported: list[Reported], dataset: str, split: str, metric: str,
              direction: str = "minimize") -> list[Reported]:
    """The entries of one board table (same dataset, split and primary metric), best first."""
    sign = 1.0 if direction == "minimize" else -1.0
    return sorted((r for r in reported if (r.dataset, r.split, r.metric) == (dataset, split, metric)),
                  key=lambda r: (sign * r.value, r.model))


def interleave(rows: list, reported: list[Reported], primary: str, direction: str) -> list:
    """Ranked ``rows`` with each reported entry placed after the rows that score at least as well."""
    sign = 1.0 if direction == "minimize" else -1.0
    out, pending = [], list(reported)
    for row in rows:
        value = row.metrics[primary][0]
        while pending and math.isfinite(value) and sign * pending[0].value < sign * value:
            out.append(pending.pop(0))
        out.append(row)
    return out + pending
