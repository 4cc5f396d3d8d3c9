"""The OpenAI chat fine-tuning validator: each rule on crafted lines, with the right line numbers."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import orjson
import pytest

from coordinator.core.errors import InputError
from coordinator.core.step import StepContext
from pipeline.openai_format import (
    context_limit,
    estimate_tokens,
    openai_function_name,
    unsloth_to_openai,
    validate_openai,
    validate_openai_file,
)
from pipeline.openai_format.validate import _BODIES, _TRIAL, Bodies

SIMPLE = {"messages": [{"role": "system", "content": "You are the QA agent."},
                       {"role": "user", "content": "How do I test the login flow?"},
                       {"role": "assistant", "content": "Start with boundary cases.", "weight": 1}]}
TOOL = {"tools": [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}],
        "parallel_tool_calls": False,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Where is ORD-2024-004512?"}]},
                     {"role": "assistant", "content": None, "weight": 0,
                      "tool_calls": [{"id": "call_1", "type": "function",
                                      "function": {"name": "lookup_order", "arguments": "{\"id\": \"ORD-2024-004512\"}"}}]},
                     {"role": "tool", "tool_call_id": "call_1", "content": "{\"status\": \"in_transit\"}"},
                     {"role": "assistant", "content": [{"type": "text", "text": "It is in transit."}]}]}


def write(path: Path, examples: list, raw_lines: dict[int, bytes] | None = None) -> Path:
    lines = [orjson.dumps(e) for e in examples]
    for index, raw in (raw_lines or {}).items():
        lines.insert(index, raw)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def good(n: int) -> list[dict]:
    return [copy.deepcopy(TOOL if i % 3 == 0 else SIMPLE) for i in range(n)]


def with_bad(bad: dict, position: int = 3, n: int = 12) -> list[dict]:
    rows = good(n)
    rows.insert(position, bad)
    return rows


def msgs(*messages: dict, **top) -> dict:
    return {"messages": list(messages), **top}


USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "hello"}


def test_a_valid_file_passes_with_token_estimates(tmp_path):
    report = validate_openai_file(write(tmp_path / "ok.jsonl", good(12)))
    assert report.valid and report.errors == 0 and report.examples == 12
    assert report.tokens_estimated > 0 and report.max_example_tokens == max(estimate_tokens(e) for e in good(12))


def test_top_level_weight_is_a_per_line_error(tmp_path):
    bad = {**copy.deepcopy(SIMPLE), "weight": 0.6}
    report = validate_openai_file(write(tmp_path / "w.jsonl", with_bad(bad, position=4)))
    assert not report.valid and report.errors == 1
    err = report.error_samples[0]
    assert (err.line, err.field, err.code) == (5, "weight", "unknown_key")
    assert "top-level 'weight' is not allowed" in err.message


BAD_CASES = [
    ("extra top-level key", {**SIMPLE, "id": "qa-1"}, "id", "unknown_key"),
    ("messages missing", {"tools": []}, "messages", "missing_messages"),
    ("messages empty", msgs(), "messages", "messages_type"),
    ("role missing", msgs({"content": "x"}, ASSISTANT), "messages[0].role", "missing_role"),
    ("role unknown", msgs({"role": "bot", "content": "x"}, ASSISTANT), "messages[0].role", "invalid_role"),
    ("unknown message key", msgs({**USER, "meta": 1}, ASSISTANT), "messages[0].meta", "message_unknown_key"),
    ("weight on a user message", msgs({**USER, "weight": 1}, ASSISTANT), "messages[0].weight", "weight_not_allowed"),
    ("fractional weight", msgs(USER, {**ASSISTANT, "weight": 0.5}), "messages[1].weight", "weight_value"),
    ("boolean weight", msgs(USER, {**ASSISTANT, "weight": True}), "messages[1].weight", "weight_value"),
    ("assistant without content", msgs(USER, {"role": "assistant"}), "messages[1].content", "missing_content"),
    ("empty user content", msgs({"role": "user", "content": ""}, ASSISTANT), "messages[0].content", "missing_content"),
    ("content of a wrong type", msgs({"role": "user", "content": 42}, ASSISTANT), "messages[0].content", "content_type"),
    ("audio part", msgs({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}, ASSISTANT),
     "messages[0].content[0]", "content_part"),
    ("image in an assistant message",
     msgs(USER, {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}),
     "messages[1].content[0]", "content_part"),
    ("no assistant message", msgs(USER), "messages", "no_assistant"),
    ("tool call arguments as an object",
     msgs(USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                     "function": {"name": "f", "arguments": {"a": 1}}}]},
          {"role": "tool", "tool_call_id": "c", "content": "ok"}, ASSISTANT),
     "messages[1].tool_calls[0].function.arguments", "tool_calls_shape"),
    ("tool call of a wrong type",
     msgs(USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": "code", "function": {"name": "f", "arguments": "{}"}}]},
          {"role": "tool", "tool_call_id": "c", "content": "ok"}, ASSISTANT),
     "messages[1].tool_calls[0].type", "tool_calls_shape"),
    ("tool result for an unknown call", msgs(USER, ASSISTANT, {"role": "tool", "tool_call_id": "zz", "content": "ok"},
                                             ASSISTANT), "messages[2].tool_call_id", "tool_call_id"),
    ("tool reply after the conversation moved on",
     msgs(USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
          ASSISTANT, {"role": "tool", "tool_call_id": "c", "content": "late"}),
     "messages[3].tool_call_id", "tool_call_id"),
    ("empty tool content is fine but missing content is not",
     msgs(USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
          {"role": "tool", "tool_call_id": "c"}, ASSISTANT), "messages[2].content", "missing_content"),
    ("malformed tool definition", {**SIMPLE, "tools": [{"type": "function", "function": {"name": "bad name"}}]},
     "tools[0].function.name", "definitions"),
    ("parallel_tool_calls not boolean", {**SIMPLE, "parallel_tool_calls": "yes"}, "parallel_tool_calls", "type"),
    ("not an object", ["messages"], "(line)", "not_object"),
]


@pytest.mark.parametrize(("case", "bad", "field", "code"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_each_rule_is_caught_on_its_line(tmp_path, case, bad, field, code):
    report = validate_openai_file(write(tmp_path / "bad.jsonl", with_bad(bad, position=6)))
    assert [(e.line, e.field, e.code) for e in report.error_samples] == [(7, field, code)], case
    assert report.error_counts == {code: 1}


def test_invalid_json_and_blank_lines_keep_physical_line_numbers(tmp_path):
    path = write(tmp_path / "j.jsonl", good(12), raw_lines={2: b"", 5: b"{\"messages\": ["})
    report = validate_openai_file(path)
    assert [(e.line, e.code) for e in report.error_samples] == [(6, "invalid_json")]
    assert report.examples == 13


def test_too_few_examples_is_a_file_level_error(tmp_path):
    report = validate_openai_file(write(tmp_path / "few.jsonl", good(9)))
    assert [(e.line, e.field, e.code) for e in report.error_samples] == [(0, "(file)", "too_few_examples")]
    assert validate_openai_file(tmp_path / "few.jsonl", min_examples=5).valid


def test_examples_over_the_model_context_are_errors(tmp_path):
    long = msgs(USER, {"role": "assistant", "content": "word " * 4000})  # ~5,000 tokens
    path = write(tmp_path / "long.jsonl", with_bad(long, position=0))
    assert validate_openai_file(path).valid  # 65,536 for gpt-4o-mini
    small = validate_openai_file(path, model="gpt-3.5-turbo-0613")  # 4,096
    assert [(e.line, e.code) for e in small.error_samples] == [(1, "too_many_tokens")]


def test_token_estimate_follows_the_documented_formula():
    # 3 (primer) + 2 × 3 (messages) + ceil(2/4) + ceil(5/4) + 1 + ceil(3/4) (name)
    assert estimate_tokens(msgs(USER, {"role": "assistant", "content": "hello", "name": "bot"})) == 3 + 6 + 1 + 2 + 2
    assert estimate_tokens("not an example") == 0


def test_model_families_and_fine_tuned_names_resolve_context_limits(tmp_path):
    assert context_limit("gpt-4o-mini-2024-07-18") == 65_536
    assert context_limit("ft:gpt-3.5-turbo-0125:acme::abc123") == 16_385
    assert context_limit("mystery-model") is None
    report = validate_openai_file(write(tmp_path / "m.jsonl", good(10)), model="mystery-model")
    assert report.valid and [w.code for w in report.warning_samples] == ["unknown_model"]


def test_step_writes_a_bounded_report_and_counts_invalid_files(tmp_path):
    sft = tmp_path / "data/sft/openai"
    sft.mkdir(parents=True)
    write(sft / "qa.jsonl", good(12))
    write(sft / "legal.jsonl", [{**SIMPLE, "weight": 1} for _ in range(80)])
    ctx = StepContext(workspace=tmp_path)
    result = validate_openai(ctx)
    m = result.metrics
    assert (m["files"], m["examples"], m["errors"], m["files_invalid"]) == (2, 92, 80, 1)
    assert m["max_example_tokens"] > 0 and m["tokens_estimated"] > 0
    report = orjson.loads((tmp_path / "reports/openai_validation.json").read_bytes())
    by_path = {f["path"]: f for f in report["files"]}
    legal = by_path["data/sft/openai/legal.jsonl"]
    assert legal["errors"] == 80 and len(legal["error_samples"]) == 50 and not legal["valid"]
    assert legal["error_samples"][0]["line"] == 1 and by_path["data/sft/openai/qa.jsonl"]["valid"]
    assert validate_openai(ctx).skipped
    only = validate_openai(ctx, agents=["qa"], report="reports/qa_only.json")
    assert only.metrics["files_invalid"] == 0


def test_step_names_a_missing_agent_file(tmp_path):
    (tmp_path / "data/sft/openai").mkdir(parents=True)
    with pytest.raises(InputError, match=r"support\.jsonl"):
        validate_openai(StepContext(workspace=tmp_path), agents=["support"])


def test_the_package_keeps_its_public_names_and_registers_the_step():
    import pipeline.openai_format as facade
    from coordinator.core.step import STEPS

    for name in ("DEFAULT_MODEL", "FileReport", "LineError", "base_model", "context_limit", "estimate_tokens",
                 "validate_openai", "validate_openai_file"):
        assert hasattr(facade, name), name
    assert STEPS.get("validate_openai").fn is facade.validate_openai


# --- OpenAI's function-calling fine-tuning example (its shape, written here) -------------------

WEATHER_TOOLS = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "City and country, e.g. Oslo, Norway"},
        "format": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["location", "format"]}}}]
WEATHER_CALL = {"id": "call_id", "type": "function", "function": {
    "name": "get_current_weather", "arguments": "{\"location\": \"Oslo, Norway\", \"format\": \"celsius\"}"}}
FUNCTION_CALLING = {"messages": [
    {"role": "system", "content": "You are a weather assistant that uses the tools it is given."},
    {"role": "user", "content": "What is the weather in Oslo?"},
    {"role": "assistant", "tool_calls": [WEATHER_CALL]}], "tools": WEATHER_TOOLS}
WITH_REPLY = {"messages": [*FUNCTION_CALLING["messages"],
                           {"role": "tool", "tool_call_id": "call_id", "content": "{\"temperature\": 4}"},
                           {"role": "assistant", "content": "It is 4 °C in Oslo."}], "tools": WEATHER_TOOLS}
PARALLEL = {"messages": [
    {"role": "user", "content": "Weather in Oslo and in Bergen?"},
    {"role": "assistant", "tool_calls": [WEATHER_CALL, {**WEATHER_CALL, "id": "call_2", "function": {
        "name": "get_current_weather", "arguments": "{\"location\": \"Bergen, Norway\", \"format\": \"celsius\"}"}}]},
    {"role": "tool", "tool_call_id": "call_2", "content": "{\"temperature\": 7}"},
    {"role": "tool", "tool_call_id": "call_id", "content": "{\"temperature\": 4}"},
    {"role": "assistant", "content": "Oslo 4 °C, Bergen 7 °C."}], "tools": WEATHER_TOOLS, "parallel_tool_calls": True}


@pytest.mark.parametrize("example", [FUNCTION_CALLING, WITH_REPLY, PARALLEL,
                                     {**FUNCTION_CALLING, "parallel_tool_calls": False}],
                         ids=["ends-on-the-call", "tool-reply-and-answer", "parallel", "parallel-off-one-call"])
def test_openai_function_calling_example_is_accepted_without_a_word(tmp_path, example):
    report = validate_openai_file(write(tmp_path / "fc.jsonl", [copy.deepcopy(example) for _ in range(10)]))
    assert report.valid and report.errors == 0 and report.warnings == 0, report.error_samples


def test_a_call_left_unanswered_mid_conversation_is_a_warning_that_says_why(tmp_path):
    mid = msgs(USER, {"role": "assistant", "tool_calls": [WEATHER_CALL]}, {"role": "user", "content": "never mind"},
               ASSISTANT)
    report = validate_openai_file(write(tmp_path / "mid.jsonl", with_bad(mid, position=0)))
    assert report.valid
    assert [(w.line, w.field, w.code) for w in report.warning_samples] == [
        (1, "messages[1].tool_calls[0]", "tool_call_unanswered")]
    assert "coord is stricter" in report.warning_samples[0].message


def test_several_calls_while_parallel_tool_calls_is_false_is_a_warning(tmp_path):
    report = validate_openai_file(write(tmp_path / "p.jsonl", [{**copy.deepcopy(PARALLEL), "parallel_tool_calls": False}
                                                              for _ in range(10)]))
    assert report.valid and {w.code for w in report.warning_samples} == {"parallel_tool_calls"}


def test_a_call_of_an_undefined_tool_is_a_warning(tmp_path):
    other = copy.deepcopy(FUNCTION_CALLING)
    other["tools"][0]["function"]["name"] = "get_forecast"
    report = validate_openai_file(write(tmp_path / "u.jsonl", [other] * 10))
    assert report.valid and {w.code for w in report.warning_samples} == {"unknown_tool"}


def test_function_names_openai_cannot_take_are_mapped_alike_in_calls_and_tools():
    assert openai_function_name("browser.click") == "browser_click"
    assert openai_function_name("ok_name-1") == "ok_name-1"
    assert openai_function_name("") == "_" and len(openai_function_name("x" * 80)) == 64
    row = {"conversations": [{"from": "human", "value": "go"},
                             {"from": "function_call", "value": '{"name": "browser.click", "arguments": {"bid": "7"}}'}],
           "tools": [{"type": "function", "function": {"name": "browser.click"}}]}
    example = unsloth_to_openai(row)
    assert example["tools"][0]["function"]["name"] == example["messages"][1]["tool_calls"][0]["function"]["name"] \
        == "browser_click"
    assert row["tools"][0]["function"]["name"] == "browser.click"  # the row itself is left alone


def test_lines_that_differ_only_in_their_system_prompt_are_judged_as_if_each_were_checked_alone(tmp_path):
    """The validator remembers what it found in a conversation and reuses it for the next line that
    has it under another system prompt: the findings (on their own lines), counts and token
    estimates must be those of checking every line from scratch (here: the same lines written with
    spaces, which the shortcut never recognizes)."""
    body = [{"role": "user", "content": "hi", "extra": 1},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "nope", "arguments": "{}"}}]},
            {"role": "user", "content": "next"}, {"role": "assistant", "content": "x" * 4000, "weight": 0.5}]
    prompts = ["P", "A much longer system prompt " * 20, "P", "é" * 9, "", "   ", "L" * 3000, "M" * 3001]
    lines = [{"messages": [{"role": "system", "content": p}, *body]} for p in prompts]
    lines += [{"messages": [{"role": "system", "content": "Q"}, *body], "tools": "bad"},
              {"messages": [{"role": "system", "content": "Q", "name": "n"}, *body]}]
    dup = b'{"messages":[{"role":"system","content":"S"},{"role":"user","content":"u"}],' \
          b'"messages":[{"role":"system","content":"T"},{"role":"assistant","content":"a"}]}'
    fast = tmp_path / "fast.jsonl"
    fast.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines * 2) + dup + b"\n" + dup + b"\n")
    slow = tmp_path / "slow.jsonl"  # json.dumps puts spaces after ':' and ',': no line has the shape
    slow.write_text("".join(json.dumps(x) + "\n" for x in lines * 2) + (dup + b"\n").decode() * 2)
    a, b = validate_openai_file(fast, min_examples=1), validate_openai_file(slow, min_examples=1)
    assert a.to_dict() | {"path": ""} == b.to_dict() | {"path": ""}
    assert a.errors > 0 and a.warnings > 0 and len({e.line for e in a.error_samples}) > 8
    assert a.tokens_estimated == sum(estimate_tokens(x) for x in lines * 2) + 2 * estimate_tokens(orjson.loads(dup))


def test_one_memory_serves_the_files_of_a_step_and_stays_bounded(tmp_path):
    body = [USER, ASSISTANT]
    first = write(tmp_path / "a.jsonl", [msgs({"role": "system", "content": f"A{i}"}, *body) for i in range(12)])
    second = write(tmp_path / "b.jsonl", [msgs({"role": "system", "content": f"B{i}"}, *body) for i in range(12)])
    bodies = Bodies()
    ra, rb = (validate_openai_file(p, bodies=bodies) for p in (first, second))
    assert ra.valid and rb.valid and len(bodies._known) == 1
    assert rb.tokens_estimated == sum(estimate_tokens(msgs({"role": "system", "content": f"B{i}"}, *body))
                                      for i in range(12))
    bodies = Bodies()
    for i in range(_BODIES + 5):
        bodies.put(i.to_bytes(16, "big"), ((), i))
    assert len(bodies._known) == 5 and bodies.get((0).to_bytes(16, "big")) is None
    assert bodies.get((_BODIES + 4).to_bytes(16, "big")) == ((), _BODIES + 4)


def test_the_memory_stops_when_lines_hardly_ever_share_a_conversation(tmp_path):
    lines = [msgs({"role": "system", "content": "S"}, {"role": "user", "content": f"q{i}"}, ASSISTANT)
             for i in range(_TRIAL + 50)]
    path = write(tmp_path / "unique.jsonl", lines)
    bodies = Bodies()
    report = validate_openai_file(path, bodies=bodies)
    assert report.valid and report.examples == _TRIAL + 50
    assert report.tokens_estimated == sum(estimate_tokens(x) for x in lines)
    assert not bodies.active and bodies.lookups == _TRIAL and not bodies._known
    assert bodies.split(orjson.dumps(lines[0]), lines[0]) == (0, None)
