"""The workers setting: ``workers:`` in the workspace's ``coord.yaml``, and the pool's hook.

``workers: true`` (or a mapping, below) makes every coordinator of the workspace dispatch tasks to the
queue instead of running them itself; unset or ``false``, nothing changes. It lives in ``coord.yaml``
because every process that drives a run (``coord run``, ``coord resume``, ``coord approve`` continuing
one) must agree. Workers need the workspace's state on Postgres (``database:`` / ``COORD_DATABASE_URL``).

    workers:
      lease_s: 30        # a worker silent this long loses its tasks; they are dispatched again
      git_remote: origin # some workers take agent tasks through git (``coord worker --git URL``):
                         # they push the task's branch to this remote of the workspace repository,
                         # the coordinator fetches it from there and merges it after the gate
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from coordinator.core.database import settings_for
from coordinator.core.errors import ConfigError
from coordinator.core.roles import RoleDefinition
from coordinator.core.state import TaskRecord
from coordinator.core.yaml_io import load_file
from coordinator.engine.task_job import TaskJob

LEASE_S = 30.0
"""Seconds without a heartbeat after which a worker's tasks are dispatched again (default)."""
MIN_LEASE_S = 2.0
KNOWN_KEYS = ("lease_s", "git_remote")


@dataclass(frozen=True)
class WorkerSettings:
    """How a workspace's workers behave."""

    lease_s: float = LEASE_S
    """A worker that sends no heartbeat for this long is taken for dead: its tasks go back to the queue."""
    git_remote: str | None = None
    """The remote of the workspace repository that git workers push task branches to (None: no worker
    works through git, and tasks are not routed by how their files travel)."""

    @property
    def heartbeat_s(self) -> float:
        """How often a worker says it is alive (a third of the lease: two beats may be lost)."""
        return self.lease_s / 3


class Dispatcher(Protocol):
    """Hands a task to someone else and waits for the record they wrote (see :mod:`.dispatch`)."""

    def run(self, job: TaskJob, cancel: threading.Event,
            progress: Callable[[str, float | None], None]) -> TaskRecord | None:
        """The record of ``job`` once a worker finished it; None when ``cancel`` was set first."""
        ...


_cache: dict[tuple[str, int | None], WorkerSettings | None] = {}


def workers_settings(root: Path) -> WorkerSettings | None:
    """The workspace's workers setting; None when workers are off (the default)."""
    config = root / "coord.yaml"
    try:
        mtime: int | None = config.stat().st_mtime_ns
    except OSError:
        return None
    key = (str(root), mtime)
    if key not in _cache:
        _cache[key] = _read(config)
    return _cache[key]


def _read(config: Path) -> WorkerSettings | None:
    located = load_file(config)
    data = located.data if isinstance(located.data, dict) else {}
    value: Any = data.get("workers")
    if value is None or value is False:
        return None
    line = located.line_of(("workers",))
    if value is True:
        settings = WorkerSettings()
    elif isinstance(value, dict):
        unknown = sorted(set(value) - set(KNOWN_KEYS))
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} (known: {', '.join(KNOWN_KEYS)})", file=str(config),
                              path=f"workers.{unknown[0]}", line=located.line_of(("workers", unknown[0])))
        lease = value.get("lease_s", LEASE_S)
        if isinstance(lease, bool) or not isinstance(lease, int | float) or lease < MIN_LEASE_S:
            raise ConfigError(f"lease_s must be a number of seconds ≥ {MIN_LEASE_S:g}, got {lease!r}",
                              file=str(config), path="workers.lease_s", line=located.line_of(("workers", "lease_s")))
        remote = value.get("git_remote")
        if remote is not None and (not isinstance(remote, str) or not remote.strip() or remote.startswith("-")):
            raise ConfigError(f"git_remote must name a remote of the workspace repository (e.g. origin), got "
                              f"{remote!r}", file=str(config), path="workers.git_remote",
                              line=located.line_of(("workers", "git_remote")))
        settings = WorkerSettings(float(lease), remote.strip() if remote else None)
    else:
        raise ConfigError(f"workers must be true, false or a mapping ({', '.join(KNOWN_KEYS)}), got {value!r}",
                          file=str(config), path="workers", line=line)
    if settings_for(config.parent) is None:
        raise ConfigError("workers need the workspace's state in a Postgres database: set `database:` here or "
                          "COORD_DATABASE_URL (docs/workers.md)", file=str(config), path="workers", line=line)
    return settings


def dispatcher_for(root: Path, run_id: str, roles: dict[str, RoleDefinition]) -> Dispatcher | None:
    """The queue dispatcher of a run when the workspace has workers configured, else None (the pool runs
    tasks in its own threads)."""
    settings = workers_settings(root)
    if settings is None:
        return None
    from coordinator.engine.workers.dispatch import QueueDispatcher  # optional: procrastinate

    return QueueDispatcher(root, run_id, roles, settings.git_remote)

