"""The cli driver against the real CLIs' quirks, each a mode of the fakes (tests/fakes/fake_agent.py).

Claude Code: the verbose array output, the nested-session refusal, error results with
``errors[]``, cache writes. Codex: errors it retries, cached tokens inside ``input_tokens``,
tokens priced from the price table, the pre-0.44 format. Cursor: camelCase usage, a CLI
that never exits after its result, the workspace-trust refusal. All: ``--version`` held
against coord's floor and recorded in metrics, the ledger and the commit.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from git import Repo

from coordinator.core.errors import UsageError
from coordinator.engine.ledger import Ledger
from roles.drivers.cli import FLAVORS
from roles.drivers.cli._flavors import parse_version
from tests.fakes.fake_agent import TRUST_REFUSAL
from tests.roles.test_cli_drivers import _all_dead, calls, plan_yaml, run


def bind(text: str, agent: str, extra: str) -> str:
    return text.replace(f"{{agent: {agent}, driver: cli}}", f"{{agent: {agent}, driver: cli, {extra}}}")


def ledger_rows(ws, run_id: str) -> list[dict]:
    rows = Ledger.of(ws.state_dir).calls(run_id)
    for r in rows:
        r["detail"] = json.loads(r["detail"]) if r["detail"] else {}
    return rows


def only_task(summary) -> dict:
    return summary.state["tasks"]["notes"]


# -- Claude Code ---------------------------------------------------------------------------------


def test_claude_verbose_array_output_is_read(git_ws, fake_clis):
    summary = run(git_ws, bind(plan_yaml("lead", "claude"), "claude", "flags: [--verbose]"))
    rec = only_task(summary)
    assert rec["status"] == "done", rec.get("error")
    assert rec["metrics"]["messages"] == 2 and rec["cost_usd"] == pytest.approx(0.0125)
    (row,) = ledger_rows(git_ws, summary.run_id)
    assert row["model"] == "claude-sonnet-4-5-20250929"  # from the array's init message
    assert (row["tokens_in"], row["tokens_cached"], row["tokens_cache_write"]) == (900, 100, 40)
    assert row["usd"] == pytest.approx(0.0125) and row["detail"]["cost_source"] == "reported by the CLI"


def test_claude_started_from_inside_a_claude_code_session_still_runs(git_ws, fake_clis, monkeypatch):
    monkeypatch.setenv("CLAUDECODE", "1")
    monkeypatch.setenv("CLAUDE_CODE_ENTRYPOINT", "cli")
    rec = only_task(run(git_ws, plan_yaml("lead", "claude")))
    assert rec["status"] == "done", rec.get("error")


def test_claude_error_result_names_its_errors(git_ws, fake_clis, monkeypatch):
    monkeypatch.setenv("FAKE_AGENT_MODE", "max_turns")
    summary = run(git_ws, plan_yaml("lead", "claude"))
    rec = only_task(summary)
    assert rec["status"] == "failed"
    assert "error_max_turns" in rec["error"] and "Reached maximum number of turns (30)" in rec["error"]
    (row,) = ledger_rows(git_ws, summary.run_id)
    assert row["ok"] == 0 and row["usd"] == pytest.approx(0.004)  # the failed run was still paid
    assert row["detail"]["exit_code"] == 1


def test_claude_allowed_tools_reach_its_argv(git_ws, fake_clis):
    text = bind(plan_yaml("lead", "claude"), "claude",
                'allowed_tools: ["Bash(python -m pytest:*)", "Edit"]')
    assert only_task(run(git_ws, text))["status"] == "done"
    (call,) = calls(fake_clis)
    argv = call["argv"]
    i = argv.index("--allowedTools")
    assert argv[i + 1:i + 3] == ["Bash(python -m pytest:*)", "Edit"]
    assert "## notes — Notes" in argv[argv.index("-p") + 1]  # the prompt is not swallowed by the list


@pytest.mark.parametrize("agent", ["codex", "cursor"])
def test_allowed_tools_on_another_cli_is_a_load_error(git_ws, fake_clis, agent):
    from coordinator.core.errors import CoordError

    role = {"codex": "quality", "cursor": "execution"}[agent]
    text = bind(plan_yaml(role, agent), agent, 'allowed_tools: ["Bash(pytest:*)"]')
    with pytest.raises(CoordError, match="allowed_tools is a Claude Code setting"):
        run(git_ws, text)


# -- Codex ---------------------------------------------------------------------------------------


def test_codex_errors_it_retries_do_not_fail_the_task(git_ws, fake_clis, monkeypatch):
    monkeypatch.setenv("FAKE_AGENT_MODE", "retry")
    summary = run(git_ws, plan_yaml("quality", "codex"))
    rec = only_task(summary)
    assert rec["status"] == "done", rec.get("error")
    assert rec["metrics"]["retried_errors"] == 2 and "Reconnecting... 2/5" in rec["metrics"]["last_retried_error"]
    (row,) = ledger_rows(git_ws, summary.run_id)
    assert row["ok"] == 1 and row["detail"]["retried_errors"] == 2


def test_codex_retries_that_end_in_turn_failed_fail_the_task(git_ws, fake_clis, monkeypatch):
    monkeypatch.setenv("FAKE_AGENT_MODE", "retry_fail")
    rec = only_task(run(git_ws, plan_yaml("quality", "codex")))
    assert rec["status"] == "failed" and "retries exhausted" in rec["error"]


def test_codex_error_that_no_completed_turn_follows_is_fatal():
    out = "\n".join(json.dumps(e) for e in (
        {"type": "thread.started", "thread_id": "t"}, {"type": "turn.started"},
        {"type": "turn.completed", "usage": {"input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 1}},
        {"type": "turn.started"}, {"type": "error", "message": "quota exceeded"}))
    reply = FLAVORS["codex"].parse(out, Path("/nonexistent"))
    assert not reply.ok and reply.problem == "codex reported error: quota exceeded"


def _prices(tmp_path, monkeypatch) -> None:
    table = tmp_path / "prices.yaml"
    table.write_text("inference:\n  test-codex: {input: 1.25, output: 10.0, cached_input: 0.125}\n")
    monkeypatch.setenv("COORD_PRICES", str(table))


def test_codex_tokens_are_netted_and_priced_from_the_table(git_ws, fake_clis, monkeypatch, tmp_path):
    _prices(tmp_path, monkeypatch)
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))  # no config of its own
    summary = run(git_ws, bind(plan_yaml("quality", "codex"), "codex", "model: test-codex"))
    rec = only_task(summary)
    assert rec["status"] == "done", rec.get("error")
    want = (1000 * 1.25 + 300 * 10.0 + 200 * 0.125) / 1e6
    assert rec["cost_usd"] == pytest.approx(want) and rec["metrics"]["cost_known"] is True
    (row,) = ledger_rows(git_ws, summary.run_id)
    assert (row["tokens_in"], row["tokens_cached"], row["tokens_out"]) == (1000, 200, 300)
    assert row["usd"] == pytest.approx(want) and row["model"] == "test-codex"
    assert row["detail"] == {"cli_version": "0.58.0", "exit_code": 0,
                             "cost_source": f"priced from tokens ({tmp_path / 'prices.yaml'})"}


def test_codex_model_from_its_own_config_is_priced(git_ws, fake_clis, monkeypatch, tmp_path):
    _prices(tmp_path, monkeypatch)
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text('model = "test-codex"\napproval_policy = "never"\n')
    monkeypatch.setenv("CODEX_HOME", str(home))
    summary = run(git_ws, plan_yaml("quality", "codex"))
    (row,) = ledger_rows(git_ws, summary.run_id)
    assert row["model"] == "test-codex" and row["usd"] is not None


def test_codex_without_a_model_is_recorded_as_unknown_cost_with_the_fix(git_ws, fake_clis, monkeypatch,
                                                                       tmp_path):
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "empty"))
    summary = run(git_ws, plan_yaml("quality", "codex"))
    (row,) = ledger_rows(git_ws, summary.run_id)
    assert row["usd"] is None and "set roles.quality.model" in row["cost_flag"]


def test_codex_older_than_the_floor_is_refused_before_the_run(git_ws, fake_clis, monkeypatch):
    monkeypatch.setenv("FAKE_CODEX_VERSION", "0.41.0")
    with pytest.raises(UsageError) as exc:
        run(git_ws, plan_yaml("quality", "codex"))
    assert "codex 0.41.0" in str(exc.value) and "coord needs 0.44.0 or later" in str(exc.value)
    assert not calls(fake_clis)  # nothing ran


def test_codex_old_json_format_says_which_version_coord_needs(git_ws, fake_clis, monkeypatch):
    monkeypatch.setenv("FAKE_AGENT_MODE", "old_format")
    rec = only_task(run(git_ws, plan_yaml("quality", "codex")))
    assert rec["status"] == "failed"
    assert "format of releases before 0.44.0" in rec["error"] and "update the Codex CLI" in rec["error"]


# -- Cursor --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["ok", "snake_usage"])
def test_cursor_usage_in_either_spelling(git_ws, fake_clis, monkeypatch, mode):
    monkeypatch.setenv("FAKE_AGENT_MODE", mode)
    summary = run(git_ws, plan_yaml("execution", "cursor"))
    m = only_task(summary)["metrics"]
    assert (m["input_tokens"], m["output_tokens"], m["cached_input_tokens"]) == (700, 150, 60)
    (row,) = ledger_rows(git_ws, summary.run_id)
    assert row["usd"] is None and row["cost_flag"] == "the cursor CLI reports no cost"
    assert row["tokens_cache_write"] == (20 if mode == "ok" else 0)


def test_cursor_with_default_permissions_gets_trust_and_no_force(git_ws, fake_clis):
    text = bind(plan_yaml("execution", "cursor"), "cursor", "permissions: default")
    assert only_task(run(git_ws, text))["status"] == "done"
    (call,) = calls(fake_clis)
    assert "--trust" in call["argv"] and "--force" not in call["argv"]


def test_cursor_trust_refusal_is_named():
    reply = FLAVORS["cursor"].parse(TRUST_REFUSAL, Path("/nonexistent"))
    assert not reply.ok and "Workspace Trust Required" in reply.problem and "coord doctor" in reply.problem


@pytest.mark.slow
@pytest.mark.parametrize(("role", "agent"), [("execution", "cursor"), ("quality", "codex"), ("lead", "claude")])
def test_a_cli_that_lingers_after_its_result_is_ended_and_its_result_kept(git_ws, fake_clis, monkeypatch,
                                                                         tmp_path, role, agent):
    pidfile = tmp_path / "pid"
    monkeypatch.setenv("FAKE_AGENT_MODE", "linger")
    monkeypatch.setenv("FAKE_AGENT_PIDFILE", str(pidfile))
    monkeypatch.setenv("COORD_CLI_LINGER_S", "0.3")
    started = time.monotonic()
    summary = run(git_ws, plan_yaml(role, agent))
    took = time.monotonic() - started
    rec = only_task(summary)
    assert rec["status"] == "done", rec.get("error")
    assert rec["metrics"]["ended_after_result"] is True and rec["metrics"]["merge"] == "merged"
    assert took < 60  # not the task timeout (an hour): the grace, then the group is ended
    assert _all_dead([int(pidfile.read_text())])
    (row,) = ledger_rows(git_ws, summary.run_id)
    assert row["ok"] == 1 and row["detail"]["ended"] == "ended_after_result"
    log = next((git_ws.state_dir / "logs" / summary.run_id).glob("notes.*.log")).read_text()
    assert "printed its result but had not exited" in log


# -- versions, for every CLI ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "version"), [
    ("2.1.39 (Claude Code)", (2, 1, 39)), ("codex-cli 0.46.0", (0, 46, 0)),
    ("2026.07.23-abc1234", (2026, 7, 23)), ("no digits", None)])
def test_version_outputs_parse(text, version):
    assert parse_version(text) == version


@pytest.mark.parametrize(("role", "agent", "old", "floor"), [
    ("lead", "claude", "1.0.80", "2.0.0"), ("execution", "cursor", "2025.08.25-0000000", "2026.02.01")])
def test_each_cli_below_its_floor_is_refused(git_ws, fake_clis, monkeypatch, role, agent, old, floor):
    monkeypatch.setenv(f"FAKE_{agent.upper()}_VERSION", old)
    with pytest.raises(UsageError, match=f"coord needs {floor} or later"):
        run(git_ws, plan_yaml(role, agent))


def test_version_is_asked_once_per_run_and_recorded(git_ws, fake_clis, monkeypatch, tmp_path):
    counter = tmp_path / "asked"
    wrapper = tmp_path / "bin" / "claude"
    wrapper.parent.mkdir()
    fake = Path(__file__).resolve().parents[1] / "fakes" / "bin" / "claude"
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = --version ] && echo x >> {counter}\nexec {fake} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{__import__('os').environ['PATH']}")
    text = plan_yaml("lead", "claude") + """  - id: more
    title: More
    role: lead
    needs: [notes]
    instructions: "More notes."
    accept: [{file: docs/more.md}]
"""
    summary = run(git_ws, text)
    assert summary.exit_code == 0, summary.problems
    assert counter.read_text().count("x") == 1  # two claude tasks, one --version
    for tid in ("notes", "more"):
        assert summary.state["tasks"][tid]["metrics"]["cli_version"] == "2.1.40"
    commit = Repo(git_ws.root).heads[summary.state["tasks"]["more"]["metrics"]["branch"]].commit
    assert commit.trailers_dict["Coord-Agent-Version"] == ["2.1.40"]


@pytest.mark.slow
def test_lingering_is_not_mistaken_for_a_hang_before_the_result(git_ws, fake_clis, monkeypatch, tmp_path):
    """A CLI still working (no result printed) is left alone until the task's timeout."""
    from roles.drivers.cli import CliDriver
    from tests.roles.test_cli_drivers import _driver_ctx

    monkeypatch.setenv("FAKE_AGENT_MODE", "hang")
    monkeypatch.setenv("FAKE_AGENT_PIDFILE", str(tmp_path / "pids"))
    monkeypatch.setenv("COORD_CLI_LINGER_S", "0.1")
    task, ctx = _driver_ctx(git_ws, tmp_path, "codex", 1.5, threading.Event())
    outcome = CliDriver().run(task, ctx)
    assert outcome.status == "failed" and "timed out after 1.5s" in outcome.error


def test_coord_costs_lists_each_cli_run_with_version_tokens_dollars_and_exit(git_ws, fake_clis, monkeypatch,
                                                                             tmp_path):
    from typer.testing import CliRunner

    from coordinator.cli.app import app

    _prices(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_AGENT_MODE", "retry")
    summary = run(git_ws, bind(plan_yaml("quality", "codex"), "codex", "model: test-codex"))
    runner = CliRunner()
    res = runner.invoke(app, ["costs", summary.run_id, "--calls", "--json", "-w", str(git_ws.root)])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)["calls"]
    assert row["agent"] == "codex" and row["detail"]["cli_version"] == "0.58.0"
    assert row["detail"]["exit_code"] == 0 and row["detail"]["retried_errors"] == 2
    assert (row["tokens_in"], row["tokens_out"], row["tokens_cached"]) == (1000, 300, 200)
    res = runner.invoke(app, ["costs", summary.run_id, "--calls", "-w", str(git_ws.root)],
                        env={"COLUMNS": "250"})
    assert "0.58.0" in res.output and "priced from tokens" in res.output and "exit 0" in res.output
    res = runner.invoke(app, ["costs", summary.run_id, "--by", "agent", "-w", str(git_ws.root)])
    assert "codex" in res.output and res.exit_code == 0


def test_version_probe_runs_in_a_scratch_directory(git_ws, fake_clis, monkeypatch, tmp_path):
    """A wrapper that does not know --version and just does its work touches nothing of ours."""
    seen = tmp_path / "cwd-of-version-probe"
    wrapper = tmp_path / "bin" / "claude"
    wrapper.parent.mkdir()
    fake = Path(__file__).resolve().parents[1] / "fakes" / "bin" / "claude"
    wrapper.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then pwd > {seen}; echo junk > stray.md; exit 0; fi\n'
                       f'exec {fake} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{__import__('os').environ['PATH']}")
    monkeypatch.chdir(git_ws.root)
    summary = run(git_ws, plan_yaml("lead", "claude"))
    assert summary.exit_code == 0, summary.problems
    probe_cwd = Path(seen.read_text().strip())
    assert probe_cwd.name.startswith("coord-version-") and not probe_cwd.exists()  # removed after
    assert not (git_ws.root / "stray.md").exists()
    assert summary.state["tasks"]["notes"]["metrics"]["cli_version"] == "unknown"
