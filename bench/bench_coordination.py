"""Coordination overhead: coord's engine beside a bare LangGraph graph doing the same scheduling.

Both run the same plan of no-op tasks through LangGraph with the SQLite checkpointer
(durability "sync"), at most ``--concurrency`` tasks at a time:

- **coord**: ``run_plan`` on a generated plan (boards, events, ledger, status — everything a
  real run does), in a fresh temporary workspace;
- **floor**: a bare ``StateGraph``: a schedule node that sends the ready tasks to a worker
  node with ``Send``, a dict channel of finished tasks, ``SqliteSaver``.

The two alternate (floor, coord, floor, coord, …) in one process so that machine load hits
both alike; the load average is printed. Reported: ms per task (median of the repeats), the
ratio, and the size of the checkpoint database each leaves.

Shapes: ``chain`` (one task after another), ``wide`` (one root, every other task needs it),
``dag`` (half in 10 chains, half in fan-outs of 100).

Usage: python bench/bench_coordination.py [--tasks 1000] [--shape dag] [--concurrency 8] [--repeat 3]
       python bench/bench_coordination.py --parallelism   # makespan / critical path of a sleep DAG
Targets (issue 16): coord ≤ 1.5× the floor at 1,000 tasks; ms/task at 10,000 within 1.3× of 1,000;
state.sqlite after 3,000 tasks ≤ 10 MB.
"""

from __future__ import annotations

import argparse
import operator
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from coordinator.core.workspace import Workspace
from coordinator.engine.runner import RunOptions, run_plan

STEPS_MODULE = '''
import time
from coordinator import StepContext, StepResult


def noop(ctx: StepContext) -> StepResult:
    return StepResult()


def sleep(ctx: StepContext, *, seconds: float) -> StepResult:
    time.sleep(seconds)
    return StepResult(metrics={"slept": seconds})
'''


def shape_edges(n: int, shape: str) -> list[tuple[str, list[str]]]:
    """(task id, needs) in plan order."""
    if shape == "chain":
        return [(f"t{i}", [f"t{i - 1}"] if i else []) for i in range(n)]
    if shape == "wide":
        return [("t0", [])] + [(f"t{i}", ["t0"]) for i in range(1, n)]
    out: list[tuple[str, list[str]]] = []
    chain_len = max(1, n // 20)
    for c in range(10):
        for i in range(chain_len):
            out.append((f"c{c}_{i}", [f"c{c}_{i - 1}"] if i else []))
    fan = 0
    while len(out) < n:
        root = f"f{fan}_root"
        out.append((root, []))
        out.extend((f"f{fan}_{i}", [root]) for i in range(min(99, n - len(out))))
        fan += 1
    return out[:n]


def plan_text(edges: list[tuple[str, list[str]]]) -> str:
    lines = ["name: bench_overhead", "tasks:"]
    for tid, needs in edges:
        need = f", needs: [{', '.join(needs)}]" if needs else ""
        lines.append(f"  - {{id: {tid}, title: {tid}, role: execution, run: 'bench_steps:noop'{need}}}")
    return "\n".join(lines) + "\n"


def _db_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def run_coord(edges: list[tuple[str, list[str]]], concurrency: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        ws = Workspace.at(d)
        (Path(d) / "bench_steps.py").write_text(STEPS_MODULE)
        path = Path(d) / "plan.yaml"
        path.write_text(plan_text(edges))
        t0 = time.perf_counter()
        summary = run_plan(ws, RunOptions(plan=str(path), concurrency=concurrency))
        elapsed = time.perf_counter() - t0
        assert summary.phase == "finished", summary.problems
        sys.modules.pop("bench_steps", None)
        return elapsed, _db_size(ws.state_dir / "state.sqlite")


class FloorState(TypedDict, total=False):
    done: Annotated[dict[str, int], operator.or_]
    running: list[str]


def run_floor(edges: list[tuple[str, list[str]]], concurrency: int) -> tuple[float, int]:
    """The same scheduling in a bare LangGraph graph: a schedule node sends up to ``concurrency``
    ready tasks to a worker node (``Send``); the ready set is kept incrementally."""
    remaining = {t: len(ns) for t, ns in edges}
    dependents: dict[str, list[str]] = {t: [] for t, _ in edges}
    for t, ns in edges:
        for n in ns:
            dependents[n].append(t)
    ready = [t for t, ns in edges if not ns]
    finished: list[str] = []

    def schedule(state: FloorState) -> dict[str, Any]:
        while finished:
            for d in dependents[finished.pop()]:
                remaining[d] -= 1
                if remaining[d] == 0:
                    ready.append(d)
        batch = ready[:concurrency]
        del ready[:concurrency]
        return {"running": batch}

    def route(state: FloorState) -> Any:
        batch = state.get("running") or []
        return [Send("work", {"task": t}) for t in batch] if batch else END

    def work(arg: dict[str, str]) -> dict[str, Any]:
        finished.append(arg["task"])
        return {"done": {arg["task"]: 1}}

    builder = StateGraph(FloorState)
    builder.add_node("schedule", schedule)
    builder.add_node("work", work)
    builder.add_edge(START, "schedule")
    builder.add_conditional_edges("schedule", route, ["work", END])
    builder.add_edge("work", "schedule")
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "floor.sqlite"
        conn = sqlite3.connect(db, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        graph = builder.compile(checkpointer=SqliteSaver(conn))
        t0 = time.perf_counter()
        out = graph.invoke({"done": {}}, {"configurable": {"thread_id": "floor"}, "recursion_limit": 10 ** 7},
                           durability="sync")
        elapsed = time.perf_counter() - t0
        assert len(out["done"]) == len(edges), (len(out["done"]), len(edges))
        conn.close()
        return elapsed, _db_size(db)


SLEEP_DAG = [
    ("a", 0.6, []), ("b", 0.1, []), ("c", 0.2, ["b"]), ("d", 0.4, ["a"]), ("x", 0.3, ["c"]),
    ("y", 0.4, ["x"]), ("e", 0.3, ["d", "c"]), ("f", 0.2, ["y"]), ("g", 0.3, ["e", "f"]),
    ("h", 0.2, ["b"]), ("i", 0.5, ["h"]), ("j", 0.4, ["i"]),
]
"""(id, seconds, needs): an uneven DAG; the critical path is a → d → e → g = 1.6 s."""


def parallelism(scale: float) -> None:
    finish: dict[str, float] = {}
    for tid, secs, needs in SLEEP_DAG:
        finish[tid] = secs + max((finish[n] for n in needs), default=0.0)
    cp = max(finish.values()) * scale
    lines = ["name: bench_parallel", "tasks:"]
    for tid, secs, needs in SLEEP_DAG:
        need = f", needs: [{', '.join(needs)}]" if needs else ""
        lines.append(f"  - {{id: {tid}, title: {tid}, role: lead, run: 'bench_steps:sleep', "
                     f"with: {{seconds: {secs * scale}}}{need}}}")
    with tempfile.TemporaryDirectory() as d:
        ws = Workspace.at(d)
        (Path(d) / "bench_steps.py").write_text(STEPS_MODULE)
        path = Path(d) / "plan.yaml"
        path.write_text("\n".join(lines) + "\n")
        t0 = time.perf_counter()
        summary = run_plan(ws, RunOptions(plan=str(path), concurrency=len(SLEEP_DAG)))
        makespan = time.perf_counter() - t0
        assert summary.phase == "finished", summary.problems
    print(f"parallelism: makespan {makespan:.2f}s / critical path {cp:.2f}s = {makespan / cp:.3f} (target <= 1.10)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--shape", choices=("chain", "wide", "dag"), default="dag")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--parallelism", action="store_true", help="measure makespan / critical path instead")
    ap.add_argument("--scale", type=float, default=2.0, help="multiply the sleep DAG's times")
    args = ap.parse_args()
    if args.parallelism:
        parallelism(args.scale)
        return
    edges = shape_edges(args.tasks, args.shape)
    floors, coords = [], []
    for i in range(args.repeat):
        load = os.getloadavg()[0]
        f, fsize = run_floor(edges, args.concurrency)
        c, csize = run_coord(edges, args.concurrency)
        floors.append(f)
        coords.append(c)
        print(f"  round {i + 1}: floor {1000 * f / args.tasks:.2f} ms/task ({fsize / 1e6:.2f} MB), "
              f"coord {1000 * c / args.tasks:.2f} ms/task ({csize / 1e6:.2f} MB), load {load:.2f}")
    fm, cm = statistics.median(floors), statistics.median(coords)
    print(f"{args.shape}, {args.tasks} tasks, concurrency {args.concurrency}: floor {1000 * fm / args.tasks:.2f} "
          f"ms/task, coord {1000 * cm / args.tasks:.2f} ms/task = {cm / fm:.2f}x the floor "
          f"(target <= 1.5x); load now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
