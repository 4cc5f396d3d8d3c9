"""Fan-out at run time: `foreach: ${pilot.shards}` expands over a list an upstream task reported."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from coordinator.core.errors import PlanError
from coordinator.core.events import read_events
from coordinator.core.run_store import load_run_plan
from coordinator.core.workspace import Workspace
from coordinator.engine.plan_loader import load_plan
from coordinator.engine.runner import RunOptions, run_plan, run_status

PY = sys.executable
REPO = Path(__file__).resolve().parents[2]

STEP = '''
import os
import time

from coordinator import StepContext, StepResult, StepRun, WsPath, step


@step()
def work(ctx: StepContext, *, name: str, out_dir: WsPath = WsPath("data/shards")) -> StepResult:
    out = ctx.path(out_dir) / f"{name}.txt"
    run = StepRun(ctx, "work", {"name": name}, inputs=[], outputs=[out])
    if (cached := run.cached()) is not None:
        return cached
    time.sleep(float(os.environ.get("SHARD_SECONDS", "0")))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"shard {name}\\n" * 3)
    run.record(out, rows=3)
    with ctx.path("ran.log").open("a") as fh:  # only work that finished is counted
        fh.write(name + "\\n")
    return run.finish({"rows": 3})
'''

PLAN = f"""name: fan
tasks:
  - id: pilot
    title: Pilot
    role: lead
    command: ["{PY}", "-c", "import json, os; json.dump({{'shards': ['a', 'b', 'c', 'd']}}, open(os.environ['COORD_METRICS'], 'w'))"]
  - id: scale
    title: Scale ${{item}}
    role: execution
    needs: [pilot]
    foreach: ${{pilot.shards}}
    run: "steps.shard:work"
    with: {{name: "${{item}}"}}
  - id: count
    title: Count shards
    role: quality
    needs: [scale]
    command: "ls data/shards/*.txt | wc -l > count.txt"
gates:
  - id: rows
    after: [scale]
    criteria: [{{metric: scale.rows, op: ">=", value: 3}}]
"""


def _workspace(root: Path) -> Workspace:
    (root / "steps").mkdir(parents=True)
    (root / "steps" / "__init__.py").write_text("")
    (root / "steps" / "shard.py").write_text(textwrap.dedent(STEP))
    (root / "plan.yaml").write_text(PLAN)
    return Workspace.at(root)


@pytest.fixture
def ws(tmp_path: Path):
    yield _workspace(tmp_path / "ws")
    for name in [m for m in sys.modules if m == "steps" or m.startswith("steps.")]:
        del sys.modules[name]


def _digests(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "data" / "shards").iterdir())
            if not p.name.endswith(".manifest.json")}


def test_the_fan_out_expands_when_its_upstream_is_done_and_dependents_wait_for_every_item(ws):
    plan = load_plan(str(ws.root / "plan.yaml"), workspace=ws.root)
    assert plan.tasks["scale"].fanout == "pilot.shards" and plan.tasks["count"].needs == ["scale"]

    summary = run_plan(ws, RunOptions(plan=str(ws.root / "plan.yaml"), render_interval=0))

    assert summary.exit_code == 0, summary.problems
    tasks = summary.state["tasks"]
    copies = ["scale[a]", "scale[b]", "scale[c]", "scale[d]"]
    assert all(tasks[c]["status"] == "done" for c in copies)
    assert (ws.root / "count.txt").read_text().strip() == "4"
    stored = load_run_plan(ws, summary.run_id)  # the expansion is part of the run's stored plan
    assert [t for t in stored.order if t.startswith("scale")] == copies
    assert stored.tasks["count"].needs == copies and stored.gate_after["rows"] == copies
    assert stored.tasks["scale[c]"].params == {"name": "c"} and stored.tasks["scale[c]"].title == "Scale c"
    fanned = [e for e in read_events(ws.events, summary.run_id) if e["kind"] == "task_fanned_out"]
    assert fanned == [{**fanned[0], "task": "scale", "tasks": copies, "source": "pilot.shards"}]
    board = (ws.boards / "CURSOR_TASKS.md").read_text()
    assert all(f"Scale {x}" in board for x in "abcd")
    status = run_status(ws, summary.run_id)
    assert set(copies) <= set(status["tasks"])


@pytest.mark.parametrize("shards", ["'abcd'", "[]", "[True, False]"])
def test_a_fan_out_over_a_metric_that_is_not_a_list_of_names_fails_that_task_clearly(ws, shards):
    (ws.root / "plan.yaml").write_text(PLAN.replace("['a', 'b', 'c', 'd']", shards))
    summary = run_plan(ws, RunOptions(plan=str(ws.root / "plan.yaml"), render_interval=0))
    assert summary.state["tasks"]["scale"]["status"] == "failed"
    assert "foreach ${pilot.shards} must give a non-empty list of names or numbers" in \
        summary.state["tasks"]["scale"]["error"]
    assert summary.state["tasks"]["count"]["status"] == "skipped"


def test_a_fan_out_over_a_task_that_is_not_upstream_is_a_plan_error(ws):
    (ws.root / "plan.yaml").write_text(PLAN.replace("    needs: [pilot]\n    foreach", "    foreach"))
    with pytest.raises(PlanError, match=r"tasks\[1\].foreach: \$\{pilot.shards\}: task 'pilot' is not upstream"):
        load_plan(str(ws.root / "plan.yaml"), workspace=ws.root)


@pytest.mark.slow
def test_a_run_killed_in_the_middle_of_the_fan_out_resumes_running_each_item_once(tmp_path):
    reference = _workspace(tmp_path / "reference")
    killed = _workspace(tmp_path / "killed")
    env = {**os.environ, "PYTHONPATH": str(REPO), "SHARD_SECONDS": "0.7"}
    coord = [PY, "-m", "coordinator"]
    done = subprocess.run([*coord, "run", "plan.yaml", "--concurrency", "1"], cwd=reference.root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    proc = subprocess.Popen([*coord, "run", "plan.yaml", "--concurrency", "1"], cwd=killed.root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ran = killed.root / "ran.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not ran.exists() or len(ran.read_text().split()) < 2):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = ran.read_text().split()
    assert 2 <= len(before) < 4  # killed with the fan-out half done

    resumed = subprocess.run([*coord, "resume"], cwd=killed.root, env=env, capture_output=True, text=True,
                             timeout=120)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert sorted(ran.read_text().split()) == ["a", "b", "c", "d"]  # every shard's work ran exactly once
    assert _digests(killed.root) == _digests(reference.root)
    assert (killed.root / "count.txt").read_text() == (reference.root / "count.txt").read_text()
