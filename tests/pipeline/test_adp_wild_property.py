"""Property: whatever valid ADP comes in, build_sft's rows pass coord's OpenAI validator and
every tool result stays on its own call.

Trajectories are drawn valid by construction for every schema version (and none): blocks of
api/code calls, some answered at once, some later (1.3.0+, by id), some never; free text
that may be empty, ``<finish>`` wrappers (empty ones too), thoughts, web and image results,
odd function names, arguments that look quoted. Each call and its result share a marker, so
the pairing in the written example can be checked from the outside.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.core.io import dumps_line
from coordinator.core.step import StepContext
from pipeline.adp.models import CODE_LANGUAGE_LIST
from pipeline.adp.tools import FunctionSpec, ToolCatalog, ToolSpec
from pipeline.adp.validate import trajectory_issues
from pipeline.openai_format import validate_openai_file
from pipeline.openai_format._rules import ExampleChecker
from pipeline.openai_format.convert import ConvertedBody
from pipeline.openai_format.tokens import estimate_tokens
from pipeline.sft import (
    RowBytes,
    build_sft,
    example_from_trajectory,
    system_message_json,
    target_json,
    unsloth_to_openai,
)

VERSIONS = ("1.1.0", "1.2.0", "1.3.0", "1.3.1", "1.4.0", "1.5.0", None)
MARK = re.compile(r"@@m(\d+)@@")
TEXT = st.text(max_size=24)
NAMES = st.one_of(st.sampled_from(["bash", "str_replace_editor", "click", "finish", "think", "search"]),
                  st.text(min_size=1, max_size=70))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9),
                    st.floats(allow_nan=False, allow_infinity=False), TEXT,
                    TEXT.map(lambda t: f'"{t}"'), TEXT.map(lambda t: f"'{t}'"))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                      max_leaves=6)


@dataclass
class Draft:
    """A trajectory being drawn: its items, and what the checks need to know."""

    version: str | None
    items: list[dict[str, Any]] = field(default_factory=list)
    marks: int = 0
    answered_at_once: set[int] = field(default_factory=set)
    """Markers of results drawn directly after their block (they must become tool messages)."""
    next_id: int = 0

    @property
    def linked(self) -> bool:
        return self.version is None or tuple(int(p) for p in self.version.split(".")) >= (1, 3)

    def before_observation(self) -> None:
        """1.3.0+: an id-less call directly followed by an observation is invalid; say something first."""
        last = self.items[-1] if self.items else None
        if self.linked and last and last["class_"] in ("api_action", "code_action") and "tool_call_id" not in last:
            self.items.append({"class_": "message_action", "content": "(continuing)"})

    def new_id(self) -> str:
        self.next_id += 1
        return f"toolu_{self.next_id:03d}"


def result_item(draw: Any, mark: int, call_id: str | None) -> dict[str, Any]:
    text = f"{draw(TEXT)} @@m{mark}@@"
    kind = draw(st.sampled_from(["text", "text", "web", "image"]))
    if kind == "web":
        item: dict[str, Any] = {"class_": "web_observation", "html": None, "axtree": text, "url": draw(TEXT),
                                "image_observation": None, "viewport_size": None}
    elif kind == "image":
        item = {"class_": "image_observation", "content": f"shots/{text}.png", "source": "environment"}
    else:
        item = {"class_": "text_observation", "content": text, "source": "environment"}
    if call_id is not None:
        item["tool_call_id"] = call_id
    return item


def call_item(draw: Any, mark: int, call_id: str | None) -> dict[str, Any]:
    thought = {"description": draw(st.one_of(st.none(), TEXT))}
    if draw(st.booleans()):
        thought["reasoning_content"] = draw(TEXT)
    if draw(st.booleans()):
        item: dict[str, Any] = {"class_": "code_action", "language": draw(st.sampled_from(CODE_LANGUAGE_LIST)),
                                "content": f"{draw(TEXT)} # @@m{mark}@@", **thought}
    else:
        kwargs = draw(st.dictionaries(TEXT, VALUES, max_size=3))
        item = {"class_": "api_action", "function": draw(NAMES), "kwargs": {**kwargs, "mark": f"@@m{mark}@@"},
                **thought}
    if call_id is not None:
        item["tool_call_id"] = call_id
    return item


def draw_block(draw: Any, d: Draft) -> None:
    n_calls = draw(st.integers(1, 3))
    marks = list(range(d.marks, d.marks + n_calls))
    d.marks += n_calls
    if not d.linked:  # position pairs them: the results answer the block's last calls
        n_results = draw(st.integers(0, n_calls))
        d.before_observation()
        d.items += [call_item(draw, m, None) for m in marks]
        d.items += [result_item(draw, m, None) for m in marks[n_calls - n_results:]]
        d.answered_at_once |= set(marks[n_calls - n_results:])
        return
    answered = [m for m in marks if draw(st.booleans())]
    at_once = [m for m in answered if draw(st.booleans())]
    if at_once and marks[-1] not in answered:  # the call right before a result needs an id
        answered.append(marks[-1])
        at_once.append(marks[-1])
    ids = {m: d.new_id() for m in answered}
    d.items += [call_item(draw, m, ids.get(m)) for m in marks]
    d.items += [result_item(draw, m, ids[m]) for m in draw(st.permutations(at_once))]
    d.answered_at_once |= set(at_once)
    later = [m for m in answered if m not in at_once]
    if later:
        d.before_observation()
        d.items.append({"class_": "text_observation", "source": "user", "content": draw(TEXT)})
        d.items += [result_item(draw, m, ids[m]) for m in draw(st.permutations(later))]


@st.composite
def trajectories(draw: Any) -> tuple[dict[str, Any], Draft]:
    d = Draft(draw(st.sampled_from(VERSIONS)))
    d.items.append({"class_": "text_observation", "source": "user", "content": draw(TEXT)})
    for step in draw(st.lists(st.sampled_from(["block", "block", "message", "user", "agent"]), max_size=7)):
        if step == "block":
            draw_block(draw, d)
        elif step == "message":
            content = draw(st.one_of(TEXT, TEXT.map(lambda t: f"<finish>{t}</finish>"), st.just("<finish> </finish>")))
            d.items.append({"class_": "message_action", "content": content,
                            "description": draw(st.one_of(st.none(), st.just(""), TEXT))})
        else:
            d.before_observation()
            if d.items[-1]["class_"] in ("api_action", "code_action"):  # would read as the call's result
                d.items.append({"class_": "message_action", "content": "(continuing)"})
            d.items.append({"class_": "text_observation", "source": step, "content": draw(TEXT)})
    traj: dict[str, Any] = {"id": "t", "content": d.items, "details": {"system_prompt": draw(TEXT)}}
    if d.version is not None:
        traj["schema_version"] = d.version
    return traj, d


def _speechless(traj: dict[str, Any]) -> bool:
    """No call and no words: legal ADP with nothing to train an assistant on."""
    try:
        example_from_trajectory(traj, "agent")
    except ValueError:
        return True
    return False


def catalog_for(traj: dict[str, Any], pick: list[bool]) -> ToolCatalog:
    names = sorted({i["function"] for i in traj["content"] if i["class_"] == "api_action"})
    chosen = [n for n, keep in zip(names, pick, strict=False) if keep]
    return ToolCatalog([ToolSpec(function=FunctionSpec(name=n, parameters={"type": "object"})) for n in chosen])


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(trajectories(), st.lists(st.booleans(), max_size=8))
def test_what_build_sft_writes_the_openai_validator_accepts_and_results_stay_on_their_calls(
        drawn: tuple[dict[str, Any], Draft], pick: list[bool]) -> None:
    traj, draft = drawn
    assert trajectory_issues(traj) == []  # the strategy draws valid ADP only
    try:
        ex = example_from_trajectory(traj, "agent", catalog_for(traj, pick))
    except ValueError as e:  # legal, but nothing for an assistant to learn: no call, no words
        assert str(e) == "no assistant turn"
        assert not any(i["class_"] in ("api_action", "code_action") for i in traj["content"])
        return
    row = ex.render("agent", 1, 0.5, "You are the agent.")
    example = unsloth_to_openai(row)
    # build_sft converts each conversation once and adds each row's system prompt to it
    body = ConvertedBody.of(ex.conversation, ex.tools)
    rows = RowBytes.of(ex)
    for prompt in ("You are the agent.", "  ", "A longer prompt.\nWith two lines."):
        plain = unsloth_to_openai(ex.render("agent", 1, 0.5, prompt))
        assert body.example(prompt) == (plain, estimate_tokens(plain))
        # and the lines build_sft splices from bytes are those of the plain objects
        assert body.line(prompt) == (dumps_line(plain), estimate_tokens(plain))
        assert rows.line("agent<-x#1", system_message_json(prompt), target_json("agent", 0.5), 1) == \
            dumps_line({**ex.render("agent", 1, 0.5, prompt), "id": "agent<-x#1"})

    errors: list[tuple[str, str, str]] = []
    ExampleChecker(lambda f, c, m, warning=False: None if warning else errors.append((f, c, m))).check(example)
    assert errors == []

    calls = {c["id"]: c for m in example["messages"] for c in m.get("tool_calls", [])}
    on_tool_messages = set()
    for m in example["messages"]:
        if m["role"] == "tool":
            (mark,) = MARK.findall(m["content"])
            assert f"@@m{mark}@@" in calls[m["tool_call_id"]]["function"]["arguments"]
            on_tool_messages.add(int(mark))
    assert draft.answered_at_once <= on_tool_messages

    # arguments and code arrive exactly as stored
    written = [json.loads(m["value"]) for m in row["conversations"] if m["from"] == "function_call"]
    stored = [{"name": i["function"], "arguments": i["kwargs"]} if i["class_"] == "api_action"
              else {"name": "run_code", "arguments": {"language": i["language"], "code": i["content"]}}
              for i in traj["content"] if i["class_"] in ("api_action", "code_action")]
    assert written == stored


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(st.lists(trajectories(), min_size=1, max_size=6))
def test_files_build_sft_writes_pass_validate_openai(drawn: list[tuple[dict[str, Any], Draft]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        (ws / "data" / "adp").mkdir(parents=True)
        rows = [{**traj, "id": f"t{i}"} for i, (traj, _) in enumerate(drawn)]
        (ws / "data" / "adp" / "agent.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        metrics = build_sft(StepContext(workspace=ws), variants=2, holdout_fraction=0.0).metrics
        assert metrics["rejects"] == sum(map(_speechless, rows))  # nothing an assistant said or did
        assert metrics["examples"] == len(rows) - metrics["rejects"]
        report = validate_openai_file(ws / "data" / "sft" / "openai" / "agent.jsonl", min_examples=0)
        assert report.errors == 0, report.error_samples
