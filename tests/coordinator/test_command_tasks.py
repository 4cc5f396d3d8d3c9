"""Command tasks: a plan's `command:` runs in the workspace and reports metrics, costs and outputs."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from coordinator.core.errors import PlanError
from coordinator.core.events import read_events
from coordinator.core.workspace import Workspace
from coordinator.engine.ledger import Ledger
from coordinator.engine.plan_loader import load_plan
from coordinator.engine.runner import RunOptions, run_plan

PY = sys.executable

QC = '''
"""Reads data/pilot.jsonl, writes the runaway and token-limit rates to $COORD_METRICS."""
import json, os, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
rates = {"runaway_rate": sum(r["runaway"] for r in rows) / len(rows),
         "token_limit_rate": sum(r["hit_limit"] for r in rows) / len(rows), "rows": len(rows)}
json.dump(rates, open(os.environ["COORD_METRICS"], "w"))
'''

PILOT = '''
"""A pilot generator: fewer runaways at a lower temperature; reads the gate's feedback on a retry."""
import json, os, sys
n, temperature = int(sys.argv[1]), float(sys.argv[2])
feedback = None
if os.environ.get("COORD_FEEDBACK"):
    feedback = json.load(open(os.environ["COORD_FEEDBACK"]))
    last = feedback["attempts"][-1]
    runaway = next(c for c in last["criteria"] if c["id"] == "runaway_rate")
    temperature = temperature * (0.5 ** (feedback["attempt"] - 1)) if not runaway["passed"] else temperature
runaway_every = 2 if temperature > 0.6 else (5 if temperature > 0.3 else 1000)
os.makedirs("data", exist_ok=True)
with open("data/pilot.jsonl", "w") as fh:
    for i in range(n):
        fh.write(json.dumps({"i": i, "runaway": (i + 1) % runaway_every == 0, "hit_limit": False}) + "\\n")
json.dump({"temperature": temperature, "attempt_seen": feedback["attempt"] if feedback else 1,
           "shards": [f"s{k}" for k in range(3)]}, open(os.environ["COORD_METRICS"], "w"))
with open(os.environ["COORD_COSTS"], "a") as fh:
    fh.write(json.dumps({"usd": 0.3, "tokens_in": 1000, "tokens_out": 500, "model": "stand-in-1",
                         "provider": "local", "note": f"pilot at temperature {temperature}"}) + "\\n")
print(f"wrote {n} rows at temperature {temperature}")
'''


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "tools").mkdir(parents=True)
    (root / "tools" / "qc.py").write_text(textwrap.dedent(QC))
    (root / "tools" / "pilot.py").write_text(textwrap.dedent(PILOT))
    return Workspace.at(root)


def _run(ws: Workspace, plan: str, **kw):
    (ws.root / "plan.yaml").write_text(textwrap.dedent(plan))
    return run_plan(ws, RunOptions(plan=str(ws.root / "plan.yaml"), render_interval=0, **kw))


STAGE = f"""
name: stage
params: {{pilot_n: 20, temperature: 1.0, label: "a b; c"}}
budget: {{usd: 1.0, alerts: [0.25, 0.5, 0.8]}}
tasks:
  - id: pilot
    title: Pilot generation
    role: lead
    command: "{PY} tools/pilot.py ${{pilot_n}} ${{temperature}}"
    outputs: [data/pilot.jsonl]
  - id: echo
    title: Echo upstream values
    role: quality
    needs: [pilot]
    command: ["{PY}", "-c", "import sys, json, os; json.dump({{'args': sys.argv[1:]}}, open(os.environ['COORD_METRICS'], 'w'))",
              "${{label}}", "${{pilot.temperature}}", "${{pilot.shards}}", "$${{HOME}}"]
gates:
  - id: qc
    after: [pilot]
    blocks: [echo]
    on_fail: retry
    max_retries: 2
    criteria:
      - {{id: runaway_rate, command: "{PY} tools/qc.py data/pilot.jsonl", metric: runaway_rate, op: "<", value: 0.05, critical: true}}
      - {{id: token_limit_rate, command: "{PY} tools/qc.py data/pilot.jsonl", metric: token_limit_rate, op: "<", value: 0.1}}
"""


def test_a_qc_gate_fails_twice_then_passes_because_the_command_read_its_feedback(ws):
    summary = _run(ws, STAGE)

    assert summary.exit_code == 0, summary.problems
    pilot, gate = summary.state["tasks"]["pilot"], summary.state["gates"]["qc"]
    assert gate["status"] == "approved" and gate["attempt"] == 3
    measured = [next(c["measured"] for c in h["criteria"] if c["id"] == "runaway_rate") for h in gate["history"]]
    assert measured == [0.5, 0.2]  # temperature 1.0, then 0.5; 0.25 passes
    assert [c["measured"] for c in gate["criteria"] if c["name"] == "runaway_rate"] == [0.0]
    assert pilot["metrics"]["attempt_seen"] == 3 and pilot["metrics"]["temperature"] == 0.25
    review = pilot["review"]
    assert review["gate"] == "qc" and review["attempt"] == 3 and review["max_attempts"] == 3
    assert [a["attempt"] for a in review["attempts"]] == [1, 2]
    # the measured rate is on the review record and the board
    record = (ws.reviews / summary.run_id / "qc.md").read_text()
    assert "runaway_rate" in record and "0.05" in record
    board = (ws.boards / "CODEX_TASKS.md").read_text()
    assert "qc" in board
    # upstream values and plan values reach a list command unquoted, $${…} stays literal
    assert summary.state["tasks"]["echo"]["metrics"]["args"] == ["a b; c", "0.25", '["s0", "s1", "s2"]', "${HOME}"]
    # every attempt's cost line is in the ledger and the budget alerts fired
    calls = Ledger.of(ws.state_dir).calls(summary.run_id)
    assert [round(c["usd"], 2) for c in calls] == [0.3, 0.3, 0.3]
    alerts = [e["threshold"] for e in read_events(ws.events, summary.run_id) if e["kind"] == "budget_alert"]
    assert alerts == [0.25, 0.5, 0.8]


def test_an_unchanged_command_with_declared_outputs_is_skipped_and_its_manifest_has_the_sha256(ws):
    plan = f"""
    name: once
    tasks:
      - {{id: make, title: Make, role: lead, command: "{PY} -c \\"open('data/out.txt','w').write('x')\\"", outputs: [data/out.txt]}}
    """
    (ws.root / "data").mkdir()
    first = _run(ws, plan)
    assert first.exit_code == 0, first.problems
    art = first.state["tasks"]["make"]["artifacts"][0]
    manifest = orjson.loads((ws.root / "data" / "out.txt.manifest.json").read_bytes())
    assert art["path"] == "data/out.txt" and art["sha256"] == manifest["sha256"]
    again = _run(ws, plan, fresh=True)
    assert again.state["tasks"]["make"]["skipped_run"] is True
    (ws.root / "data" / "out.txt").write_text("changed by hand")
    third = _run(ws, plan, fresh=True)
    assert not third.state["tasks"]["make"].get("skipped_run")


@pytest.mark.parametrize(("command", "error"), [
    # stdout and stderr are read by two threads: their lines may reach the log in either order
    ("echo working; echo 'disk full' >&2; exit 1",
     r"(?s)exit 1 \(log: \.coord/logs/[^/]+/bad\.1\.log\); last lines:\n(?=.*working)(?=.*\[stderr\] disk full)"),
    ("echo '{broken' > $COORD_METRICS", r"\.coord/runs/.*/commands/bad\.1\.\w+\.metrics\.json \(COORD_METRICS\): not valid JSON"),
    ("echo '[1, 2]' > $COORD_METRICS", r"expected one JSON object of metrics, got list"),
    ("echo '{\"a\": {\"b\": 1}}' > $COORD_METRICS", r"→ a: a metric is a number, string, boolean, null or a list"),
    ("echo '{\"usd\": -1}' > $COORD_COSTS", r"costs\.jsonl:1 \(COORD_COSTS\) → usd: a number ≥ 0 or null, got -1"),
    ("echo 'ok'", r"declared outputs were not written: data/never\.txt"),
])
def test_a_failing_command_fails_its_task_with_the_reason_and_the_logs_tail(ws, command, error):
    plan = ("name: bad\ntasks:\n  - {id: bad, title: Bad, role: lead, command: " + orjson.dumps(command).decode()
            + ", outputs: [data/never.txt]}\n")
    summary = _run(ws, plan)
    assert summary.exit_code == 1
    rec = summary.state["tasks"]["bad"]
    assert rec["status"] == "failed"
    import re
    assert re.search(error, rec["error"]), rec["error"]


@pytest.mark.slow
def test_a_command_past_its_timeout_is_killed_with_its_whole_process_group(ws):
    plan = ("name: hang\ntasks:\n  - {id: hang, title: Hang, role: lead, timeout: 1, command: "
            "\"sleep 30 & echo $! > child.pid; wait\"}\n")
    started = time.monotonic()
    summary = _run(ws, plan)
    assert time.monotonic() - started < 20
    rec = summary.state["tasks"]["hang"]
    assert rec["status"] == "failed" and rec["error"].startswith("timed out after 1s")
    child = int((ws.root / "child.pid").read_text())
    for _ in range(50):
        if not Path(f"/proc/{child}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower() \
        or " Z " in Path(f"/proc/{child}/stat").read_text()


def test_a_command_check_fails_on_a_test_summary_with_failures_even_at_exit_0(ws):
    plan = """
    name: tests
    tasks:
      - {id: t, title: T, role: lead, command: "true"}
    gates:
      - id: g
        after: [t]
        criteria: [{id: suite, command: "echo '3 passed, 1 failed in 0.2s'; exit 0"}]
    """
    summary = _run(ws, plan)
    crit = summary.state["gates"]["g"]["criteria"][0]
    assert crit["passed"] is False and crit["counts"] == {"passed": 3, "failed": 1}
    assert "exit 0, but the test summary reports failures" in crit["detail"]


@pytest.mark.parametrize(("field", "text", "message"), [
    ("command", 'command: "python tools/pilot.py --n ${pilot_n}"', r"plan.yaml:4 → tasks\[0\].command: unknown parameter \$\{pilot_n\}"),
    ("accept", 'command: "true", accept: [{command: "test -s ${out_file}"}]', r"tasks\[0\].accept\[0\].command: unknown parameter \$\{out_file\}"),
    ("upstream", 'command: "echo ${other.x}"', r"tasks\[0\].command: \$\{other.x\}: task 'other' is not upstream of this task"),
    ("malformed", 'command: "echo ${pilot-n}"', r"\$\{pilot-n\} is not a reference"),
])
def test_an_unresolved_reference_anywhere_is_a_plan_error_with_file_and_line(ws, field, text, message):
    plan = "name: refs\nparams: {n: 1}\ntasks:\n  - {id: a, title: A, role: lead, " + text + "}\n"
    (ws.root / "plan.yaml").write_text(plan)
    with pytest.raises(PlanError, match=message):
        load_plan(str(ws.root / "plan.yaml"))


def test_a_gate_commands_reference_is_checked_too(ws):
    plan = ("name: refs\ntasks:\n  - {id: a, title: A, role: lead, command: 'true'}\ngates:\n"
            "  - {id: g, after: [a], criteria: [{command: 'check ${threshold}'}]}\n")
    (ws.root / "plan.yaml").write_text(plan)
    with pytest.raises(PlanError, match=r"plan.yaml:5 → gates\[0\].criteria\[0\].command: unknown parameter"):
        load_plan(str(ws.root / "plan.yaml"))


def test_environment_names_the_run_the_task_the_attempt_and_the_workspace(ws):
    plan = ("name: env\ntasks:\n  - {id: e, title: E, role: lead, command: "
            "\"env | grep ^COORD_ | sort > env.txt\"}\n")
    summary = _run(ws, plan)
    env = dict(line.split("=", 1) for line in (ws.root / "env.txt").read_text().splitlines())
    assert env["COORD_RUN_ID"] == summary.run_id and env["COORD_TASK_ID"] == "e"
    assert env["COORD_ATTEMPT"] == "1" and Path(env["COORD_WORKSPACE"]) == ws.root
    assert "COORD_FEEDBACK" not in env and env["COORD_METRICS"].endswith(".metrics.json")
    assert os.path.isabs(env["COORD_COSTS"])


@pytest.mark.parametrize(("text", "message"), [
    ('command: "true", outputs: ["${b.out}"]', r"tasks\[1\].outputs\[0\]: \$\{b.out\}: a task's metric is not filled in here"),
    ('title: "B ${b.n}", command: "true"', r"tasks\[1\].title: \$\{b.n\}: a task's metric is not filled in here"),
    ('command: "true", accept: [{command: "test ${b.n} -gt 0"}]', r"accept\[0\].command: \$\{b.n\}: task 'b' is not upstream"),
])
def test_upstream_values_where_they_are_never_filled_in_are_plan_errors(ws, text, message):
    plan = ("name: refs\ntasks:\n  - {id: b, title: B, role: lead, command: 'true'}\n"
            "  - {id: c, role: lead, needs: [b], " + (text if "title" in text else "title: C, " + text) + "}\n")
    (ws.root / "plan.yaml").write_text(plan)
    with pytest.raises(PlanError, match=message):
        load_plan(str(ws.root / "plan.yaml"))


def test_a_gate_value_cannot_name_a_task_metric(ws):
    plan = ("name: refs\ntasks:\n  - {id: b, title: B, role: lead, command: 'true'}\ngates:\n"
            "  - {id: g, after: [b], criteria: [{metric: b.n, op: '>=', value: '${b.m}'}]}\n")
    (ws.root / "plan.yaml").write_text(plan)
    with pytest.raises(PlanError, match=r"gates\[0\].criteria\[0\].value: \$\{b.m\}: a task's metric is not filled in"):
        load_plan(str(ws.root / "plan.yaml"))


@pytest.mark.slow
def test_a_new_run_does_not_reuse_what_a_feedback_driven_retry_wrote(ws):
    first = _run(ws, STAGE)
    assert first.state["tasks"]["pilot"]["metrics"]["temperature"] == 0.25  # written on attempt 3
    again = _run(ws, STAGE, fresh=True)
    pilot = again.state["tasks"]["pilot"]
    assert not pilot.get("skipped_run")  # attempt 1 of the new run has no feedback: it runs
    assert again.state["gates"]["qc"]["attempt"] == 3


def test_valid_cost_lines_are_recorded_beside_bad_ones_and_every_bad_line_is_named(ws):
    plan = ("name: costs\ntasks:\n  - {id: c, title: C, role: lead, command: \""
            "echo '{\\\"usd\\\": 0.1, \\\"note\\\": \\\"ok line\\\"}' >> $COORD_COSTS; echo 'not json' >> $COORD_COSTS; "
            "echo '{\\\"usd\\\": 0.2, \\\"model\\\": 5}' >> $COORD_COSTS; echo '{\\\"usd\\\": 0.3}' >> $COORD_COSTS\"}\n")
    summary = _run(ws, plan)
    rec = summary.state["tasks"]["c"]
    assert rec["status"] == "failed"
    assert "costs.jsonl:2 (COORD_COSTS): not valid JSON" in rec["error"]
    assert "costs.jsonl:3 (COORD_COSTS) → model: text, got 5" in rec["error"]
    assert "(2 valid line(s) recorded, $0.4000)" in rec["error"]
    assert Ledger.of(ws.state_dir).spent(summary.run_id).usd == pytest.approx(0.4)
