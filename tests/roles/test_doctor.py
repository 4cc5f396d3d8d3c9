"""`coord doctor` against the fake CLIs: found, version, login, smoke prompt; exit 1 when a bound CLI fails."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from coordinator.cli.app import app


def doctor(ws, *args: str):
    result = CliRunner().invoke(app, ["doctor", "-w", str(ws), *args], catch_exceptions=False)
    return result.exit_code, result.output


def as_json(ws, *args: str) -> tuple[int, dict[str, dict]]:
    code, out = doctor(ws, "--json", *args)
    return code, {c["agent"]: c for c in json.loads(out)}


def test_with_no_role_bound_every_cli_is_checked_for_information(tmp_path, fake_clis):
    code, found = as_json(tmp_path)
    assert code == 0  # nothing a run would use is broken
    assert set(found) == {"claude", "codex", "cursor"}
    assert found["codex"]["version"] == "0.58.0" and found["codex"]["min_version"] == "0.44.0"
    assert found["cursor"]["version"] == "2026.09.18" and all(not c["roles"] for c in found.values())
    code, out = doctor(tmp_path)
    assert "no role is bound to driver cli" in out


def test_bound_cli_not_logged_in_fails_with_the_fix(tmp_path, fake_clis, monkeypatch):
    (tmp_path / "coord.yaml").write_text("roles:\n  quality: {agent: codex, driver: cli}\n")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-read-by-codex")
    code, found = as_json(tmp_path)
    assert code == 1 and list(found) == ["codex"] and found["codex"]["roles"] == ["quality"]
    assert found["codex"]["auth_ok"] is False
    assert "CODEX_API_KEY" in found["codex"]["auth"] and "does not read OPENAI_API_KEY" in found["codex"]["auth"]
    monkeypatch.setenv("CODEX_API_KEY", "sk-test")
    code, found = as_json(tmp_path)
    assert code == 0 and found["codex"]["auth"] == "key in CODEX_API_KEY"


def test_login_status_of_the_cli_itself_counts(tmp_path, fake_clis, monkeypatch):
    (tmp_path / "coord.yaml").write_text("roles:\n  execution: {agent: cursor, driver: cli}\n")
    monkeypatch.setenv("FAKE_CURSOR_LOGGED_IN", "1")
    code, found = as_json(tmp_path)
    assert code == 0 and found["cursor"]["auth"].startswith("logged in (Logged in as")


def test_claude_login_file_is_found(tmp_path, fake_clis, monkeypatch):
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / ".credentials.json").write_text("{}")
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "coord.yaml").write_text("roles:\n  lead: {agent: claude, driver: cli}\n")
    code, found = as_json(tmp_path)
    assert code == 0 and found["claude"]["auth"].startswith("logged in (") and found["claude"]["auth_ok"]


def test_too_old_or_missing_cli_fails(tmp_path, fake_clis, monkeypatch):
    (tmp_path / "coord.yaml").write_text(
        "roles:\n  quality: {agent: codex, driver: cli}\n"
        "  execution: {agent: cursor, driver: cli, executable: no-such-agent}\n")
    monkeypatch.setenv("FAKE_CODEX_VERSION", "0.40.1")
    monkeypatch.setenv("CODEX_API_KEY", "k")
    code, found = as_json(tmp_path)
    assert code == 1
    assert "coord needs 0.44.0 or later" in found["codex"]["problem"]
    assert found["cursor"]["path"] is None and found["cursor"]["ok"] is False
    code, out = doctor(tmp_path)
    assert "'no-such-agent' is not on PATH" in out and "coord needs 0.44.0 or later" in out


def test_smoke_runs_a_prompt_through_each_bound_cli(tmp_path, fake_clis, monkeypatch):
    (tmp_path / "coord.yaml").write_text("roles:\n  lead: {agent: claude, driver: cli}\n"
                                         "  quality: {agent: codex, driver: cli}\n")
    monkeypatch.setenv("CODEX_API_KEY", "k")
    monkeypatch.setenv("FAKE_CODEX_MODE", "retry")  # retried errors, then a finished turn: a pass
    code, found = as_json(tmp_path, "--smoke")
    assert code == 0, found
    assert found["claude"]["smoke_ok"] and "$0.0125" in found["claude"]["smoke"]
    assert found["codex"]["smoke_ok"] and "1000 in / 300 out tokens" in found["codex"]["smoke"]
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "fail")
    code, found = as_json(tmp_path, "--smoke")
    assert code == 1 and found["claude"]["smoke_ok"] is False
    assert "exit 3" in found["claude"]["smoke"] and "simulated crash" in found["claude"]["smoke"]


def test_a_named_plan_checks_the_clis_its_roles_use(tmp_path, fake_clis, monkeypatch):
    monkeypatch.setenv("CODEX_API_KEY", "k")
    monkeypatch.setenv("CURSOR_API_KEY", "k")
    code, found = as_json(tmp_path, "week2-agents")
    assert {a: c["roles"] for a, c in found.items()} == {"claude": ["lead"], "codex": ["quality"],
                                                         "cursor": ["execution"]}
    assert code == 0
