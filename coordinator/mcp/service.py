"""What every ``coord mcp`` tool does: one engine call each, recorded in the event log, secrets masked.

The tools answer from the same engine functions as the CLI (``coord runs``, ``coord status``,
``coord review show``, ``coord costs``, ``coord approve``…) and the claim service; nothing here
decides anything the engine does not. Each call, successful or not, is one ``mcp_call`` event
with the client's name (from the MCP ``initialize`` request) and the arguments, masked and cut short.
Every answer, and every error message, goes through :func:`masked` before it leaves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from coordinator.core.errors import CoordError, UsageError
from coordinator.core.events import EventLog
from coordinator.core.run_store import load_run_plan
from coordinator.core.workspace import Workspace
from coordinator.engine import claim_service, task_claims
from coordinator.engine.background import continue_in_background
from coordinator.engine.budget_service import cost_totals
from coordinator.engine.decisions import Action, queue_decision
from coordinator.engine.ledger import GroupBy
from coordinator.engine.run_view import find_run, run_status, runs_overview
from reviews.records import find_review_record
from roles.definitions import roles_for
from roles.providers.secrets import redact
from task_boards.store import board_problems

T = TypeVar("T")
GROUPS: tuple[GroupBy, ...] = ("role", "agent", "task", "provider", "model")
RUN_FIELDS = ("run_id", "plan", "profile", "phase", "live_pid", "created_at", "finished_at", "problems")
ARG_CHARS = 200
"""Characters of one argument kept in the event log."""


class ToolFailure(Exception):
    """A call the engine refused or could not do; the message (masked) goes back to the client."""


@dataclass(frozen=True)
class Caller:
    """Who is calling: the MCP client as it named itself, and this server's identity (``--as``) if any."""

    client: str
    session: str
    """A short id of the client's connection (one stdio server, or one HTTP session)."""
    identity: str | None = None

    @property
    def holder(self) -> str:
        """The name claims are held under."""
        return f"{self.identity} via {self.client}" if self.identity else self.client


def masked(value: Any) -> Any:
    """``value`` with configured secrets (keys, tokens, key-shaped strings) masked in every string."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {masked(k) if isinstance(k, str) else k: masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Dataclasses (and lists of them) as dicts, ready for JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class CoordService:
    """The tools' work on one workspace."""

    def __init__(self, workspace: Path, *, lease_s: float = task_claims.LEASE_S) -> None:
        self.ws = Workspace.at(workspace)
        self.lease_s = lease_s
        self._logs: dict[str, EventLog] = {}
        self._learn_secrets()

    def _learn_secrets(self) -> None:
        """Resolve the latest run's roles once, so the keys its bindings name (an ``env_file``'s too) are
        registered with the redactor before any answer goes out."""
        with contextlib.suppress(CoordError):  # no run yet, or a plan that no longer loads: nothing to learn
            roles_for(self.ws, load_run_plan(self.ws, find_run(self.ws, None)["run_id"]))

    # -- the call wrapper ------------------------------------------------------------------------------------

    def call(self, caller: Caller, tool: str, args: Mapping[str, Any], fn: Callable[[], T]) -> T:
        """Run one tool: record it in the event log, mask what goes back, turn refusals into :class:`ToolFailure`."""
        started = time.monotonic()
        try:
            result = fn()
        except CoordError as e:
            self.record(caller, tool, args, None, error=str(e), started=started)
            raise ToolFailure(redact(str(e))) from None
        except OSError as e:
            msg = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
            self.record(caller, tool, args, None, error=msg, started=started)
            raise ToolFailure(redact(msg)) from None
        out: T = masked(_plain(result))
        self.record(caller, tool, args, out, error=None, started=started)
        return out

    def record_refused(self, caller: Caller, tool: str, args: Mapping[str, Any], why: str) -> None:
        """Record a call that was refused before it reached coord (a tool the server does not offer)."""
        self.record(caller, tool, args, None, error=why, started=time.monotonic())

    def record(self, caller: Caller, tool: str, args: Mapping[str, Any], result: Any, *, error: str | None,
               started: float) -> None:
        """One ``mcp_call`` event: the tool, the client, its arguments (masked, cut short), how it went."""
        run = (result.get("run_id") if isinstance(result, dict) else None) or args.get("run") or ""
        log = self._logs.get(run)
        if log is None:
            log = self._logs[run] = EventLog.of(self.ws, run)
        shown = {k: _short(v) for k, v in args.items() if v is not None}
        log.emit("mcp_call", tool=tool, client=caller.client, session=caller.session,
                 identity=caller.identity, args=masked(shown), ok=error is None,
                 error=redact(error) if error else None, ms=round(1000 * (time.monotonic() - started), 1))

    # -- read -----------------------------------------------------------------------------------------------

    def list_runs(self) -> dict[str, Any]:
        """Every run of the workspace, oldest first."""
        return {"runs": [{k: r.get(k) for k in RUN_FIELDS} for r in runs_overview(self.ws)]}

    def run_status(self, run: str | None) -> dict[str, Any]:
        """A run's tasks, gates, deferred items, problems, budget and claims, from its checkpoint."""
        st = run_status(self.ws, run)
        st["board_problems"] = board_problems(self.ws)
        st["claims"] = [_claim_line(c) for c in task_claims.list_claims(self.ws, st["run_id"])]
        return st

    def my_tasks(self, role: str, run: str | None) -> dict[str, Any]:
        """The tasks of one role in a run: status, what they need, their checks, who holds them."""
        st = run_status(self.ws, run)
        plan = load_run_plan(self.ws, st["run_id"])
        roles = roles_for(self.ws, plan)
        if role not in roles:
            raise UsageError(f"run {st['run_id']} has no role {role!r} (roles: {', '.join(sorted(roles))})")
        claims = {c["task"]: c for c in task_claims.list_claims(self.ws, st["run_id"])}
        tasks = []
        for task in plan.tasks_of_role(role):
            rec = st["tasks"].get(task.id, {})
            claim = claims.get(task.id)
            tasks.append({
                "id": task.id, "title": task.title, "status": rec.get("status", "pending"),
                "kind": "step" if task.run else "command" if task.command is not None else "assignment",
                "needs": task.needs, "blocked_by_gates": task.blocked_by,
                "accept": [c.describe() for c in task.accept],
                "error": rec.get("error"), "reason": rec.get("reason"), "notes": rec.get("notes") or [],
                "claim": _claim_line(claim) if claim is not None else None})
        r = roles[role]
        return {"run_id": st["run_id"], "phase": st["phase"], "role": role, "agent": r.agent, "driver": r.driver,
                "tasks": tasks}

    def execute_now(self, role: str, run: str | None) -> dict[str, Any]:
        """The EXECUTE_NOW board file of a role, as coord last rendered it."""
        record = find_run(self.ws, run)
        roles = roles_for(self.ws, load_run_plan(self.ws, record["run_id"]))
        if role not in roles:
            raise UsageError(f"run {record['run_id']} has no role {role!r} (roles: {', '.join(sorted(roles))})")
        path = self.ws.boards / f"{roles[role].board_name}_EXECUTE_NOW.md"
        rel = path.relative_to(self.ws.root).as_posix()
        if not path.is_file():
            return {"run_id": record["run_id"], "role": role, "file": rel, "text": None,
                    "message": f"{rel} is not there yet: coord writes it when a run renders its boards"}
        return {"run_id": record["run_id"], "role": role, "file": rel, "text": path.read_text(encoding="utf-8")}

    def review_record(self, gate: str, run: str | None) -> dict[str, Any]:
        """A gate's review record: its markdown and the measured criteria, score, grade and verdict."""
        rid = None if run is None else find_run(self.ws, run)["run_id"]
        md, rec = find_review_record(self.ws, gate, rid)
        data = {k: v for k, v in rec.items() if not k.startswith("_")}
        return {"run_id": rec.get("run"), "gate": gate, "file": md.relative_to(self.ws.root).as_posix(),
                "markdown": md.read_text(encoding="utf-8"), "record": data}

    def costs(self, by: list[str], run: str | None, all_runs: bool) -> dict[str, Any]:
        """Totals of every recorded LLM call, CLI run and fine-tuning job, grouped."""
        bad = [g for g in by if g not in GROUPS]
        if bad or not by:
            raise UsageError(f"by must be some of {', '.join(GROUPS)}, got {', '.join(bad) or 'nothing'}")
        rid = None if all_runs else find_run(self.ws, run)["run_id"]
        groups: list[GroupBy] = [g for g in GROUPS if g in by]
        totals = cost_totals(self.ws, rid, groups)
        return {"run_id": rid, "totals": {g: [_plain(t) for t in rows] for g, rows in totals.items()}}

    # -- act as an agent ------------------------------------------------------------------------------------

    def claim_task(self, caller: Caller, role: str, task: str, run: str | None) -> dict[str, Any]:
        """Take a task in hand for this session; the run waits for its result."""
        view = claim_service.claim_task(self.ws, task, caller.holder, role=role, run_id=run, lease_s=self.lease_s)
        out = _plain(view)
        out["claim"] = _claim_line(view.claim)
        out["next"] = ("do the work in the workspace, then report_result with a summary and the files you "
                       "changed; coord measures the accept checks on them")
        return dict(out)

    def add_note(self, caller: Caller, task: str, text: str, run: str | None) -> dict[str, Any]:
        """A note on a task this session holds."""
        rec = claim_service.add_note(self.ws, task, caller.holder, text, run_id=run)
        return {"run_id": rec["run_id"], "claim": _claim_line(rec), "notes": rec["notes"]}

    def report_result(self, caller: Caller, task: str, summary: str, files: list[str], run: str | None,
                      attempt: int | None, continue_run: bool) -> dict[str, Any]:
        """Report the work on a held task; it is measured, and handed to the run when its checks pass."""
        # a paused run is continued in a process of its own: the call answers now, not when the run stops
        view = claim_service.report_result(self.ws, task, caller.holder, summary, files, run_id=run,
                                           attempt=attempt, continue_run=False)
        out: dict[str, Any] = _plain(view)
        report = view.report
        out["accepted"] = report["accepted"]
        if view.handed_to == "stored" and continue_run:
            going = continue_in_background(self.ws, view.run_id)
            out["handed_to"] = "background run" if going.pid is not None else "stored"
            out["hints"] = [going.describe(), "run_status shows how it goes"]
        if not report["accepted"]:
            out["next"] = (f"coord measured {len(report['failures'])} failing check(s) (when: {report['measured_at']}); "
                           f"fix the work and report again (attempt {report['attempt'] + 1})")
        return out

    def release_task(self, caller: Caller, task: str, run: str | None) -> dict[str, Any]:
        """Give a held task back: its driver does it."""
        rec = claim_service.release_task(self.ws, task, caller.holder, run_id=run)
        return {"run_id": rec["run_id"], "claim": _claim_line(rec)}

    # -- act as a person ------------------------------------------------------------------------------------

    def decide(self, caller: Caller, gate: str, action: Action, note: str | None, grade: str | None,
               run: str | None) -> dict[str, Any]:
        """A person's decision on a waiting gate, through the same service as ``coord approve``."""
        if caller.identity is None:  # the server registers these tools only with an identity
            raise UsageError("decisions need the server's identity (coord mcp --allow-decisions --as NAME)")
        run_id, decision = queue_decision(self.ws, gate, action, note=note, grade=grade, by=caller.identity,
                                          run_id=run)
        going = continue_in_background(self.ws, run_id)  # answer now; the run takes the decision on its own
        return {"run_id": run_id, "gate_id": gate, "action": action, "by": decision["by"], "at": decision["at"],
                "note": decision["note"], "grade": decision["grade"], "decision": decision["id"], "queued": True,
                "continuing": going.describe(), "next": "run_status shows the gate and the run as they go"}


def _claim_line(rec: task_claims.ClaimRecord) -> dict[str, Any]:
    """A claim as tools show it (the lease as a time, not seconds since the epoch)."""
    lease = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec["lease_until"]))
    return {"task": rec["task"], "holder": rec["holder"], "status": rec["status"],
            "claimed_at": rec["claimed_at"], "lease_until": lease if rec["status"] == "held" else None,
            "in_hand": task_claims.in_hand(rec), "reports": len(rec["reports"]),
            "last_report": rec["reports"][-1] if rec["reports"] else None, "notes": len(rec["notes"]),
            **({"ended": rec["ended"]} if "ended" in rec else {})}


def _short(value: Any) -> Any:
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, int | float | bool) else value
    if isinstance(text, str) and len(text) > ARG_CHARS:
        return text[:ARG_CHARS] + "…"
    return text

