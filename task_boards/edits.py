"""Turn the difference between coord's last render and the person's board into edits.

Every edit is checked against the plan and the run's state before anything is
applied; a garbled edit (unknown task id, broken checkbox, a gate approved
twice, a task moved to a role that does not exist, …) becomes a
:class:`BoardProblem` naming the file and line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coordinator.core.plan import CompiledPlan
from task_boards.model import OWNED, BoardGate, BoardProblem, BoardTask, Edit, ParsedBoard


@dataclass
class EditSet:
    """Edits found on the boards, or the problems that stop them from being applied."""

    edits: list[Edit] = field(default_factory=list)
    problems: list[BoardProblem] = field(default_factory=list)


def _index(boards: Mapping[str, ParsedBoard]) -> dict[str, list[tuple[ParsedBoard, BoardTask]]]:
    out: dict[str, list[tuple[ParsedBoard, BoardTask]]] = {}
    for board in boards.values():
        for task in board.tasks:
            if task.id is not None:
                out.setdefault(task.id, []).append((board, task))
    return out


def _gate_index(boards: Mapping[str, ParsedBoard]) -> dict[str, BoardGate]:
    return {g.id: g for b in boards.values() for g in b.gates}


def detect_edits(base: Mapping[str, ParsedBoard], current: Mapping[str, ParsedBoard], plan: CompiledPlan,
                 state: Mapping[str, Any], roles: set[str]) -> EditSet:
    """Compare each board with coord's last render of it and validate what changed."""
    out = EditSet()
    tasks_state: Mapping[str, Any] = state.get("tasks", {})
    gates_state: Mapping[str, Any] = state.get("gates", {})
    for board in current.values():
        out.problems += board.problems
        if board.role is not None and board.role not in roles:
            out.problems.append(BoardProblem(board.file, 1, f"board of role {board.role!r}, which the run's plan "
                                             f"does not have (roles: {', '.join(sorted(roles))})"))
    base_tasks = _index(base)
    current_index = _index(current)
    current_ids = set(current_index)
    for tid, places in current_index.items():
        if len(places) > 1:
            where = ", ".join(f"{b.file}:{t.line}" for b, t in places)
            out.problems.append(BoardProblem(places[1][0].file, places[1][1].line,
                                             f"task {tid!r} appears more than once ({where}); keep one"))
            continue
        board, task = places[0]
        if tid not in plan.tasks:
            out.problems.append(BoardProblem(board.file, task.line, f"unknown task id {tid!r} in its marker "
                                             "(the id must stay as coord wrote it)"))
            continue
        before = base_tasks.get(tid, [(None, None)])[0]
        if before[1] is task:  # an unchanged board's parse is its base's (cached by content): nothing changed
            continue
        found: list[BoardProblem] = []
        out.edits += _task_edits(board, task, before[0], before[1], plan, tasks_state, roles, found)
        out.problems += _line_deleted(board, task, before[0], current_ids, found)
    for name, board in current.items():
        # a line already in coord's last render was an edit then: a sync cut short before its render, not a new one
        seen = Counter(t.title for t in (base[name].tasks if name in base else []) if t.id is None)
        for task in board.tasks:
            if task.id is None and task.checked is not None:
                if seen[task.title] > 0:
                    seen[task.title] -= 1
                elif not task.title:
                    out.problems.append(BoardProblem(board.file, task.line, "a new task needs a title"))
                elif board.role is not None:
                    out.edits.append(Edit("new_task", "", board.file, task.line, task.title, tuple(task.notes),
                                          role=board.role))
    out.edits += _gate_edits(base, current, plan, gates_state, out.problems)
    return out


def _line_deleted(board: ParsedBoard, task: BoardTask, old_board: ParsedBoard | None, current_ids: set[str],
                  found: list[BoardProblem]) -> list[BoardProblem]:
    """``found`` as it is, unless the changes to ``task``'s coord lines are those of the task below it whose
    line (with its marker) was deleted: its sub-items now read as ``task``'s. Then one problem saying so."""
    owned = [p for p in found if "is written by coord" in p.message]
    if not owned or old_board is None:
        return found
    ids = [t.id for t in old_board.tasks if t.id is not None]
    if task.id not in ids:
        return found
    after = ids[ids.index(task.id) + 1:]
    gone = next((t for t in after[:1] if t not in current_ids), None)
    if gone is None:
        return found
    line = min(p.line for p in owned)
    return [p for p in found if p not in owned] + [BoardProblem(
        board.file, line, f"the line of task {gone!r} (the one with <!-- coord:task id={gone} -->) was deleted, so "
        f"its sub-items now read as those of task {task.id!r}; put the line back (a task is not removed by deleting it "
        "from its board)")]


def _task_edits(board: ParsedBoard, task: BoardTask, old_board: ParsedBoard | None, old: BoardTask | None,
                plan: CompiledPlan, tasks_state: Mapping[str, Any], roles: set[str],
                problems: list[BoardProblem]) -> list[Edit]:
    assert task.id is not None
    tid, edits = task.id, []
    if old is None or old_board is None:
        return []  # coord never rendered this task on a board: nothing to compare with
    for key in sorted(OWNED & (set(task.fields) | set(old.fields))):
        if task.fields.get(key) != old.fields.get(key):
            problems.append(BoardProblem(board.file, task.field_lines.get(key, task.line),
                                         f"the {key!r} line of task {tid!r} is written by coord and the change "
                                         "would be lost; put your text in a new sub-item (a note) or outside "
                                         "coord's sections"))
    new_role: str | None = None
    if task.fields.get("role", "") != old.fields.get("role", ""):
        new_role = task.fields.get("role", "").strip("` ")
    elif board.role != old_board.role:
        new_role = board.role
    if new_role is not None and new_role != plan.tasks[tid].role:
        if new_role not in roles:
            line = task.line if board.role == new_role else task.line + 1
            problems.append(BoardProblem(board.file, line, f"task {tid!r} moved to role {new_role!r}, which does "
                                         f"not exist (roles: {', '.join(sorted(roles))})"))
            return []
        unticked = task.checked is False and old.checked is True
        if tasks_state.get(tid, {}).get("status") == "done" and not unticked:
            line = task.line if board.role == new_role else task.field_lines.get("role", task.line)
            problems.append(BoardProblem(board.file, line, f"task {tid!r} is done; untick it to redo it under "
                                         f"role {new_role!r} (a done task keeps the role that did the work)"))
            return []
        edits.append(Edit("reassign", tid, board.file, task.line, new_role))
    if task.checked is not None and old.checked is not None and task.checked != old.checked:
        edits.append(Edit("tick" if task.checked else "untick", tid, board.file, task.line))
    for text, line in zip(task.notes, task.note_lines, strict=True):
        if text not in old.notes:
            edits.append(Edit("note", tid, board.file, line, text))
    if "defer" in task.fields and "defer" not in old.fields:
        if tasks_state.get(tid, {}).get("status") == "done":
            problems.append(BoardProblem(board.file, task.line, f"task {tid!r} is done; only open tasks can "
                                         "be deferred"))
        else:
            edits.append(Edit("defer", tid, board.file, task.line, task.fields["defer"] or None))
    return edits


def _gate_edits(base: Mapping[str, ParsedBoard], current: Mapping[str, ParsedBoard], plan: CompiledPlan,
                gates_state: Mapping[str, Any], problems: list[BoardProblem]) -> list[Edit]:
    old = _gate_index(base)
    ticked: dict[str, list[tuple[ParsedBoard, BoardGate]]] = {}
    for board in current.values():
        for gate in board.gates:
            if gate.id not in plan.gates:
                problems.append(BoardProblem(board.file, gate.line, f"unknown gate id {gate.id!r} in its marker"))
            elif gate.checked and not (old.get(gate.id) and old[gate.id].checked):
                ticked.setdefault(gate.id, []).append((board, gate))
    edits = []
    for gid, places in ticked.items():
        status = gates_state.get(gid, {}).get("status", "pending")
        board, gate = places[0]
        if len(places) > 1:
            lines = " and ".join(f"{b.file}:{g.line}" for b, g in places)
            problems.append(BoardProblem(places[1][0].file, places[1][1].line,
                                         f"gate {gid!r} approved twice ({lines}); tick it once"))
        elif status not in ("pending", "waiting"):
            by = gates_state.get(gid, {}).get("decided_by")
            problems.append(BoardProblem(board.file, gate.line, f"gate {gid!r} is already {status}"
                                         + (f" (by {by})" if by else "") + "; it cannot be approved again"))
        else:
            edits.append(Edit("approve", gid, board.file, gate.line))
    return edits
