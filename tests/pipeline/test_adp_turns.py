"""ADP trajectories become chat turns without losing or reordering anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.adp.models import Trajectory
from pipeline.adp.turns import Turn, trajectory_to_turns
from tests.shared_fixtures import ADP_SAMPLE_DIR, ADP_SAMPLE_PARAMS, needs_adp_samples


def check_sensible(turns: list[Turn]) -> None:
    """Invariants SFT builders rely on."""
    body = [t for t in turns if t["role"] != "system"]
    assert all(t["role"] == "system" for t in turns[: len(turns) - len(body)]), "system comes first"
    assert body[0]["role"] == "user"
    calls: dict[str, int] = {}
    answered: set[str] = set()
    for i, t in enumerate(body):
        assert isinstance(t["content"], str)
        call = t.get("tool_call") or t.get("code_call")
        if call is not None:
            assert t["role"] == "assistant" and call["id"] not in calls
            calls[call["id"]] = i
        if t["role"] == "tool":
            call_id = t["tool_call_id"]
            assert call_id in calls and calls[call_id] < i and call_id not in answered
            answered.add(call_id)
            assert body[i - 1]["role"] == "tool" or "tool_call" in body[i - 1] or "code_call" in body[i - 1]
        else:
            assert "tool_call_id" not in t


@pytest.mark.parametrize("sample", ADP_SAMPLE_PARAMS)
@needs_adp_samples
def test_every_real_trajectory_converts_sensibly_and_completely(sample: Path) -> None:
    for data in json.loads(sample.read_text()):
        turns = trajectory_to_turns(data)
        check_sensible(turns)
        assert len(turns) == len(data["content"]), "one turn per content item"
        for item, turn in zip(data["content"], turns, strict=True):
            if item["class_"] == "code_action":
                assert turn["code_call"]["code"] == item["content"]
                assert turn["code_call"]["language"] == item["language"]
            elif item["class_"] == "api_action":
                assert turn["tool_call"]["name"] == item["function"]
                assert set(turn["tool_call"]["arguments"]) == set(item["kwargs"])
            else:
                body = item["content"].replace("<finish>", "").replace("</finish>", "").strip()
                assert body in turn["content"]
            for part in (item.get("description"), item.get("reasoning_content")):
                if part:
                    assert part.strip() in turn["content"]


@needs_adp_samples
def test_model_and_dict_inputs_give_the_same_turns() -> None:
    data = json.loads((ADP_SAMPLE_DIR / "agenttuning_os.sample_std.json").read_text())[0]
    assert trajectory_to_turns(Trajectory.model_validate(data)) == trajectory_to_turns(data)


@needs_adp_samples
def test_quoted_string_kwargs_from_upstream_are_kept_as_stored() -> None:
    data = json.loads((ADP_SAMPLE_DIR / "toolmind.sample_std.json").read_text())[0]
    assert data["content"][1]["kwargs"] == {"timezone": '"America/New_York"'}
    call = trajectory_to_turns(data)[1]["tool_call"]
    assert call["arguments"] == {"timezone": '"America/New_York"'}


def traj(content: list[dict[str, Any]], version: str = "1.5.0", **details: Any) -> dict[str, Any]:
    return {"schema_version": version, "id": "t", "content": content, "details": details}


def user(text: str) -> dict[str, Any]:
    return {"class_": "text_observation", "source": "user", "content": text}


def api(kwargs: dict[str, Any], call_id: str | None = None, **extra: Any) -> dict[str, Any]:
    item = {"class_": "api_action", "function": "f", "kwargs": kwargs, **extra}
    return {**item, "tool_call_id": call_id} if call_id else item


def env(text: str, call_id: str | None = None) -> dict[str, Any]:
    item = {"class_": "text_observation", "source": "environment", "content": text}
    return {**item, "tool_call_id": call_id} if call_id else item


def test_no_argument_is_ever_rewritten() -> None:
    kwargs = {"a": "'Kerosene'", "b": '"x"', "c": 3, "d": "plain", "e": "'half", "old_str": '"1.0.0"',
              "g": ["'x'"], "h": {"k": '"v"'}}
    for version in ("1.1.0", "1.2.0", "1.5.0"):
        args = trajectory_to_turns(traj([user("q"), api(kwargs)], version=version))[1]["tool_call"]["arguments"]
        assert args == kwargs


def test_json_kwargs_of_coord_trajectories_are_kept_verbatim() -> None:
    data = traj([user("q"), api({"query": '"exact phrase"'})], version="1.2.0", kwargs_format="json")
    assert trajectory_to_turns(data)[1]["tool_call"]["arguments"] == {"query": '"exact phrase"'}


def test_finish_wrapper_is_dropped_and_solution_kept() -> None:
    content = [user("q"), {"class_": "message_action", "content": "<finish> <solution> 3 </solution> </finish>",
                           "description": "It is 3.\n"}]
    assert trajectory_to_turns(traj(content))[1]["content"] == "It is 3.\n\n<solution> 3 </solution>"


def test_reasoning_comes_as_a_think_block_before_the_description() -> None:
    content = [user("q"), api({"x": 1}, "c1", reasoning_content="long thoughts", description="short"),
               env("r", "c1")]
    turn = trajectory_to_turns(traj(content))[1]
    assert turn["content"] == "<think>\nlong thoughts\n</think>\n\nshort"


def code(text: str, call_id: str | None = None) -> dict[str, Any]:
    item = {"class_": "code_action", "language": "python", "content": text, "description": None}
    return {**item, "tool_call_id": call_id} if call_id else item


def pairs(turns: list[Turn]) -> list[tuple[str, str | None]]:
    """(role, answered call's code or arguments) for every turn after the system prompt."""
    calls = {(t.get("code_call") or t.get("tool_call") or {}).get("id"): t for t in turns}
    out: list[tuple[str, str | None]] = []
    for t in turns:
        call = calls.get(t.get("tool_call_id")) if t["role"] == "tool" else None
        out.append((t["role"], call["code_call"]["code"] if call else None))
    return out


def test_old_data_gets_deterministic_ids_and_in_order_pairing() -> None:
    content = [user("q"), api({"n": 1}), api({"n": 2}), env("one"), env("two"), env("late"),
               {"class_": "message_action", "content": "ok"}]
    turns = trajectory_to_turns(traj(content, version="1.2.0"))
    check_sensible(turns)
    assert [t["tool_call"]["id"] for t in turns[1:3]] == ["call_000001", "call_000002"]
    assert [(t["role"], t.get("tool_call_id")) for t in turns[3:6]] == [
        ("tool", "call_000001"), ("tool", "call_000002"), ("user", None)]


def test_old_results_never_shift_onto_a_call_a_user_message_left_unanswered() -> None:
    # code_feedback shape: the first run is followed by the user's reply, not by its output
    content = [user("write it"), code("v1"), user("handle negatives too"), code("v2"), env("out of v2"),
               code("v3"), env("out of v3"), {"class_": "message_action", "content": "done"}]
    turns = trajectory_to_turns(traj(content, version="1.2.0"))
    check_sensible(turns)
    assert pairs(turns) == [("user", None), ("assistant", None), ("user", None), ("assistant", None),
                            ("tool", "v2"), ("assistant", None), ("tool", "v3"), ("assistant", None)]


def test_results_answer_the_last_calls_of_their_block() -> None:
    # one result after two calls is the output of the call right before it, as upstream links them
    content = [user("q"), code("shown"), code("run"), env("out of run"), code("c"), env("out of c")]
    turns = trajectory_to_turns(traj(content, version="1.1.0"))
    assert [p for p in pairs(turns) if p[0] == "tool"] == [("tool", "run"), ("tool", "c")]
    parallel = [user("q"), code("a"), code("b"), env("out of a"), env("out of b")]
    assert [p for p in pairs(trajectory_to_turns(traj(parallel, version="1.2.0"))) if p[0] == "tool"] == [
        ("tool", "a"), ("tool", "b")]


def test_user_and_agent_observations_are_never_results() -> None:
    content = [user("q"), code("a"), user("not its output"), {"class_": "text_observation", "source": "agent",
                                                               "content": "note"}]
    turns = trajectory_to_turns(traj(content, version="1.2.0"))
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]


def test_a_call_nothing_answers_is_a_call_turn_without_a_tool_turn() -> None:
    # SWE shape: an id-less think, then linked calls, then a closing finish
    content = [user("fix it"), api({"thought": "hm"}), code("ls", "call_000001"), env("a.py", "call_000001"),
               api({"message": "done"})]
    turns = trajectory_to_turns(traj(content))
    check_sensible(turns)
    assert [t["role"] for t in turns] == ["user", "assistant", "assistant", "tool", "assistant"]
    assert turns[1]["tool_call"]["id"] == "call_000002" and turns[4]["tool_call"]["id"] == "call_000003"
    assert turns[3]["tool_call_id"] == "call_000001"


def test_linked_results_pair_by_id_in_any_order_and_after_other_turns() -> None:
    content = [user("q"), code("a", "x"), code("b", "y"), env("out of b", "y"), user("and?"), env("out of a", "x")]
    turns = trajectory_to_turns(traj(content, version="1.3.0"))
    assert [p for p in pairs(turns) if p[0] == "tool"] == [("tool", "b"), ("tool", "a")]


def test_an_empty_finish_gives_an_empty_turn_and_a_thought_survives() -> None:
    finish = {"class_": "message_action", "content": "<finish> </finish>"}
    turns = trajectory_to_turns(traj([user("q"), finish, {**finish, "description": "All set."}]))
    assert [t["content"] for t in turns[1:]] == ["", "All set."]


def test_synthesized_ids_skip_ids_the_trajectory_already_uses() -> None:
    content = [user("q"), api({}, "call_000001"), env("r", "call_000001"), api({})]
    turns = trajectory_to_turns(traj(content))
    assert turns[3]["tool_call"]["id"] == "call_000002"


def test_system_prompt_comes_first_and_sources_map_to_roles() -> None:
    content = [user("q"), {"class_": "text_observation", "source": "agent", "content": "me"},
               env("state")]
    turns = trajectory_to_turns(traj(content, system_prompt="Be brief."))
    assert [(t["role"], t["content"]) for t in turns] == [
        ("system", "Be brief."), ("user", "q"), ("assistant", "me"), ("user", "state")]


def test_web_and_image_observations_render_as_text() -> None:
    image = {"class_": "image_observation", "content": "shots/1.png", "source": "environment",
             "annotations": [{"element_type": "button", "text": "Buy",
                              "bounding_box": {"x": 1, "y": 2, "width": 30, "height": 10}}]}
    page = {"class_": "web_observation", "html": "<p>x</p>", "axtree": "[1] button 'Buy'",
            "url": "https://shop.example/item", "image_observation": None, "viewport_size": None}
    turns = trajectory_to_turns(traj([user("q"), page, image]))
    assert turns[1]["content"] == "URL: https://shop.example/item\n[1] button 'Buy'"
    assert turns[2]["content"] == "[image: shots/1.png]\n- button 'Buy' at (1, 2, 30, 10)"
