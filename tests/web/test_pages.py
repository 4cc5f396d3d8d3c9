"""Each page of the dashboard against a real workspace: a run waiting at a human gate, a ledger with
spend over time, a benchmark report. The figures must be the engine's (what `coord status` and
`coord costs` report), shown next to their thresholds."""

from __future__ import annotations

import re

from coordinator.core.workspace import Workspace
from coordinator.engine.budget_service import cost_totals
from coordinator.engine.run_view import run_status
from tests.web.conftest import (
    GATED_PLAN,
    PERSON,
    client,
    config,
    seed_costs,
    start_run,
    write_benchmark,
)


def _cells(html: str, attr: str, value: str) -> str:
    """The HTML of the element carrying ``attr="value"`` up to the end of its table row or card."""
    m = re.search(rf'{attr}="{re.escape(value)}"(.*?)</tr>', html, re.S)
    assert m, f"no element with {attr}={value!r}"
    return m.group(1)


def test_runs_page_lists_every_run_newest_first(ws: Workspace, waiting_run):
    second = start_run(ws, GATED_PLAN.replace("name: webplan", "name: otherplan"))
    page = client(config(ws)).get("/")
    assert page.status_code == 200
    ids = re.findall(r'<tr data-run="([^"]+)"', page.text)
    assert ids == [second.run_id, waiting_run.run_id]
    assert 'st-waiting">waiting' in page.text


def test_run_page_shows_each_task_state_the_dag_and_the_gate_against_its_threshold(ws, waiting_run):
    page = client(config(ws)).get(f"/runs/{waiting_run.run_id}")
    assert page.status_code == 200
    st = run_status(ws, waiting_run.run_id)
    for tid, rec in st["tasks"].items():  # the table and the graph say what `coord status` says
        assert f'data-task="{tid}" data-status="{rec.get("status", "pending")}"' in page.text
        assert f'data-node="task:{tid}" data-status="{rec.get("status", "pending")}"' in page.text
    assert st["tasks"]["ship"]["status"] == "pending" and st["tasks"]["make"]["status"] == "done"
    assert 'data-node="gate:signoff" data-status="waiting"' in page.text
    # edges: make → check (needs), make → signoff (reviews), signoff → ship (blocks), check → ship
    for edge in ("make→check", "make→signoff", "signoff→ship", "check→ship"):
        assert f'data-edge="{edge}"' in page.text
    gate = page.text[page.text.index('id="gate-signoff"'):]
    assert "metric at least 0.5" in gate and ">0.8<" in gate and "&gt;= 0.5" in gate and "✓ pass" in gate
    assert "grade A" in gate and "score 10.00/10" in gate
    assert "coord approve signoff" in page.text  # read-only: says how to decide instead of a form
    assert "<form" not in page.text
    assert 'data-stream="/runs/' in page.text


def test_gate_page_shows_the_review_record(ws, waiting_run):
    page = client(config(ws)).get(f"/runs/{waiting_run.run_id}/gates/signoff")
    assert page.status_code == 200
    assert "Criteria, each measured against its threshold" in page.text
    assert "metric at least 0.5" in page.text and "make.metric" in page.text
    assert f"reviews/{waiting_run.run_id}/signoff.md" in page.text  # a link to the record's markdown
    assert "out/a.txt" in page.text  # the reviewed artifact
    missing = client(config(ws)).get(f"/runs/{waiting_run.run_id}/gates/nope")
    assert missing.status_code == 404 and "no gate &#39;nope&#39;" in missing.text


def test_costs_page_charts_spend_per_role_and_model_with_the_budget_line_and_alerts(ws, waiting_run):
    seed_costs(ws, waiting_run.run_id)
    page = client(config(ws)).get(f"/runs/{waiting_run.run_id}/costs")
    assert page.status_code == 200
    charts = re.findall(r'<div class="chart-card" data-chart="(\w+)"><svg', page.text)
    assert charts == ["role", "model"]
    role_chart = page.text[page.text.index('data-chart="role"'):page.text.index('data-chart="model"')]
    for label in ("Spend over time per role", "lead", "quality", "execution", "all (run total)", "budget $2.00",
                  "alert 25%", "alert 50%"):
        assert label in role_chart, label
    model_chart = page.text[page.text.index('data-chart="model"'):]
    assert "claude-sonnet-4-5" in model_chart and "gpt-5-mini" in model_chart
    totals = cost_totals(ws, waiting_run.run_id, ["role"])["role"]  # what `coord costs` reports
    for t in totals:
        assert f"${t.usd:,.2f}" in _cells(page.text, "data-total", f"role:{t.key}")
    assert "spent $1.10" in page.text and "$1.10 of $2.00 (55%)" in page.text
    assert "1 of unknown cost (never guessed)" in page.text and "no price for local-llama" in page.text
    assert page.text.count("crossing 25% of the limit") == 1


def test_costs_page_of_a_run_without_paid_calls_says_so(ws, waiting_run):
    page = client(config(ws)).get(f"/runs/{waiting_run.run_id}/costs")
    assert page.status_code == 200 and "No paid calls recorded" in page.text and "<svg" not in page.text


def test_benchmark_page_shows_accuracy_per_agent_with_wilson_intervals(ws, waiting_run):
    write_benchmark(ws)
    page = client(config(ws)).get(f"/runs/{waiting_run.run_id}/benchmark")
    assert page.status_code == 200
    assert 'data-chart="accuracy"><svg' in page.text
    assert "Accuracy per agent, with 95% Wilson intervals" in page.text
    row = _cells(page.text, "data-agent", "qa")
    assert "30%" in row and "72.5%" in row and "[18%, 45%]" in row and "[57%, 84%]" in row
    assert "pooled" in page.text and "n=120" in page.text  # the pooled bar's tick label
    assert "Offline stand-in for a fine-tuned LLM" in page.text


def test_benchmark_page_without_a_report_and_with_a_broken_one(ws, waiting_run):
    c = client(config(ws))
    assert "No benchmark report yet" in c.get(f"/runs/{waiting_run.run_id}/benchmark").text
    path = write_benchmark(ws)
    path.write_text('{"agents": {"qa": {"n": 3}}}')
    broken = c.get(f"/runs/{waiting_run.run_id}/benchmark")
    assert broken.status_code == 500 and "Traceback" not in broken.text
    assert "reports/benchmark/benchmark.json → agents.qa: not a benchmark result" in broken.text


def test_file_page_shows_a_workspace_file_and_status_json_the_states(ws, waiting_run):
    c = client(config(ws))
    page = c.get("/file", params={"path": "out/a.txt"})
    assert page.status_code == 403  # out/ is not a folder the dashboard serves
    board = c.get("/file", params={"path": "task_boards/CURSOR_TASKS.md"})
    assert board.status_code == 200 and "CURSOR_TASKS.md" in board.text
    data = c.get(f"/runs/{waiting_run.run_id}/status.json").json()
    assert data["phase"] == "waiting" and data["gates"]["signoff"] == "waiting"
    assert data["tasks"] == {"make": "done", "check": "done", "ship": "pending", "side": "done"}


def test_unknown_run_is_a_404_page_not_a_traceback(ws, waiting_run):
    c = client(config(ws))
    for path in ("/runs/nope", "/runs/nope/costs", "/runs/nope/benchmark", "/runs/nope/stream"):
        page = c.get(path)
        assert page.status_code == 404, path
        assert "unknown run &#39;nope&#39;" in page.text and "Traceback" not in page.text


def test_decisions_enabled_page_has_a_form_with_a_fresh_key_and_the_identity(ws, waiting_run):
    c = client(config(ws, token="t" * 24, allow_decisions=True))
    c.cookies.set("coord_token_8765", "t" * 24)
    first, second = (c.get(f"/runs/{waiting_run.run_id}").text for _ in range(2))
    keys = [re.search(r'name="key" value="([0-9a-f]{32})"', t).group(1) for t in (first, second)]
    assert keys[0] != keys[1]  # a key per form drawn: a resubmitted form repeats its own key only
    assert f"decisions enabled, as <strong>{PERSON}</strong>" in first
    assert 'value="approve"' in first and 'value="reject"' in first and 'value="override"' in first


def test_a_requested_file_that_is_not_a_benchmark_report_is_a_client_error(ws, waiting_run):
    c = client(config(ws))
    write_benchmark(ws)
    (ws.root / "reports" / "notes.md").write_text("# not JSON\n")
    page = c.get(f"/runs/{waiting_run.run_id}/benchmark", params={"path": "reports/notes.md"})
    assert page.status_code == 400 and "Traceback" not in page.text and "not JSON" in page.text
