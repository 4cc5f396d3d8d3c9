"""The one reader and writer of a run's stored documents under ``.coord/runs/<run>/``.

- ``run.json``: the run's record (plan, phase, when it started and ended).
- ``plan.json``: the compiled plan the run was started with (and that board edits
  change); validated once per distinct content, since a 2,000-task plan costs ~20 ms.
- ``.coord/status.json``: the status snapshot coord writes at every render, which
  agent prompts and the report step read.

Checkpoints are the engine's (:mod:`coordinator.engine.run_state`), events are
:mod:`coordinator.core.events`'. The run's documents are files of the workspace, or rows of its
database when one is configured (:mod:`coordinator.core.state_files`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from coordinator.core import state_files
from coordinator.core.errors import CoordError, UsageError
from coordinator.core.io import atomic_write_bytes
from coordinator.core.plan import CompiledPlan
from coordinator.core.workspace import STATE_DIR, Workspace

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
RUN_FILE = "run.json"
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
    raw = state_files.read_bytes(ws, path)
    if raw is None:
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
    state_files.write_json(ws, ws.run_dir(run_id) / PLAN_FILE, plan.model_dump(mode="json"))


def save_run_record(ws: Workspace, record: dict[str, Any]) -> None:
    """Store a run's record (``run.json``) atomically."""
    state_files.write_json(ws, ws.run_dir(record["run_id"]) / RUN_FILE, record)


def run_records(ws: Workspace) -> list[dict[str, Any]]:
    """Every run record of the workspace, oldest first (an unreadable one is skipped with a warning)."""
    out = []
    for path, raw in state_files.read_all(ws, ws.state_dir / "runs", f"*/{RUN_FILE}"):
        try:
            out.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            log.warning("ignoring unreadable run record %s", path)
    return sorted(out, key=lambda r: r.get("created_at", ""))


def unreadable_run_records(ws: Workspace) -> list[str]:
    """Run records that do not parse, as workspace-relative paths (what :func:`run_records` skips)."""
    out = []
    for path, raw in state_files.read_all(ws, ws.state_dir / "runs", f"*/{RUN_FILE}"):
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            out.append(Path(path).relative_to(ws.root).as_posix() if Path(path).is_relative_to(ws.root) else str(path))
    return out


def read_run_plan_data(ws: Workspace, run_id: str) -> dict[str, Any]:
    """The stored plan as plain JSON data, unvalidated (empty when there is none or it does not parse)."""
    try:
        data = orjson.loads(state_files.read_bytes(ws, ws.run_dir(run_id) / PLAN_FILE) or b"{}")
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
    state_files.write_json(ws, ws.run_dir(run_id) / JOURNAL_FILE, {"id": sync_id, "files": files, "appends": appends})


def has_journal(ws: Workspace, run_id: str) -> bool:
    """Whether a board sync of the run was killed mid-way (its journal is still there)."""
    return state_files.exists(ws, ws.run_dir(run_id) / JOURNAL_FILE)


def replay_journal(ws: Workspace, run_id: str, committed: str | None) -> bool:
    """Finish (``committed`` is its id) or drop the journal a killed sync left; True when one was finished."""
    path = ws.run_dir(run_id) / JOURNAL_FILE
    raw = state_files.read_bytes(ws, path)
    if raw is None:
        return False
    try:
        journal = orjson.loads(raw)
    except orjson.JSONDecodeError:  # written atomically: a damaged one was never complete, so never committed
        state_files.delete(ws, path)
        return False
    finished = bool(journal.get("id") == committed)
    if finished:
        for rel, text in journal.get("files", {}).items():
            if rel.startswith(f"{STATE_DIR}/"):  # coord's own documents: wherever the workspace keeps them
                state_files.write_bytes(ws, ws.root / rel, text.encode("utf-8"))
            else:
                atomic_write_bytes(ws.root / rel, text.encode("utf-8"))
        for rel, lines in journal.get("appends", {}).items():
            target = ws.root / rel
            have = target.read_text(encoding="utf-8") if target.exists() else ""
            missing = [line for line in lines if line not in have]
            if missing:
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("a", encoding="utf-8") as fh:
                    fh.write("".join(line + "\n" for line in missing))
    state_files.delete(ws, path)
    return finished
