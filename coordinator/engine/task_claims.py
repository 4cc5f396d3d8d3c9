"""Claims: an interactive session takes an assignment in hand instead of its driver.

An agent a person runs interactively (Claude Code, Codex, Cursor, through ``coord mcp``) *claims*
a task; the run then does not start the task's driver but waits for the session's result. A claim
is a lease: it lasts ``lease_s`` seconds from its last sign of life (the claim, a note, a report),
and a lapsed claim is let go, so an abandoned session never holds a run up: the driver runs the
task after all. A report is measured, never believed: coord measures the files it names and runs
the task's accept checks on it (:func:`coordinator.engine.accept.accept_failures`, the function that
judges a driver's result); a failing report goes back to the session with what was measured, and
the session can fix the work and report again. Each report is keyed by (run, task, attempt), so a
client that sends the same report twice records it once.

Storage: one JSON record per claimed task, ``.coord/runs/<run>/claims/<task>.json``, written
atomically, every change made under the run's claims lock (``claims/.lock``, an ``flock``), so the
process that drives the run and any number of MCP servers agree; records survive a restart of
either. While a task's driver runs it, a marker ``claims/<task>.driver`` names the process, so a
claim cannot land on work a driver already does. The same shape fits a worker queue in a database:
a row per (run, task) with a holder and a lease, taken with a conditional update, and reports keyed
by (run, task, attempt).

This module is the store. The run's side (the pool's hook, waiting for a session) is
:mod:`coordinator.engine.session_driver`; the session's side (which tasks may be claimed, handing a
paused run the result) is :mod:`coordinator.engine.claim_service`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

import orjson

from coordinator.core.errors import UsageError
from coordinator.core.events import EventKind, EventLog, now_iso
from coordinator.core.io import atomic_write_json, sha256_file
from coordinator.core.plan import CompiledTask
from coordinator.core.ports import TaskOutcome
from coordinator.core.state import ArtifactRecord
from coordinator.core.workspace import Workspace, lock_holder
from coordinator.engine.accept import accept_failures
from roles.providers.secrets import redact

SCHEMA_VERSION = 1
"""Version of the claim record's layout."""
LEASE_S = 1800.0
"""How long a claim lasts without a sign of life from its session (default)."""
POLL_S = 0.25
"""How often the run looks at a claimed task's record while it waits for the session."""
MAX_SUMMARY = 20_000
"""Characters of a report's summary kept (the rest is cut, and the record says so)."""

ClaimStatus = Literal["held", "reported", "taken", "released", "expired"]
"""``held``: the session works on it; ``reported``: a result passed its checks and waits for the run;
``taken``: the run took that result; ``released`` / ``expired``: let go (the driver may run it)."""
IN_HAND: frozenset[str] = frozenset({"held", "reported"})


class SessionReport(TypedDict):
    """One result a session reported, as coord measured it."""

    attempt: int
    """With the run and the task, the report's idempotency key."""
    at: str
    by: str
    summary: str
    named: list[str]
    """The files as the session named them."""
    files: list[ArtifactRecord]
    """The files the session named, measured by coord (path, sha256, bytes)."""
    accepted: bool
    failures: list[str]
    """Each failed check with what was measured; a named file that is missing counts as one."""
    measured_at: Literal["report", "take"]
    """When the failures were measured: on the report, or again when the run took it."""


class ClaimRecord(TypedDict):
    """A task in the hands of an interactive session (``.coord/runs/<run>/claims/<task>.json``)."""

    schema_version: int
    run_id: str
    task: str
    claim_id: str
    holder: str
    """Who holds it: the MCP client's name (``claude-code``), or ``NAME via client`` when the server has an identity."""
    status: ClaimStatus
    claimed_at: str
    lease_s: float
    lease_until: float
    """Seconds since the epoch at which the claim lapses unless renewed (a report or note renews it)."""
    notes: list[str]
    reports: list[SessionReport]
    """Every report on this task in this run, across claims: attempts number on."""
    taken: NotRequired[dict[str, Any]]
    """When the run took the result: ``{"at": …, "attempt": …}``."""
    ended: NotRequired[str]
    """Why a claim was let go."""


def claims_dir(ws: Workspace, run_id: str) -> Path:
    """Where a run's claims live."""
    return ws.run_dir(run_id) / "claims"


def _safe(task_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in task_id)


def _path(ws: Workspace, run_id: str, task_id: str) -> Path:
    return claims_dir(ws, run_id) / f"{_safe(task_id)}.json"


def _marker(ws: Workspace, run_id: str, task_id: str) -> Path:
    return claims_dir(ws, run_id) / f"{_safe(task_id)}.driver"


@contextlib.contextmanager
def _locked(ws: Workspace, run_id: str) -> Iterator[None]:
    """The run's claims lock, held for one read-modify-write (never while measuring or waiting)."""
    directory = claims_dir(ws, run_id)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def load(ws: Workspace, run_id: str, task_id: str) -> ClaimRecord | None:
    """The claim record of a task (None when it was never claimed or cannot be read)."""
    try:
        rec: ClaimRecord = orjson.loads(_path(ws, run_id, task_id).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return rec


def list_claims(ws: Workspace, run_id: str) -> list[ClaimRecord]:
    """Every claim record of a run, by task id."""
    directory = claims_dir(ws, run_id)
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            out.append(orjson.loads(path.read_bytes()))
        except orjson.JSONDecodeError:
            continue
    return out


def _save(ws: Workspace, rec: ClaimRecord) -> None:
    atomic_write_json(_path(ws, rec["run_id"], rec["task"]), dict(rec))


def _emit(ws: Workspace, run_id: str, kind: EventKind, **fields: Any) -> None:
    EventLog.of(ws, run_id).emit(kind, **fields)


def lapsed(rec: ClaimRecord, now: float | None = None) -> bool:
    """A held claim whose lease has run out (a reported result never lapses: it was measured)."""
    return rec["status"] == "held" and rec["lease_until"] <= (time.time() if now is None else now)


def in_hand(rec: ClaimRecord | None, now: float | None = None) -> bool:
    """True while a session holds the task (held and within its lease, or reported and not yet taken)."""
    return rec is not None and rec["status"] in IN_HAND and not lapsed(rec, now)


def driver_pid(ws: Workspace, run_id: str, task_id: str) -> int | None:
    """The process whose driver runs the task right now: the one its marker names, if that process still
    holds the workspace (a marker a killed process left behind names nobody)."""
    try:
        pid = int(_marker(ws, run_id, task_id).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    holder = lock_holder(ws)
    return pid if holder is not None and holder.pid == pid else None


def make_claim(ws: Workspace, run_id: str, task: CompiledTask, holder: str, lease_s: float = LEASE_S) -> ClaimRecord:
    """Put ``task`` in ``holder``'s hands (or renew their claim); :class:`UsageError` when another session
    holds it or its driver runs it now. Which tasks may be claimed at all is the service's business."""
    with _locked(ws, run_id):
        rec = load(ws, run_id, task.id)
        now = time.time()
        if in_hand(rec, now) and rec is not None:
            if rec["holder"] != holder:
                raise UsageError(f"task {task.id!r} is in the hands of {rec['holder']} (claimed {rec['claimed_at']}, "
                                 f"{_lease_text(rec, now)}); it is free again if they release it or the lease runs out")
            rec["lease_until"], rec["lease_s"] = now + lease_s, lease_s
            _save(ws, rec)
            return rec
        pid = driver_pid(ws, run_id, task.id)
        if pid is not None:
            raise UsageError(f"task {task.id!r} is being done by its driver now (process {pid}); a claim can "
                             "take a task before it starts, or one that waits for a person")
        rec = ClaimRecord(schema_version=SCHEMA_VERSION, run_id=run_id, task=task.id, claim_id=uuid.uuid4().hex,
                          holder=holder, status="held", claimed_at=now_iso(), lease_s=lease_s,
                          lease_until=now + lease_s, notes=[], reports=list(rec["reports"]) if rec else [])
        _save(ws, rec)
    _emit(ws, run_id, "claim_made", task=task.id, holder=holder, claim=rec["claim_id"], lease_s=lease_s)
    return rec


def _lease_text(rec: ClaimRecord, now: float) -> str:
    if rec["status"] == "reported":
        return "its result is reported and waits for the run"
    return f"lease ends in {max(0, round(rec['lease_until'] - now))} s"


def _held_by(ws: Workspace, run_id: str, task_id: str, holder: str, now: float) -> ClaimRecord:
    """The claim ``holder`` holds on the task (lease not run out), else a :class:`UsageError` saying why not."""
    rec = load(ws, run_id, task_id)
    if rec is None:
        raise UsageError(f"task {task_id!r} is not claimed: claim it first (claim_task)")
    if rec["holder"] != holder:
        raise UsageError(f"task {task_id!r} is claimed by {rec['holder']}, not by {holder}")
    if lapsed(rec, now) or rec["status"] == "expired":
        raise UsageError(f"your claim on task {task_id!r} ran out (lease of {rec['lease_s']:g} s without a sign "
                         "of life) and was let go; claim it again to go on")
    if rec["status"] not in IN_HAND:
        what = {"taken": "the run already took your result", "released": "you released it"}.get(rec["status"], "")
        raise UsageError(f"task {task_id!r} is no longer in your hands: {what or rec['status']}")
    return rec


def add_note(ws: Workspace, run_id: str, task_id: str, holder: str, text: str) -> ClaimRecord:
    """Keep a note of the session's on the task it holds (shown with its result); renews the lease."""
    text = redact(text.strip())
    if not text:
        raise UsageError("a note needs some text")
    with _locked(ws, run_id):
        now = time.time()
        rec = _held_by(ws, run_id, task_id, holder, now)
        rec["notes"].append(f"{text} (note from {holder} at {now_iso()})")
        rec["lease_until"] = now + rec["lease_s"]
        _save(ws, rec)
    _emit(ws, run_id, "claim_noted", task=task_id, holder=holder)
    return rec


def release(ws: Workspace, run_id: str, task_id: str, holder: str, why: str = "released by its holder") -> ClaimRecord:
    """Let go of a claim: the task's driver runs it when the run gets to it."""
    with _locked(ws, run_id):
        rec = _held_by(ws, run_id, task_id, holder, time.time())
        rec["status"], rec["ended"] = "released", why
        _save(ws, rec)
    _emit(ws, run_id, "claim_released", task=task_id, holder=holder, reason=why)
    return rec


def measure_files(ws: Workspace, files: list[str]) -> tuple[list[ArtifactRecord], list[str]]:
    """The named files as coord measures them (workspace-relative path, sha256, bytes) and the problems:
    a file that is missing, not a file, or outside the workspace."""
    artifacts: list[ArtifactRecord] = []
    problems: list[str] = []
    for name in _names(files):
        path = (ws.root / name).resolve()
        if not path.is_relative_to(ws.root):
            problems.append(f"reported file {name!r} is outside the workspace")
        elif not path.is_file():
            problems.append(f"reported file {name!r} " + ("is not a file" if path.exists() else "does not exist"))
        else:
            rel = path.relative_to(ws.root).as_posix()
            artifacts.append(ArtifactRecord(path=rel, sha256=sha256_file(path), bytes=path.stat().st_size, rows=None))
    return artifacts, problems


def session_outcome(rec: ClaimRecord, report: SessionReport) -> TaskOutcome:
    """The task's outcome from a session's report: what the run records, and what its checks measure."""
    head = (f"done in an interactive session by {rec['holder']} (coord mcp), report attempt {report['attempt']}")
    notes = [head, *([report["summary"]] if report["summary"] else []), *rec["notes"]]
    return TaskOutcome(status="done", metrics={"files_reported": len(report["files"]),
                                               "report_attempt": report["attempt"]},
                       artifacts=[dict(a) for a in report["files"]], notes=notes)


@dataclass
class Measured:
    """A report as measured, before it is recorded."""

    report: SessionReport
    replayed: bool = False
    """The same report (same attempt) was recorded before: nothing new was recorded."""


def record_report(ws: Workspace, run_id: str, task: CompiledTask, holder: str, summary: str, files: list[str],
                  attempt: int | None = None) -> Measured:
    """Measure a session's result on the task it holds and record it: accepted (the run takes it), or
    with the failures the session has to fix. ``attempt``: the report's number, for a client that may
    send one report twice (the first is kept and returned)."""
    summary = redact(summary.strip())
    cut = len(summary) > MAX_SUMMARY
    summary = summary[:MAX_SUMMARY] + ("\n[summary cut at 20,000 characters]" if cut else "")
    with _locked(ws, run_id):
        rec, earlier = _replay_or_held(ws, run_id, task.id, holder, attempt, summary, files)
        if earlier is not None:
            return Measured(earlier, replayed=True)
        number = len(rec["reports"]) + 1
    if attempt is not None and attempt != number:
        raise UsageError(f"report attempt {attempt} of task {task.id!r} does not follow on: the next is {number}")
    artifacts, problems = measure_files(ws, files)
    report = SessionReport(attempt=number, at=now_iso(), by=holder, summary=summary, named=_names(files),
                           files=artifacts,
                           accepted=False, failures=[], measured_at="report")
    failures = problems + accept_failures(ws.root, task, session_outcome(rec, report))
    report["failures"], report["accepted"] = [redact(f) for f in failures], not failures
    with _locked(ws, run_id):  # measured outside the lock (checks may run commands); still ours?
        rec = _held_by(ws, run_id, task.id, holder, time.time())
        if len(rec["reports"]) + 1 != number:
            raise UsageError(f"another report on task {task.id!r} was recorded meanwhile; report again")
        rec["reports"].append(report)
        rec["lease_until"] = time.time() + rec["lease_s"]
        if report["accepted"]:
            rec["status"] = "reported"
        _save(ws, rec)
    _emit(ws, run_id, "claim_reported", task=task.id, holder=holder, attempt=number, accepted=report["accepted"],
          failures=report["failures"], files=[a["path"] for a in artifacts])
    return Measured(report)


def _replay_or_held(ws: Workspace, run_id: str, task_id: str, holder: str, attempt: int | None, summary: str,
                    files: list[str]) -> tuple[ClaimRecord, SessionReport | None]:
    """The claim and the earlier report when this one repeats it (same attempt), else the claim the holder
    holds and None."""
    rec = load(ws, run_id, task_id)
    if attempt is not None and rec is not None and 0 < attempt <= len(rec["reports"]):
        earlier = rec["reports"][attempt - 1]
        if earlier["by"] == holder and earlier["summary"] == summary \
                and earlier["named"] == _names(files):
            return rec, earlier
        raise UsageError(f"report attempt {attempt} of task {task_id!r} was already recorded with other content; "
                         f"the next attempt is {len(rec['reports']) + 1}")
    held = _held_by(ws, run_id, task_id, holder, time.time())
    if held["status"] == "reported":
        raise UsageError(f"your result for task {task_id!r} (attempt {len(held['reports'])}) passed its checks and "
                         "waits for the run to take it; release the task to withdraw it")
    return held, None


def _names(files: list[str]) -> list[str]:
    return list(dict.fromkeys(f.strip() for f in files if f.strip()))


def start(ws: Workspace, run_id: str, task_id: str, driver: str) -> ClaimRecord | None:
    """The run is about to do a task: the claim that keeps it in a session's hands, or None, and then the
    task's driver is marked as running it (so no claim lands on work under way). A lapsed claim is let go."""
    with _locked(ws, run_id):
        rec = load(ws, run_id, task_id)
        if rec is not None and lapsed(rec):
            _expire(ws, rec)
        if in_hand(rec):
            return rec
        mark_driver(ws, run_id, task_id, driver)
    return None


def mark_driver(ws: Workspace, run_id: str, task_id: str, driver: str) -> None:
    """Say that this process's ``driver`` does the task now (see :func:`driver_pid`)."""
    _marker(ws, run_id, task_id).write_text(f"{os.getpid()} {driver} {now_iso()}\n")


def unmark_driver(ws: Workspace, run_id: str, task_id: str) -> None:
    """The driver is done with the task."""
    _marker(ws, run_id, task_id).unlink(missing_ok=True)


def current(ws: Workspace, run_id: str, task_id: str) -> ClaimRecord | None:
    """The claim that holds the task now (held within its lease, or reported), else None; a claim whose
    lease ran out is let go here (event ``claim_expired``)."""
    with _locked(ws, run_id):
        rec = load(ws, run_id, task_id)
        if rec is None or rec["status"] not in IN_HAND:
            return None
        if lapsed(rec):
            _expire(ws, rec)
            return None
        return rec


def settle(ws: Workspace, rec: ClaimRecord, attempt: int, failures: list[str]) -> bool:
    """The run measured the reported result again: take it (True), or send it back to the session with the
    failures. False too when the report was withdrawn meanwhile."""
    run_id, task_id = rec["run_id"], rec["task"]
    with _locked(ws, run_id):
        now_rec = load(ws, run_id, task_id)
        if now_rec is None or now_rec["claim_id"] != rec["claim_id"] or now_rec["status"] != "reported":
            return False
        if failures:
            last = now_rec["reports"][-1]
            last["accepted"], last["failures"], last["measured_at"] = False, [redact(f) for f in failures], "take"
            now_rec["status"], now_rec["lease_until"] = "held", time.time() + now_rec["lease_s"]
        else:
            now_rec["status"], now_rec["taken"] = "taken", {"at": now_iso(), "attempt": attempt}
        _save(ws, now_rec)
    if failures:
        _emit(ws, run_id, "claim_reported", task=task_id, holder=rec["holder"], attempt=attempt, accepted=False,
              failures=failures, measured_at="take")
        return False
    _emit(ws, run_id, "claim_taken", task=task_id, holder=rec["holder"], attempt=attempt)
    return True


def _expire(ws: Workspace, rec: ClaimRecord) -> None:
    """Let go of a claim whose lease ran out (under the claims lock)."""
    rec["status"], rec["ended"] = "expired", f"no sign of life for {rec['lease_s']:g} s"
    _save(ws, rec)
    _emit(ws, rec["run_id"], "claim_expired", task=rec["task"], holder=rec["holder"], lease_s=rec["lease_s"])
