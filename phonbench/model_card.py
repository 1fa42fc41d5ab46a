"""Model cards: who made an external model, how big it is and what it ran on.

A record scored with ``phonbench score`` (or :meth:`phonbench.protocol.BenchmarkFold.record`) has
no phonbench model class behind it, so its ``model`` section carries the card instead of params.
A card is a TOML file (top-level keys, or a ``[model]`` table)::

    name = "knn-composition"                 # required: the board row label
    version = "0.1"
    authors = ["A. Researcher"]
    doi = "10.1000/xyz"                      # or url = "https://..."
    code_url = "https://github.com/..."
    hardware = "1x A100"
    training_time_s = 120.0                  # seconds
    n_parameters = 0
    description = "k-NN on composition fractions"
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from phonbench.exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


@dataclass(frozen=True)
class ModelCard:
    """Description of a model trained outside phonbench (only ``name`` is required)."""

    name: str
    version: str = ""
    authors: tuple[str, ...] = ()
    doi: str = ""
    url: str = ""
    code_url: str = ""
    hardware: str = ""
    training_time_s: float | None = None
    n_parameters: int | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str = "model card") -> ModelCard:
        """Validate a mapping (e.g. parsed TOML) into a card.

        Raises:
            ConfigError: missing or malformed ``name``, unknown keys, or a value of the wrong type.
        """
        data = dict(raw.get("model", raw)) if isinstance(raw.get("model"), Mapping) else dict(raw)
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        unknown = sorted(set(data) - known - {"extra"})
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}", f"use: {', '.join(sorted(known))}, extra")
        name = data.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ConfigError(f"{where}: needs name = \"...\" (letters, digits, _ . + -; got {name!r})",
                              "add e.g. name = \"my-model\"")
        authors = data.get("authors", ())
        authors = (authors,) if isinstance(authors, str) else authors
        if not isinstance(authors, (list, tuple)) or not all(isinstance(a, str) for a in authors):
            raise ConfigError(f"{where}: authors must be a string or a list of strings", "authors = [\"A. B\"]")
        for key in ("version", "doi", "url", "code_url", "hardware", "description"):
            if not isinstance(data.get(key, ""), str):
                raise ConfigError(f"{where}: {key} must be a string (got {data[key]!r})", f'{key} = "..."')
        return cls(
            name=name, version=data.get("version", ""), authors=tuple(authors), doi=data.get("doi", ""),
            url=data.get("url", ""), code_url=data.get("code_url", ""), hardware=data.get("hardware", ""),
            training_time_s=_number(data, "training_time_s", float, where),
            n_parameters=_number(data, "n_parameters", int, where),
            description=data.get("description", ""), extra=dict(data.get("extra", {})),
        )

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        """Read and validate a TOML card file."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read model card {path}: {getattr(exc, 'strerror', None) or exc}",
                              "pass --card MODEL.toml (see docs/submit.md)") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"model card {path} is not valid TOML: {exc}", "fix the TOML syntax") from exc
        return cls.from_mapping(raw, where=f"model card {path.name}")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["authors"] = list(self.authors)
        return {k: v for k, v in d.items() if v not in ("", (), [], None, {})}


def _number(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if value is None:
        return None
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = numeric and (kind is float or float(value).is_integer())
    if not ok or value < 0:
        raise ConfigError(f"{where}: {key} must be a non-negative {kind.__name__} (got {value!r})", f"{key} = 0")
    return kind(value)
