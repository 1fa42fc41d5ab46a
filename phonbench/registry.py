"""Plugin registries for datasets, models and metrics.

One generic :class:`Registry` backs the three instances :data:`DATASETS`, :data:`MODELS` and
:data:`METRICS`. Entries come from Python entry points (groups ``phonbench.datasets``,
``phonbench.models``, ``phonbench.metrics``) — phonbench's own built-ins are declared the same way
in ``pyproject.toml`` — or from the :meth:`Registry.register` decorator for in-process use.

Entry points are discovered lazily on first lookup and each one is imported only when its entry
is asked for. A plugin that fails to import is reported with a warning naming its distribution;
every other entry keeps working. Names are lowercase ``snake_case``; lookups ignore case and treat
``-`` as ``_``. ``PHONBENCH_DISABLE_PLUGINS`` (comma-separated distribution or entry names) hides
entries, e.g. to work around a broken plugin.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Generic, Iterator, TypeVar

from phonbench.exceptions import RegistryError

T = TypeVar("T")

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
DISABLE_ENV = "PHONBENCH_DISABLE_PLUGINS"


def normalize_name(name: str) -> str:
    """Lookup key of a name: lowercase, ``-`` and spaces become ``_``."""
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


@dataclass(frozen=True)
class Provider:
    """Which distribution provided a registry entry.

    Attributes:
        distribution: distribution (package) name, or ``"<local>"`` for in-process registrations.
        version: its version string, or ``""`` when unknown.
        target: ``module:attr`` the entry resolves to.
    """

    distribution: str
    version: str
    target: str

    def as_dict(self) -> dict[str, str]:
        return {"distribution": self.distribution, "version": self.version, "target": self.target}


@dataclass
class _Entry:
    name: str
    provider: Provider
    entry_point: metadata.EntryPoint | None = None
    obj: Any = None
    loaded: bool = False


class Registry(Generic[T]):
    """A named collection of plugins of one kind.

    Args:
        kind: human name of what is registered (``"model"``), used in messages.
        group: entry-point group scanned for plugins (``"phonbench.models"``).
    """

    def __init__(self, kind: str, group: str):
        self.kind = kind
        self.group = group
        self._entries: dict[str, _Entry] = {}
        self._discovered = False
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ registration
    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering an object under ``name`` (default: its ``name`` attribute).

        Raises:
            RegistryError: if the name is not snake_case or already taken.
        """

        def decorator(obj: T) -> T:
            entry_name = name or getattr(obj, "name", None) or getattr(obj, "__name__", "")
            module = getattr(obj, "__module__", "") or ""
            target = f"{module}:{getattr(obj, '__qualname__', entry_name)}"
            self._add(_Entry(entry_name, Provider("<local>", "", target), obj=obj, loaded=True))
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Remove an entry (mainly for tests and interactive sessions)."""
        with self._lock:
            self._entries.pop(normalize_name(name), None)

    def _add(self, entry: _Entry) -> None:
        if not _NAME_RE.match(entry.name):
            raise RegistryError(
                f"invalid {self.kind} name {entry.name!r} from {entry.provider.distribution}",
                "names are lowercase snake_case, e.g. 'my_model'",
            )
        with self._lock:
            self._discover()
            old = self._entries.get(entry.name)
            if old is not None:
                raise RegistryError(
                    f"duplicate {self.kind} name {entry.name!r}: provided by "
                    f"{old.provider.distribution} ({old.provider.target}) and by "
                    f"{entry.provider.distribution} ({entry.provider.target})",
                    f"uninstall one of them or disable it with {DISABLE_ENV}",
                )
            self._entries[entry.name] = entry

    # ------------------------------------------------------------------ discovery
    def _disabled(self) -> set[str]:
        raw = os.environ.get(DISABLE_ENV, "")
        return {normalize_name(x) for x in raw.split(",") if x.strip()}

    def _discover(self) -> None:
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
            disabled = self._disabled()
            seen: set[tuple[str, str, str]] = set()
            for ep in metadata.entry_points(group=self.group):
                dist = getattr(ep, "dist", None)
                dist_name = dist.metadata["Name"] if dist is not None else "<unknown>"
                version = dist.version if dist is not None else ""
                key = (normalize_name(dist_name), ep.name, ep.value)
                if key in seen:  # the same distribution seen twice on sys.path
                    continue
                seen.add(key)
                if normalize_name(dist_name) in disabled or normalize_name(ep.name) in disabled:
                    continue
                self._add(_Entry(ep.name, Provider(dist_name, version, ep.value), entry_point=ep))

    def refresh(self) -> None:
        """Forget discovered entry points (not local registrations) and rescan on next lookup."""
        with self._lock:
            self._entries = {k: e for k, e in self._entries.items() if e.entry_point is None}
            local = list(self._entries.values())
            self._entries = {}
            self._discovered = False
            self._discover()
            for e in local:
                self._entries.setdefault(e.name, e)

    def _load(self, entry: _Entry) -> Any:
        if not entry.loaded:
            assert entry.entry_point is not None
            try:
                entry.obj = entry.entry_point.load()
            except Exception as exc:  # a broken plugin must not take the others down
                raise RegistryError(
                    f"{self.kind} {entry.name!r} from distribution {entry.provider.distribution} "
                    f"failed to import ({type(exc).__name__}: {exc})",
                    f"reinstall or fix that package, or hide it with {DISABLE_ENV}="
                    f"{entry.provider.distribution}",
                ) from exc
            entry.loaded = True
        return entry.obj

    # ------------------------------------------------------------------ lookup
    def names(self) -> list[str]:
        """Sorted names of all entries (no plugin is imported)."""
        self._discover()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return isinstance(name, str) and normalize_name(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def _entry(self, name: str) -> _Entry:
        self._discover()
        key = normalize_name(name)
        entry = self._entries.get(key)
        if entry is None:
            valid = self.names()
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}",
                f"{hint}valid {self.kind}s: {', '.join(valid) or '(none installed)'}",
            )
        return entry

    def get(self, name: str) -> T:
        """The registered object for ``name`` (imports its plugin on first use).

        Raises:
            RegistryError: unknown name (listing valid names and the closest match) or a plugin
                that fails to import.
        """
        return self._load(self._entry(name))

    def provider(self, name: str) -> Provider:
        """Distribution, version and target that provided ``name``."""
        return self._entry(name).provider

    def summary(self, name: str, attributes: tuple[str, ...] = ("description", "task_kinds")) -> dict[str, Any]:
        """Class attributes of an entry read from its source without importing it, when possible.

        ``phonbench list`` uses this so listing models does not import torch. Attributes that are
        literal assignments in the entry's class body are read with :mod:`ast`; if any is missing
        (inherited, computed) or the source cannot be read, the entry is imported instead.

        Raises:
            RegistryError: unknown name, or a plugin that fails to import (on the fallback path).
        """
        entry = self._entry(name)
        static = None if entry.loaded or entry.entry_point is None else _static_attributes(entry.entry_point.value)
        if static is not None and all(a in static for a in attributes):
            return {a: static[a] for a in attributes}
        obj = self._load(entry)
        return {a: getattr(obj, a, None) for a in attributes}

    def items(self, *, warn: bool = True) -> list[tuple[str, T]]:
        """All ``(name, object)`` pairs that import; broken plugins are skipped with a warning."""
        out = []
        for name in self.names():
            try:
                out.append((name, self.get(name)))
            except RegistryError as exc:
                if warn:
                    warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
        return out


def _static_attributes(target: str) -> dict[str, Any] | None:
    """Literal class-body assignments of ``module:Class`` read with :mod:`ast` (``None`` if unreadable)."""
    import ast
    import importlib.util

    module, _, attr = target.partition(":")
    try:
        spec = importlib.util.find_spec(module)
        source = open(spec.origin, encoding="utf-8").read() if spec and spec.origin else None  # noqa: SIM115
    except (ImportError, OSError, ValueError):
        return None
    if source is None:
        return None
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == attr:
            out = {}
            for stmt in node.body:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(
                    stmt, ast.AnnAssign) and stmt.value is not None else []
                for tgt in targets:
                    if isinstance(tgt, ast.Name):
                        try:
                            out[tgt.id] = ast.literal_eval(stmt.value)
                        except ValueError:
                            pass
            return out
    return None


DATASETS: Registry[Any] = Registry("dataset", "phonbench.datasets")
MODELS: Registry[Any] = Registry("model", "phonbench.models")
METRICS: Registry[Any] = Registry("metric", "phonbench.metrics")
