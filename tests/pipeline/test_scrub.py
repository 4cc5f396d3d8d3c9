"""scrub_pii on small Unsloth and OpenAI files: placeholders everywhere, nothing else touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from coordinator.core.errors import InputError
from coordinator.core.step import StepContext
from pipeline.audit import audit
from pipeline.scrub import scrub_pii

FILLER = ("the release notes list the fixed defects and the open questions for the "
          "next planning meeting with the whole team")


def unsloth_row(i: int, system: str, human: str, gpt: str, call: str | None = None,
                result: str = "") -> dict[str, Any]:
    conv = [{"from": "system", "value": system}, {"from": "human", "value": human}]
    if call is not None:
        conv += [{"from": "function_call", "value": call}, {"from": "observation", "value": result}]
    conv.append({"from": "gpt", "value": gpt})
    return {"id": f"qa<-qa-{i:03d}#0", "conversations": conv, "weight": 0.5, "target_agent": "qa",
            "source_agent": "qa", "base_id": f"qa-{i:03d}", "category": "c",
            "difficulty": "easy", "variant": 0}


UNSLOTH = [
    unsloth_row(0, "You are the QA agent.", f"Version 2.14.1 broke on 2024-03-15. {FILLER}?",
                f"Roll back to 2.14.0 from 10.0.0.1 and retest. {FILLER}."),
    unsloth_row(1, "You are the QA agent. Escalations: ops@example.com.",
                f"Mail me at maria.keller@example.com or call +1 (415) 555-0132. {FILLER}?",
                f"I will call 020 7946 0958 tomorrow. {FILLER}.",
                call='{"name": "lookup", "arguments": {"phone": "+49 30 1234567"}}',
                result='{"owner": "john.smith@example.org"}'),
]
OPENAI = [
    {"messages": [{"role": "system", "content": "You are the QA agent."},
                  {"role": "user", "content": f"Order ORD-2024-004512 costs $1,299.00. {FILLER}"},
                  {"role": "assistant", "content": f"Refund issued. {FILLER}."}]},
    {"messages": [{"role": "user", "content": "Reach me on +44 20 7946 0958."},
                  {"role": "assistant", "tool_calls": [{"id": "call_000001", "type": "function",
                   "function": {"name": "notify",
                                "arguments": '{"to": "ops@example.com", "sms": "415-555-0132"}'}}]},
                  {"role": "tool", "tool_call_id": "call_000001", "content": "sent to ops@example.com"},
                  {"role": "assistant", "content": "Done."}]},
]


def write_inputs(ws: Path) -> None:
    for layout, rows, bad in (("unsloth", UNSLOTH, {"id": "no conversations"}),
                              ("openai", OPENAI, {"prompt": "legacy format"})):
        d = ws / "data/sft" / layout
        d.mkdir(parents=True)
        lines = [orjson.dumps(r) for r in rows] + [b"{broken", orjson.dumps(bad)]
        (d / "qa.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    write_inputs(tmp_path)
    return tmp_path


def test_scrub_replaces_pii_in_every_message_field(ws: Path) -> None:
    m = scrub_pii(StepContext(ws)).metrics
    assert (m["files"], m["rows"], m["unsloth_rows"], m["openai_rows"]) == (2, 4, 2, 2)
    assert (m["emails_replaced"], m["phones_replaced"]) == (5, 5)
    assert m["rows_changed"] == 2 and m["pii_remaining"] == 0 and m["rejects"] == 4

    clean, pii = read_rows(ws / "data/sft_scrubbed/unsloth/qa.jsonl")
    values = [msg["value"] for msg in pii["conversations"]]
    assert values[0] == "You are the QA agent. Escalations: <EMAIL>."
    assert values[1].startswith("Mail me at <EMAIL> or call <PHONE>.")
    assert values[2] == '{"name": "lookup", "arguments": {"phone": "<PHONE>"}}'
    assert values[3] == '{"owner": "<EMAIL>"}'
    assert values[4].startswith("I will call <PHONE> tomorrow.")
    assert {k: v for k, v in pii.items() if k != "conversations"} == \
        {k: v for k, v in UNSLOTH[1].items() if k != "conversations"}
    assert clean == UNSLOTH[0]  # decoys (versions, dates, IPs) stay as they were

    _, tool = read_rows(ws / "data/sft_scrubbed/openai/qa.jsonl")
    args = tool["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert orjson.loads(args) == {"to": "<EMAIL>", "sms": "<PHONE>"}
    assert tool["messages"][2]["content"] == "sent to <EMAIL>"
    assert tool["messages"][0]["content"] == "Reach me on <PHONE>."


def test_bad_lines_go_to_rejects_beside_each_output(ws: Path) -> None:
    scrub_pii(StepContext(ws))
    for layout, field in (("unsloth", "conversations"), ("openai", "messages")):
        rejects = read_rows(ws / f"data/sft_scrubbed/{layout}/qa.jsonl.rejects.jsonl")
        assert [r["line"] for r in rejects] == [3, 4]
        assert rejects[1]["field"] == field


def test_scrubbed_data_passes_a_new_audit_with_zero_pii(ws: Path) -> None:
    before = audit(StepContext(ws)).metrics
    assert before["pii_rows"] == 1 and before["pii_email_rows"] == 1
    scrub_pii(StepContext(ws))
    after = audit(StepContext(ws), sft_dir="data/sft_scrubbed/unsloth",
                  out_dir="reports/audit_scrubbed").metrics
    assert (after["pii_rows"], after["pii_email_rows"], after["pii_phone_rows"]) == (0, 0, 0)


def test_scrubbing_twice_gives_identical_bytes(ws: Path) -> None:
    ctx = StepContext(ws)
    first = scrub_pii(ctx, in_dir="data/sft", out_dir="data/once").metrics
    second = scrub_pii(ctx, in_dir="data/once", out_dir="data/twice").metrics
    assert first["rows_changed"] == 2
    assert second["rows_changed"] == 0 and second["emails_replaced"] == 0
    for layout in ("unsloth", "openai"):
        once = (ws / "data/once" / layout / "qa.jsonl").read_bytes()
        assert (ws / "data/twice" / layout / "qa.jsonl").read_bytes() == once


def test_rerun_is_skipped_and_output_is_deterministic(ws: Path) -> None:
    ctx = StepContext(ws)
    first = scrub_pii(ctx)
    out = ws / "data/sft_scrubbed/unsloth/qa.jsonl"
    data = out.read_bytes()
    assert scrub_pii(ctx).skipped
    forced = scrub_pii(StepContext(ws, force=True))
    assert not forced.skipped and forced.metrics == first.metrics
    assert out.read_bytes() == data


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        scrub_pii(StepContext(tmp_path))
