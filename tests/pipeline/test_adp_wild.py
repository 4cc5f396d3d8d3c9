"""ADP data as it comes in the wild, through validation, build_sft and the OpenAI validator.

The corpus in ``data/adp_wild/`` holds real-shaped trajectories of seven source families
(SWE-style chats, code feedback, web browsing, ALFWorld, agent-instruct, RL rollouts, a
ToolMind-like 1.1.0 file) at schema versions 1.1.0 to 1.5.0 and without one. Every tool
result there names its call with a ``ref-N`` marker that also appears in the call's
arguments or code, so pairing can be checked from the outside.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from coordinator.core.step import StepContext
from pipeline.adp.validate import validate_adp_file
from pipeline.openai_format import validate_openai_file
from pipeline.sft import CODE_TOOL, build_sft
from tests.shared_fixtures import ADP_SAMPLES, needs_adp_samples

CORPUS = Path(__file__).parent / "data" / "adp_wild"
FILES = sorted([*CORPUS.glob("*.sample_std.json"), *CORPUS.glob("*.jsonl")])
REF = re.compile(r"ref-\d+")


def family(path: Path) -> str:
    return path.name.split(".")[0]


def trajectories(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return list(json.loads(path.read_text(encoding="utf-8")))


CORPUS_BY_ID = {t["id"]: t for p in FILES for t in trajectories(p)}


def read(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def adp_workspace(root: Path, sources: dict[str, list[dict[str, Any]]]) -> Path:
    adp = root / "data" / "adp"
    adp.mkdir(parents=True)
    for agent, rows in sources.items():
        (adp / f"{agent}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    ws = adp_workspace(tmp_path_factory.mktemp("wild"), {family(p): trajectories(p) for p in FILES})
    shutil.copy(CORPUS / "swe_chat.metadata.json", ws / "data" / "adp" / "swe_chat.metadata.json")
    # every agent trains on its own examples only (weight 1), so each OpenAI file has one row per trajectory
    agents = sorted(family(p) for p in FILES)
    (ws / "own_only.yaml").write_text(f"agents: [{', '.join(agents)}]\nweights: {{}}\n")
    result = build_sft(StepContext(workspace=ws), variants=1, holdout_fraction=0.0, compatibility="own_only.yaml")
    return ws, dict(result.metrics)


def own_rows(ws: Path, layout: str, agent: str) -> list[dict[str, Any]]:
    """The rows of ``agent``'s file: its own examples, in file order."""
    return read(ws / "data" / "sft" / layout / f"{agent}.jsonl")


def calls_by_id(example: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for m in example["messages"] for c in m.get("tool_calls", [])}


# --- the corpus -------------------------------------------------------------------------------


def test_the_corpus_covers_every_family_and_version() -> None:
    assert {family(p) for p in FILES} == {"swe_chat", "code_feedback", "web_browsing", "alfworld",
                                          "agent_instruct", "rl_rollouts", "toolmind_like"}
    versions = {t.get("schema_version") for p in FILES for t in trajectories(p)}
    assert versions == {"1.1.0", "1.2.0", "1.3.0", "1.3.1", "1.4.0", "1.5.0", None}
    assert len(CORPUS_BY_ID) == sum(len(trajectories(p)) for p in FILES) == 20


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_corpus_file_is_valid_adp(path: Path) -> None:
    report = validate_adp_file(path)
    assert report.ok, [str(e) for e in report.errors]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_what_the_current_loader_would_reject_is_said_in_one_line(path: Path) -> None:
    lines = [n for n in validate_adp_file(path).warnings if "current ADP loader" in n]
    old = any(t.get("schema_version") in ("1.1.0", "1.2.0", "1.3.1") for t in trajectories(path))
    assert len(lines) == (1 if old else 0), lines


# --- build_sft --------------------------------------------------------------------------------


def test_no_valid_trajectory_is_dropped(built: tuple[Path, dict[str, Any]]) -> None:
    ws, metrics = built
    assert metrics["rejects"] == 0 and metrics["examples"] == len(CORPUS_BY_ID)
    for path in FILES:
        agent = family(path)
        assert {r["base_id"] for r in own_rows(ws, "unsloth", agent)} == {t["id"] for t in trajectories(path)}
        assert not (ws / "data" / "sft" / "unsloth" / f"{agent}.jsonl.rejects.jsonl").exists()
    assert metrics["linked_rows"] > 0 and metrics["openai_too_long"] == 0


def test_every_result_is_paired_with_its_own_call(built: tuple[Path, dict[str, Any]]) -> None:
    ws, _ = built
    checked = 0
    for path in FILES:
        expected = {ref for t in trajectories(path) for item in t["content"]
                    if item["class_"] in ("text_observation", "web_observation") and item.get("source") != "user"
                    for ref in REF.findall(item.get("content") or item.get("axtree") or "")}
        seen: set[str] = set()
        for example in own_rows(ws, "openai", family(path)):
            calls = calls_by_id(example)
            for m in example["messages"]:
                if m["role"] != "tool":
                    continue
                (ref,) = set(REF.findall(m["content"])) or {None}
                if ref is None:
                    continue  # a command that printed nothing
                assert ref in calls[m["tool_call_id"]]["function"]["arguments"], (family(path), m)
                seen.add(ref)
                checked += 1
        assert seen == expected, family(path)
    assert checked >= 30


def test_code_feedback_outputs_stay_on_their_calls_when_a_user_reply_comes_first(
        built: tuple[Path, dict[str, Any]]) -> None:
    ws, _ = built
    example = next(e for e in own_rows(ws, "openai", "code_feedback")
                   if e["messages"][1]["content"].startswith("Write a function that returns the factorial"))
    calls = calls_by_id(example)
    replies = [(m["content"], calls[m["tool_call_id"]]["function"]["arguments"]) for m in example["messages"]
               if m["role"] == "tool"]
    assert [(out.split("\n")[0], "ref-12" in a, "ref-13" in a) for out, a in replies] == [
        ("720", True, False), ("refused -1", False, True)]


def test_validate_openai_accepts_every_file_build_sft_wrote(built: tuple[Path, dict[str, Any]]) -> None:
    ws, _ = built
    for path in FILES:
        report = validate_openai_file(ws / "data" / "sft" / "openai" / f"{family(path)}.jsonl", min_examples=1)
        assert report.valid, (family(path), report.error_samples)
        # the only findings: calls an SWE think / a code run the user replied to left without a reply
        assert {w.code for w in report.warning_samples} <= {"tool_call_unanswered"}


def test_rows_with_tool_calls_carry_the_sources_tool_definitions(built: tuple[Path, dict[str, Any]]) -> None:
    ws, _ = built
    by_base = {r["base_id"]: r for r in own_rows(ws, "unsloth", "swe_chat")}
    names = {base: [t["function"]["name"] for t in row["tools"]] for base, row in by_base.items()}
    assert names == {"swe-version-bump": ["str_replace_editor", "finish", CODE_TOOL],
                     "swe-think-then-act": ["str_replace_editor", "think", "finish", CODE_TOOL],
                     "swe-plain-answer": ["str_replace_editor"]}
    for example in own_rows(ws, "openai", "swe_chat"):
        defined = {t["function"]["name"] for t in example["tools"]}
        assert {c["function"]["name"] for c in calls_by_id(example).values()} <= defined
    for row in own_rows(ws, "unsloth", "web_browsing"):
        assert "tools" not in row  # no definitions in the source: none invented
    assert all(row["tools"][-1]["function"]["name"] == CODE_TOOL for row in own_rows(ws, "unsloth", "code_feedback"))


def test_arguments_reach_the_training_files_as_stored(built: tuple[Path, dict[str, Any]]) -> None:
    ws, _ = built
    edits = [json.loads(m["value"])["arguments"] for r in own_rows(ws, "unsloth", "swe_chat")
             for m in r["conversations"] if m["from"] == "function_call" and '"old_str"' in m["value"]]
    assert {"old_str": '"1.0.0"', "new_str": '"1.0.1"'}.items() <= edits[0].items()
    openai_args = [json.loads(c["function"]["arguments"]) for e in own_rows(ws, "openai", "toolmind_like")
                   for c in calls_by_id(e).values()]
    assert [a for a in openai_args if "ref" in a and a["ref"] in ("ref-60", "ref-61")] == [
        {"timezone": '"Europe/London"', "ref": "ref-60"}, {"item": "'Kerosene'", "ref": "ref-61"}]


def test_an_empty_finish_writes_no_empty_assistant_message(built: tuple[Path, dict[str, Any]]) -> None:
    ws, _ = built
    for agent in ("alfworld", "swe_chat"):
        for example in own_rows(ws, "openai", agent):
            for m in example["messages"]:
                assert m.get("content") or m.get("tool_calls") or m["role"] == "tool"
    alf = next(r for r in own_rows(ws, "unsloth", "alfworld") if r["base_id"] == "alfworld-pick-clean-01")
    assert alf["conversations"][-1]["from"] == "observation"
    plain = next(r for r in own_rows(ws, "unsloth", "swe_chat") if r["base_id"] == "swe-plain-answer")
    assert plain["conversations"][-1] == {"from": "gpt", "value": "The README now matches the behaviour of retry()."}


def test_trajectories_that_end_on_a_call_end_on_it_in_openai(built: tuple[Path, dict[str, Any]]) -> None:
    ws, _ = built
    ending_on_calls = {t["id"] for t in CORPUS_BY_ID.values() if t["content"][-1]["class_"] != "message_action"
                       and t["content"][-1]["class_"].endswith("action")}
    assert len(ending_on_calls) >= 8
    for path in FILES:
        for row, example in zip(own_rows(ws, "unsloth", family(path)), own_rows(ws, "openai", family(path)),
                                strict=True):
            if row["base_id"] in ending_on_calls:
                assert example["messages"][-1]["role"] == "assistant" and example["messages"][-1]["tool_calls"]


# --- the team's real samples (skipped where they are absent) ------------------------------------


@needs_adp_samples
def test_real_samples_build_without_rejects_and_validate(tmp_path: Path) -> None:
    ws = adp_workspace(tmp_path, {p.name.split(".")[0]: json.loads(p.read_text(encoding="utf-8"))
                                  for p in ADP_SAMPLES})
    metrics = build_sft(StepContext(workspace=ws), variants=1, holdout_fraction=0.0).metrics
    assert metrics["rejects"] == 0
    for path in sorted((ws / "data" / "sft" / "openai").glob("*.jsonl")):
        report = validate_openai_file(path, min_examples=1)
        assert report.valid, (path.name, report.error_samples)
