"""Secrets never reach logs, boards, reviews, reports or state."""

from __future__ import annotations

from roles.providers.redact import Redactor
from tests.roles.test_cli_drivers import plan_yaml, run

OPENAI = "sk-proj-" + "A1b2C3d4" * 5
SERVICE = "svc-token-0123456789"


def test_redactor_replaces_env_values_and_key_shapes():
    r = Redactor.from_env({"MY_SERVICE_TOKEN": SERVICE, "HOME": "/home/me", "SHORT_TOKEN": "1"})
    text = (f"token={SERVICE} home=/home/me short=1 gh=ghp_{'a' * 36} aws=AKIAABCDEFGHIJKLMNOP "
            f"key=sk-ant-api03-{'z' * 40} auth: Bearer abcdefghijklmnopqrstuvwx")
    out = r(text)
    assert SERVICE not in out and "[REDACTED:MY_SERVICE_TOKEN]" in out
    assert "home=/home/me short=1" in out
    for shape in ("github-token", "aws-key-id", "anthropic-key"):
        assert f"[REDACTED:{shape}]" in out
    assert "Bearer [REDACTED:bearer]" in out


def test_no_secret_anywhere_after_a_leaky_agent_run(git_ws, fake_clis, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI)
    monkeypatch.setenv("MY_SERVICE_TOKEN", SERVICE)
    monkeypatch.setenv("FAKE_SECRET_VAR", "MY_SERVICE_TOKEN")
    monkeypatch.setenv("FAKE_AGENT_MODE", "leak")
    summary = run(git_ws, plan_yaml("lead", "claude"))
    assert summary.exit_code == 0, summary.problems
    logs = list((git_ws.state_dir / "logs").rglob("*.log"))
    assert logs and "[REDACTED:MY_SERVICE_TOKEN]" in logs[0].read_text()
    assert "[REDACTED:anthropic-key]" in logs[0].read_text()
    scanned = 0
    for path in git_ws.root.rglob("*"):
        if ".git" in path.parts or not path.is_file():
            continue
        data = path.read_bytes()
        scanned += 1
        for secret in (OPENAI, SERVICE, "sk-ant-api03-xxxx"):
            assert secret.encode() not in data, f"{secret[:8]}… leaked into {path}"
    assert scanned > 5
