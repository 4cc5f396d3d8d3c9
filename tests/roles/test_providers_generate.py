"""`generate` with provider anthropic/openai goes through the provider layer: rows, retries, ledger, budget."""

from __future__ import annotations

import json

import orjson
import pytest

from coordinator.core.errors import BudgetExceeded, ParameterError
from coordinator.core.plan import Budget
from coordinator.core.step import StepContext
from coordinator.engine.budget import RunBudget
from coordinator.engine.ledger import Ledger
from pipeline.example_sources import ExampleSpec
from pipeline.generate import generate
from pipeline.llm_examples import scenario

EXAMPLE = {"system": "You are the QA agent of the team.", "turns": [
    {"role": "user", "content": "Design tests for the login form."},
    {"role": "assistant", "content": "Let me look up the spec.", "tool_call": {"name": "get_spec", "arguments": {"id": 7}}},
    {"role": "tool", "content": "{\"fields\": [\"email\", \"password\"]}"},
    {"role": "assistant", "content": "Cover empty fields, bad emails, lockout after five tries."}]}


@pytest.fixture
def keyed(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-generate-000000")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
    server.default_reply = json.dumps(EXAMPLE)
    return server


def _spend(tmp_path, usd):
    return RunBudget(Ledger.of(tmp_path / ".coord"), "r", Budget(usd=usd), {}).for_task("generate", "lead", "claude")


def test_anthropic_examples_come_from_the_model_and_are_accounted(tmp_path, keyed):
    keyed.reply("not json at all")  # the first answer is malformed: one corrective retry
    result = generate(StepContext(workspace=tmp_path, spend=_spend(tmp_path, 10)), agents=["qa"],
                      examples_per_agent=3, provider="anthropic", model="claude-haiku-4-5")
    rows = [orjson.loads(line) for line in (tmp_path / "data/generated_examples/qa.jsonl").read_bytes().splitlines()]
    assert len(rows) == 3 and {r["provider"] for r in rows} == {"anthropic"}
    first = rows[0]
    assert first["kind"] == "tool" and first["turns"][1]["tool_call"]["id"] == "call_000000"
    assert first["turns"][2] == {"role": "tool", "tool_call_id": "call_000000", "content": EXAMPLE["turns"][2]["content"]}
    assert result.metrics["examples"] == 3 and result.metrics["pii_seeded"] == 0  # a model plants nothing
    assert len(keyed.calls("messages")) == 4
    calls = Ledger.of(tmp_path / ".coord").calls("r")
    assert len(calls) == 4 and all(c["usd"] > 0 and c["role"] == "lead" for c in calls)


def test_generation_estimated_past_the_budget_never_starts(tmp_path, keyed):
    with pytest.raises(BudgetExceeded, match=r"generating 500 examples with anthropic claude-haiku-4-5 .* exceeds"):
        generate(StepContext(workspace=tmp_path, spend=_spend(tmp_path, 0.01)), agents=["qa"],
                 examples_per_agent=500, provider="anthropic", model="claude-haiku-4-5")
    assert keyed.calls("messages") == []


def test_without_a_key_generate_names_the_variable(tmp_path):
    with pytest.raises(ParameterError, match="set ANTHROPIC_API_KEY"):
        generate(StepContext(workspace=tmp_path), agents=["qa"], examples_per_agent=1, provider="anthropic",
                 model="claude-haiku-4-5")


def test_each_example_asks_the_model_about_its_own_scenario(tmp_path, keyed):
    """Same category, difficulty and shape still give different prompts, and a rerun asks the same ones."""
    generate(StepContext(workspace=tmp_path, spend=_spend(tmp_path, 10)), agents=["qa"],
             examples_per_agent=12, provider="anthropic", model="claude-haiku-4-5", concurrency=1)
    prompts = [c.body["messages"][0]["content"] for c in keyed.calls("messages")]
    assert len(prompts) == 12 and all("Scenario: " in p for p in prompts)
    assert len(set(prompts)) >= 10  # a handful of topic × detail pairs may repeat by chance, not most
    spec = ExampleSpec("qa", "bug_triage", "hard", "chat", 7, 42)
    assert scenario(spec) == scenario(spec) and scenario(spec) != scenario(ExampleSpec("qa", "bug_triage", "hard",
                                                                                        "chat", 8, 42))
