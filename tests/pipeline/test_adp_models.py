"""The ADP models accept real data and reject what upstream ADP would reject, by version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.adp.models import (
    CODE_LANGUAGES,
    CODE_LANGUAGES_SOURCE,
    SUPPORTED_VERSIONS,
    WRITE_VERSION,
    CodeAction,
    Trajectory,
    WebObservation,
    current_loader_objections,
    raw_item_view,
    version_warning,
)
from tests.shared_fixtures import ADP_SAMPLE_PARAMS, needs_adp_samples


def user(text: str = "hi") -> dict[str, Any]:
    return {"class_": "text_observation", "source": "user", "content": text}


def env(text: str = "out", call_id: str | None = None) -> dict[str, Any]:
    item = {"class_": "text_observation", "source": "environment", "content": text}
    if call_id is not None:
        item["tool_call_id"] = call_id
    return item


def api(call_id: str | None = None, function: str = "lookup") -> dict[str, Any]:
    item: dict[str, Any] = {"class_": "api_action", "function": function, "kwargs": {"q": "x"}}
    if call_id is not None:
        item["tool_call_id"] = call_id
    return item


def code(call_id: str | None = None, language: str = "python") -> dict[str, Any]:
    item = {"class_": "code_action", "language": language, "content": "print(1)", "description": None}
    if call_id is not None:
        item["tool_call_id"] = call_id
    return item


def say(text: str = "done") -> dict[str, Any]:
    return {"class_": "message_action", "content": text}


def traj(content: list[dict[str, Any]], version: str | None = "1.5.0", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"id": "t1", "content": content, "details": {}, **extra}
    if version is not None:
        data["schema_version"] = version
    return data


def error_text(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        Trajectory.model_validate(data)
    return str(info.value)


@pytest.mark.parametrize("sample", ADP_SAMPLE_PARAMS)
@needs_adp_samples
def test_every_real_sample_trajectory_validates(sample: Path) -> None:
    for data in json.loads(sample.read_text()):
        assert Trajectory.model_validate(data).id == data["id"]


def test_supported_versions_are_those_real_data_carries() -> None:
    assert SUPPORTED_VERSIONS == ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.3.1", "1.4.0", "1.5.0")
    assert WRITE_VERSION == "1.5.0"


def test_unknown_version_is_rejected_by_name() -> None:
    text = error_text(traj([user(), say()], version="9.0.0"))
    assert "unsupported schema_version '9.0.0' (supported: 1.0.0, 1.1.0, 1.2.0, 1.3.0, 1.3.1, 1.4.0, 1.5.0)" in text


def test_missing_version_means_current_and_is_flagged() -> None:
    assert Trajectory.model_validate(traj([user(), say()], version=None)).schema_version == "1.5.0"
    assert version_warning(None) is not None


def test_1_3_1_is_accepted_under_1_3_rules_with_a_warning() -> None:
    ok = traj([user(), code("call_000001"), env(call_id="call_000001"), say()], version="1.3.1")
    assert Trajectory.model_validate(ok).schema_version == "1.3.1"
    assert "1.3.1" in (version_warning("1.3.1") or "")
    assert version_warning("1.3.0") is None and version_warning("1.5.0") is None
    assert "no matching observation" in error_text(traj([user(), code("call_1"), say()], version="1.3.1"))


def test_available_apis_belongs_to_older_versions_only() -> None:
    assert Trajectory.model_validate(traj([user(), api(), env()], version="1.2.0", available_apis=["lookup"]))
    text = error_text(traj([user(), say()], available_apis=["lookup"]))
    assert "available_apis: not part of schema_version '1.5.0'" in text


def test_1_5_availability_fields_are_rejected_before_1_5() -> None:
    text = error_text(traj([user(), code(), say()], version="1.4.0", available_code_languages=["python"]))
    assert "available_code_languages: not part of schema_version '1.4.0' (added in 1.5.0)" in text


def test_available_code_languages_must_equal_languages_used() -> None:
    content = [user(), code("c1", "bash"), env(call_id="c1"), say()]
    assert Trajectory.model_validate(traj(content, available_code_languages=["bash"]))
    assert "does not list used languages ['bash']" in error_text(
        traj(content, available_code_languages=["python"]))
    assert "lists languages no code_action uses ['sql']" in error_text(
        traj(content, available_code_languages=["bash", "sql"]))


def test_available_apis_must_cover_functions_used() -> None:
    text = error_text(traj([user(), api(function="search"), say()], version="1.2.0", available_apis=["lookup"]))
    assert "available_apis: does not list api_action functions ['search']" in text


def test_action_followed_by_observation_needs_an_id_from_1_3() -> None:
    text = error_text(traj([user(), api(), env(), say()]))
    assert "content[1].tool_call_id: api_action at content[1] is followed by an observation" in text
    # before 1.3 there are no ids at all, so the same trajectory is fine
    assert Trajectory.model_validate(traj([user(), api(), env(), say()], version="1.2.0"))


def test_tool_call_id_is_not_part_of_versions_before_1_3() -> None:
    text = error_text(traj([user(), api("c1"), env(call_id="c1")], version="1.2.0"))
    assert "content[1].tool_call_id: not part of schema_version '1.2.0' (added in 1.3.0)" in text
    assert "content[2].tool_call_id" in text


def test_message_action_never_has_a_tool_call_id() -> None:
    bad = say()
    bad["tool_call_id"] = "c1"
    assert "content[1].tool_call_id: message_action must not have a tool_call_id" in error_text(traj([user(), bad]))


def test_tool_call_ids_pair_strictly_one_to_one() -> None:
    dup = traj([user(), api("c1"), env(call_id="c1"), api("c1"), env(call_id="c1"), say()])
    assert "content[3].tool_call_id: duplicate tool_call_id 'c1'" in error_text(dup)
    unknown = traj([user(), api("c1"), env(call_id="c2"), say()])
    text = error_text(unknown)
    assert "content[2].tool_call_id: tool_call_id 'c2' does not match any earlier" in text
    assert "content[1].tool_call_id: tool_call_id 'c1' has no matching observation" in text
    twice = traj([user(), api("c1"), env(call_id="c1"), env(call_id="c1"), say()])
    assert "content[3].tool_call_id: tool_call_id 'c1' already answered at content[2]" in error_text(twice)
    before = traj([user(), env(call_id="c1"), api("c1"), say()])
    assert "content[1].tool_call_id: tool_call_id 'c1' does not match any earlier" in error_text(before)


def test_parallel_calls_may_be_answered_after_both_actions() -> None:
    content = [user(), api("a"), api("b"), env(call_id="b"), env(call_id="a"), say()]
    assert len(Trajectory.model_validate(traj(content)).content) == 6


def test_extra_fields_are_forbidden_on_trajectory_and_items() -> None:
    assert "Extra inputs are not permitted" in error_text(traj([user(), say()], note="x"))
    item = say()
    item["mood"] = "happy"
    assert "mood" in error_text(traj([user(), item]))


def test_items_are_discriminated_by_class() -> None:
    text = error_text(traj([user(), {"class_": "shell_action", "content": "ls"}]))
    assert "'shell_action'" in text and "api_action" in text
    assert "Unable to extract tag" in error_text(traj([user(), {"content": "no class"}]))


def test_code_action_description_must_be_present_but_may_be_null() -> None:
    item = code()
    del item["description"]
    assert "description" in error_text(traj([user(), item]))
    assert CodeAction.model_validate(code()).description is None


LANGUAGES_FILE = Path(__file__).resolve().parents[2] / "pipeline" / "data" / "adp_code_languages.json"


def test_the_language_list_is_upstreams_and_says_where_it_comes_from() -> None:
    data = json.loads(LANGUAGES_FILE.read_text(encoding="utf-8"))
    assert data["count"] == len(data["languages"]) == len(set(data["languages"])) == 304
    assert frozenset(data["languages"]) == CODE_LANGUAGES
    assert data["source"] == CODE_LANGUAGES_SOURCE
    assert data["source"]["repository"].endswith("neulab/agent-data-protocol")
    assert data["source"]["path"] == "schema/action/code.py"
    assert len(data["source"]["commit"]) == 40 and data["source"]["schema_version"] == "1.5.0"


def test_every_upstream_language_is_accepted() -> None:
    for language in json.loads(LANGUAGES_FILE.read_text(encoding="utf-8"))["languages"]:
        assert CodeAction.model_validate(code(language=language)).language == language


@pytest.mark.parametrize("language", ["vue", "svelte", "protobuf", "gradle", "jinja", "nginx", "arduino",
                                      "qsharp", "text", "console", "javasript", "output", "code"])
def test_names_the_old_subset_refused_are_accepted(language: str) -> None:
    assert language in CODE_LANGUAGES
    ok = traj([user(), code(language=language)], available_code_languages=[language])
    assert Trajectory.model_validate(ok).available_code_languages == [language]


def test_names_upstream_does_not_list_are_rejected_with_a_hint() -> None:
    with pytest.raises(ValidationError, match="unknown code language 'Python'; did you mean 'python'"):
        CodeAction.model_validate(code(language="Python"))
    for name in ("cobra", "py3", "", "shell script"):
        with pytest.raises(ValidationError, match="unknown code language"):
            CodeAction.model_validate(code(language=name))
    text = error_text(traj([user(), code(language="vue")], available_code_languages=["vue", "Vue"]))
    assert "unknown code language 'Vue'" in text


def objections(data: dict[str, Any]) -> list[str]:
    Trajectory.model_validate(data)  # valid under its own version first
    return current_loader_objections(data.get("schema_version", "1.5.0"), data,
                                     [raw_item_view(i) for i in data["content"]])


def test_current_loader_objections_name_what_1_5_would_reject() -> None:
    old = traj([user(), api(), env(), say()], version="1.2.0", available_apis=["lookup"])
    assert objections(old) == ["available_apis is not a 1.5.0 field",
                               "a tool action followed by an observation has no tool_call_id (link rules of 1.3.0+)"]
    with_call_text = traj([user(), {**api(), "function_call": "lookup(q='x')"}, say()], version="1.1.0")
    assert objections(with_call_text) == ["api_action.function_call is not a 1.5.0 field"]
    patch = traj([user(), code("c"), env(call_id="c"), say()], version="1.3.1")
    assert objections(patch) == ["schema_version '1.3.1' is not in its supported list"]
    for fine in (traj([user(), api("c"), env(call_id="c"), say()]), traj([user(), say()], version="1.2.0"),
                 traj([user(), api(), say()], version="1.0.0")):
        assert objections(fine) == []


def test_function_call_only_exists_in_the_oldest_versions() -> None:
    item = api()
    item["function_call"] = "lookup(q='x')"
    assert Trajectory.model_validate(traj([user(), item], version="1.1.0"))
    assert "content[1].function_call: not part of schema_version '1.2.0'" in error_text(
        traj([user(), item], version="1.2.0"))


def test_web_observation_fields_must_be_present_and_viewport_is_a_pair() -> None:
    page = {"class_": "web_observation", "html": None, "axtree": "[1] button 'Buy'", "url": "",
            "image_observation": None, "viewport_size": [1280, 720]}
    assert WebObservation.model_validate(page).viewport_size == (1280, 720)
    missing = {k: v for k, v in page.items() if k != "url"}
    assert "url" in error_text(traj([user(), missing]))
    assert "viewport_size" in error_text(traj([user(), {**page, "viewport_size": [1, 2, 3]}]))


def test_text_observation_source_is_a_closed_set() -> None:
    assert "source" in error_text(traj([{"class_": "text_observation", "source": "system", "content": "x"}]))
