"""The generate step: deterministic, exactly mixed, varied raw examples."""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from coordinator.core.errors import ParameterError
from coordinator.core.step import StepContext
from pipeline import offline_corpus as oc
from pipeline.generate import generate, mix_counts
from pipeline.llm_examples import example_source

WEEK2 = ["qa", "support", "legal", "analyst", "content"]
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
PHONE = re.compile(r"\+\d{1,3}[ (]+\d")
DECOYS = (  # look like PII or ids to a careless regex, but are not PII
    r"\b\d\.\d{1,2}\.\d{1,2}\b", r"\b20\d\d-\d\d-\d\d\b", r"\b(?:192\.168|10)\.\d+\.\d+\.\d+\b",
    r"\$\d{1,3}(?:,\d{3})*\.\d\d", r"\bORD-20\d\d-\d{6}\b",
)


def rows(ws: Path, agent: str) -> list[dict]:
    return [orjson.loads(line) for line in (ws / "data/generated_examples" / f"{agent}.jsonl").read_bytes().splitlines()]


def run(ws: Path, **kw):
    return generate(StepContext(workspace=ws), **kw)


@pytest.fixture(scope="module")
def qa_full(tmp_path_factory):
    ws = tmp_path_factory.mktemp("qa")
    result = run(ws, agents=["qa"])
    return result, rows(ws, "qa")


def test_same_parameters_give_identical_bytes_and_another_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    run(a, agents=["qa", "legal"], examples_per_agent=80)
    run(b, agents=["qa", "legal"], examples_per_agent=80)
    run(c, agents=["qa", "legal"], examples_per_agent=80, seed=7)
    for agent in ("qa", "legal"):
        rel = f"data/generated_examples/{agent}.jsonl"
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
        assert (a / rel).read_bytes() != (c / rel).read_bytes()


def test_adding_an_agent_leaves_the_other_files_unchanged(tmp_path):
    run(tmp_path / "one", agents=["qa"], examples_per_agent=50)
    run(tmp_path / "two", agents=["support", "qa"], examples_per_agent=50)
    rel = "data/generated_examples/qa.jsonl"
    assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()


def test_difficulty_counts_are_exact_by_largest_remainder(tmp_path):
    assert mix_counts(1333, {"easy": 0.30, "medium": 0.45, "hard": 0.25}) == {"easy": 400, "medium": 600, "hard": 333}
    assert mix_counts(7, {"easy": 1 / 3, "medium": 1 / 3, "hard": 1 / 3}) == {"easy": 3, "medium": 2, "hard": 2}
    result = run(tmp_path, agents=["qa", "support"], examples_per_agent=101,
                 difficulty_mix={"easy": 0.5, "medium": 0.5})
    for agent in ("qa", "support"):
        assert Counter(r["difficulty"] for r in rows(tmp_path, agent)) == {"easy": 51, "medium": 50}
    assert (result.metrics["easy"], result.metrics["medium"], result.metrics["hard"]) == (102, 100, 0)


def test_rows_follow_the_raw_example_format(qa_full):
    _, data = qa_full
    for r in data:
        assert list(r) == ["id", "agent", "category", "difficulty", "kind", "system", "provider", "seed", "turns"]
        assert r["provider"] == "offline" and r["seed"] == 42 and r["agent"] == "qa"
        assert r["kind"] in {"chat", "code", "tool"} and r["category"] in oc.AGENTS["qa"].categories
        turns = r["turns"]
        assert turns[0]["role"] == "user"
        last = turns[-1]
        assert last["role"] == "assistant" and "tool_call" not in last and "code_call" not in last
        open_calls = set()
        for t in turns:
            call = t.get("tool_call") or t.get("code_call")
            if call:
                open_calls.add(call["id"])
            if t["role"] == "tool":
                assert t["tool_call_id"] in open_calls
    assert len({r["id"] for r in data}) == len(data)


def test_seeded_variety_is_present_at_the_documented_rates(qa_full):
    result, data = qa_full
    m = result.metrics
    assert (m["pii_seeded"], m["near_dup_seeded"], m["too_short_seeded"], m["no_end_punct_seeded"]) == (33, 13, 10, 10)
    texts = ["\n".join(t["content"] for t in r["turns"]) for r in data]
    assert sum(bool(EMAIL.search(t) or PHONE.search(t)) for t in texts) == 33
    answers = [r["turns"][-1]["content"] for r in data]
    assert sum(not a.rstrip().endswith((".", "!", "?")) for a in answers) == 10
    words = [len(a.split()) for a in answers]
    assert sum(w < 20 for w in words) == 10
    assert all(80 <= w <= 350 for w in words if w >= 20)
    assert m["multi_turn"] == sum(sum(t["role"] == "user" for t in r["turns"]) > 1 for r in data) > 0
    assert m["tool_examples"] == sum(any("tool_call" in t for t in r["turns"]) for r in data) > 0
    assert sum("```" in a for a in answers) > 0.8 * m["code_examples"] > 0


def test_near_duplicates_are_light_edits_and_nothing_is_an_exact_duplicate(qa_full):
    _, data = qa_full
    prompts = {r["turns"][0]["content"]: r for r in data}
    edited = [r for r in data if r["turns"][0]["content"].startswith(oc.NEAR_DUP_PREFIXES)]
    assert len(edited) == 13
    for r in edited:
        prefix = next(p for p in oc.NEAR_DUP_PREFIXES if r["turns"][0]["content"].startswith(p))
        rest = r["turns"][0]["content"][len(prefix):]
        source = prompts[rest[:1].upper() + rest[1:]]
        assert source["id"] < r["id"] and source["difficulty"] == r["difficulty"]
        a, b = source["turns"][-1]["content"].split(), r["turns"][-1]["content"].split()
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= 2
    digests = {hashlib.sha256(orjson.dumps(r["turns"])).digest() for r in data}
    assert len(digests) == len(data)


def test_fifteen_agents_work_with_generic_categories_for_unknown_names(tmp_path):
    own = ["ops", "sales", "finance", "hr", "security", "design", "research", "devrel", "pm", "infra"]
    result = run(tmp_path, agents=[*WEEK2, *own], extra_agents=own, examples_per_agent=30)
    assert result.metrics["examples"] == 450 and result.metrics["agents"] == 15
    ops = rows(tmp_path, "ops")
    assert {r["category"] for r in ops} == set(oc.GENERIC.categories)
    assert "the ops agent" in ops[0]["system"]
    assert {r["category"] for r in rows(tmp_path, "legal")} == set(oc.AGENTS["legal"].categories)


def test_rerun_with_same_parameters_is_skipped(tmp_path):
    first = run(tmp_path, agents=["qa"], examples_per_agent=40)
    again = run(tmp_path, agents=["qa"], examples_per_agent=40)
    assert not first.skipped and again.skipped and again.metrics == first.metrics


@pytest.mark.slow
def test_week2_volume_fits_the_budget(tmp_path):
    start = time.perf_counter()
    result = run(tmp_path, agents=WEEK2)
    assert time.perf_counter() - start < 5.0
    assert result.metrics["examples"] == 6665
    assert 150 <= result.metrics["words_mean"] <= 250


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"difficulty_mix": {"easy": 0.5, "hard": 0.4}}, "sum to 1"),
    ({"difficulty_mix": {"easy": 0.5, "expert": 0.5}}, "unknown keys"),
    ({"agents": ["qa", "qa"]}, "twice"),
    ({"agents": ["QA Team"]}, "must match"),
    ({"examples_per_agent": 0}, "positive"),
    ({"provider": "nope"}, "unknown provider"),
])
def test_bad_parameters_are_refused_with_a_reason(tmp_path, kwargs, needle):
    with pytest.raises(ParameterError, match=needle):
        run(tmp_path, **{"agents": ["qa"], **kwargs})


def test_anthropic_provider_is_named_but_explains_what_it_needs():
    with pytest.raises(ParameterError, match="ANTHROPIC_API_KEY"):
        example_source("anthropic")


def test_every_known_agent_mentions_every_decoy_kind(tmp_path):
    run(tmp_path, agents=WEEK2, examples_per_agent=200)
    for agent in WEEK2:
        joined = "\n".join(t["content"] for r in rows(tmp_path, agent) for t in r["turns"])
        for decoy in DECOYS:
            assert re.search(decoy, joined), (agent, decoy)
