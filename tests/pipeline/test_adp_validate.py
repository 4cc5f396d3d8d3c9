"""validate_adp_file and ``coord adp validate`` report every error where it is."""

from __future__ import annotations

import copy
import json
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from coordinator.cli.adp import app
from coordinator.core.errors import InputError
from pipeline.adp.validate import (
    exit_code,
    trajectory_issues,
    validate_adp_file,
    validate_adp_files,
)
from tests.shared_fixtures import ADP_SAMPLE_DIR, ADP_SAMPLE_PARAMS, ADP_SAMPLES, needs_adp_samples


def good(i: int = 0) -> dict[str, Any]:
    return {"schema_version": "1.5.0", "id": f"t{i}", "details": {}, "content": [
        {"class_": "text_observation", "source": "user", "content": "count files"},
        {"class_": "code_action", "language": "bash", "content": "ls | wc -l", "description": None,
         "tool_call_id": "call_000001"},
        {"class_": "text_observation", "source": "environment", "content": "3", "tool_call_id": "call_000001"},
        {"class_": "message_action", "content": "There are 3 files."},
    ]}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def where(report: Any) -> set[tuple[int | None, int | None, str]]:
    return {(e.line, e.index, e.path) for e in report.errors}


@pytest.mark.parametrize("sample", ADP_SAMPLE_PARAMS)
@needs_adp_samples
def test_real_sample_files_validate(sample: Path) -> None:
    report = validate_adp_file(sample)
    assert report.ok, [str(e) for e in report.errors]
    assert report.format == "json"
    assert report.trajectories == report.valid == len(json.loads(sample.read_text())) > 0


@needs_adp_samples
def test_1_3_1_files_are_valid_but_warned_about() -> None:
    report = validate_adp_file(ADP_SAMPLE_DIR / "agenttuning_os.sample_std.json")
    assert report.ok and report.versions == {"1.3.1": report.trajectories}
    assert any("1.3.1" in note for note in report.warnings)


def old_style(i: int) -> dict[str, Any]:
    """A valid 1.2.0 trajectory the current loader refuses: available_apis, an id-less result."""
    return {"schema_version": "1.2.0", "id": f"old{i}", "available_apis": ["lookup"], "details": {}, "content": [
        {"class_": "text_observation", "source": "user", "content": "q"},
        {"class_": "api_action", "function": "lookup", "kwargs": {"q": i}},
        {"class_": "text_observation", "source": "environment", "content": "r"},
        {"class_": "message_action", "content": "a"}]}


def test_what_the_current_loader_would_reject_is_one_warning_line_per_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "old.jsonl", [old_style(0), old_style(1), good(2)])
    report = validate_adp_file(path)
    assert report.ok and report.valid == 3
    lines = [note for note in report.warnings if "current ADP loader" in note]
    assert len(lines) == 1 and report.warnings[lines[0]] == 2
    assert "available_apis is not a 1.5.0 field ×2" in lines[0]
    assert "has no tool_call_id (link rules of 1.3.0+) ×2" in lines[0]
    result = runner.invoke(app, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 0
    assert sum("current ADP loader" in line for line in result.output.splitlines()) == 1
    assert validate_adp_file(write_jsonl(tmp_path / "new.jsonl", [good(0), good(1)])).warnings == {}


def test_invalid_trajectories_get_errors_not_current_loader_warnings(tmp_path: Path) -> None:
    bad = old_style(0)
    bad["content"][0]["source"] = "robot"
    report = validate_adp_file(write_jsonl(tmp_path / "bad.jsonl", [bad]))
    assert not report.ok and not any("current ADP loader" in note for note in report.warnings)


@needs_adp_samples
def test_broken_copy_of_a_real_sample_fails_at_the_right_paths(tmp_path: Path) -> None:
    data = json.loads((ADP_SAMPLE_DIR / "agenttuning_os.sample_std.json").read_text())
    broken = copy.deepcopy(data)
    broken[0]["content"][0]["class_"] = "text_observaton"          # wrong class_
    del broken[1]["content"][1]["language"]                         # missing required field
    broken[2]["content"][2]["tool_call_id"] = "call_999999"         # observation answers nothing
    broken[3]["schema_version"] = "9.0.0"                           # unknown version
    broken[4]["content"][5]["mood"] = "calm"                        # extra field
    path = tmp_path / "os_broken.json"
    path.write_text(json.dumps(broken))

    report = validate_adp_file(path)

    assert (report.trajectories, report.valid, report.invalid) == (5, 0, 5)
    assert where(report) == {
        (None, 0, "content[0]"),
        (None, 1, "content[1].language"),
        (None, 2, "content[2].tool_call_id"),
        (None, 2, "content[1].tool_call_id"),   # call_000001 is now unanswered
        (None, 3, "schema_version"),
        (None, 4, "content[5].mood"),
    }
    by_index = {e.index: e for e in report.errors if e.path != "content[1].tool_call_id"}
    assert "text_observaton" in by_index[0].message
    assert by_index[1].message == "Field required"
    assert "unsupported schema_version '9.0.0'" in by_index[3].message
    assert by_index[4].trajectory_id == data[4]["id"]
    assert str(by_index[1]).startswith(f"{path}[1] content[1].language: ")


@needs_adp_samples
def test_broken_jsonl_copy_reports_line_numbers(tmp_path: Path) -> None:
    data = json.loads((ADP_SAMPLE_DIR / "agenttuning_os.sample_std.json").read_text())
    data[1]["content"][3]["tool_call_id"] = None    # action followed by observation without id
    path = write_jsonl(tmp_path / "os.jsonl", data)
    report = validate_adp_file(path)
    assert report.format == "jsonl"
    assert (2, None, "content[3].tool_call_id") in where(report)
    assert str(report.errors[0]).startswith(f"{path}:2 ")


def test_every_error_of_one_trajectory_is_reported() -> None:
    row = good()
    row["content"][3]["class_"] = "nope"                 # structural
    row["content"][2]["tool_call_id"] = "call_000009"    # link problems, still found
    row["extra"] = True
    paths = {i.path for i in trajectory_issues(row)}
    assert paths == {"content[3]", "content[2].tool_call_id", "content[1].tool_call_id", "extra"}


def test_jsonl_lines_that_are_not_json_or_not_objects_are_invalid_records(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(orjson.dumps(good(1)) + b"\n{not json\n\n[1, 2]\n" + orjson.dumps(good(2)) + b"\n")
    report = validate_adp_file(path)
    assert (report.trajectories, report.valid, report.invalid) == (4, 2, 2)
    assert [(e.line, e.path) for e in report.errors] == [(2, ""), (4, "")]
    assert "invalid JSON" in report.errors[0].message
    assert "dictionary" in report.errors[1].message


def test_max_errors_caps_what_is_kept_but_counts_everything(tmp_path: Path) -> None:
    rows = [{**good(i), "schema_version": "0.1"} for i in range(10)]
    report = validate_adp_file(write_jsonl(tmp_path / "old.jsonl", rows), max_errors=3)
    assert report.error_count == 10 and len(report.errors) == 3 and report.invalid == 10


def test_single_pretty_printed_trajectory_file_is_one_record(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(good(), indent=2))
    report = validate_adp_file(path)
    assert report.ok and report.trajectories == 1


def test_unreadable_files_raise_or_are_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": "x",')
    with pytest.raises(InputError, match="invalid JSON"):
        validate_adp_file(broken)
    with pytest.raises(InputError, match="no such file"):
        validate_adp_file(tmp_path / "missing.jsonl")
    valid = write_jsonl(tmp_path / "ok.jsonl", [good()])
    reports = validate_adp_files([valid, broken])
    assert reports[0].ok and reports[1].read_error and "broken.json" in reports[1].read_error
    assert exit_code(reports) == 2
    assert exit_code(reports[:1]) == 0


def _peak_memory(path: Path) -> int:
    tracemalloc.start()
    try:
        report = validate_adp_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok
    return peak


def test_jsonl_validation_streams_in_flat_memory(tmp_path: Path) -> None:
    small = write_jsonl(tmp_path / "small.jsonl", [good(i) for i in range(300)])
    big = write_jsonl(tmp_path / "big.jsonl", [good(i) for i in range(3000)])
    # 10× the rows must not mean much more memory (the read buffer dominates both)
    assert _peak_memory(big) < 1.5 * _peak_memory(small)


runner = CliRunner()


def test_cli_exits_0_when_all_files_are_valid(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ok.jsonl", [good(1), good(2)])
    result = runner.invoke(app, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 0
    assert "2 trajectories valid" in result.output


def test_cli_exits_1_and_lists_every_error(tmp_path: Path) -> None:
    bad = good(2)
    bad["content"][1]["language"] = "Bash"
    bad["content"][3]["tool_call_id"] = "call_000001"
    path = write_jsonl(tmp_path / "bad.jsonl", [good(1), bad])
    result = runner.invoke(app, ["validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 1
    assert "1 of 2 trajectories invalid, 2 errors" in result.output
    assert f"{path}:2 (t2) content[1].language: unknown code language 'Bash'; did you mean 'bash'?" in result.output
    assert f"{path}:2 (t2) content[3].tool_call_id: message_action must not have" in result.output


def test_cli_exits_2_when_a_file_is_unreadable(tmp_path: Path) -> None:
    ok = write_jsonl(tmp_path / "ok.jsonl", [good()])
    result = runner.invoke(app, ["validate", str(ok), str(tmp_path / "missing.json")], catch_exceptions=False)
    assert result.exit_code == 2
    assert "unreadable" in result.output and "missing.json" in result.output


def test_cli_json_output_is_machine_readable(tmp_path: Path) -> None:
    rows = [{**good(i), "schema_version": "0.1"} for i in range(5)]
    path = write_jsonl(tmp_path / "old.jsonl", rows)
    result = runner.invoke(app, ["validate", "--json", "--max-errors", "2", str(path)], catch_exceptions=False)
    assert result.exit_code == 1
    [report] = json.loads(result.stdout)
    assert report["ok"] is False and report["error_count"] == 5 and len(report["errors"]) == 2
    assert report["errors"][0]["path"] == "schema_version"


@needs_adp_samples
def test_cli_accepts_the_real_samples() -> None:
    result = runner.invoke(app, ["validate", *map(str, ADP_SAMPLES)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"{len(ADP_SAMPLES)} files, 0 with problems" in result.output


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
item_keys = st.sampled_from(["class_", "tool_call_id", "content", "source", "function", "kwargs",
                             "language", "description", "url"])


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["schema_version", "id", "content", "details", "available_apis"]),
                       json_values | st.lists(st.dictionaries(item_keys, json_values), max_size=4)))
def test_any_json_gets_a_list_of_located_issues_never_a_crash(data: dict[str, Any]) -> None:
    issues = trajectory_issues(data)
    assert all(isinstance(i.path, str) and i.message for i in issues)
