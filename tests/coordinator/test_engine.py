"""The coordinator graph on small plans: ordering, failures, retries, gates, deferrals, resume."""

from __future__ import annotations

import orjson
import pytest

from coordinator.core.events import read_events
from coordinator.engine.runner import RunOptions, run_plan, run_status
from tests.coordinator.steps_for_tests import write_plan

HEAD = "name: {name}\ntasks:\n"


def _run(ws, text, name="p", **opts):
    path = write_plan(ws.root, text.replace("{name}", name), f"{name}.yaml")
    return run_plan(ws, RunOptions(plan=str(path), render_interval=0, **opts))


def _events(ws, kind):
    return [e for e in read_events(ws.events) if e["kind"] == kind]


def test_failed_task_skips_only_its_dependents(ws):
    plan = HEAD + """
  - {id: a, title: A, role: lead, run: t_noop}
  - {id: bad, title: Bad, role: execution, needs: [a], run: t_fail, with: {message: disk on fire}}
  - {id: after_bad, title: After bad, role: quality, needs: [bad], run: t_noop}
  - {id: side, title: Side, role: quality, needs: [a], run: t_noop}
  - {id: side2, title: Side 2, role: lead, needs: [side], run: t_noop}
"""
    summary = _run(ws, plan)
    assert summary.exit_code == 1
    tasks = summary.state["tasks"]
    assert tasks["bad"]["status"] == "failed"
    assert "input.jsonl:3 → text: disk on fire" in tasks["bad"]["error"]
    assert tasks["after_bad"]["status"] == "skipped"
    assert tasks["after_bad"]["reason"] == "needs bad, which failed"
    assert tasks["side"]["status"] == tasks["side2"]["status"] == "done"
    assert any("task bad failed" in p for p in summary.problems)
    board = (ws.boards / "CURSOR_TASKS.md").read_text()
    assert "disk on fire" in board and "- [ ] **bad**" in board


def test_retries_with_backoff_then_success(ws):
    plan = HEAD + """
  - {id: flaky, title: Flaky, role: lead, run: t_flaky, retries: 2, retry_backoff: 0.01, with: {fail_times: 2}}
"""
    summary = _run(ws, plan)
    assert summary.exit_code == 0
    assert summary.state["tasks"]["flaky"]["attempts"] == 3
    assert len(_events(ws, "task_retried")) == 2


def test_retries_exhausted_fail_the_task(ws):
    plan = HEAD + """
  - {id: flaky, title: Flaky, role: lead, run: t_flaky, retries: 1, retry_backoff: 0.01, with: {fail_times: 5}}
"""
    summary = _run(ws, plan)
    assert summary.exit_code == 1
    assert summary.state["tasks"]["flaky"]["attempts"] == 2
    assert "transient failure 2" in summary.state["tasks"]["flaky"]["error"]


@pytest.mark.slow
def test_timeout_fails_a_task(ws):
    plan = HEAD + """
  - {id: slow, title: Slow, role: lead, run: t_sleep, timeout: 0.3, with: {seconds: 5}}
  - {id: other, title: Other, role: quality, run: t_noop}
"""
    summary = _run(ws, plan)
    assert summary.state["tasks"]["slow"]["status"] == "failed"
    assert "timed out after 0.3s" in summary.state["tasks"]["slow"]["error"]
    assert summary.state["tasks"]["other"]["status"] == "done"


def test_gate_approves_blocks_and_defers(ws):
    plan = HEAD + """
  - {id: make, title: Make, role: execution, run: t_write, with: {out: out/a.txt, metric: 0.5}}
  - {id: fix, title: Fix, role: execution, needs: [make], run: t_write, with: {out: out/b.txt, metric: 0.95}}
  - {id: ship, title: Ship, role: lead, needs: [fix], run: t_noop}
gates:
  - id: review
    after: [make]
    blocks: [fix]
    criteria:
      - {metric: make.metric, op: ">=", value: 0.1, critical: true, weight: 3}
      - {file: out/a.txt, weight: 1}
      - {metric: make.metric, op: ">=", value: 0.9, weight: 1, defer: "Raise the metric", resolved_by: [fix]}
"""
    summary = _run(ws, plan)
    assert summary.exit_code == 0, summary.problems
    gate = summary.state["gates"]["review"]
    assert gate["status"] == "approved" and gate["score"] == 8.0 and gate["grade"] == "B-"
    assert gate["deferred"] == ["Raise the metric"]
    item = summary.state["deferred"]["review:make_metric"] if "review:make_metric" in summary.state["deferred"] \
        else next(iter(summary.state["deferred"].values()))
    assert item["status"] == "resolved" and item["resolved_in"] == "fix"
    record = orjson.loads((ws.reviews / summary.run_id / "review.json").read_bytes())
    assert record["verdict"] == "approved" and len(record["criteria"]) == 3
    assert "Raise the metric" in (ws.reviews / summary.run_id / "review.md").read_text()


def test_failed_critical_criterion_blocks_dependents(ws):
    plan = HEAD + """
  - {id: make, title: Make, role: execution, run: t_write, with: {out: out/a.txt, metric: 0.01}}
  - {id: fix, title: Fix, role: execution, needs: [make], run: t_noop}
  - {id: ship, title: Ship, role: lead, needs: [fix], run: t_noop}
  - {id: unrelated, title: Unrelated, role: quality, run: t_noop}
gates:
  - id: review
    after: [make]
    blocks: [fix]
    criteria:
      - {metric: make.metric, op: ">=", value: 0.1, critical: true}
"""
    summary = _run(ws, plan)
    assert summary.exit_code == 1
    assert summary.state["gates"]["review"]["verdict"] == "rejected"
    assert summary.state["tasks"]["fix"]["status"] == "blocked"
    assert summary.state["tasks"]["ship"]["status"] == "blocked"
    assert summary.state["tasks"]["unrelated"]["status"] == "done"
    assert any("gate review rejected" in p for p in summary.problems)


@pytest.mark.slow
def test_independent_chains_do_not_wait_for_each_other(ws):
    # A short chain must finish while the long task still runs (no superstep barrier).
    plan = HEAD + """
  - {id: long, title: Long, role: lead, run: t_sleep, with: {seconds: 1.0}}
  - {id: s1, title: S1, role: quality, run: t_sleep, with: {seconds: 0.1}}
  - {id: s2, title: S2, role: quality, needs: [s1], run: t_sleep, with: {seconds: 0.1}}
  - {id: s3, title: S3, role: quality, needs: [s2], run: t_sleep, with: {seconds: 0.1}}
"""
    summary = _run(ws, plan)
    assert summary.exit_code == 0
    finished = [e["task"] for e in _events(ws, "task_finished")]
    assert finished.index("s3") < finished.index("long")


@pytest.mark.slow
def test_concurrency_bound_is_respected(ws):
    tasks = "".join(f"  - {{id: t{i}, title: T{i}, role: lead, run: t_sleep, with: {{seconds: 0.2}}}}\n"
                    for i in range(6))
    summary = _run(ws, HEAD + tasks, concurrency=2)
    assert summary.exit_code == 0
    running, peak = 0, 0
    for e in read_events(ws.events):
        if e["kind"] == "task_started":
            running += 1
            peak = max(peak, running)
        elif e["kind"] == "task_finished":
            running -= 1
    assert peak == 2


def test_assignment_goes_to_offline_driver_and_accept_checks_run(ws):
    plan = HEAD + """
  - id: write_notes
    title: Write release notes
    role: lead
    instructions: |
      Summarize the changes. List the risks. Propose a rollout.
    accept:
      - {file: reports/assignments/write_notes.md}
  - id: impossible
    title: Impossible
    role: quality
    instructions: Produce the file nobody writes.
    accept:
      - {file: missing/file.txt}
"""
    summary = _run(ws, plan)
    tasks = summary.state["tasks"]
    assert tasks["write_notes"]["status"] == "done" and tasks["write_notes"]["driver"] == "offline"
    text = (ws.root / "reports/assignments/write_notes.md").read_text()
    assert "offline stand-in" in text and "- [ ] List the risks." in text
    assert tasks["impossible"]["status"] == "failed"
    assert "accept checks failed: file missing/file.txt exists" in tasks["impossible"]["error"]


def test_status_reads_the_checkpoint(ws):
    summary = _run(ws, HEAD + "  - {id: a, title: A, role: lead, run: t_noop, with: {value: 7}}\n")
    st = run_status(ws)
    assert st["run_id"] == summary.run_id and st["phase"] == "finished"
    assert st["tasks"]["a"]["status"] == "done" and st["tasks"]["a"]["metrics"] == {"value": 7}


def test_second_run_starts_fresh_and_skips_up_to_date_steps(ws):
    plan = HEAD + "  - {id: w, title: W, role: lead, run: t_write, with: {out: out/w.txt}}\n"
    first = _run(ws, plan)
    second = _run(ws, plan)
    assert first.run_id != second.run_id
    assert second.state["tasks"]["w"]["skipped_run"] is True


def test_team_coordination_human_text_survives_runs(ws):
    human_top = "# Our team\n\nNotes by Ana — keep   these   spaces.\n\n"
    human_bottom = "\n## Decisions\n\n- ship on Friday\n\ttabbed line\n"
    ws.team_file.write_text(human_top + "<!-- coord:status:begin -->\nold\n<!-- coord:status:end -->\n" + human_bottom)
    plan = HEAD + "  - {id: a, title: A, role: lead, run: t_noop}\n"
    for _ in range(3):
        _run(ws, plan)
        text = ws.team_file.read_text()
        assert text.startswith(human_top)
        assert text.endswith("<!-- coord:status:end -->\n" + human_bottom)
        assert "phase **finished**" in text


def test_edited_board_is_merged_not_clobbered(ws):
    plan = HEAD + "  - {id: a, title: A, role: lead, run: t_noop}\n"
    _run(ws, plan)
    board = ws.boards / "CLAUDE_TASKS.md"
    board.write_text(board.read_text() + "\nMy own note.\n")
    second = _run(ws, plan)
    text = board.read_text()
    assert text.endswith("\nMy own note.\n")
    assert f"run={second.run_id}" in text
    assert orjson.loads(ws.status_file.read_bytes())["conflicts"] == []


@pytest.mark.parametrize("profile,expected", [("speed", "skipped"), ("thorough", "done")])
def test_profiles_skip_optional_tasks(ws, profile, expected):
    plan = HEAD + """
  - {id: a, title: A, role: lead, run: t_noop}
  - {id: opt, title: Optional, role: lead, needs: [a], optional: true, run: t_noop}
  - {id: z, title: Z, role: lead, needs: [opt], run: t_noop}
"""
    summary = _run(ws, plan, profile=profile)
    assert summary.exit_code == 0
    assert summary.state["tasks"]["opt"]["status"] == expected
    assert summary.state["tasks"]["z"]["status"] == "done"
