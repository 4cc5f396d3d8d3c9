"""The report step summarizes whatever plan ran: its title, gates, gated metrics, deferred items, costs.

Only a plan with a launch gate gets the launch headline; week2 keeps its week-summary layout.
"""

from __future__ import annotations

import orjson

from coordinator import StepContext
from coordinator.core.grading import format_score
from coordinator.core.workspace import Workspace
from coordinator.engine.runner import RunOptions, run_plan
from pipeline.report import report
from tests.coordinator.steps_for_tests import write_plan

DOCS_PLAN = """
name: docs_refresh
title: "Docs refresh: rewrite and proofread the guides"
budget: {usd: 5}
roles:
  writer: {agent: claude}
tasks:
  - {id: draft, title: Draft the guides, role: writer, run: t_write, with: {out: out/draft.md, metric: 0.75}}
  - {id: proofread, title: Proofread, role: quality, needs: [draft], run: t_noop, with: {value: 3}}
  - {id: report, title: Report, role: lead, needs: [proofread, review, final], run: report}
gates:
  - id: review
    after: [draft]
    criteria:
      - {metric: draft.metric, op: ">=", value: 0.5, critical: true, weight: 3}
      - {file: out/draft.md, weight: 1}
      - {metric: draft.metric, op: ">=", value: 0.9, weight: 1, defer: "Tighten the draft before publishing"}
  - id: final
    after: [proofread]
    criteria:
      - {metric: proofread.value, op: "<=", value: 5, weight: 3}
      - {metric: proofread.typos, op: "==", value: 0, weight: 1}
"""


def _run(ws: Workspace, text: str, name: str):
    path = write_plan(ws.root, text, f"{name}.yaml")
    summary = run_plan(ws, RunOptions(plan=str(path), render_interval=0))
    assert summary.exit_code == 0, summary.problems
    return summary, (ws.root / "reports/week_summary.md").read_text()


def test_any_plan_gets_a_summary_of_its_own_gates_metrics_deferred_items_and_costs(tmp_path):
    ws = Workspace.at(tmp_path)
    summary, text = _run(ws, DOCS_PLAN, "docs")
    lines = text.splitlines()
    assert lines[0] == "# Docs refresh: rewrite and proofread the guides — run summary"
    assert lines[2].startswith(f"Plan `docs_refresh` · run `{summary.run_id}` · profile thorough")
    assert "Week summary" not in text
    assert "Launch decision" not in text and "launch" not in text.lower()

    # every gate, in the order it reviews, with the grade, score and verdict its record holds
    gates = summary.state["gates"]
    assert set(gates) == {"review", "final"}
    for gid, g in gates.items():
        assert g["grade"]
        assert (f"| {gid} | {g['status']} | {g['grade']} | {format_score(g['score'])} | 1 | coord (auto) | "
                f"{g['verdict']} |") in text
    assert text.index("| review | approved |") < text.index("| final | approved |")

    # the metrics the gates read, with what the tasks measured; one no task measured is not shown as 0
    assert "| draft | metric | 0.75 | review (>= 0.5), review (>= 0.9) |" in text
    assert "| proofread | value | 3 | final (<= 5) |" in text
    assert "| proofread | typos | not measured | final (== 0) |" in text
    assert summary.state["tasks"]["draft"]["metrics"]["metric"] == 0.75
    assert summary.state["tasks"]["proofread"]["metrics"] == {"value": 3}

    assert ("- [ ] Tighten the draft before publishing — gate review: draft.metric >= 0.9: measured 0.75 "
            "(open: carry to the next plan)") in text
    assert "## Costs" in text and "| run | $5.00 | $0.00 | 0% | — |" in text
    # a role the plan declares gets its card, graded by the criteria that measure its task
    card = next(line for line in lines if line.startswith("| writer | claude | 1/1 | "))
    assert card.endswith(f"| 2 | review {gates['review']['grade']} | 0 | $0.00 |"), card
    assert "| report | lead | done | — | writes this summary |" in text

    metrics = summary.state["tasks"]["report"]["metrics"]
    assert "launch" not in metrics
    assert metrics["gates_total"] == 2 and metrics["deferred_open"] == 1


def test_the_launch_headline_names_the_gate_a_plan_chose(tmp_path):
    ws = Workspace.at(tmp_path)
    plan = DOCS_PLAN.replace("run: report}", "run: report, with: {launch_gate: review}}")
    summary, text = _run(ws, plan, "docs")
    assert text.splitlines()[4] == "**Launch decision (review gate): GO — with 1 open deferred item: " \
                                   "Tighten the draft before publishing**"
    assert summary.state["tasks"]["report"]["metrics"]["launch"] == "go"


WEEK2_SHAPED = """
name: week2
tasks:
  - {id: generate, title: Generate, role: lead, run: t_noop, with: {value: 7}}
  - {id: benchmark, title: Benchmark, role: quality, needs: [generate], run: t_write,
     with: {out: out/bench.md, metric: 0.12}}
  - {id: report, title: Report, role: lead, needs: [benchmark, launch], run: report}
gates:
  - id: launch
    after: [benchmark]
    criteria:
      - {metric: benchmark.metric, op: ">=", value: 0.08, critical: true}
"""


def test_week2_keeps_its_week_summary_and_launch_section(tmp_path):
    ws = Workspace.at(tmp_path)
    summary, text = _run(ws, WEEK2_SHAPED, "week2")
    lines = text.splitlines()
    assert lines[0] == "# Week summary — week2"
    assert lines[2].startswith(f"Run `{summary.run_id}` · profile thorough")
    assert lines[4] == "**Launch decision (launch gate): GO**"
    assert "| launch | approved | A | 10.00 | 1 | coord (auto) |\n" in text  # no verdict column
    assert "run summary" not in text and "## Costs" not in text
    assert "| generate | value | 7 |" not in text  # week2's key measurements are its chosen list
    assert summary.state["tasks"]["report"]["metrics"]["launch"] == "go"


def test_without_a_stored_plan_or_measurements_nothing_is_invented(tmp_path):
    """A gate's own record names the metrics it read; a missing value and a missing budget say so."""
    status = {
        "run_id": "r1", "plan": "adhoc", "profile": "thorough", "updated_at": "now",
        "tasks": {"build": {"role": "execution", "status": "failed", "error": "compiler crashed"},
                  "report": {"role": "lead", "status": "running"}},
        "gates": {"checks": {"status": "rejected", "grade": "F", "score": 0.0, "verdict": "rejected",
                             "attempt": 1, "decided_by": "coord (auto)",
                             "criteria": [{"label": "build.warnings == 0", "kind": "metric",
                                           "target": "build.warnings", "op": "==", "threshold": 0,
                                           "measured": None, "passed": False, "critical": True,
                                           "weight": 1.0, "deferred": False, "detail": None}]}},
        "deferred": {},
    }
    (tmp_path / ".coord").mkdir()
    (tmp_path / ".coord/status.json").write_bytes(orjson.dumps(status))
    result = report(StepContext(workspace=tmp_path))
    text = (tmp_path / "reports/week_summary.md").read_text()
    assert text.startswith("# adhoc — run summary\n")
    assert "| checks | rejected | F | 0.00 | 1 | coord (auto) | rejected |" in text
    assert "| build | warnings | not measured | checks (== 0) |" in text
    assert "| build.warnings == 0 | — | == 0 | FAIL |" in text
    assert "Recorded by the tasks: — (no task recorded a cost)." in text
    assert "The status snapshot has no budget view." in text
    assert "Launch decision" not in text and "$0.00" not in text.split("## Costs")[1]
    assert "launch" not in result.metrics and result.metrics["tasks_done"] == 0


def test_week2_summary_shows_both_pii_remaining_figures_of_scrub_pii() -> None:
    """The second detector's count stands beside the first one's: week2 accepts scrub_pii only when both are 0."""
    from pipeline.report import _highlights

    status = {"tasks": {"scrub_pii": {"metrics": {"emails_replaced": 3, "phones_replaced": 1, "pii_remaining": 0,
                                                  "pii_remaining_second": 2}}}}
    rows = [(task, name, value) for task, name, value in _highlights(status) if task == "scrub_pii"]
    assert rows[-2:] == [("scrub_pii", "pii_remaining", 0), ("scrub_pii", "pii_remaining_second", 2)]
