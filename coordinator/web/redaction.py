"""Keep secrets off the dashboard: every text it shows passes through one :class:`Scrubber`.

The rules are coord's own (:mod:`roles.providers.redact`): values of secret-named environment
variables, registered keys and key-shaped strings. On top of those the dashboard masks the values
of every variable a role binding names as its key (``api_key_env`` may be any name, say
``TEAM_LLM_CREDENTIAL``), the values in the env files roles name, the dashboard's own token, and
the defaults each provider reads — whether or not a run has loaded them in this process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coordinator.core.errors import CoordError
from coordinator.core.run_store import load_run_plan
from coordinator.core.workspace import Workspace
from coordinator.engine.run_view import list_runs
from roles.definitions import load_workspace_roles
from roles.providers.config import DEFAULT_KEY_ENV, read_env_file
from roles.providers.redact import Redactor

log = logging.getLogger(__name__)


def _bindings(ws: Workspace) -> list[dict[str, Any]]:
    """Every role binding the workspace's runs and its ``coord.yaml`` declare, as plain mappings."""
    out: list[dict[str, Any]] = []
    try:
        out += [dict(b) for b in load_workspace_roles(ws.config).values() if isinstance(b, dict)]
    except CoordError as e:  # a broken coord.yaml names no key: the defaults still apply
        log.warning("dashboard: cannot read role bindings of %s: %s", ws.config, e)
    for record in list_runs(ws):
        try:
            plan = load_run_plan(ws, record["run_id"])
        except (CoordError, OSError):
            continue
        out += [b.model_dump() for b in plan.roles.values()]
    return out


def secret_values(ws: Workspace, extra: Iterable[str] = ()) -> list[str]:
    """Values to mask beyond the shared rules: keys the role bindings name, env files' values, ``extra``."""
    names = {n for n in DEFAULT_KEY_ENV.values() if n}
    files: set[Path] = set()
    env_file = os.environ.get("COORD_ENV_FILE")
    if env_file:
        files.add(Path(env_file))
    for binding in _bindings(ws):
        if binding.get("api_key_env"):
            names.add(str(binding["api_key_env"]))
        if binding.get("env_file"):
            path = Path(str(binding["env_file"])).expanduser()
            files.add(path if path.is_absolute() else ws.root / path)
    values = [os.environ[n] for n in sorted(names) if os.environ.get(n)]
    for path in sorted(files):
        try:
            values += [v for v in read_env_file(path).values() if v]
        except CoordError:
            continue  # a missing env file holds nothing to mask
    return [*values, *(v for v in extra if v)]


class Scrubber:
    """Masks secrets in text and in nested data (dicts, lists, strings) before it is shown."""

    def __init__(self, ws: Workspace, extra: Iterable[str] = ()) -> None:
        self.ws = ws
        self.extra = tuple(extra)
        self._key: tuple[float, int] | None = None
        self._redactor = Redactor.from_env(extra=self.extra)

    def _current(self) -> Redactor:
        """The redactor, rebuilt when ``coord.yaml`` or the set of runs changed (new bindings)."""
        try:
            mtime = self.ws.config.stat().st_mtime
        except OSError:
            mtime = 0.0
        runs_dir = self.ws.state_dir / "runs"
        count = sum(1 for _ in runs_dir.iterdir()) if runs_dir.is_dir() else 0
        if self._key != (mtime, count):
            self._redactor = Redactor.from_env(extra=secret_values(self.ws, self.extra))
            self._key = (mtime, count)
        return self._redactor

    def text(self, value: str) -> str:
        """``value`` with every secret replaced by ``[REDACTED:<name>]``."""
        return self._current()(value)

    def deep(self, value: Any) -> Any:
        """A copy of ``value`` with every string in it (keys included) scrubbed."""
        redactor = self._current()

        def walk(v: Any) -> Any:
            if isinstance(v, str):
                return redactor(v)
            if isinstance(v, dict):
                return {walk(k) if isinstance(k, str) else k: walk(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [walk(x) for x in v]
            return v

        return walk(value)
