"""Kill `coord run`, `coord board sync` and `coord approve` at their writes, one kill point per copy of the
workspace, run the same command again, and check the outcome is the uninterrupted one: the run completes,
the artifacts are identical, no event or ledger row is duplicated, and no board edit is lost or applied
twice.

A write is whatever coord counts with ``coordinator.core.io.wrote``: atomic files (task results, run
records, outputs, review records, the decision inbox), events, boards and their bases, the board audit
log, a board sync's checkpoint commit and each step the graph checkpointed. ``COORD_TRACE_WRITES`` lists
the writes of an uninterrupted command; ``COORD_FAULT_AT_WRITE=N`` kills the process (exit 137, as a
SIGKILL) right after its N-th write. Every kind of write is a kill point at least once (its first and
last occurrence); the rest are sampled evenly up to :data:`KILLS` per command.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from coordinator.core.events import read_events
from coordinator.core.io import FAULT_AT_WRITE, TRACE_WRITES
from coordinator.core.run_store import load_run_plan
from coordinator.core.workspace import Workspace
from coordinator.engine.runner import run_status
from tests.conftest import PLUGINS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
COORD = [sys.executable, "-c",
         f"import sys; sys.path.insert(0, {str(PLUGINS)!r}); from coordinator.cli.app import main; "
         "sys.argv[0] = 'coord'; main()"]
KILLS = 10
"""Kill points per command (every kind of write, then evenly spaced ones)."""
PARALLEL = 4
"""Kill points tried at once (each in its own copy of the workspace)."""
KNOWN: dict[tuple[str, str], str] = {}
"""Kill points a fix outside this change's reach still fails at → the error they give today (none now:
a kill between ``run_started`` and the first checkpoint starts the run again from the beginning)."""

PLAN = """name: crash
tasks:
  - {id: make, title: Make, role: execution, run: t_write, with: {out: out/a.txt, text: made, metric: 0.8}}
  - {id: spend, title: Spend, role: quality, needs: [make], command: [PYTHON, tools/spend.py],
     outputs: [out/spend.txt]}
  - {id: notes, title: Notes, role: lead, needs: [make], instructions: Write the notes.,
     accept: [{file: reports/assignments/notes.md}]}
  - {id: ship, title: Ship, role: lead, needs: [make], run: t_write, with: {out: out/ship.txt, text: shipped}}
gates:
  - id: signoff
    after: [make, spend]
    blocks: [ship]
    policy: human
    criteria: [{metric: make.metric, op: ">=", value: 0.5}, {file: out/spend.txt}]
"""
SPEND = """import json, os
with open("calls.log", "a") as fh:  # outside coord: every time the paid call really happened
    fh.write("call\\n")
with open(os.environ["COORD_COSTS"], "a") as c:
    c.write(json.dumps({"usd": 0.01, "tokens_in": 10, "tokens_out": 5, "model": "m", "provider": "p"}) + "\\n")
os.makedirs("out", exist_ok=True)
with open("out/spend.txt", "w") as fh:
    fh.write("spent\\n")
"""
RUN = ["run", "crash.yaml", "--concurrency", "1"]
APPROVE = ["approve", "signoff", "--by", "Ana", "--note", "ok"]
SYNC = ["board", "sync"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k not in (FAULT_AT_WRITE,
                                                                                            TRACE_WRITES)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["USER"] = "board-editor"  # who edits the boards (no git repository here)
    return {**env, **extra}


def _coord(ws: Path, args: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COORD, *args], cwd=ws, capture_output=True, text=True, env=_env(**extra),
                          stdin=subprocess.DEVNULL, timeout=120)


def _fresh(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "crash.yaml").write_text(PLAN.replace("PYTHON", sys.executable))
    (root / "tools").mkdir()
    (root / "tools" / "spend.py").write_text(SPEND)
    return root


def _edit_boards(ws: Path) -> None:
    """A person's save: approve the gate, a note for the lead's task, a new task."""
    codex = ws / "task_boards" / "CODEX_TASKS.md"
    codex.write_text(codex.read_text().replace("- [ ] approve: **signoff**", "- [x] approve: **signoff**"))
    claude = ws / "task_boards" / "CLAUDE_TASKS.md"
    lines = claude.read_text().splitlines(keepends=True)
    at = next(i for i, x in enumerate(lines) if "coord:task id=notes" in x)
    lines.insert(at + 2, "  - cite the audit\n")
    text = "".join(lines).replace("<!-- coord:tasks:end -->", "- [ ] Write the FAQ\n<!-- coord:tasks:end -->")
    claude.write_text(text)


Write = tuple[int, str, str]
"""(index, kind, target) of one write, as ``COORD_TRACE_WRITES`` lists it."""


def _trace(ws: Path, args: list[str]) -> tuple[subprocess.CompletedProcess[str], list[Write]]:
    trace = ws.parent / f"{ws.name}.trace"
    res = _coord(ws, args, **{TRACE_WRITES: str(trace)})
    writes = [(int(n), kind, target) for n, kind, target in
              (line.split(" ", 2) for line in trace.read_text().splitlines())]
    return res, writes


def _kill_points(writes: list[Write]) -> list[int]:
    """Each kind's first and last write, then evenly spaced ones, up to KILLS."""
    picks: set[int] = set()
    for kind in {k for _, k, _ in writes}:
        at = [n for n, k, _ in writes if k == kind]
        picks |= {at[0], at[-1]}
    spare = KILLS - len(picks)
    if spare > 0:
        picks |= {1 + i * len(writes) // spare for i in range(spare)}
    return sorted(picks)


def _run_id(ws: Path) -> str:
    return str(run_status(Workspace.at(ws))["run_id"])


def _outcome(ws: Path) -> dict[str, Any]:
    """What must be identical to the uninterrupted command's: state, plan, outputs, boards' ticks, edits."""
    w = Workspace.at(ws)
    st = run_status(w)
    rid = st["run_id"]
    tasks = {t: (r.get("status"), r.get("held_by"), r.get("accepted_by"), tuple(r.get("feedback") or ()))
             for t, r in st["tasks"].items()}
    gates = {g: (r.get("status"), r.get("decided_by"), r.get("grade")) for g, r in st["gates"].items()}
    files = {p.relative_to(ws).as_posix(): p.read_bytes() for d in ("out", "reports/assignments")
             for p in sorted((ws / d).rglob("*"))
             if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".manifest.json")}
    ticks = {p.name: sorted(re.findall(r"^- \[([ x])\] (?:approve: )?\*\*(\S+)\*\*", p.read_text(), re.M))
             for p in sorted(w.boards.glob("*_TASKS.md"))}
    audit_path = w.run_dir(rid) / "board_edits.jsonl"
    audit = sorted((a["kind"], a["target"], a["where"], a.get("value"), a.get("outcome", "").split(" ")[0])
                   for a in map(json.loads, audit_path.read_text().splitlines())) if audit_path.exists() else []
    return {"phase": st["phase"], "tasks": tasks, "gates": gates, "plan": load_run_plan(w, rid).order,
            "files": files, "ticks": ticks, "audit": audit, "inbox": sorted((w.run_dir(rid) / "inbox").glob("*"))}


def _check_logs(ws: Path) -> None:
    """No event written twice, no ledger row twice, and the ledger holds every paid call made, once."""
    events = list(read_events(ws / ".coord" / "events.jsonl"))
    once = Counter(e["once"] for e in events if "once" in e)
    assert [k for k, n in once.items() if n > 1] == [], "an event was logged twice"
    for kind in ("gate_decision", "decision_queued"):
        ids = Counter(e["decision"] for e in events if e["kind"] == kind)
        assert all(n == 1 for n in ids.values()), f"{kind} logged twice: {ids}"
    finished = Counter((e["task"], e.get("dispatch")) for e in events if e["kind"] == "task_finished")
    assert all(n == 1 for n in finished.values()), f"a finished task was reported twice: {finished}"
    assert sum(e["kind"] == "run_started" for e in events) == 1
    with sqlite3.connect(ws / ".coord" / "ledger.sqlite") as db:
        rows = db.execute("SELECT run_id, kind, ref, task_id FROM calls").fetchall()
    assert len(rows) == len(set(rows)), "a ledger row was recorded twice"
    calls = (ws / "calls.log").read_text().count("call") if (ws / "calls.log").exists() else 0
    assert len(rows) == calls, f"{calls} paid call(s) made, {len(rows)} in the ledger"


def _matrix(tmp: Path, name: str, before: Path | None, prepare: Callable[[Path], None] | None,
            args: list[str], expect_rc: int) -> int:
    """Run ``args`` uninterrupted (the reference), then killed at each kill point and run again; compare."""
    def copy(dest: Path) -> Path:
        if before is None:
            return _fresh(dest)
        shutil.copytree(before, dest, symlinks=True)
        if prepare is not None:
            prepare(dest)
        return dest

    ref = copy(tmp / f"{name}-ref")
    res, writes = _trace(ref, args)
    assert res.returncode == expect_rc, res.stdout + res.stderr
    expected = _outcome(ref)
    _check_logs(ref)
    points = _kill_points(writes)
    assert {k for n, k, _ in writes if n in points} == {k for _, k, _ in writes}  # every kind is a kill point
    what = {n: f"{kind} {target}" for n, kind, target in writes}

    def one(n: int) -> str | None:
        ws = copy(tmp / f"{name}-{n}")
        where = f"{name}: kill after write {n} ({what[n]})"
        killed = _coord(ws, args, **{FAULT_AT_WRITE: str(n)})
        if killed.returncode != 137:
            # How many writes a command makes varies a little with timing (routine board renders are
            # spaced in time): one that ended before its n-th write must simply have done its work.
            if killed.returncode == expect_rc and n > max(points) * 3 // 4 and _outcome(ws) == expected:
                unreached.append(n)
                return None
            return f"{where}: not killed: {killed.stdout}{killed.stderr}"
        known = KNOWN.get((name, what[n]))
        again = _coord(ws, args)  # what a person does after a crash: the same command again (then resume)
        if known is not None:
            return None if known in again.stderr else f"{where}: fixed? remove it from KNOWN: {again.stderr}"
        if "can continue: coord resume" in again.stdout:  # as it tells a person to
            again = _coord(ws, ["resume"])
            again.returncode = expect_rc if again.returncode in (0, 3) else again.returncode  # the outcome decides
        if again.returncode != expect_rc:
            return f"{where}: the same command again exits {again.returncode}: {again.stderr[-600:]}"
        got = _outcome(ws)
        differ = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
        if differ:
            return f"{where}: differs from the uninterrupted command: {differ}"
        try:
            _check_logs(ws)
        except AssertionError as e:
            return f"{where}: {e}"
        shutil.rmtree(ws)
        return None

    unreached: list[int] = []
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        failures = [f for f in pool.map(one, points) if f]
    assert not failures, "\n".join(failures)
    assert len(unreached) <= 2, f"{name}: kill points never reached: {unreached}"
    return len(points) - len(unreached)


def test_crash_matrix_run_board_sync_and_approve(tmp_path):
    waiting = _fresh(tmp_path / "waiting")
    first = _coord(waiting, RUN)
    assert first.returncode == 3, first.stdout + first.stderr  # the gate waits for a person
    kills = _matrix(tmp_path, "run", None, None, RUN, 3)
    kills += _matrix(tmp_path, "approve", waiting, None, APPROVE, 0)
    kills += _matrix(tmp_path, "sync", waiting, _edit_boards, SYNC, 0)
    assert kills >= 3 * KILLS - 6  # a point or two past the end of a shorter run
