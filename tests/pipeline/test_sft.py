"""build_sft: cross-agent Unsloth/OpenAI training sets, held-out split, weighted sampling."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from coordinator.core.errors import InputError, ParameterError
from coordinator.core.io import dumps_line, sha256_file
from coordinator.core.step import StepContext
from pipeline.adp.tools import FunctionSpec, ToolCatalog, ToolSpec
from pipeline.compat import default_matrix, week2_matrix
from pipeline.openai_format.convert import ConvertedBody
from pipeline.openai_format.tokens import estimate_tokens
from pipeline.sft import (
    CODE_TOOL,
    CODE_TOOL_SPEC,
    RowBytes,
    _Sampler,
    build_sft,
    example_from_trajectory,
    in_holdout,
    keep_for_openai,
    system_message_json,
    system_prompt,
    target_json,
    turns_to_conversation,
    unsloth_to_openai,
    write_openai_rows,
)
from tests.shared_fixtures import ADP_SAMPLES, needs_adp_samples

WEEK2 = ["qa", "support", "legal", "analyst", "content"]
_TEXT = ("the release candidate fails when a customer retries payment after the session expires "
         "so we compare logs contract terms revenue figures and the draft copy before we decide "
         "which owner signs off on the fix and how the change is explained")
_WORDS = _TEXT.split()


def words(seed: str, n: int) -> str:
    """Deterministic filler text of ``n`` words."""
    h = hashlib.sha256(seed.encode()).digest()
    return " ".join(_WORDS[(h[i % 32] + i * 7) % len(_WORDS)] for i in range(n))


def adp_row(agent: str, i: int, *, size: int = 40) -> dict[str, Any]:
    """A valid ADP 1.5.0 trajectory; every third one calls a tool, every fifth runs code."""
    base = f"{agent}-{i:05d}"
    content: list[dict[str, Any]] = [
        {"class_": "text_observation", "source": "user", "content": f"[{base}] " + words(base, size)}]
    if i % 3 == 0:
        content += [
            {"class_": "api_action", "function": "lookup_ticket", "kwargs": {"ticket": i, "full": True},
             "description": "Let me look the ticket up.", "tool_call_id": "call_000001"},
            {"class_": "text_observation", "source": "environment", "tool_call_id": "call_000001",
             "content": json.dumps({"ticket": i, "status": "open"})}]
    if i % 5 == 0:
        content += [
            {"class_": "code_action", "language": "python", "content": f"print({i} * 2)",
             "description": None, "tool_call_id": "call_000002"},
            {"class_": "text_observation", "source": "environment", "tool_call_id": "call_000002",
             "content": str(i * 2)}]
    content.append({"class_": "message_action", "content": words(base + "a", size * 3)})
    return {"schema_version": "1.5.0", "id": base, "content": content,
            "details": {"agent_name": agent, "task_category": f"cat{i % 5}",
                        "difficulty": ("easy", "medium", "hard")[i % 3], "kwargs_format": "json",
                        "system_prompt": f"You are the {agent} agent (original prompt)."}}


def write_adp(workspace: Path, agents: list[str], n: int, *, size: int = 40) -> None:
    adp = workspace / "data" / "adp"
    adp.mkdir(parents=True, exist_ok=True)
    for a in agents:
        with (adp / f"{a}.jsonl").open("wb") as fh:
            for i in range(n):
                fh.write(orjson.dumps(adp_row(a, i, size=size)) + b"\n")


def read(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def week2_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    ws = tmp_path_factory.mktemp("ws")
    write_adp(ws, WEEK2, 60)
    result = build_sft(StepContext(workspace=ws), holdout_fraction=0.15)
    return ws, result.metrics


# --- conversation mapping -------------------------------------------------------------------


def test_tool_and_code_calls_become_function_call_and_observation_pairs() -> None:
    turns: list[dict[str, Any]] = [
        {"role": "system", "content": "orig"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "checking", "tool_call": {
            "id": "c1", "name": "lookup", "arguments": {"q": "x"}}},
        {"role": "tool", "content": "found", "tool_call_id": "c1"},
        {"role": "assistant", "content": "", "code_call": {"id": "c2", "language": "python", "code": "1+1"}},
        {"role": "tool", "content": "2", "tool_call_id": "c2"},
        {"role": "assistant", "content": "done"},
    ]
    system, conv = turns_to_conversation(turns)
    assert system == "orig"
    assert [m["from"] for m in conv] == ["human", "gpt", "function_call", "observation",
                                         "function_call", "observation", "gpt"]
    assert json.loads(conv[2]["value"]) == {"name": "lookup", "arguments": {"q": "x"}}
    assert json.loads(conv[4]["value"]) == {"name": CODE_TOOL,
                                            "arguments": {"language": "python", "code": "1+1"}}

    row = {"id": "r", "weight": 1.0, "conversations": [{"from": "system", "value": "p"}, *conv]}
    msgs = unsloth_to_openai(row)["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant", "tool",
                                         "assistant"]
    assert msgs[2]["content"] == "checking"  # the thought rides with its call
    call = msgs[2]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"q": "x"}
    assert msgs[3]["tool_call_id"] == call["id"]
    assert "content" not in msgs[4]  # an empty thought adds no content
    assert msgs[5]["tool_call_id"] == msgs[4]["tool_calls"][0]["id"] != call["id"]
    assert json.loads(msgs[4]["tool_calls"][0]["function"]["arguments"])["code"] == "1+1"


def call_turn(call_id: str, name: str = "f", **args: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": "", "tool_call": {"id": call_id, "name": name, "arguments": args}}


def result(call_id: str, text: str) -> dict[str, Any]:
    return {"role": "tool", "content": text, "tool_call_id": call_id}


def answered(example: dict[str, Any]) -> dict[str, str]:
    """Tool reply content → the name of the call it answers, from an OpenAI example."""
    names = {c["id"]: c["function"]["name"] for m in example["messages"] for c in m.get("tool_calls", [])}
    return {m["content"]: names[m["tool_call_id"]] for m in example["messages"] if m["role"] == "tool"}


def test_results_in_another_order_than_their_calls_are_linked_by_id() -> None:
    turns = [{"role": "user", "content": "q"}, call_turn("a", "f"), call_turn("b", "g"),
             result("b", "B"), result("a", "A"), {"role": "assistant", "content": "ok"}]
    _, conv = turns_to_conversation(turns)
    assert [(m["from"], m.get("tool_call_id")) for m in conv] == [
        ("human", None), ("function_call", "a"), ("function_call", "b"),
        ("observation", "b"), ("observation", "a"), ("gpt", None)]
    example = unsloth_to_openai({"id": "r", "conversations": conv})
    assert answered(example) == {"A": "f", "B": "g"}
    assert [m["role"] for m in example["messages"]] == ["user", "assistant", "tool", "tool", "assistant"]


def test_a_call_without_a_result_keeps_every_later_result_on_its_own_call() -> None:
    turns = [{"role": "user", "content": "q"}, call_turn("t", "think"), call_turn("c1", "bash"),
             result("c1", "out1"), call_turn("c2", "bash2"), result("c2", "out2"), call_turn("f", "finish")]
    _, conv = turns_to_conversation(turns)
    assert all("tool_call_id" in m for m in conv if m["from"] in ("function_call", "observation"))
    example = unsloth_to_openai({"id": "r", "conversations": conv})
    assert answered(example) == {"out1": "bash", "out2": "bash2"}
    assert example["messages"][-1]["tool_calls"][0]["function"]["name"] == "finish"


def test_rows_position_pairs_correctly_carry_no_ids() -> None:
    turns = [{"role": "user", "content": "q"}, call_turn("a"), result("a", "A"), call_turn("b"),
             result("b", "B"), {"role": "assistant", "content": "ok"}]
    _, conv = turns_to_conversation(turns)
    assert not any("tool_call_id" in m for m in conv)


def test_blank_messages_are_left_out_so_none_is_empty() -> None:
    turns = [{"role": "user", "content": "q"}, {"role": "user", "content": ""},
             {"role": "assistant", "content": ""}, {"role": "assistant", "content": "done"}]
    _, conv = turns_to_conversation(turns)
    assert [(m["from"], m["value"]) for m in conv] == [("human", "q"), ("gpt", "done")]


def test_rows_longer_than_the_models_training_context_stay_out_of_the_openai_file(tmp_path: Path) -> None:
    short = {"id": "a", "weight": 1.0, "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    long = {**short, "id": "b", "conversations": [{"from": "human", "value": "word " * 20_000},
                                                  {"from": "gpt", "value": "a"}]}
    summary = write_openai_rows([short, long], tmp_path / "o.jsonl", seed=1, model="gpt-3.5-turbo-0613")
    assert (summary["rows"], summary["too_long"], summary["sampled_out"]) == (1, 1, 0)
    assert write_openai_rows([short, long], tmp_path / "p.jsonl", seed=1)["too_long"] == 0  # 65,536 for gpt-4o-mini


def test_metadata_beside_the_adp_file_gives_tool_definitions(tmp_path: Path) -> None:
    write_adp(tmp_path, ["qa"], 6)
    (tmp_path / "data" / "adp" / "qa.metadata.json").write_text(json.dumps({"custom_tools": [
        {"type": "function", "function": {"name": "lookup_ticket", "description": "Find a ticket.",
                                          "parameters": {"type": "object", "properties": {"ticket": {"type": "integer"}}}}},
        {"type": "function", "function": {"name": "unused_tool"}}], "code_enabled": ["python"]}))
    result = build_sft(StepContext(workspace=tmp_path), variants=1, holdout_fraction=0.0)
    tools = {r["base_id"]: [t["function"]["name"] for t in r.get("tools", [])]
             for r in read(tmp_path / "data" / "sft" / "unsloth" / "qa.jsonl")}
    assert tools["qa-00000"] == ["lookup_ticket", "unused_tool", CODE_TOOL]  # a call and a code run
    assert tools["qa-00003"] == ["lookup_ticket", "unused_tool"] and tools["qa-00001"] == []
    assert result.metrics["rejects"] == 0
    (tmp_path / "data" / "adp" / "qa.metadata.json").write_text('{"custom_tools": [{"function": {}}]}')
    with pytest.raises(InputError, match=r"qa\.metadata\.json.*custom_tools\.0\.function\.name"):
        build_sft(StepContext(workspace=tmp_path), variants=1, holdout_fraction=0.0)


def test_a_conversation_without_an_assistant_turn_is_refused() -> None:
    with pytest.raises(ValueError, match="no assistant turn"):
        turns_to_conversation([{"role": "user", "content": "q"}])


def test_prompt_variants_are_distinct_and_name_the_target() -> None:
    prompts = [system_prompt("legal", "a lawyer", v) for v in range(16)]
    assert len(set(prompts)) == 16
    assert all("legal" in p and "a lawyer" in p for p in prompts)


# --- weighted sampling ----------------------------------------------------------------------


@pytest.mark.parametrize("w", [0.2, 0.5, 0.8])
def test_sampling_keeps_a_share_close_to_the_weight(tmp_path: Path, w: float) -> None:
    conv = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]
    rows = ({"id": f"t<-s-{i:05d}#0", "weight": w, "conversations": conv} for i in range(20000))
    out = tmp_path / "o.jsonl"
    summary = write_openai_rows(rows, out, seed=7)
    assert summary["input_rows"] == 20000
    assert abs(summary["rows"] / 20000 - w) < 0.015
    assert summary["sha256"] == sha256_file(out)
    assert summary["rows"] + summary["sampled_out"] == 20000


def test_sampling_is_deterministic_and_seeded(tmp_path: Path) -> None:
    ids = [f"t<-s-{i}#1" for i in range(2000)]
    a = [keep_for_openai(i, 0.5, 1) for i in ids]
    assert a == [keep_for_openai(i, 0.5, 1) for i in ids]
    assert a != [keep_for_openai(i, 0.5, 2) for i in ids]
    assert all(keep_for_openai(i, 1.0, 1) for i in ids)
    assert not any(keep_for_openai(i, 0.0, 1) for i in ids)


def test_the_writers_sampler_keeps_exactly_the_rows_keep_for_openai_keeps() -> None:
    ids = [f"t<-s-{i}#1" for i in range(3000)] + ["ünï<-cödé#0", ""]
    for seed in (1, 42):
        sampler = _Sampler(seed)
        for w in (0.0, 0.3, 0.5, 1.0, 1.5, -1.0):
            assert [sampler.keep(i, w) for i in ids] == [keep_for_openai(i, w, seed) for i in ids]


def test_spliced_lines_are_the_bytes_of_the_rendered_rows() -> None:
    """build_sft writes rows spliced from bytes serialized once per example: they must be exactly
    what serializing each rendered row (and its OpenAI example) gives."""
    traj = {"id": "s-1", "content": [
        {"class_": "text_observation", "source": "user", "content": "Ünïcode \"quoted\" \u2028 <b>"},
        {"class_": "api_action", "function": "lookup", "kwargs": {"q": 1.5, "k": [None, True]},
         "description": "look", "tool_call_id": "c1"},
        {"class_": "text_observation", "source": "environment", "content": "42", "tool_call_id": "c1"},
        {"class_": "message_action", "content": "done"}],
        "details": {"agent_name": "s", "task_category": None, "system_prompt": "Own prompt"}}
    catalog = ToolCatalog([ToolSpec(function=FunctionSpec(name="lookup", parameters={"type": "object"}))])
    for ex in (example_from_trajectory(traj, "s", catalog), example_from_trajectory(traj, "s")):
        rows, body = RowBytes.of(ex), ConvertedBody.of(ex.conversation, ex.tools)
        for target, weight, v, prompt in (("t", 0.25, 0, "P"), ("s", 1.0, 15, "Own prompt"),
                                          ("x\u00e9", 1, 3, "")):
            row_id = f"{target}<-{ex.base_id}#{v}"
            line = rows.line(row_id, system_message_json(prompt), target_json(target, weight), v)
            assert line == dumps_line(ex.render(target, v, weight, prompt))
            plain = unsloth_to_openai(ex.render(target, v, weight, prompt))
            assert body.line(prompt) == (dumps_line(plain), estimate_tokens(plain))
    bare = dataclasses.replace(ex, base_id="b", conversation=[], tools=[])  # no message at all
    line = RowBytes.of(bare).line("t<-b#2", system_message_json("p"), target_json("t", 1), 2)
    assert line == dumps_line(bare.render("t", 2, 1, "p"))
    assert orjson.loads(line)["conversations"] == [{"from": "system", "value": "p"}]


def test_holdout_fraction_is_respected_on_many_ids() -> None:
    held = sum(in_holdout(f"qa-{i:05d}", 0.1, 42) for i in range(10000))
    assert 900 < held < 1100
    assert not any(in_holdout(f"qa-{i}", 0.0, 42) for i in range(1000))


# --- the step -------------------------------------------------------------------------------


def test_rows_carry_matrix_weights_for_every_pair(week2_run: tuple[Path, dict[str, Any]]) -> None:
    ws, metrics = week2_run
    matrix = week2_matrix()
    held = {r["base_id"] for a in WEEK2 for r in read(ws / "data" / "heldout" / f"{a}.jsonl")}
    kept = {a: sum(1 for i in range(60) if f"{a}-{i:05d}" not in held) for a in WEEK2}
    total = 0
    for t in WEEK2:
        rows = read(ws / "data" / "sft" / "unsloth" / f"{t}.jsonl")
        by_source = Counter(r["source_agent"] for r in rows)
        assert by_source == {s: 3 * kept[s] for s in WEEK2}
        for r in rows:
            assert r["weight"] == matrix.weight(t, r["source_agent"])
            assert r["target_agent"] == t
            assert r["id"] == f"{t}<-{r['base_id']}#{r['variant']}"
            assert r["conversations"][0]["from"] == "system"
        assert metrics[f"rows_{t}"] == len(rows)
        total += len(rows)
    assert metrics["rows"] == total
    assert metrics["pairs_used"] == 25 and metrics["targets"] == 5
    assert metrics["weight_min"] == 0.2 and metrics["weight_max"] == 1.0
    assert metrics["rejects"] == 0
    assert metrics["tool_rows"] > 0


def test_held_out_examples_never_reach_any_training_file(week2_run: tuple[Path, dict[str, Any]]) -> None:
    ws, metrics = week2_run
    held: set[str] = set()
    for a in WEEK2:
        rows = read(ws / "data" / "heldout" / f"{a}.jsonl")
        assert rows, f"no held-out rows for {a}"
        for r in rows:
            assert r["source_agent"] == r["target_agent"] == a
            assert r["weight"] == 1.0 and r["variant"] == 0
            assert r["conversations"][0]["value"] == f"You are the {a} agent (original prompt)."
        held |= {r["base_id"] for r in rows}
    assert metrics["heldout_rows"] == len(held)
    for t in WEEK2:
        for r in read(ws / "data" / "sft" / "unsloth" / f"{t}.jsonl"):
            assert r["base_id"] not in held
        # OpenAI rows carry no ids; every user prompt starts with its base id in brackets
        for r in read(ws / "data" / "sft" / "openai" / f"{t}.jsonl"):
            first_user = next(m["content"] for m in r["messages"] if m["role"] == "user")
            assert first_user[1:first_user.index("]")] not in held


def test_variants_put_the_example_under_distinct_target_prompts(
        week2_run: tuple[Path, dict[str, Any]]) -> None:
    ws, _ = week2_run
    rows = read(ws / "data" / "sft" / "unsloth" / "legal.jsonl")
    by_base: dict[str, dict[int, str]] = {}
    for r in rows:
        by_base.setdefault(r["base_id"], {})[r["variant"]] = r["conversations"][0]["value"]
    for base, prompts in by_base.items():
        assert sorted(prompts) == [0, 1, 2]
        assert len(set(prompts.values())) == 3
        if base.startswith("legal-"):
            assert prompts[0] == "You are the legal agent (original prompt)."
        else:
            assert all("legal" in p for p in prompts.values())


def test_openai_files_hold_only_sampled_messages(week2_run: tuple[Path, dict[str, Any]]) -> None:
    ws, metrics = week2_run
    total = 0
    for t in WEEK2:
        unsloth = read(ws / "data" / "sft" / "unsloth" / f"{t}.jsonl")
        openai = read(ws / "data" / "sft" / "openai" / f"{t}.jsonl")
        expected = [unsloth_to_openai(r) for r in unsloth if keep_for_openai(r["id"], r["weight"], 42)]
        assert openai == expected
        assert sum(1 for r in unsloth if r["weight"] == 1.0) <= len(openai) < len(unsloth)
        for row in openai:
            runs_code = any(c["function"]["name"] == CODE_TOOL for m in row["messages"]
                            for c in m.get("tool_calls", []))
            assert set(row) == ({"messages", "tools"} if runs_code else {"messages"})
            if runs_code:
                assert row["tools"] == [CODE_TOOL_SPEC]
            open_ids: list[str] = []
            for m in row["messages"]:
                assert set(m) <= {"role", "content", "tool_calls", "tool_call_id"}
                open_ids += [c["id"] for c in m.get("tool_calls", [])]
                if m["role"] == "tool":
                    assert m["tool_call_id"] == open_ids.pop(0)
            assert any(m["role"] == "assistant" for m in row["messages"])
        assert metrics[f"openai_rows_{t}"] == len(openai)
        total += len(openai)
    assert metrics["openai_rows"] == total


def test_outputs_are_byte_identical_and_a_rerun_is_skipped(tmp_path: Path) -> None:
    digests = []
    for name in ("one", "two"):
        ws = tmp_path / name
        write_adp(ws, ["qa", "legal"], 12)
        first = build_sft(StepContext(workspace=ws), variants=2)
        assert not first.skipped
        files = sorted(p for p in (ws / "data").rglob("*.jsonl") if "adp" not in p.parts)
        digests.append({p.relative_to(ws).as_posix(): sha256_file(p) for p in files})
        again = build_sft(StepContext(workspace=ws), variants=2)
        assert again.skipped and again.metrics == first.metrics
        forced = build_sft(StepContext(workspace=ws, force=True), variants=2)
        assert {p.relative_to(ws).as_posix(): sha256_file(p) for p in files} == digests[-1]
        assert forced.metrics == first.metrics
    assert digests[0] == digests[1]
    assert len(digests[0]) == 6


def test_bad_adp_lines_go_to_rejects_with_line_and_reason(tmp_path: Path) -> None:
    write_adp(tmp_path, ["qa", "legal"], 5)
    path = tmp_path / "data" / "adp" / "qa.jsonl"
    bad_schema = adp_row("qa", 90)
    bad_schema["content"][0]["source"] = "robot"
    lines = [b"{not json", orjson.dumps({"content": []}), orjson.dumps(bad_schema),
             orjson.dumps(adp_row("qa", 1)), orjson.dumps(adp_row("legal", 91))]
    with path.open("ab") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    result = build_sft(StepContext(workspace=tmp_path), holdout_fraction=0.0)
    assert result.metrics["rejects"] == 5
    rejects = read(tmp_path / "data" / "sft" / "unsloth" / "qa.jsonl.rejects.jsonl")
    assert [r["line"] for r in rejects] == [6, 7, 8, 9, 10]
    reasons = " | ".join(r["reason"] for r in rejects)
    assert "invalid JSON" in reasons and "'id'" in reasons and "duplicate id 'qa-00001'" in reasons
    assert "agent_name is 'legal'" in reasons
    assert result.metrics["examples"] == 10
    assert not (tmp_path / "data" / "sft" / "unsloth" / "legal.jsonl.rejects.jsonl").exists()


def test_fifteen_agents_with_the_generated_default(tmp_path: Path) -> None:
    agents = [f"agent{i:02d}" for i in range(15)]
    write_adp(tmp_path, agents, 4, size=10)
    result = build_sft(StepContext(workspace=tmp_path), variants=1, holdout_fraction=0.0)
    matrix = default_matrix(agents)
    assert result.metrics["targets"] == 15 and result.metrics["pairs_used"] == 225
    assert result.metrics["rows"] == 15 * 15 * 4
    for t in agents:
        rows = read(tmp_path / "data" / "sft" / "unsloth" / f"{t}.jsonl")
        assert len(rows) == result.metrics[f"rows_{t}"] == 60
        assert all(r["weight"] == matrix.weight(t, r["source_agent"]) for r in rows)


def test_a_compatibility_file_limits_the_pairs(tmp_path: Path) -> None:
    write_adp(tmp_path, ["qa", "legal", "ops"], 6)
    (tmp_path / "compat.yaml").write_text(
        "agents: [qa, legal, ops]\nweights:\n  qa: {legal: 0.4}\n  ops: {qa: 0.25, legal: 0.75}\n")
    result = build_sft(StepContext(workspace=tmp_path), compatibility="compat.yaml",
                       holdout_fraction=0.0, variants=1)
    assert result.metrics["pairs_used"] == 6
    sources = {t: Counter((r["source_agent"], r["weight"]) for r in
                          read(tmp_path / "data" / "sft" / "unsloth" / f"{t}.jsonl"))
               for t in ("qa", "legal", "ops")}
    assert sources["qa"] == {("qa", 1.0): 6, ("legal", 0.4): 6}
    assert sources["legal"] == {("legal", 1.0): 6}
    assert sources["ops"] == {("ops", 1.0): 6, ("qa", 0.25): 6, ("legal", 0.75): 6}
    assert result.metrics["weight_min"] == 0.25


def test_parameter_and_input_errors(tmp_path: Path) -> None:
    write_adp(tmp_path, ["qa"], 2)
    ctx = StepContext(workspace=tmp_path)
    with pytest.raises(ParameterError, match="variants"):
        build_sft(ctx, variants=0)
    with pytest.raises(ParameterError, match="holdout_fraction"):
        build_sft(ctx, holdout_fraction=1.0)
    with pytest.raises(InputError, match="'legal'"):
        build_sft(ctx, agents=["qa", "legal"])
    with pytest.raises(InputError, match="no ADP files"):
        build_sft(ctx, adp_dir="nowhere")


# --- real ADP data --------------------------------------------------------------------------


@needs_adp_samples
def test_real_tool_using_adp_trajectories_convert_end_to_end() -> None:
    function_calls = 0
    for path in ADP_SAMPLES:
        for traj in json.loads(path.read_text(encoding="utf-8")):
            ex = example_from_trajectory(traj, "agent")
            row = ex.render("agent", 1, 0.5, "prompt")
            froms = [m["from"] for m in row["conversations"]]
            msgs = unsloth_to_openai(row)["messages"]
            calls = [c for m in msgs for c in m.get("tool_calls", [])]
            assert len(calls) == froms.count("function_call")
            for i, m in enumerate(row["conversations"]):
                if m["from"] == "function_call":
                    value = json.loads(m["value"])
                    assert set(value) == {"name", "arguments"} and isinstance(value["arguments"], dict)
                if m["from"] == "observation":  # every result follows an earlier call
                    assert froms[:i].count("function_call") >= froms[:i + 1].count("observation")
            answered = [m["tool_call_id"] for m in msgs if m["role"] == "tool"]
            assert answered == [c["id"] for c in calls][:len(answered)]
            for c in calls:
                assert isinstance(json.loads(c["function"]["arguments"]), dict)
            function_calls += len(calls)
    assert function_calls > 10


# --- budget ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("COORD_BENCH"), reason="set COORD_BENCH=1 to run the benchmark")
def test_week2_scale_fits_the_budget(tmp_path: Path) -> None:
    write_adp(tmp_path, WEEK2, 1333, size=45)
    start = time.perf_counter()
    result = build_sft(StepContext(workspace=tmp_path))
    elapsed = time.perf_counter() - start
    print(f"build_sft: {result.metrics['rows']} rows, {result.metrics['openai_rows']} OpenAI rows "
          f"in {elapsed:.1f}s")
    assert int(result.metrics["rows"] or 0) > 85_000
    assert elapsed < 15
