"""Render boards, EXECUTE_NOW files, the TEAM_COORDINATION status block, review records and the status snapshot.

Boards are merged, never clobbered: coord rewrites only its marked sections,
and a board a person edited since coord last wrote it is merged three ways
(last render, current file, new render; see :mod:`task_boards.merge`). When
the merge is impossible the file is left alone and the conflict is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import xxhash

from coordinator.core.events import now_iso
from coordinator.core.io import atomic_write_json
from coordinator.core.plan import CompiledPlan, CompiledTask
from coordinator.core.ports import ListenerResult
from coordinator.core.provenance import board_line
from coordinator.core.roles import RoleDefinition
from coordinator.core.state import RunState
from coordinator.core.workspace import Workspace
from reviews.gate_status import gate_status_text, needs_person, window_open
from reviews.llm_review import opinion_line
from roles.task_view import inputs_of, task_view
from task_boards.locks import board_lock
from task_boards.markers import MarkerError, replace_block
from task_boards.merge import BoardMerge, merge_board
from task_boards.saves import NotUtf8, read_settled, replace_if_unchanged
from task_boards.store import load_base, load_notices, load_problems, save_base, save_problems
from templates import fmt_num, relative_link, render

log = logging.getLogger(__name__)

WRITE_TRIES = 5
"""Merges a board write tries while people keep saving it, before it reports the board as changing."""
TEAM_HEADER = """# Team coordination

This file is the team's single source of truth. Write anything you like outside
the status block: coord only rewrites the text between its markers.

"""


class BoardListener:
    """The boards as a state listener (registered as ``boards`` under ``coord.listeners``)."""

    def on_state(self, ws: Workspace, plan: CompiledPlan, roles: dict[str, RoleDefinition],
                 state: Mapping[str, Any], decided_gates: list[str]) -> ListenerResult:
        """Render every board, EXECUTE_NOW file and the team status block from ``state``."""
        return render_all(ws, plan, roles, state)  # type: ignore[arg-type]


class BoardWriter:
    """Writes coord-owned files under per-file locks, merging with people's edits."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def write(self, path: Path, text: str, result: ListenerResult) -> None:
        """Write a fresh render of ``path``, merged with the person's edits since coord's last write.

        A board a person saved in another encoding than UTF-8 is left as it is and reported.
        """
        try:
            self._write(path, text, result)
        except NotUtf8 as e:
            result.conflicts.append(str(e))

    def _write(self, path: Path, text: str, result: ListenerResult) -> None:
        rel = path.relative_to(self.ws.root).as_posix()
        with board_lock(self.ws, path):
            current = on_disk = read_settled(path, rel)
            for _ in range(WRITE_TRIES):
                base = load_base(self.ws, path)
                merged = BoardMerge(text, text) if current is None else merge_board(base, current, text, file=rel)
                if merged.text is None or merged.base is None:
                    result.conflicts.append(merged.conflict or f"{rel}: merge impossible")
                    return
                if merged.text != on_disk:
                    done = replace_if_unchanged(path, merged.text, on_disk)
                    if not done.ok:  # a person saved meanwhile: merge again with their new text
                        current = on_disk = read_settled(path, rel)
                        continue
                    if rel not in result.written:
                        result.written.append(rel)
                    if done.late is not None:  # their save went into the file just replaced: merge it too
                        current, on_disk = done.late, merged.text
                        continue
                if merged.base != base:
                    save_base(self.ws, path, merged.base)
                return
            result.conflicts.append(f"{rel} kept changing while coord rendered it; coord left it unchanged")


def render_all(ws: Workspace, plan: CompiledPlan, roles: dict[str, RoleDefinition], state: RunState,
               *, profile: str | None = None, only_roles: set[str] | None = None) -> ListenerResult:
    """Render every board (or only those of ``only_roles``) and the status block from ``state``."""
    result = ListenerResult()
    writer = BoardWriter(ws)
    tasks_state = state.get("tasks", {})
    gates_state = state.get("gates", {})
    deferred = sorted(state.get("deferred", {}).values(), key=lambda d: (d["gate"], d["text"]))
    run: dict[str, Any] = {
        "run_id": state.get("run_id", "?"), "plan": plan.name, "profile": profile or plan.profile,
        "phase": state.get("phase", "running"), "provenance": _board_line(ws, plan, roles),
        "updated_at": now_iso(), "budget": state.get("budget")}
    ws.boards.mkdir(parents=True, exist_ok=True)
    notices = load_notices(ws, run["run_id"]) if state.get("run_id") else {}
    for role in roles.values():
        if only_roles is not None and role.name not in only_roles:
            continue
        key = (str(ws.root), str(run["run_id"]), role.name)
        files = (ws.boards / f"{role.board_name}_TASKS.md", ws.boards / f"{role.board_name}_EXECUTE_NOW.md")
        stamp = _role_stamp(ws, plan, role, state, run, notices)
        if _rendered.get(key) == (stamp, *map(_file_stamp, files)):
            continue  # nothing they show changed, and nobody touched the two files since coord wrote them
        mine = plan.tasks_of_role(role.name)
        statuses, blocks = _task_blocks(ws, plan, role, mine, tasks_state, notices, run)
        counts = {"total": len(statuses), "done": statuses.count("done"), "pending": statuses.count("pending")}
        gates = [{"id": gid, "title": g.title or gid, "policy": g.policy,
                  "status": gate_status_text(g, gates_state.get(gid, {})),
                  "decidable": needs_person(gates_state.get(gid, {})) or window_open(gates_state.get(gid, {})),
                  "grade": gates_state.get(gid, {}).get("grade"), "score": gates_state.get(gid, {}).get("score"),
                  "opinion": opinion_line(gates_state.get(gid, {}).get("model_review")),
                  "attempts": attempts_line(gates_state.get(gid, {})),
                  "record": relative_link(ws.root, ws.boards, ws.reviews / run["run_id"] / f"{gid}.md")
                  if gates_state.get(gid, {}).get("verdict") else None}
                 for gid, g in plan.gates.items() if g.reviewer == role.name]
        board = render("role_board.md.j2", board_name=role.board_name, role=role, run=run, task_blocks=blocks,
                       counts=counts, gates=gates, deferred=deferred)
        writer.write(ws.boards / f"{role.board_name}_TASKS.md", board, result)
        at = next((i for i, st in enumerate(statuses) if st in ("running", "waiting")), None)
        at = next((i for i, st in enumerate(statuses) if st == "pending"), None) if at is None else at
        in_hand = None
        if at is not None:
            in_hand = _view(ws, plan, mine[at], tasks_state.get(mine[at].id), notices.get(mine[at].id))
            in_hand["inputs"] = _linked(ws, ws.boards, inputs_of(in_hand, tasks_state))
        now = render("execute_now.md.j2", board_name=role.board_name, role=role, run=run, task=in_hand,
                     counts=counts)
        writer.write(ws.boards / f"{role.board_name}_EXECUTE_NOW.md", now, result)
        if not result.conflicts:
            _rendered[key] = (stamp, *map(_file_stamp, files))
    _render_team_status(ws, plan, roles, state, run, deferred, result)
    save_problems(ws, conflicts=result.conflicts)
    atomic_write_json(ws.status_file, snapshot(plan, state, profile or plan.profile, result.conflicts))
    return result


_rendered: dict[tuple[str, str, str], tuple[Any, ...]] = {}
"""(workspace, run, role) → what its board and EXECUTE_NOW file were last rendered from, and the two files
as that render left them (a person's save, or a deleted file, makes the next render go ahead)."""


_line: list[Any] = [None, None, ""]
"""The plan, roles key and provenance sentence of the last render (the sentence depends on nothing else)."""


def _board_line(ws: Workspace, plan: CompiledPlan, roles: Mapping[str, RoleDefinition]) -> str:
    """The boards' provenance sentence, computed once per plan and set of roles (9 ms on a 2,000-task plan)."""
    key = (str(ws.root), tuple((r.name, r.driver) for r in roles.values()))
    if _line[0] is not plan or _line[1] != key:
        _line[:] = [plan, key, board_line(plan.tasks, roles, ws.root, plan.order)]
    return str(_line[2])


_blocks: dict[tuple[str, str, str], dict[str, tuple[Any, ...]]] = {}
"""(workspace, run, role) → task id → what its block on the board was rendered from (the record and the
notice, the plan, which artifact files existed), its view and its text. A new state merges only the records
that changed, so the others are the same objects (compared by identity, else by value: a state read back from
the checkpoint), and their blocks are reused."""
_BLOCK_ROLES = 64
"""Blocks are kept for this many (workspace, run, role) triples; then all are dropped and rendered again."""


def _task_blocks(ws: Workspace, plan: CompiledPlan, role: RoleDefinition, mine: list[CompiledTask],
                 tasks_state: Mapping[str, Any], notices: Mapping[str, Any],
                 run: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The status of each of a role's tasks and its text on the board; a task whose record, notice, plan and
    artifact files are those of the last render keeps its text (rendering a 10,000-task board after each few
    hundred tasks would otherwise redo every task)."""
    key = (str(ws.root), str(run["run_id"]), role.name)
    cache = _blocks.get(key)
    if cache is None:
        if len(_blocks) >= _BLOCK_ROLES:
            _blocks.clear()
        cache = _blocks[key] = {}
    statuses, texts = [], []
    for t in mine:
        rec, notice = tasks_state.get(t.id), notices.get(t.id)
        files = tuple((ws.root / str(a.get("path"))).is_file() for a in (rec or {}).get("artifacts") or [])
        hit = cache.get(t.id)
        if hit is not None and (hit[0] is rec or hit[0] == rec) and hit[1] == notice and hit[2] is plan \
                and hit[3] == files:
            text = hit[4]
        else:
            text = render("role_board_task.md.j2", t=_view(ws, plan, t, rec, notice), role=role)
            cache[t.id] = (rec, notice, plan, files, text)
        statuses.append((rec or {}).get("status", "pending"))
        texts.append(text)
    return statuses, texts


def _view(ws: Workspace, plan: CompiledPlan, task: CompiledTask, rec: Mapping[str, Any] | None,
          notice: Mapping[str, str] | None) -> dict[str, Any]:
    """A task's view with links to the artifact files that exist."""
    view = task_view(task, rec or {}, plan, notice)
    view["artifacts"] = _linked(ws, ws.boards, view["artifacts"])
    return view


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _role_stamp(ws: Workspace, plan: CompiledPlan, role: RoleDefinition, state: RunState,
                run: Mapping[str, Any], notices: Mapping[str, Any]) -> bytes:
    """A digest of everything a role's two files are rendered from, but the time of the render.

    Its tasks' records and notices, the records of the tasks they need (an EXECUTE_NOW file lists
    their artifacts), the gates it reviews, the deferred items, the run's header, and which artifact
    files and review records exist (a link appears when a branch is merged). Equal stamps mean an
    equal render.
    """
    tasks_state = state.get("tasks", {})
    gates_state = state.get("gates", {})
    mine = plan.tasks_of_role(role.name)
    ids = {t.id for t in mine} | {n for t in mine for n in t.needs}
    records = {i: tasks_state.get(i) for i in sorted(ids)}
    files = sorted({str(a.get("path")) for i in ids for a in (tasks_state.get(i) or {}).get("artifacts") or []})
    gates = sorted(gid for gid, g in plan.gates.items() if g.reviewer == role.name)
    reviews = ws.reviews / str(run["run_id"])
    seen = [(ws.root / f).is_file() for f in files] + [(reviews / f"{g}.md").is_file() for g in gates]
    parts = [
        {k: v for k, v in run.items() if k != "updated_at"}, role.name, role.board_name, role.agent, role.driver,
        records, {i: notices.get(i) for i in sorted(ids) if i in notices}, {g: gates_state.get(g) for g in gates},
        state.get("deferred", {}), files, seen,
    ]
    return xxhash.xxh3_128_digest(orjson.dumps(parts, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS,
                                               default=str))


def _linked(ws: Workspace, from_dir: Path, artifacts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Artifacts with ``href``: a link from ``from_dir`` when the file is in the workspace (not yet merged: None)."""
    return [{**a, "href": relative_link(ws.root, from_dir, a["path"])} for a in artifacts]


def _render_team_status(ws: Workspace, plan: CompiledPlan, roles: dict[str, RoleDefinition],
                        state: RunState, run: dict[str, Any], deferred: list[Any],
                        result: ListenerResult) -> None:
    tasks_state = state.get("tasks", {})
    rows = []
    problems = []
    for role in roles.values():
        mine = plan.tasks_of_role(role.name)
        st = [tasks_state.get(t.id, {}).get("status", "pending") for t in mine]
        rows.append({"name": role.name, "agent": role.agent, "driver": role.driver, "total": len(mine),
                     "done": st.count("done"),
                     "running": [t.id for t, s in zip(mine, st, strict=True) if s == "running"],
                     "failed": [t.id for t, s in zip(mine, st, strict=True) if s == "failed"],
                     "other": st.count("skipped") + st.count("blocked")})
        for t in mine:
            trec = tasks_state.get(t.id, {})
            if trec.get("status") == "failed":
                problems.append(f"task **{t.id}** failed: {trec.get('error')}")
            elif trec.get("status") == "blocked":
                problems.append(f"task **{t.id}** is blocked: {trec.get('reason')}")
    gates = []
    for gid in plan.gates:
        rec = state.get("gates", {}).get(gid, {})
        gates.append({"id": gid, "status": gate_status_text(plan.gates[gid], rec), "grade": rec.get("grade"),
                      "score": rec.get("score"), "decided_by": rec.get("decided_by"),
                      "opinion": opinion_line(rec.get("model_review"))})
        if rec.get("status") in ("rejected", "changes_requested"):
            findings: list[str] = list(rec.get("findings") or [])
            problems.append(f"gate **{gid}** {rec.get('status')}: " + "; ".join(findings))
        if needs_person(rec):
            problems.append(f"gate **{gid}** is waiting for a person: `coord approve {gid}`, `coord reject {gid} "
                            f"--note WHY` or `coord override {gid} --grade G --note WHY` (or tick `approve` on "
                            f"its reviewer's board)")
    problems.extend(result.conflicts)
    problems.extend(f"board edit not applied: {e}" for e in load_problems(ws)["edit_errors"])
    body = render("team_status.md.j2", run=run, roles=rows, gates=gates, problems=problems,
                  deferred=deferred)
    try:
        _write_team_block(ws, body, result)
    except NotUtf8 as e:  # the team's own file: never replaced, the problem is reported
        result.conflicts.append(str(e))
        log.warning("%s", e)


def _write_team_block(ws: Workspace, body: str, result: ListenerResult) -> None:
    path = ws.team_file
    with board_lock(ws, path):
        on_disk = read_settled(path, path.name)
        current = TEAM_HEADER if on_disk is None else on_disk
        for _ in range(WRITE_TRIES):
            try:
                updated = replace_block(current, "status", body, file=path.name)
            except MarkerError as e:
                result.conflicts.append(str(e))
                log.warning("%s", e)
                return
            if updated == on_disk:
                return
            done = replace_if_unchanged(path, updated, on_disk)
            if not done.ok:  # a person saved meanwhile: put the block into their new text
                on_disk = read_settled(path, path.name)
                current = TEAM_HEADER if on_disk is None else on_disk
                continue
            if path.name not in result.written:
                result.written.append(path.name)
            if done.late is None:
                return
            current, on_disk = done.late, updated
        result.conflicts.append(f"{path.name} kept changing while coord wrote its status block; "
                                "the block may be out of date until the next render")


MAX_ATTEMPT_CRITERIA = 4
"""Criteria shown per attempt on a gate's board line (the review record has them all)."""


def attempts_line(rec: Mapping[str, Any]) -> str | None:
    """``attempt 1: rate=0.21 ✗, …; attempt 2: …`` for a gate that sent work back (None for one attempt)."""
    history = list(rec.get("history") or [])
    if not history:
        return None
    parts = []
    for n, crits in [*((h.get("attempt"), h.get("criteria") or []) for h in history),
                     (rec.get("attempt"), [{"id": c.get("name"), "measured": c.get("measured"), "passed": c.get("passed")}
                                           for c in rec.get("criteria") or []])]:
        shown = ", ".join(f"{c['id']}={fmt_num(c.get('measured'))} {'✓' if c.get('passed') else '✗'}"
                          for c in crits[:MAX_ATTEMPT_CRITERIA])
        more = f", +{len(crits) - MAX_ATTEMPT_CRITERIA} more" if len(crits) > MAX_ATTEMPT_CRITERIA else ""
        parts.append(f"attempt {n}: {shown}{more}")
    return "; ".join(parts)


def snapshot(plan: CompiledPlan, state: RunState, profile: str, conflicts: list[str]) -> dict[str, Any]:
    """The status document `coord status --json` and the report step read."""
    tasks = state.get("tasks", {})
    counts: dict[str, int] = {}
    for rec in tasks.values():
        counts[rec.get("status", "pending")] = counts.get(rec.get("status", "pending"), 0) + 1
    return {
        "schema_version": 1, "run_id": state.get("run_id"), "plan": plan.name, "profile": profile,
        "phase": state.get("phase"), "counts": counts,
        "tasks": {t: {**tasks.get(t, {}), "role": plan.tasks[t].role, "title": plan.tasks[t].title}
                  for t in plan.order},
        "gates": state.get("gates", {}), "deferred": state.get("deferred", {}),
        "cost_usd": round(sum(float(r.get("cost_usd") or 0) for r in tasks.values()), 6),
        "budget": state.get("budget"),
        "conflicts": conflicts, "updated_at": now_iso(),
    }
