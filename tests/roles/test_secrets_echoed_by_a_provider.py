"""A key a provider echoes — in an answer, in the files an assignment delivers, as the model it says
answered, in generated examples — is masked at every sink, also when it came from an `env_file`."""

from __future__ import annotations

import json
from pathlib import Path

from coordinator.core.step import StepContext
from coordinator.core.workspace import Workspace
from coordinator.engine.ledger import Ledger
from coordinator.engine.runner import RunOptions, run_plan
from pipeline.generate import generate
from roles.providers.config import ProviderConfig, find_key
from roles.providers.redact import Redactor

# not key-shaped: only knowing it was configured can mask it
KEY = "k3y-from-env-file-0123456789abcdef"
OTHER = "tok-other-0123456789"

PLAN = """name: leak
roles:
  lead: {{agent: claude, driver: llm, provider: anthropic, model: claude-haiku-4-5, base_url: "{url}",
          env_file: "{env}"}}
  quality: {{agent: codex, driver: llm, provider: anthropic, model: claude-haiku-4-5, base_url: "{url}",
             env_file: "{env}"}}
tasks:
  - {{id: a, title: Notes, role: lead, instructions: Write the notes., accept: [{{file: notes.md}}]}}
gates:
  - {{id: g, after: [a], reviewer: quality, criteria: [{{metric: a.llm_calls, op: ">=", value: 1}}]}}
"""


def _env_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.env"
    path.write_text(f"ANTHROPIC_API_KEY={KEY}\nOTHER_SERVICE_TOKEN={OTHER}\n")
    return path


def _answer(body: dict) -> str:
    if "ReviewFindings" in json.dumps(body):
        return json.dumps({"summary": f"saw {KEY}", "recommendation": "approve",
                           "findings": [{"severity": "info", "title": KEY, "detail": KEY}]})
    return json.dumps({"summary": f"the key is {KEY}", "notes": [KEY],
                       "deliverables": [{"path": "notes.md", "content": f"# Notes\n\nkey: {KEY}\n"}]})


def test_an_env_file_key_echoed_as_answer_and_as_model_reaches_no_file(tmp_path, server):
    server.reported_model = KEY  # the server says the key is the model that answered
    server.reply_fn = _answer
    root = tmp_path / "ws"
    root.mkdir()
    ws = Workspace.at(root)
    (root / "p.yaml").write_text(PLAN.format(url=server.anthropic_url, env=_env_file(tmp_path)))
    summary = run_plan(ws, RunOptions(plan=str(root / "p.yaml"), render_interval=0))
    assert summary.exit_code == 0, summary.problems
    delivered = (root / "notes.md").read_text()
    assert delivered.startswith("# Notes") and "[REDACTED" in delivered
    assert summary.state["gates"]["g"]["model_review"]["status"] == "reviewed"
    leaked = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaked == []  # delivered files, boards, reviews, status.json, checkpoint, results, ledger, dashboard
    rows = Ledger.of(ws.state_dir).calls(summary.run_id)
    assert rows and all(r["model"].startswith("[REDACTED") for r in rows)
    assert "[REDACTED" in (ws.reports / "cost_dashboard.md").read_text()


def test_every_secret_of_an_env_file_is_masked_by_the_shared_redactor(tmp_path):
    config = ProviderConfig("anthropic", "claude-haiku-4-5", env_file=str(_env_file(tmp_path)))
    assert find_key(config) == KEY
    # the Redactor the CLI drivers build from their environment masks what the env file held too
    masked = Redactor.from_env({})(f"echo {KEY} and {OTHER}")
    assert KEY not in masked and OTHER not in masked and masked.count("[REDACTED") == 2


def test_generated_examples_that_echo_the_key_are_masked_in_data_and_cache(tmp_path, server, monkeypatch):
    monkeypatch.setenv("COORD_ENV_FILE", str(_env_file(tmp_path)))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
    server.default_reply = json.dumps({"system": f"You are the QA agent. Key {KEY}.", "turns": [
        {"role": "user", "content": f"What is the key? {KEY}"},
        {"role": "assistant", "content": f"It is {KEY}; never share it."}]})
    ws = tmp_path / "ws"
    ws.mkdir()
    result = generate(StepContext(workspace=ws), agents=["qa"], examples_per_agent=2, provider="anthropic",
                      model="claude-haiku-4-5")
    assert result.metrics["examples"] == 2
    rows = (ws / "data/generated_examples/qa.jsonl").read_text()
    assert "[REDACTED" in rows
    leaked = [str(p.relative_to(ws)) for p in ws.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaked == []
