"""The one reader and writer of a run's stored files under ``.coord/runs/<run>/``.

- ``plan.json``: the compiled plan the run was started with (and that board edits
  change); validated once per distinct content, since a 2,000-task plan costs ~20 ms.
- ``.coord/status.json``: the status snapshot coord writes at every render, which
  agent prompts and the report step read.

Checkpoints are the engine's (:mod:`coordinator.engine.run_state`), events are
:mod:`coordinator.core.events`'.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from coordinator.core.errors import CoordError, UsageError
from coordinator.core.io import atomic_write_bytes, atomic_write_json
from coordinator.core.plan import CompiledPlan
from coordinator.core.workspace import Workspace

PLAN_FILE = "plan.json"
_CACHE_SIZE = 4

_plans: OrderedDict[tuple[str, str], CompiledPlan] = OrderedDict()
_plans_lock = threading.Lock()


def load_run_plan(ws: Workspace, run_id: str) -> CompiledPlan:
    """The run's stored plan.

    The file is read every time and validation is cached by its digest, so a plan an edit
    or another process changed is never served stale. Callers must not mutate the returned
    plan (changes go through ``model_copy`` and :func:`save_run_plan`).
    """
    path = ws.run_dir(run_id) / PLAN_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"run {run_id!r} has no stored plan ({path} is missing)") from None
    key = (str(path), hashlib.sha256(raw).hexdigest())
    with _plans_lock:
        plan = _plans.get(key)
        if plan is not None:
            _plans.move_to_end(key)
            return plan
    try:
        plan = CompiledPlan.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError) as e:
        first = str(e).splitlines()[0]
        raise CoordError(f"run {run_id!r}: its stored plan {path} is damaged ({first}); "
                         "start a new run with `coord run PLAN --fresh`") from None
    with _plans_lock:
        _plans[key] = plan
        while len(_plans) > _CACHE_SIZE:
            _plans.popitem(last=False)
    return plan


def plan_file(ws: Workspace, run_id: str) -> Path:
    """Where the run's plan is stored."""
    return ws.run_dir(run_id) / PLAN_FILE


def save_run_plan(ws: Workspace, run_id: str, plan: CompiledPlan) -> None:
    """Store the run's plan atomically."""
    atomic_write_json(ws.run_dir(run_id) / PLAN_FILE, plan.model_dump(mode="json"))


def read_run_plan_data(ws: Workspace, run_id: str) -> dict[str, Any]:
    """The stored plan as plain JSON data, unvalidated (empty when there is none or it does not parse)."""
    try:
        data = orjson.loads((ws.run_dir(run_id) / PLAN_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_status_tasks(ws: Workspace, run_id: str) -> dict[str, Any]:
    """Task records as of coord's last render of this run (none when it last rendered another run)."""
    try:
        snap = orjson.loads(ws.status_file.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {"run_id": run_id, "tasks": {}}
    if not isinstance(snap, dict) or snap.get("run_id") != run_id:
        return {"run_id": run_id, "tasks": {}}
    return {"run_id": run_id, "tasks": snap.get("tasks") or {}}


JOURNAL_FILE = "sync_journal.json"


def write_journal(ws: Workspace, run_id: str, sync_id: str, files: dict[str, str],
                  appends: dict[str, list[str]]) -> None:
    """Record, before a board sync commits, the files it writes once the checkpoint holds its edits.

    ``files``: workspace-relative path → full new text; ``appends``: path → JSON lines to append
    (each carries the sync id, so a replay appends them once). The checkpoint's ``board_sync``
    is the commit point: :func:`replay_journal` finishes a committed sync and drops one that
    never committed, so a kill at any moment applies every edit exactly once.
    """
    atomic_write_json(ws.run_dir(run_id) / JOURNAL_FILE, {"id": sync_id, "files": files, "appends": appends})


def replay_journal(ws: Workspace, run_id: str, committed: str | None) -> bool:
    """Finish (``committed`` is its id) or drop the journal a killed sync left; True when one was finished."""
    path = ws.run_dir(run_id) / JOURNAL_FILE
    try:
        journal = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return False
    except orjson.JSONDecodeError:  # written atomically: a damaged one was never complete, so never committed
        path.unlink(missing_ok=True)
        return False
    finished = bool(journal.get("id") == committed)
    if finished:
        for rel, text in journal.get("files", {}).items():
            atomic_write_bytes(ws.root / rel, text.encode("utf-8"))
        for rel, lines in journal.get("appends", {}).items():
            target = ws.root / rel
            have = target.read_text(encoding="utf-8") if target.exists() else ""
            missing = [line for line in lines if line not in have]
            if missing:
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("a", encoding="utf-8") as fh:
                    fh.write("".join(line + "\n" for line in missing))
    path.unlink(missing_ok=True)
    return finished
