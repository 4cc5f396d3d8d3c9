"""Coordination benchmarks for the coordinator graph (run by hand, numbers go in notes).

1. Overhead: a synthetic plan of 1,000 no-op tasks (chains and wide fan-outs)
   through the real LangGraph graph with the SQLite checkpointer; ms per task.
   Target: <= 5 ms per task.
2. Parallelism: tasks that sleep known times in a DAG with uneven branches;
   makespan / critical-path length. Target: <= 1.10.

Usage: python bench/bench_coordination.py [--tasks 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordinator.core.step import StepContext, StepResult, step
from coordinator.core.workspace import Workspace
from coordinator.engine.runner import RunOptions, run_plan


@step("bench_noop")
def bench_noop(ctx: StepContext) -> StepResult:
    """Nothing at all."""
    return StepResult()


@step("bench_sleep")
def bench_sleep(ctx: StepContext, *, seconds: float) -> StepResult:
    """Sleep a known time."""
    time.sleep(seconds)
    return StepResult(metrics={"slept": seconds})


def overhead_plan(n: int) -> str:
    """Half the tasks in 10 chains, half in fan-outs of 100 from a root."""
    lines = ["name: bench_overhead", "tasks:"]
    chains, chain_len = 10, n // 20
    count = 0
    for c in range(chains):
        for i in range(chain_len):
            need = f", needs: [c{c}_{i - 1}]" if i else ""
            lines.append(f"  - {{id: c{c}_{i}, title: c, role: execution, run: bench_noop{need}}}")
            count += 1
    fan = 0
    while count < n:
        lines.append(f"  - {{id: f{fan}_root, title: r, role: lead, run: bench_noop}}")
        count += 1
        for i in range(min(99, n - count)):
            lines.append(f"  - {{id: f{fan}_{i}, title: l, role: quality, run: bench_noop, needs: [f{fan}_root]}}")
            count += 1
        fan += 1
    return "\n".join(lines) + "\n"


# (id, seconds, needs): an uneven DAG; the critical path is a → d → e → g = 1.6 s.
SLEEP_DAG = [
    ("a", 0.6, []), ("b", 0.1, []), ("c", 0.2, ["b"]), ("d", 0.4, ["a"]), ("x", 0.3, ["c"]),
    ("y", 0.4, ["x"]), ("e", 0.3, ["d", "c"]), ("f", 0.2, ["y"]), ("g", 0.3, ["e", "f"]),
    ("h", 0.2, ["b"]), ("i", 0.5, ["h"]), ("j", 0.4, ["i"]),
]


def critical_path(dag: list[tuple[str, float, list[str]]]) -> float:
    """Longest path through the DAG by sleep time."""
    finish: dict[str, float] = {}
    for tid, secs, needs in dag:
        finish[tid] = secs + max((finish[n] for n in needs), default=0.0)
    return max(finish.values())


def sleep_plan(dag: list[tuple[str, float, list[str]]], scale: float) -> str:
    lines = ["name: bench_parallel", "tasks:"]
    for tid, secs, needs in dag:
        need = f", needs: [{', '.join(needs)}]" if needs else ""
        lines.append(f"  - {{id: {tid}, title: {tid}, role: lead, run: bench_sleep, "
                     f"with: {{seconds: {secs * scale}}}{need}}}")
    return "\n".join(lines) + "\n"


def run(plan_text: str, concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        ws = Workspace.at(d)
        path = Path(d) / "plan.yaml"
        path.write_text(plan_text)
        t0 = time.perf_counter()
        summary = run_plan(ws, RunOptions(plan=str(path), concurrency=concurrency))
        elapsed = time.perf_counter() - t0
        assert summary.phase == "finished", summary.problems
        return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--scale", type=float, default=2.0, help="multiply the sleep DAG's times")
    args = ap.parse_args()

    elapsed = run(overhead_plan(args.tasks), args.concurrency)
    print(f"overhead: {args.tasks} no-op tasks in {elapsed:.2f}s = {1000 * elapsed / args.tasks:.2f} ms/task "
          f"(target <= 5 ms)")
    cp = critical_path(SLEEP_DAG) * args.scale
    makespan = run(sleep_plan(SLEEP_DAG, args.scale), concurrency=len(SLEEP_DAG))
    print(f"parallelism: makespan {makespan:.2f}s / critical path {cp:.2f}s = {makespan / cp:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
