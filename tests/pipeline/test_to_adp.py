"""The to_adp step turns raw examples into valid ADP files and rejects bad lines with their field."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from coordinator.core.errors import InputError, ParameterError
from coordinator.core.io import iter_jsonl
from coordinator.core.step import StepContext
from pipeline.adp.turns import trajectory_to_turns
from pipeline.adp.validate import validate_adp_file
from pipeline.to_adp import to_adp

SYSTEM = "You are the QA agent."


def chat(i: int, agent: str = "qa", **over: Any) -> dict[str, Any]:
    row = {"id": f"{agent}-{i:05d}", "agent": agent, "category": "test_design", "difficulty": "medium",
           "kind": "chat", "system": SYSTEM, "provider": "offline", "seed": 42,
           "turns": [{"role": "user", "content": f"How do I test feature {i}?"},
                     {"role": "assistant", "content": "Write a failing test first."}]}
    row.update(over)
    return row


def tool(i: int, agent: str = "qa") -> dict[str, Any]:
    return chat(i, agent, kind="tool", turns=[
        {"role": "user", "content": "Find the refund policy."},
        {"role": "assistant", "content": "I'll search the docs.",
         "tool_call": {"id": "call_000001", "name": "search_docs",
                       "arguments": {"query": '"refund policy"', "limit": 3}}},
        {"role": "tool", "tool_call_id": "call_000001", "content": "Refunds within 30 days."},
        {"role": "assistant", "content": "Refunds are accepted within 30 days."},
        {"role": "user", "content": "And after that?"},
        {"role": "assistant", "content": "Store credit only."},
    ])


def code(i: int, agent: str = "qa", language: str = "Python") -> dict[str, Any]:
    return chat(i, agent, kind="code", turns=[
        {"role": "user", "content": "Sum 1..10."},
        {"role": "assistant", "content": "",
         "code_call": {"id": "call_000001", "language": language, "code": "print(sum(range(11)))"}},
        {"role": "tool", "tool_call_id": "call_000001", "content": "55"},
        {"role": "assistant", "content": "The sum is 55."},
    ])


def write_raw(ws: Path, agent: str, lines: list[Any]) -> Path:
    path = ws / "data" / "generated_examples" / f"{agent}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line if isinstance(line, bytes) else orjson.dumps(line) + b"\n"
                              for line in lines))
    return path


def rows(path: Path) -> list[dict[str, Any]]:
    return [obj for _, obj in iter_jsonl(path)]


def test_converts_raw_examples_to_valid_adp(tmp_path: Path) -> None:
    write_raw(tmp_path, "qa", [chat(1), tool(2), code(3)])
    write_raw(tmp_path, "legal", [chat(1, "legal")])
    result = to_adp(StepContext(tmp_path))

    assert result.metrics == {
        "trajectories": 4, "rejects": 0, "malformed_lines": 0, "raw_errors": 0, "validation_errors": 0,
        "api_actions": 1, "code_actions": 1, "message_actions": 5, "tool_results": 2,
        "multi_turn": 1, "with_calls": 2, "agents": 2,
    }
    out = tmp_path / "data" / "adp" / "qa.jsonl"
    report = validate_adp_file(out)
    assert report.ok and report.versions == {"1.5.0": 3} and not report.warnings
    assert sorted(a.path for a in result.artifacts) == ["data/adp/legal.jsonl", "data/adp/qa.jsonl"]
    first, second, third = rows(out)
    assert first["details"] == {
        "agent_name": "qa", "task_category": "test_design", "difficulty": "medium", "kind": "chat",
        "system_prompt": SYSTEM, "agent_compatibility": {}, "provider": "offline", "seed": 42,
        "kwargs_format": "json"}
    assert second["content"][1] == {
        "class_": "api_action", "function": "search_docs", "kwargs": {"query": '"refund policy"', "limit": 3},
        "description": "I'll search the docs.", "tool_call_id": "call_000001"}
    assert third["content"][1]["language"] == "python"
    assert third["available_code_languages"] == ["python"]
    assert not (tmp_path / "data" / "adp" / "qa.jsonl.rejects.jsonl").exists()


def test_round_trip_raw_to_adp_to_turns_preserves_the_conversation(tmp_path: Path) -> None:
    raw = [chat(1), tool(2), code(3, language="python")]
    write_raw(tmp_path, "qa", raw)
    to_adp(StepContext(tmp_path))
    for original, trajectory in zip(raw, rows(tmp_path / "data" / "adp" / "qa.jsonl"), strict=True):
        turns = trajectory_to_turns(trajectory)
        assert turns == [{"role": "system", "content": SYSTEM}, *original["turns"]]


def test_compatibility_row_of_the_agent_is_stored(tmp_path: Path) -> None:
    write_raw(tmp_path, "qa", [chat(1)])
    write_raw(tmp_path, "support", [chat(1, "support")])
    matrix = {"qa": {"qa": 1.0, "support": 0.6}}
    result = to_adp(StepContext(tmp_path), compatibility=matrix)
    assert rows(tmp_path / "data/adp/qa.jsonl")[0]["details"]["agent_compatibility"] == matrix["qa"]
    assert rows(tmp_path / "data/adp/support.jsonl")[0]["details"]["agent_compatibility"] == {}
    assert any("no row for agent 'support'" in note for note in result.notes)


def test_bad_lines_go_to_rejects_with_their_field(tmp_path: Path) -> None:
    missing_system = chat(3)
    del missing_system["system"]
    unknown_result = tool(4)
    unknown_result["turns"][2]["tool_call_id"] = "call_000009"
    call_last = chat(7)
    call_last["turns"].append(tool(0)["turns"][1])
    write_raw(tmp_path, "qa", [
        chat(1),
        b"{this is not json\n",
        missing_system,
        unknown_result,
        code(5, language="zsh"),
        chat(1),                       # duplicate id
        call_last,
        chat(8, agent="legal"),        # wrong file
        [1, 2, 3],
    ])
    result = to_adp(StepContext(tmp_path))

    m = result.metrics
    assert (m["trajectories"], m["rejects"]) == (1, 8)
    assert (m["malformed_lines"], m["raw_errors"], m["validation_errors"]) == (2, 4, 2)
    rejects = rows(tmp_path / "data" / "adp" / "qa.jsonl.rejects.jsonl")
    assert [(r["line"], r["field"]) for r in rejects] == [
        (2, None),
        (3, "system"),
        (4, "turns[2].tool_call_id"),
        (5, "turns[1].code_call.language"),
        (6, "id"),
        (7, "turns[2]"),
        (8, "agent"),
        (9, None),
    ]
    assert "ADP validation: content[2].tool_call_id" in rejects[2]["reason"]
    assert "unknown code language 'zsh'" in rejects[3]["reason"]
    assert orjson.loads(rejects[1]["raw"])["id"] == "qa-00003"
    assert validate_adp_file(tmp_path / "data" / "adp" / "qa.jsonl").ok


def test_reruns_are_skipped_and_forced_reruns_are_byte_identical(tmp_path: Path) -> None:
    src = write_raw(tmp_path, "qa", [chat(1), tool(2), code(3)])
    out = tmp_path / "data" / "adp" / "qa.jsonl"
    first = to_adp(StepContext(tmp_path))
    before = out.read_bytes()
    assert to_adp(StepContext(tmp_path)).skipped
    forced = to_adp(StepContext(tmp_path, force=True))
    assert not forced.skipped and out.read_bytes() == before and forced.metrics == first.metrics
    src.write_bytes(src.read_bytes() + orjson.dumps(chat(9)) + b"\n")
    assert to_adp(StepContext(tmp_path)).metrics["trajectories"] == 4


def test_agents_parameter_selects_files(tmp_path: Path) -> None:
    write_raw(tmp_path, "qa", [chat(1)])
    write_raw(tmp_path, "legal", [chat(1, "legal")])
    result = to_adp(StepContext(tmp_path), agents=["legal"])
    assert [a.path for a in result.artifacts] == ["data/adp/legal.jsonl"]
    with pytest.raises(InputError, match=r"content\.jsonl"):
        to_adp(StepContext(tmp_path), agents=["content"])


def test_bad_parameters_and_empty_input_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no \*\.jsonl raw example files"):
        to_adp(StepContext(tmp_path))
    write_raw(tmp_path, "qa", [chat(1)])
    with pytest.raises(ParameterError, match="plain agent name"):
        to_adp(StepContext(tmp_path), agents=["../qa"])
    with pytest.raises(ParameterError, match=r"compatibility\['qa'\]\['legal'\]"):
        to_adp(StepContext(tmp_path), compatibility={"qa": {"legal": 1.5}})


@pytest.mark.slow
def test_6665_examples_convert_within_the_budget(tmp_path: Path) -> None:
    makers = (chat, tool, code)
    for agent in ("qa", "support", "legal", "analyst", "content"):
        write_raw(tmp_path, agent, [makers[i % 3](i, agent) for i in range(1333)])
    start = time.perf_counter()
    result = to_adp(StepContext(tmp_path))
    elapsed = time.perf_counter() - start
    assert result.metrics["trajectories"] == 6665 and result.metrics["rejects"] == 0
    assert elapsed < 8.0, f"to_adp took {elapsed:.2f}s for 6,665 examples"
