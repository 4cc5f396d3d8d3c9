"""Each agent CLI driver against its fake: success, failure, is_error, garbage, hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from git import Repo

from coordinator.core.io import atomic_write_json
from coordinator.core.ports import DriverContext
from coordinator.core.roles import RoleDefinition
from coordinator.engine.plan_loader import load_plan
from coordinator.engine.runner import RunOptions, run_plan
from roles.drivers.cli import CliDriver

FLAVORS = [("lead", "claude"), ("quality", "codex"), ("execution", "cursor")]


def plan_yaml(role: str, agent: str, *, instructions: str = "Write the notes.", extra: str = "",
              gate: str = "") -> str:
    return f"""name: p
roles:
  {role}: {{agent: {agent}, driver: cli}}
tasks:
  - id: notes
    title: Notes
    role: {role}
    instructions: "{instructions}"
    accept: [{{file: docs/notes.md}}]
{extra}{gate}"""


def run(ws, text, **opts):
    path = ws.root / "plans" / "p.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return run_plan(ws, RunOptions(plan=str(path), render_interval=0, **opts))


def calls(record: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(record.glob("*.json"))]


@pytest.mark.parametrize(("role", "agent"), FLAVORS)
def test_success_commits_checks_and_merges(git_ws, fake_clis, role, agent):
    summary = run(git_ws, plan_yaml(role, agent))
    assert summary.exit_code == 0, summary.problems
    rec = summary.state["tasks"]["notes"]
    m = rec["metrics"]
    assert rec["status"] == "done" and rec["driver"] == "cli" and rec["agent"] == agent
    assert m["merge"] == "merged" and m["checks_run"] == 1 and m["checks_failed"] == 0
    assert m["files_changed"] == 2  # docs/notes.md (named by the accept check) + agent_notes/notes.md
    # the work reached the base branch through a merge commit
    repo = Repo(git_ws.root)
    assert (git_ws.root / "docs" / "notes.md").exists()
    assert repo.active_branch.name == "main" and len(repo.head.commit.parents) == 2
    # the agent was called headless with the documented flags, stdin closed, in its own process group
    (call,) = calls(fake_clis)
    assert call["stdin_closed"] and call["pgid_is_own"]
    assert Path(call["cwd"]).parent.parent.name == "worktrees"
    argv = call["argv"]
    if agent == "claude":
        assert argv[:1] == ["-p"] and "--output-format" in argv and "acceptEdits" in argv
        assert rec["cost_usd"] == pytest.approx(0.0125) and m["cost_known"] is True
        assert m["session_id"] and m["num_turns"] == 3
    elif agent == "codex":
        assert argv[:2] == ["exec", "--json"] and argv[argv.index("--sandbox") + 1] == "workspace-write"
        assert "--output-last-message" in argv
        # codex counts the cached 200 inside its 1200 input tokens; coord books them apart
        assert m["input_tokens"] == 1000 and m["cached_input_tokens"] == 200
        assert m["cost_known"] is False and m["cli_version"] == "0.58.0"
    else:
        assert argv[:1] == ["-p"] and "--force" in argv and "--trust" in argv
    # the prompt is the task's EXECUTE_NOW text
    assert "## notes — Notes" in argv[argv.index("-p") + 1 if agent != "codex" else -1]
    log = next((git_ws.state_dir / "logs" / summary.run_id).glob("notes.*.log")).read_text()
    assert "exit 0" in log and "<prompt:" in log


def test_model_flags_and_executable_come_from_the_role(git_ws, fake_clis, tmp_path):
    renamed = tmp_path / "bin" / "my-claude"
    renamed.parent.mkdir()
    renamed.symlink_to(Path(__file__).resolve().parents[1] / "fakes" / "bin" / "claude")
    text = plan_yaml("lead", "claude").replace(
        "{agent: claude, driver: cli}",
        f"{{agent: claude, driver: cli, executable: {renamed}, model: opus-test, "
        "permissions: bypassPermissions, flags: [--max-turns, '7']}")
    summary = run(git_ws, text)
    assert summary.exit_code == 0, summary.problems
    (call,) = calls(fake_clis)
    argv = call["argv"]
    assert argv[argv.index("--model") + 1] == "opus-test"
    assert argv[argv.index("--permission-mode") + 1] == "bypassPermissions"
    assert argv[argv.index("--max-turns") + 1] == "7"


@pytest.mark.parametrize(("role", "agent"), FLAVORS)
@pytest.mark.parametrize(("mode", "expected", "in_log"), [
    ("fail", "exited with code 3", "simulated crash"),
    ("garbage", "unparsable output", "not json at all"),
    ("is_error", "model refused the task", "model refused the task"),
])
def test_failures_fail_the_task_with_the_log_tail(git_ws, fake_clis, monkeypatch, role, agent, mode,
                                                 expected, in_log):
    monkeypatch.setenv("FAKE_AGENT_MODE", mode)
    summary = run(git_ws, plan_yaml(role, agent))
    assert summary.exit_code == 1
    rec = summary.state["tasks"]["notes"]
    assert rec["status"] == "failed"
    assert expected in rec["error"] and in_log in rec["error"]
    assert ".coord/logs/" in rec["error"]
    assert not (git_ws.root / "docs" / "notes.md").exists()  # nothing merged


def test_marker_in_the_prompt_picks_the_behaviour(git_ws, fake_clis):
    summary = run(git_ws, plan_yaml("lead", "claude", instructions="Write notes. [fake-agent: fail]"))
    assert "exited with code 3" in summary.state["tasks"]["notes"]["error"]


def test_missing_executable_is_found_before_the_run_starts(git_ws, fake_clis):
    from coordinator.core.errors import UsageError

    text = plan_yaml("lead", "claude").replace("driver: cli}", "driver: cli, executable: no-such-claude}")
    with pytest.raises(UsageError) as exc:
        run(git_ws, text)
    msg = str(exc.value)
    assert "role 'lead' (agent claude, driver cli) runs 'no-such-claude', which is not on PATH" in msg
    assert "roles.lead.executable" in msg and "driver: offline" in msg
    runs = git_ws.state_dir / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # nothing was written: no run recorded


def test_workspace_that_is_not_a_git_repo_is_a_clear_error(tmp_path, fake_clis):
    from coordinator.core.workspace import Workspace

    ws = Workspace.at(tmp_path / "plain")
    ws.root.mkdir()
    rec = run(ws, plan_yaml("lead", "claude")).state["tasks"]["notes"]
    assert rec["status"] == "failed"
    assert "is not a git repository" in rec["error"] and "coord init --git" in rec["error"]


def test_cli_driver_refuses_an_agent_it_cannot_run(git_ws, fake_clis):
    from coordinator.core.errors import ConfigError

    with pytest.raises(ConfigError, match="driver 'cli' runs claude, codex, cursor"):
        run(git_ws, plan_yaml("lead", "human"))


# -- hang: timeouts and cancellation kill the whole process group ------------------------------


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _all_dead(pids: list[int]) -> bool:
    """True once none of ``pids`` runs; SIGKILL is delivered asynchronously, so allow a moment."""
    for _ in range(100):
        if not any(_alive(p) for p in pids):
            return True
        threading.Event().wait(0.05)
    return False


def _driver_ctx(ws, tmp_path, agent: str, timeout: float | None, cancel: threading.Event):
    plan_file = tmp_path / "p.yaml"
    plan_file.write_text(plan_yaml("lead", agent))
    plan = load_plan(str(plan_file), workspace=ws.root)
    task = plan.tasks["notes"].model_copy(update={"timeout": timeout})
    atomic_write_json(ws.run_dir("r1") / "plan.json", plan.model_dump(mode="json"))
    role = RoleDefinition("lead", agent, "cli", None, None, "test")
    ctx = DriverContext(workspace=ws.root, run_id="r1", role=role, attempt=1, feedback=[], cancel=cancel,
                        progress=lambda msg, frac: None, log_file=ws.state_dir / "logs" / "r1" / "notes.1.log")
    return task, ctx


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["claude", "codex", "cursor"])
def test_hang_times_out_and_kills_the_process_group(git_ws, fake_clis, monkeypatch, tmp_path, agent):
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("FAKE_AGENT_MODE", "hang")
    monkeypatch.setenv("FAKE_AGENT_PIDFILE", str(pidfile))
    task, ctx = _driver_ctx(git_ws, tmp_path, agent, 1.0, threading.Event())
    outcome = CliDriver().run(task, ctx)
    assert outcome.status == "failed"
    assert "timed out after 1s" in outcome.error and "killed its process group" in outcome.error
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2 and _all_dead(pids)  # the agent and its child


def test_cancellation_kills_the_process_group(git_ws, fake_clis, monkeypatch, tmp_path):
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("FAKE_AGENT_MODE", "hang")
    monkeypatch.setenv("FAKE_AGENT_PIDFILE", str(pidfile))
    cancel = threading.Event()
    task, ctx = _driver_ctx(git_ws, tmp_path, "claude", None, cancel)

    def cancel_once_started() -> None:
        while not pidfile.exists():
            threading.Event().wait(0.05)
        cancel.set()

    threading.Thread(target=cancel_once_started, daemon=True).start()
    outcome = CliDriver().run(task, ctx)
    assert "cancelled" in outcome.error
    assert _all_dead([int(p) for p in pidfile.read_text().split()])


@pytest.mark.slow
def test_an_agent_left_running_by_a_killed_coord_is_stopped_on_resume(git_ws, fake_clis, monkeypatch,
                                                                     tmp_path):
    pidfile = tmp_path / "pids"
    stale_cwd = git_ws.state_dir / "worktrees" / "r1" / "notes"
    stale_cwd.mkdir(parents=True)
    fake = Path(__file__).resolve().parents[1] / "fakes" / "bin" / "claude"
    env = {**os.environ, "FAKE_AGENT_MODE": "hang", "FAKE_AGENT_PIDFILE": str(pidfile)}
    stale = subprocess.Popen([sys.executable, str(fake), "-p", "x", "--output-format", "json"],
                             cwd=stale_cwd, env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL)
    while not pidfile.exists():
        threading.Event().wait(0.05)
    task, ctx = _driver_ctx(git_ws, tmp_path, "claude", None, threading.Event())
    (ctx.log_file.parent).mkdir(parents=True, exist_ok=True)
    ctx.log_file.with_name("notes.1.pgid").write_text(f"{stale.pid}\n")  # what the killed coord left
    outcome = CliDriver().run(task, ctx)
    stale.wait(timeout=10)
    assert outcome.status == "done", outcome.error
    assert _all_dead([int(p) for p in pidfile.read_text().split()])
    assert not ctx.log_file.with_name("notes.1.pgid").exists()
