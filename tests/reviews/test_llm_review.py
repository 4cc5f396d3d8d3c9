"""A gate's reviewer model, in real runs against the loopback server (real SDKs through base_url):
structured findings recorded apart from the measured criteria, advisory by default, counted by an
opt-in `review:` criterion, handed to the agent on a retry, never paid for twice, and honest offline."""

from __future__ import annotations

import json

import orjson
import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.events import read_events
from coordinator.engine.ledger import Ledger
from coordinator.engine.runner import RunOptions, resume_run, run_plan
from tests.coordinator.steps_for_tests import write_plan

ANTHROPIC_KEY = "sk-ant-api03-REVIEWSECRET-0123456789"
OPENAI_KEY = "sk-proj-REVIEWSECRET-abcdefghijklmnop"

PLAN = """name: rv
roles:
  lead: {{agent: claude}}
  quality: {{agent: codex, provider: {provider}, model: {model}, base_url: "{url}"}}
  execution: {{agent: cursor}}
tasks:
  - {{id: work, title: Write the work, role: execution, run: g_fix_with_feedback}}
gates:
  - id: review
    after: [work]
    on_fail: retry
    max_retries: 1
    criteria:
      - {{id: quality, metric: work.quality, op: ">=", value: 0.1, label: "quality at least 0.1"}}
{extra}"""

BLOCKER = json.dumps({
    "summary": "The draft is unfinished.", "recommendation": "reject",
    "findings": [{"severity": "blocker", "title": "Draft left unfinished", "detail": "Finish section 2.",
                  "file": "out/work.md", "line": 1, "criterion": "quality"},
                 {"severity": "minor", "title": "Typo in heading", "detail": ""}]})
CLEAN = json.dumps({"summary": "Looks right.", "recommendation": "approve", "findings": []})


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    """Fake keys only: a developer's real keys or endpoints never reach these tests."""
    for var in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "COORD_ENV_FILE", "COORD_PRICES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)


def _plan(ws, server, extra: str = "", provider: str = "anthropic", model: str = "claude-haiku-4-5") -> str:
    url = server.anthropic_url if provider == "anthropic" else server.openai_url
    return str(write_plan(ws.root, PLAN.format(provider=provider, model=model, url=url, extra=extra), "rv.yaml"))


def _record(ws, run_id: str) -> dict:
    return orjson.loads((ws.reviews / run_id / "review.json").read_bytes())


def _review_calls(server) -> list:
    return [r for r in server.requests if "ReviewFindings" in json.dumps(r.body)]


@pytest.mark.parametrize(("provider", "model", "route"), [("anthropic", "claude-haiku-4-5", "messages"),
                                                          ("openai", "gpt-4o-mini", "chat")])
def test_reviewer_model_findings_are_recorded_apart_and_advisory(ws, server, provider, model, route):
    server.reply_for("ReviewFindings", BLOCKER)
    summary = run_plan(ws, RunOptions(plan=_plan(ws, server, provider=provider, model=model), render_interval=0))
    assert summary.exit_code == 0, summary.problems
    gate = summary.state["gates"]["review"]
    # advisory: the blocker does not touch the verdict, which the measured criterion decided
    assert (gate["status"], gate["verdict"], [c["name"] for c in gate["criteria"]]) == \
        ("approved", "approved", ["quality"])
    rec = _record(ws, summary.run_id)
    mr = rec["model_review"]
    assert (mr["status"], mr["provider"], mr["model"], mr["recommendation"], mr["calls"]) == \
        ("reviewed", provider, model, "reject", 1)
    assert mr["findings"][0] == {"severity": "blocker", "title": "Draft left unfinished", "detail": "Finish section 2.",
                                 "file": "out/work.md", "line": 1, "criterion": "quality"}
    assert mr["cost_known"] and mr["cost_usd"] > 0 and not mr["reused"]
    # what the model was shown: coord's measurements and the work, not the agent's say-so
    [call] = server.calls(route)
    prompt = json.dumps(call.body)
    artifact = summary.state["tasks"]["work"]["artifacts"][0]
    assert "quality at least 0.1" in prompt and "measured 0.2" in prompt
    assert artifact["sha256"] in prompt and "first draft" in prompt
    # the paid answer is stored, the call is in the ledger under the reviewer role and the gate
    stored = orjson.loads((ws.state_dir / "runs" / summary.run_id / "reviews" / "review.1.llm.json").read_bytes())
    assert stored["record"]["findings"][0]["title"] == "Draft left unfinished"
    [row] = Ledger.of(ws.state_dir).calls(summary.run_id)
    assert (row["task_id"], row["role"], row["agent"], row["provider"]) == ("review", "quality", "codex", provider)
    assert row["usd"] == pytest.approx(mr["cost_usd"])
    md = (ws.reviews / summary.run_id / "review.md").read_text()
    assert "## Reviewer model (its opinion, not a measurement)" in md and "Advisory" in md
    assert "**blocker** Draft left unfinished (`out/work.md:1`) [criterion quality]" in md
    assert f"**{provider}** model `{model}`" in md and "recommends **reject**" in md
    shown = CliRunner().invoke(app, ["review", "show", "review", "-w", str(ws.root)], catch_exceptions=False)
    assert "Draft left unfinished" in shown.output and "not a measurement" in shown.output
    log = (ws.state_dir / "logs" / summary.run_id / "review.review.log").read_text()
    assert "Draft left unfinished" in log and "REVIEWSECRET" not in log
    # the boards show the opinion, labeled as such, beside the measured verdict
    line = next(x for x in (ws.boards / "CODEX_TASKS.md").read_text().splitlines() if "coord:gate id=review" in x)
    assert "**approved**" in line
    assert f"reviewer model ({provider} {model}, opinion): recommends reject, 2 finding(s) (1 blocker, 1 minor)" in line
    team = ws.team_file.read_text()
    assert "not measurements" in team
    assert f"- review: reviewer model ({provider} {model}, opinion): recommends reject, 2 finding(s)" in team


def test_malformed_first_answer_gets_one_corrective_retry(ws, server):
    server.reply_for("ReviewFindings", "Looks fine to me!", CLEAN)
    summary = run_plan(ws, RunOptions(plan=_plan(ws, server), render_interval=0))
    mr = _record(ws, summary.run_id)["model_review"]
    assert (mr["status"], mr["recommendation"], mr["calls"]) == ("reviewed", "approve", 2)
    second = server.calls("messages")[1].body
    assert "That reply was rejected" in second["messages"][-1]["content"]
    assert len(Ledger.of(ws.state_dir).calls(summary.run_id)) == 2


def test_malformed_twice_the_gate_is_decided_on_measured_criteria(ws, server):
    server.reply_for("ReviewFindings", "no json here", '{"summary": 1}')
    summary = run_plan(ws, RunOptions(plan=_plan(ws, server), render_interval=0))
    assert summary.exit_code == 0, summary.problems
    gate = summary.state["gates"]["review"]
    assert gate["status"] == "approved" and gate["score"] == 10.0
    mr = gate["model_review"]
    assert mr["status"] == "failed" and mr["calls"] == 2 and mr["findings"] == []
    assert "ReviewFindings" in mr["reason"] and "corrective retry" in mr["reason"]
    md = (ws.reviews / summary.run_id / "review.md").read_text()
    assert "The reviewer model failed" in md and "decided on the measured criteria" in md
    assert len(Ledger.of(ws.state_dir).calls(summary.run_id)) == 2  # both paid calls accounted


OPT_IN = "      - {id: no_blockers, review: {fail_on: blocker}}\n"


def test_opt_in_review_criterion_fails_the_gate_and_the_retry_carries_the_findings(ws, server):
    server.reply_for("ReviewFindings", BLOCKER, CLEAN)
    summary = run_plan(ws, RunOptions(plan=_plan(ws, server, OPT_IN), render_interval=0))
    assert summary.exit_code == 0, summary.problems
    gate = summary.state["gates"]["review"]
    assert (gate["status"], gate["attempt"]) == ("approved", 2)
    first = gate["history"][0]
    assert first["verdict"] == "changes_requested"
    assert any("no_blockers" not in f and "Draft left unfinished" in f for f in first["findings"])
    assert first["model_review"]["findings"][0]["severity"] == "blocker"
    # the agent's EXECUTE_NOW on the retry showed the model's finding, labeled as its opinion
    board = (ws.root / "out/execute_now_seen.md").read_text()
    assert "reviewer model: [blocker] Draft left unfinished (out/work.md:1)" in board
    assert "counted by the gate's review criterion" in board
    work = summary.state["tasks"]["work"]
    assert any("Finish section 2." in f for f in work["feedback"])
    crit = next(c for c in gate["criteria"] if c["name"] == "no_blockers")
    assert (crit["kind"], crit["passed"], crit["measured"]) == ("review", True, "no findings")
    assert len(_review_calls(server)) == 2  # one review per attempt
    assert (ws.state_dir / "runs" / summary.run_id / "reviews" / "review.2.llm.json").exists()


def test_an_unmeasured_review_criterion_fails_never_passes(ws, server):
    server.reply_for("ReviewFindings", "garbage", "garbage again")
    plan = _plan(ws, server, OPT_IN.replace("}}", "}, critical: true}")).replace("on_fail: retry", "on_fail: block")
    summary = run_plan(ws, RunOptions(plan=plan, render_interval=0))
    assert summary.exit_code == 1
    gate = summary.state["gates"]["review"]
    crit = next(c for c in gate["criteria"] if c["name"] == "no_blockers")
    assert gate["status"] == "rejected" and crit["passed"] is False and crit["measured"] is None
    assert crit["detail"].startswith("not measured: the reviewer model failed")


def test_budget_exhausted_skips_the_model_and_leaves_the_criterion_unmeasured(ws, server):
    plan = _plan(ws, server, OPT_IN + "budget: {usd: 0}\n")
    summary = run_plan(ws, RunOptions(plan=plan, render_interval=0))
    mr = summary.state["gates"]["review"]["model_review"]
    assert mr["status"] == "skipped" and mr["reason"].startswith("skipped: budget exhausted")
    assert server.requests == []
    crit = next(c for c in summary.state["gates"]["review"]["criteria"] if c["name"] == "no_blockers")
    assert not crit["passed"] and "not measured: skipped: budget exhausted" in crit["detail"]
    line = next(x for x in (ws.boards / "CODEX_TASKS.md").read_text().splitlines() if "coord:gate id=review" in x)
    assert "reviewer model skipped: budget exhausted" in line


class _Crash(Exception):
    pass


def test_a_resumed_run_reuses_the_stored_answer_and_never_pays_twice(ws, server):
    server.reply_for("ReviewFindings", BLOCKER)

    def crash_after_review(event):  # dies after the answer is stored, before the checkpoint holds the gate
        if event["kind"] == "gate_decided":
            raise _Crash

    with pytest.raises(_Crash):
        run_plan(ws, RunOptions(plan=_plan(ws, server), render_interval=0), listener=crash_after_review)
    assert len(_review_calls(server)) == 1
    [stored] = (ws.state_dir / "runs").glob("*/reviews/review.1.llm.json")
    server.reply_for("ReviewFindings", CLEAN)  # a second call would get a different answer
    summary = resume_run(ws, None, RunOptions(plan="rv", render_interval=0))
    assert summary.exit_code == 0, summary.problems
    assert len(_review_calls(server)) == 1
    mr = summary.state["gates"]["review"]["model_review"]
    assert mr["reused"] and mr["findings"][0]["title"] == "Draft left unfinished"
    assert mr["answer_file"] == stored.relative_to(ws.root).as_posix()
    assert len(Ledger.of(ws.state_dir).calls(summary.run_id)) == 1
    assert "answer reused from" in (ws.reviews / summary.run_id / "review.md").read_text()


def test_offline_run_records_that_no_reviewer_model_was_configured(ws, server, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    summary = run_plan(ws, RunOptions(plan=_plan(ws, server), render_interval=0))
    assert summary.exit_code == 0, summary.problems
    mr = summary.state["gates"]["review"]["model_review"]
    assert mr["status"] == "not_configured" and mr["calls"] == 0 and mr["findings"] == []
    assert "no reviewer model configured: role 'quality'" in mr["reason"] and "ANTHROPIC_API_KEY" in mr["reason"]
    assert server.requests == [] and Ledger.of(ws.state_dir).calls(summary.run_id) == []
    md = (ws.reviews / summary.run_id / "review.md").read_text()
    assert "No model reviewed this gate — no reviewer model configured" in md
    assert "recommends" not in md
    decided = [e for e in read_events(ws.events) if e["kind"] == "gate_decided"]
    assert decided and "model_review" not in decided[0]
    assert "reviewer model" not in (ws.boards / "CODEX_TASKS.md").read_text()
    assert "opinions" not in ws.team_file.read_text()


def test_an_unanswered_call_is_tried_again_but_an_answer_is_never_bought_twice(ws, server):
    from coordinator.core.plan import RoleBinding
    from coordinator.engine.plan_loader import compile_plan, parse_plan
    from reviews.llm_review import ModelReviewer
    from roles.definitions import resolve_roles
    from tests.fakes.faults import Fault

    text = PLAN.format(provider="anthropic", model="claude-haiku-4-5", url=server.anthropic_url, extra="")
    spec, located = parse_plan(text, "rv.yaml")
    plan = compile_plan(spec, located, text)
    role = resolve_roles({"quality": RoleBinding(agent="codex", provider="anthropic", model="claude-haiku-4-5",
                                                 base_url=server.anthropic_url)}, {})["quality"]
    tasks = {"work": {"status": "done", "driver": "pipeline", "notes": ["done, all good"]}}
    reviewer = ModelReviewer(ws.root, "r1", plan, "review", 1, role, tasks)
    server.inject("messages", Fault.http(400, f"bad request for key {ANTHROPIC_KEY}"))
    first = reviewer([])
    assert first["status"] == "failed" and ANTHROPIC_KEY not in first["reason"] and "[REDACTED" in first["reason"]
    server.reply_for("ReviewFindings", CLEAN)
    second = reviewer([])  # nothing was answered, so nothing was paid: the resume asks again
    assert (second["status"], second["reused"], len(server.requests)) == ("reviewed", False, 2)
    third = reviewer([])
    assert (third["status"], third["reused"], len(server.requests)) == ("reviewed", True, 2)
    tasks["work"]["notes"] = ["changed since"]  # other evidence for the same attempt: a new review, old one kept
    server.reply_for("ReviewFindings", BLOCKER)
    fourth = reviewer([])
    assert fourth["findings"][0]["severity"] == "blocker" and len(server.requests) == 3
    kept = sorted(p.name for p in (ws.state_dir / "runs" / "r1" / "reviews").iterdir())
    assert len(kept) == 2 and "review.1.llm.json" in kept
