"""Registries of plugins: drivers, steps, validators and state listeners.

A plugin is registered in exactly one way: an entry point of an installed
distribution, in one of the groups below. coord's own drivers, week2 steps,
validators and the board listener are registered like that in its
``pyproject.toml``; a team's plugin package does the same in its own::

    [project.entry-points."coord.steps"]
    pilot = "stage1_steps.pilot:generate"

Entry points are read lazily (a name lookup imports only that plugin's module)
and once per ``sys.path``: a distribution put on the path later is found too.
When coord runs from a source checkout (its ``pyproject.toml`` beside the
packages), that file is read instead of the ``coord`` distribution's metadata,
which an editable install leaves stale until it is reinstalled.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Generic, TypeVar

from coordinator.core.errors import UsageError

log = logging.getLogger(__name__)

DRIVER_GROUP = "coord.drivers"
STEP_GROUP = "coord.steps"
VALIDATOR_GROUP = "coord.validators"
LISTENER_GROUP = "coord.listeners"
DISTRIBUTION = "coord"

T = TypeVar("T")


class UnknownPlugin(UsageError):
    """A plan or configuration names a plugin no installed distribution registers."""


@dataclass(frozen=True)
class PluginRef:
    """One registration: a name in a group, pointing at ``module:attribute``."""

    group: str
    name: str
    value: str
    """``module:attribute`` (attribute may be dotted)."""
    origin: str
    """The distribution (or file) that registered it."""

    def load(self) -> object:
        """Import the module and return the attribute."""
        module, _, attr = self.value.partition(":")
        obj: object = importlib.import_module(module)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        return obj


_SCAN_LOCK = threading.Lock()
_scanned: tuple[tuple[str, ...], dict[str, dict[str, PluginRef]]] | None = None


def _own_pyproject() -> dict[str, dict[str, str]]:
    """Entry points declared in the source checkout's pyproject.toml (empty in an installed wheel)."""
    path = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    if data.get("project", {}).get("name") != DISTRIBUTION:
        return {}
    groups = data.get("project", {}).get("entry-points", {})
    return {g: dict(v) for g, v in groups.items() if isinstance(v, dict)}


def _scan() -> dict[str, dict[str, PluginRef]]:
    """Every registration on the current ``sys.path``, by group and name."""
    global _scanned
    key = tuple(sys.path)
    with _SCAN_LOCK:
        if _scanned is not None and _scanned[0] == key:
            return _scanned[1]
        found: dict[str, dict[str, PluginRef]] = {}
        source = _own_pyproject()
        for group, entries in source.items():
            for ep_name, value in entries.items():
                _add(found, PluginRef(group, ep_name, value, "pyproject.toml"))
        for dist in metadata.distributions():
            ours = [ep for ep in dist.entry_points if ep.group.startswith("coord.")]
            if not ours:
                continue  # most distributions: their METADATA (an email parse each, ~1 ms) is not read
            name = dist.metadata["Name"] or "?"
            if name == DISTRIBUTION and source:
                continue
            for ep in ours:
                _add(found, PluginRef(ep.group, ep.name, ep.value, name))
        _scanned = (key, found)
        return found


def _add(found: dict[str, dict[str, PluginRef]], ref: PluginRef) -> None:
    group = found.setdefault(ref.group, {})
    first = group.get(ref.name)
    if first is None:
        group[ref.name] = ref
    elif first.value != ref.value:  # the same registration seen twice (e.g. an editable install) is fine
        log.warning("%s %r is registered by %s (%s) and by %s (%s); using the first", ref.group, ref.name,
                    first.origin, first.value, ref.origin, ref.value)


def registered(group: str) -> list[str]:
    """Names registered in ``group``, sorted (without importing any plugin)."""
    return sorted(_scan().get(group, {}))


class Registry(Generic[T]):
    """The plugins of one entry-point group, loaded on first use and turned into ``T``."""

    def __init__(self, group: str, kind: str, make: Callable[[str, object], T]) -> None:
        self.group = group
        self.kind = kind
        """What the plugins are, for messages (``driver``, ``step``, …)."""
        self._make = make
        self._loaded: dict[tuple[str, str], T] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return registered(self.group)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in _scan().get(self.group, {})

    def ref(self, name: str) -> PluginRef:
        """Where ``name`` is registered; :class:`UnknownPlugin` naming the known ones when it is not."""
        ref = _scan().get(self.group, {}).get(name)
        if ref is None:
            known = ", ".join(self.names()) or "none"
            raise UnknownPlugin(f"unknown {self.kind} {name!r} (known {self.kind}s: {known}; a plugin "
                                f"registers one under the entry-point group {self.group!r})")
        return ref

    def get(self, name: str) -> T:
        """The plugin registered as ``name``, loaded once."""
        ref = self.ref(name)
        key = (name, ref.value)
        with self._lock:
            if key not in self._loaded:
                try:
                    obj = ref.load()
                except (ImportError, AttributeError) as e:
                    raise UnknownPlugin(f"{self.kind} {name!r} is registered by {ref.origin} as {ref.value!r} "
                                        f"but cannot be loaded: {type(e).__name__}: {e}") from e
                self._loaded[key] = self._make(name, obj)
            return self._loaded[key]

    def find(self, name: str) -> T | None:
        """Like :meth:`get`, None when nothing is registered under ``name``."""
        return self.get(name) if name in self else None

    def __iter__(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self.get(name)
