"""Review gates end to end on small plans: auto approval, retry with feedback, defer,
human decisions (CLI and the board's service call), overrides, override windows, claims."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import git
import orjson
import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.events import read_events
from coordinator.engine.decisions import record_decision
from coordinator.engine.graph import build_graph
from coordinator.engine.runner import RunOptions, run_plan, run_status
from coordinator.engine.stores import open_checkpointer
from tests.coordinator.steps_for_tests import write_plan

FAKE_SUITE = Path(__file__).resolve().parents[1] / "reviews" / "fake_suite.py"


def _run(ws, text, name="p", **opts):
    path = write_plan(ws.root, f"name: {name}\n" + text, f"{name}.yaml")
    return run_plan(ws, RunOptions(plan=str(path), render_interval=0, **opts))


def _events(ws, kind):
    return [e for e in read_events(ws.events) if e["kind"] == kind]


def _record(ws, run_id, gate):
    return orjson.loads((ws.reviews / run_id / f"{gate}.json").read_bytes())


def _git_workspace(ws, user="Ana Reviewer"):
    repo = git.Repo.init(ws.root)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", user)
        cw.set_value("user", "email", "ana@example.invalid")
    (ws.root / "README.txt").write_text("workspace\n")
    repo.index.add(["README.txt"])
    repo.index.commit("start")
    return repo


HUMAN_PLAN = """
tasks:
  - {id: make, title: Make, role: execution, run: t_write, with: {out: out/a.txt, metric: METRIC}}
  - {id: ship, title: Ship, role: lead, needs: [make], run: g_count, with: {label: shipped}}
  - {id: side, title: Side, role: quality, run: t_noop}
gates:
  - id: signoff
    after: [make]
    blocks: [ship]
    policy: human
    criteria:
      - {metric: make.metric, op: ">=", value: 0.5, critical: true, label: "metric at least 0.5"}
"""


def test_auto_gate_approves_and_records_evidence(ws):
    repo = _git_workspace(ws)
    plan = HUMAN_PLAN.replace("METRIC", "0.8").replace("policy: human", "policy: auto")
    summary = _run(ws, plan)
    assert summary.exit_code == 0, summary.problems
    gate = summary.state["gates"]["signoff"]
    assert (gate["status"], gate["verdict"], gate["grade"], gate["score"]) == ("approved", "approved", "A", 10.0)
    assert gate["decided_by"] == "coord (auto)"
    rec = _record(ws, summary.run_id, "signoff")
    crit = rec["criteria"][0]
    assert (crit["measured"], crit["op"], crit["threshold"], crit["passed"]) == (0.8, ">=", 0.5, True)
    assert rec["commit"].split("+")[0] == repo.head.commit.hexsha
    assert rec["artifacts"][0]["path"] == "out/a.txt" and len(rec["artifacts"][0]["sha256"]) == 64
    assert (ws.root / "out/side_effects.txt").read_text() == "shipped\n"


def test_failing_gate_retries_with_feedback_then_passes(ws):
    plan = """
tasks:
  - {id: work, title: Work, role: execution, run: g_fix_with_feedback}
  - {id: ship, title: Ship, role: lead, needs: [work], run: t_noop}
gates:
  - id: review
    after: [work]
    blocks: [ship]
    on_fail: retry
    max_retries: 2
    criteria:
      - {metric: work.quality, op: ">=", value: 0.9, critical: true, label: "quality at least 0.9"}
"""
    summary = _run(ws, plan)
    assert summary.exit_code == 0, summary.problems
    seen = (ws.root / "out/feedback_seen.txt").read_text().splitlines()
    assert seen[0] == "run 0: (no feedback)"
    assert "quality at least 0.9: measured 0.2" in seen[1] and len(seen) == 2
    gate = summary.state["gates"]["review"]
    assert gate["status"] == "approved" and gate["attempt"] == 2
    assert [h["verdict"] for h in gate["history"]] == ["rejected"]
    work = summary.state["tasks"]["work"]
    assert work["dispatch"] == 2 and any("quality at least 0.9" in f for f in work["feedback"])
    assert len(_events(ws, "gate_retry")) == 1
    assert work["attempts"] == 2  # every run counts, not only the latest dispatch's
    line = next(ln for ln in (ws.boards / "CURSOR_TASKS.md").read_text().splitlines() if "  - status: " in ln)
    assert "· attempt 2 · run 2 (sent back by a gate or reopened 1×)" in line, line
    board = (ws.root / "out/execute_now_seen.md").read_text()
    assert "### Review feedback and notes to address" in board and "quality at least 0.9: measured 0.2" in board
    assert "· run 2 of this task (sent back by a gate or reopened: address the feedback below)" in board
    md = (ws.reviews / summary.run_id / "review.md").read_text()
    assert "## Earlier attempts" in md and "| 1 | rejected | F |" in md


def test_retries_exhausted_block_the_gated_tasks(ws):
    plan = """
tasks:
  - {id: make, title: Make, role: execution, run: t_write, with: {out: out/a.txt, metric: 0.01}}
  - {id: ship, title: Ship, role: lead, needs: [make], run: t_noop}
gates:
  - id: review
    after: [make]
    blocks: [ship]
    on_fail: retry
    max_retries: 1
    criteria:
      - {metric: make.metric, op: ">=", value: 0.5, critical: true}
"""
    summary = _run(ws, plan)
    assert summary.exit_code == 1
    gate = summary.state["gates"]["review"]
    assert gate["status"] == "rejected" and gate["attempt"] == 2
    assert gate["reason"] == "still rejected after 2 attempts"
    assert summary.state["tasks"]["ship"]["status"] == "blocked"
    assert summary.state["tasks"]["make"]["dispatch"] == 2


def test_on_fail_defer_continues_and_carries_the_findings(ws):
    plan = """
tasks:
  - {id: make, title: Make, role: execution, run: t_write, with: {out: out/a.txt, metric: 0.3}}
  - {id: ship, title: Ship, role: lead, needs: [make], run: t_noop}
gates:
  - id: review
    after: [make]
    blocks: [ship]
    on_fail: defer
    criteria:
      - {file: out/a.txt, weight: 1}
      - {metric: make.metric, op: ">=", value: 0.5, weight: 2, label: "metric at least 0.5",
         defer: "Raise the metric in week 3"}
      - {metric: make.metric, op: ">=", value: 0.4, weight: 1, label: "metric at least 0.4"}
"""
    summary = _run(ws, plan)
    assert summary.exit_code == 0, summary.problems
    gate = summary.state["gates"]["review"]
    assert gate["verdict"] == "changes_requested" and gate["status"] == "deferred"
    assert summary.state["tasks"]["ship"]["status"] == "done"
    texts = sorted(d["text"] for d in summary.state["deferred"].values())
    assert texts[0] == "Raise the metric in week 3"
    assert texts[1].startswith("metric at least 0.4: measured 0.3")
    assert all(d["status"] == "open" for d in summary.state["deferred"].values())
    assert "Raise the metric in week 3" in ws.team_file.read_text()
    assert "## Deferred items" in (ws.reviews / summary.run_id / "review.md").read_text()


def test_on_fail_defer_still_blocks_a_critical_failure(ws):
    plan = """
tasks:
  - {id: make, title: Make, role: execution, run: t_write, with: {out: out/a.txt, metric: 0.3}}
  - {id: ship, title: Ship, role: lead, needs: [make], run: t_noop}
gates:
  - id: review
    after: [make]
    blocks: [ship]
    on_fail: defer
    criteria:
      - {metric: make.metric, op: ">=", value: 0.5, critical: true}
"""
    summary = _run(ws, plan)
    assert summary.state["gates"]["review"]["status"] == "rejected"
    assert summary.state["tasks"]["ship"]["status"] == "blocked"


def _paused_at_human_gate(ws, run_id):
    with open_checkpointer(ws) as saver:
        snap = build_graph(saver).get_state({"configurable": {"thread_id": run_id}})
    return snap.next == ("human_gate",) and bool(snap.interrupts)


def test_human_gate_waits_and_coord_approve_resumes(ws):
    _git_workspace(ws)
    summary = _run(ws, HUMAN_PLAN.replace("METRIC", "0.8"))
    assert summary.exit_code == 3 and summary.phase == "waiting"
    assert summary.state["tasks"]["side"]["status"] == "done"  # independent work did not wait
    assert summary.state["tasks"]["ship"]["status"] == "pending"
    assert summary.state["gates"]["signoff"]["status"] == "waiting"
    assert _paused_at_human_gate(ws, summary.run_id)
    assert _record(ws, summary.run_id, "signoff")["status"] == "waiting"

    runner = CliRunner()
    res = runner.invoke(app, ["approve", "signoff", "--note", "numbers look right", "-w", str(ws.root)],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "gate signoff approved by Ana Reviewer" in res.output
    st = run_status(ws)
    assert st["phase"] == "finished" and st["tasks"]["ship"]["status"] == "done"
    rec = _record(ws, summary.run_id, "signoff")
    assert rec["status"] == "approved" and rec["decided_by"] == "Ana Reviewer"
    assert rec["decision"]["action"] == "approve" and rec["decision"]["note"] == "numbers look right"
    assert len(_events(ws, "gate_decision")) == 1
    assert "- by: Ana Reviewer" in (ws.reviews / summary.run_id / "signoff.md").read_text()

    again = runner.invoke(app, ["approve", "signoff", "-w", str(ws.root)], catch_exceptions=False)
    assert again.exit_code == 2 and "is not waiting for a decision: it is approved" in again.output
    assert (ws.root / "out/side_effects.txt").read_text() == "shipped\n"

    listing = runner.invoke(app, ["reviews", "-w", str(ws.root)], catch_exceptions=False, env={"COLUMNS": "80"})
    assert "signoff" in listing.output and "approved" in listing.output
    # at 80 columns ids are never cut: the run id and the record path can be pasted into other commands
    row = next(ln for ln in listing.output.splitlines() if "signoff" in ln).split()
    assert row[:2] == [summary.run_id, "signoff"] and row[-1] == f"reviews/{summary.run_id}/signoff.md"
    shown = runner.invoke(app, ["review", "show", "signoff", "-w", str(ws.root)], catch_exceptions=False)
    assert shown.exit_code == 0 and "# Review: signoff" in shown.output


def test_record_decision_is_what_a_board_tick_calls(ws, monkeypatch):
    monkeypatch.setenv("USER", "board-user")  # no git user.name anywhere: $USER
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(ws.root / "no-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    summary = _run(ws, HUMAN_PLAN.replace("METRIC", "0.8"))
    assert summary.exit_code == 3
    result = record_decision(ws, "signoff", "approve")
    assert result.applied and result.phase == "finished" and result.gate_status == "approved"
    assert result.by == "board-user" and result.run_id == summary.run_id and result.exit_code == 0
    assert (ws.root / "out/side_effects.txt").read_text() == "shipped\n"


def test_reject_with_note_blocks_and_needs_a_note(ws):
    summary = _run(ws, HUMAN_PLAN.replace("METRIC", "0.8"))
    runner = CliRunner()
    res = runner.invoke(app, ["reject", "signoff", "--note", "", "-w", str(ws.root)], catch_exceptions=False)
    assert res.exit_code == 2 and "needs a note" in res.output
    res = runner.invoke(app, ["reject", "signoff", "--note", "wrong dataset", "-w", str(ws.root)],
                        catch_exceptions=False)
    assert res.exit_code == 1, res.output
    st = run_status(ws, summary.run_id)
    assert st["gates"]["signoff"]["status"] == "rejected" and st["tasks"]["ship"]["status"] == "blocked"


def test_override_with_a_grade_on_a_custom_scale(ws):
    plan = HUMAN_PLAN.replace("METRIC", "0.1") + """grading:
  scale: {Excellent: 9.0, Good: 7.0, Pass: 5.0}
  fail_grade: Fail
"""
    summary = _run(ws, plan)
    gate = summary.state["gates"]["signoff"]
    assert summary.exit_code == 3 and gate["verdict"] == "rejected" and gate["grade"] == "Fail"
    runner = CliRunner()
    bad = runner.invoke(app, ["override", "signoff", "--grade", "B+", "--note", "x", "-w", str(ws.root)],
                        catch_exceptions=False)
    assert bad.exit_code == 2 and "unknown grade 'B+' (scale: Excellent, Good, Pass, Fail)" in bad.output
    res = runner.invoke(app, ["override", "signoff", "--grade", "Good", "--note", "metric is fine for a pilot",
                              "--by", "Lead", "-w", str(ws.root)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rec = _record(ws, summary.run_id, "signoff")
    assert (rec["status"], rec["grade"], rec["grade_measured"]) == ("approved", "Good", "Fail")
    assert rec["decision"]["grade"] == "Good" and rec["decided_by"] == "Lead"
    assert "(measured Fail, overridden)" in (ws.reviews / summary.run_id / "signoff.md").read_text()


def test_auto_then_human_window_closes_and_the_auto_verdict_stands(ws):
    plan = HUMAN_PLAN.replace("METRIC", "0.8").replace("policy: human", "policy: auto_then_human\n    override_window: 0.3")
    summary = _run(ws, plan)
    assert summary.exit_code == 0, summary.problems
    gate = summary.state["gates"]["signoff"]
    assert gate["status"] == "approved" and gate["decided_by"] == "coord (auto); override window closed"
    started = [e["task"] for e in read_events(ws.events) if e["kind"] == "task_started"]
    decided = [e for e in read_events(ws.events) if e["kind"] == "gate_decided"]
    assert decided[-1].get("window_closed") and "ship" in started


def test_auto_then_human_override_reaches_the_live_run(ws):
    plan = HUMAN_PLAN.replace("METRIC", "0.1").replace("policy: human", "policy: auto_then_human\n    override_window: 120")
    results = []

    def person():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                st = run_status(ws)
            except Exception:  # no run registered yet
                time.sleep(0.05)
                continue
            if st["gates"]["signoff"].get("status") == "waiting":
                results.append(record_decision(ws, "signoff", "override", grade="B", note="pilot", by="Ana"))
                return
            time.sleep(0.05)

    thread = threading.Thread(target=person)
    thread.start()
    summary = _run(ws, plan)
    thread.join()
    assert results and results[0].applied is False  # the live run held the workspace and applied it
    assert summary.exit_code == 0, summary.problems
    gate = summary.state["gates"]["signoff"]
    assert (gate["status"], gate["grade"], gate["decided_by"]) == ("approved", "B", "Ana")
    assert len(_events(ws, "gate_decision")) == 1
    assert not list((ws.run_dir(summary.run_id) / "inbox").glob("*.json"))


@pytest.mark.parametrize("claim,flagged", [("All 21 tests pass. 100% pass rate.", True),
                                           ("21 tests, 18 passing (3 known failures).", False)])
def test_claims_check_flags_overclaimed_tests(ws, claim, flagged):
    plan = f"""
tasks:
  - {{id: report, title: Report, role: execution, run: g_claim, with: {{text: "{claim}"}}}}
gates:
  - id: review
    after: [report]
    criteria:
      - {{id: tests, command: "{sys.executable} {FAKE_SUITE} 18 3", weight: 1}}
      - {{claims: {{task: report, against: tests}}, critical: true, weight: 1}}
"""
    summary = _run(ws, plan)
    rec = _record(ws, summary.run_id, "review")
    tests_crit, claims_crit = rec["criteria"]
    assert tests_crit["counts"] == {"failed": 3, "passed": 18} and tests_crit["measured"] == 1
    assert claims_crit["passed"] is not flagged
    md = (ws.reviews / summary.run_id / "review.md").read_text()
    assert "## Claims vs measurements" in md
    if flagged:
        assert rec["verdict"] == "rejected"
        assert claims_crit["claims"][0] == {"text": "All 21 tests pass", "claimed": "21/21 passed, 0 failed",
                                            "measured": "18/21 passed, 3 failed (85.7% pass rate)",
                                            "matches": False}
        assert '| "All 21 tests pass" | 21/21 passed, 0 failed | 18/21 passed, 3 failed (85.7% pass rate) | **NO** |' in md
        assert any("claimed 'All 21 tests pass'" in f for f in rec["findings"])


def test_week_summary_report_cards_are_measured(ws):
    plan = """
tasks:
  - {id: work, title: Work, role: execution, run: g_fix_with_feedback}
  - {id: notes, title: Notes, role: quality, run: t_noop}
  - {id: report, title: Report, role: lead, needs: [work, notes, review], run: report}
gates:
  - id: review
    after: [work]
    on_fail: retry
    criteria:
      - {metric: work.quality, op: ">=", value: 0.9, critical: true}
grading:
  scale: {Top: 9.5, Fine: 7.0}
  fail_grade: Poor
"""
    summary = _run(ws, plan)
    assert summary.exit_code == 0, summary.problems
    text = (ws.root / "reports/week_summary.md").read_text()
    assert "| execution | cursor | 1/1 | Top | 10.00/10 | 1 | review Top | 1 | $0.00 |" in text
    assert "| quality | codex | 1/1 | not graded |" in text
    assert "| review | approved | Top | 10.00 | 2 | coord (auto) |" in text
