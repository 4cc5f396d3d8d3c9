"""scrub_pii on small Unsloth and OpenAI files: placeholders everywhere, nothing else touched,
and a second detector that sees what the first one missed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from coordinator.core.errors import InputError, ParameterError, PlanError
from coordinator.core.step import StepContext
from coordinator.engine.plan_loader import load_plan
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
    assert (m["emails_replaced"], m["phones_replaced"], m["pii_replaced"]) == (5, 5, 10)
    assert m["rows_changed"] == 2 and m["pii_remaining"] == 0 and m["rejects"] == 4
    assert m["pii_remaining_second"] == 0
    assert m["classes"] == "email,phone,card,iban,national_id,api_key"
    assert m["cards_replaced"] == m["ibans_replaced"] == m["national_ids_replaced"] == 0
    assert m["api_keys_replaced"] == m["ips_replaced"] == 0

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


def _write_openai(ws: Path, contents: list[str]) -> None:
    d = ws / "data/sft/openai"
    d.mkdir(parents=True)
    rows = [{"messages": [{"role": "user", "content": c}, {"role": "assistant", "content": "Noted."}]}
            for c in contents]
    (d / "qa.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def _contents(ws: Path, out_dir: str = "data/sft_scrubbed") -> list[str]:
    return [r["messages"][0]["content"] for r in read_rows(ws / out_dir / "openai/qa.jsonl")]


def test_pii_the_first_detector_misses_is_counted_by_the_second(tmp_path: Path) -> None:
    planted = ["Reach Paul on 415 5550132 today.", "fax 415/555/0132", "Mail me at ana@example.com."]
    _write_openai(tmp_path, planted)
    result = scrub_pii(StepContext(tmp_path))
    m = result.metrics
    assert m["emails_replaced"] == 1 and m["pii_remaining"] == 0  # the first detector is satisfied
    assert m["pii_remaining_second"] == 2  # the second one is not: both numbers survived verbatim
    assert _contents(tmp_path) == [planted[0], planted[1], "Mail me at <EMAIL>."]
    assert "second detector still finds 2 (phone 2)" in result.notes


def test_new_classes_are_scrubbed_and_ip_only_when_asked(tmp_path: Path) -> None:
    _write_openai(tmp_path, [
        "Card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, SSN 536-22-1234.",
        "export OPENAI_API_KEY=sk-proj-Q7fTz2LmX9wKc4RbN1vHs8DjY3pGe6UaW0oIqZtB5nMxCkLr",
        "Logins from 203.0.113.42 failed.",
    ])
    m = scrub_pii(StepContext(tmp_path)).metrics
    assert (m["cards_replaced"], m["ibans_replaced"], m["national_ids_replaced"], m["api_keys_replaced"],
            m["ips_replaced"], m["pii_replaced"]) == (1, 1, 1, 1, 0, 4)
    assert _contents(tmp_path) == ["Card <CARD>, IBAN <IBAN>, SSN <NATIONAL_ID>.",
                                   "export OPENAI_API_KEY=<API_KEY>", "Logins from 203.0.113.42 failed."]
    m = scrub_pii(StepContext(tmp_path), out_dir="data/with_ip", classes=["ip", "email"]).metrics
    assert (m["ips_replaced"], m["cards_replaced"], m["classes"]) == (1, 0, "email,ip")
    assert _contents(tmp_path, "data/with_ip")[2] == "Logins from <IP> failed."


def test_other_classes_make_a_new_run_not_a_cached_one(tmp_path: Path) -> None:
    _write_openai(tmp_path, ["Logins from 203.0.113.42 failed."])
    ctx = StepContext(tmp_path)
    assert scrub_pii(ctx).metrics["ips_replaced"] == 0
    again = scrub_pii(ctx, classes=["email", "phone", "ip"])
    assert not again.skipped and again.metrics["ips_replaced"] == 1


def test_unknown_classes_are_refused_by_the_step_and_by_the_plan(tmp_path: Path) -> None:
    _write_openai(tmp_path, ["x"])
    with pytest.raises(ParameterError, match="'passport'"):
        scrub_pii(StepContext(tmp_path), classes=["email", "passport"])
    with pytest.raises(ParameterError, match="at least one"):
        scrub_pii(StepContext(tmp_path), classes=[])
    plan = tmp_path / "plan.yaml"
    plan.write_text("name: p\ntasks:\n  - id: t\n    title: T\n    role: lead\n    run: scrub_pii\n"
                    "    with: {classes: [email, passport]}\n")
    with pytest.raises(PlanError, match="classes"):
        load_plan(str(plan))


def test_week2_accepts_the_scrub_only_when_both_detectors_find_nothing() -> None:
    task = load_plan("week2").tasks["scrub_pii"]
    assert {(c.metric, c.op, c.value) for c in task.accept} == {
        ("scrub_pii.pii_remaining", "==", 0), ("scrub_pii.pii_remaining_second", "==", 0)}
    assert task.params["classes"] == ["email", "phone", "card", "iban", "national_id", "api_key"]
