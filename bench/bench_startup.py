"""Start-up and CLI latency, each beside its floor, alternating in one run, with the load.

- ``coord --help`` and ``coord status`` beside ``python -c pass``;
- start-up before the first task of a one-task plan (process start → its ``task_started``
  event) beside importing LangGraph and its SQLite checkpointer in a fresh interpreter, which
  every run does (a new run's first step starts its first tasks before that import, the graph
  is built while they run);
- a fully skipped ``coord run week2 --fresh`` (every step's manifests match) beside the same
  steps called directly in one process (``--week2``; needs a finished week2 workspace): timed
  inside that process, and as the wall time of that process (a script a person would run).

Usage: python bench/bench_startup.py [--repeat 5] [--week2 DIR]
Targets (issue 16): status ≤ 0.35 s; start-up before the first task ≤ 0.6 s; a skipped
``--fresh`` week2 re-run ≤ 1.5× the steps called directly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
COORD = [sys.executable, "-m", "coordinator"]
PLAN = "name: one\ntasks:\n  - {id: a, title: A, role: lead, run: 'bench_steps:noop'}\n"
STEPS = "from coordinator import StepContext, StepResult\n\n\ndef noop(ctx: StepContext) -> StepResult:\n" \
        "    return StepResult()\n"
FLOOR_IMPORT = "import langgraph.graph, langgraph.checkpoint.sqlite"


def timed(argv: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - t0


def first_task(work: Path) -> float:
    """Seconds from launching `coord run` to its first task_started event."""
    shutil.rmtree(work / ".coord", ignore_errors=True)
    started = time.time()
    subprocess.run([*COORD, "run", "one.yaml"], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    for line in (work / ".coord" / "events.jsonl").read_bytes().splitlines():
        event = orjson.loads(line)
        if event["kind"] == "task_started":
            return datetime.fromisoformat(event["ts"]).timestamp() - started
    raise RuntimeError("no task started")


def skipped_steps_directly(work: Path) -> tuple[float, float]:
    """Call week2's steps in plan order in one process, as the run would (their manifests match).

    Two figures: the seconds inside the process from loading the plan to the last step's return, and
    the process's wall time as a script a person would run (interpreter start and exit included, as
    they are in `coord run`'s)."""
    code = f"""
import time
t0 = time.perf_counter()
from coordinator.core.step import StepContext, resolve_step
from coordinator.core.workspace import Workspace
from coordinator.engine.plan_loader import load_plan
ws = Workspace.at({str(work)!r})
plan = load_plan("week2", workspace=ws.root)
skipped = 0
for tid in plan.order:
    t = plan.tasks[tid]
    if t.run is None:
        continue
    spec = resolve_step(t.run, ws.root)
    ctx = StepContext(workspace=ws.root, progress=lambda msg, frac: None, feedback=None,
                      code_version=spec.code_version, spend=None)
    skipped += bool(spec.fn(ctx, **t.params).skipped)
print(skipped, time.perf_counter() - t0)
"""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - t0
    skipped, seconds = out.stdout.strip().splitlines()[-1].split()
    if int(skipped) == 0:
        raise RuntimeError("no step was skipped: run `coord run week2` in that workspace first")
    return float(seconds), wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--week2", type=Path, help="a workspace where `coord run week2` finished")
    args = ap.parse_args()
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        (work / "one.yaml").write_text(PLAN)
        (work / "bench_steps.py").write_text(STEPS)
        first_task(work)  # warm the file cache and .pyc files
        for _ in range(args.repeat):
            rows.setdefault("python -c pass", []).append(timed([sys.executable, "-c", "pass"], work))
            rows.setdefault("coord --help", []).append(timed([*COORD, "--help"], work))
            rows.setdefault("coord status", []).append(timed([*COORD, "status"], work))
            rows.setdefault("floor: import LangGraph + SqliteSaver", []).append(
                timed([sys.executable, "-c", FLOOR_IMPORT], work))
            rows.setdefault("coord run: start → first task", []).append(first_task(work))
            if args.week2:
                rows.setdefault("week2 --fresh, all skipped", []).append(
                    timed([*COORD, "run", "week2", "--fresh"], args.week2))
                inside, wall = skipped_steps_directly(args.week2)
                rows.setdefault("floor: the same steps loaded directly", []).append(inside)
                rows.setdefault("  …the same as a script (process wall)", []).append(wall)
    print(f"load {os.getloadavg()[0]:.2f}, median of {args.repeat}")
    for name, values in rows.items():
        print(f"  {name:42s} {statistics.median(values):6.3f} s  (min {min(values):.3f})")
    if args.week2:
        run = statistics.median(rows["week2 --fresh, all skipped"])
        print(f"  skipped --fresh week2: {run / statistics.median(rows['floor: the same steps loaded directly']):.2f}× "
              f"the steps inside a process, {run / statistics.median(rows['  …the same as a script (process wall)']):.2f}× "
              "as a script (target 1.5×)")


if __name__ == "__main__":
    main()
