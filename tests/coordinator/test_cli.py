"""The `coord` commands as a user types them (CliRunner, real temp workspaces)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.events import read_events
from coordinator.core.state import RunState
from coordinator.core.workspace import Workspace
from coordinator.engine.runner import RunOptions, list_runs, run_plan
from coordinator.engine.schedule import plan_step
from tests.coordinator.steps_for_tests import remove_record, write_plan

PLAN = """name: cli_demo
params: {n: 1}
tasks:
  - {id: a, title: A, role: lead, run: t_noop, with: {value: "${n}"}}
  - {id: b, title: B, role: quality, needs: [a], run: t_noop}
  - id: c
    title: Write notes
    role: execution
    needs: [b]
    instructions: Write the notes. Name the risks.
    accept: [{file: reports/assignments/c.md}]
"""


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_init_scaffolds_and_keeps_existing_files(tmp_path):
    (tmp_path / "TEAM_COORDINATION.md").write_text("# ours\n")
    result = invoke("init", "-w", str(tmp_path))
    assert result.exit_code == 0
    assert (tmp_path / "coord.yaml").exists() and (tmp_path / "plans").is_dir()
    assert (tmp_path / "TEAM_COORDINATION.md").read_text() == "# ours\n"


def test_plans_lists_builtin_and_workspace_plans(tmp_path):
    (tmp_path / "plans").mkdir()
    write_plan(tmp_path / "plans", PLAN, "cli_demo.yaml")
    result = invoke("plans", "-w", str(tmp_path))
    assert result.exit_code == 0
    assert "week2" in result.output and "13 tasks" not in result.output  # 9 tasks before fan-out
    assert "cli_demo" in result.output


def test_plan_show_prints_compiled_plan(tmp_path):
    result = invoke("plan", "show", "week2", "--profile", "speed")
    assert result.exit_code == 0
    assert "finetune[legal]" in result.output and "skip: true" in result.output


@pytest.mark.slow
def test_run_by_workspace_plan_name_then_runs_and_status(tmp_path):
    (tmp_path / "plans").mkdir()
    write_plan(tmp_path / "plans", PLAN, "cli_demo.yaml")
    result = invoke("run", "cli_demo", "-w", str(tmp_path), "--set", "n=5")
    assert result.exit_code == 0, result.output
    assert "finished: every task done" in result.output
    runs = invoke("runs", "-w", str(tmp_path))
    assert "cli_demo" in runs.output and "finished" in runs.output
    status = json.loads(invoke("status", "--json", "-w", str(tmp_path)).output)
    assert status["tasks"]["a"]["metrics"] == {"value": 5}
    text = invoke("status", "-w", str(tmp_path)).output
    assert "cli_demo" in text and "done" in text


def test_status_without_runs_is_a_usage_error(tmp_path):
    result = invoke("status", "-w", str(tmp_path))
    assert result.exit_code == 2 and "no runs" in result.output


def test_bad_set_is_a_usage_error(tmp_path):
    write_plan(tmp_path, PLAN, "p.yaml")
    result = invoke("run", str(tmp_path / "p.yaml"), "-w", str(tmp_path), "--set", "nope")
    assert result.exit_code == 2 and "key=value" in result.output


def _interrupted_run(ws: Workspace) -> str:
    """A run whose process 'died' after its first step: recorded as running, checkpoint mid-way."""
    path = write_plan(ws.root, PLAN, "p.yaml")
    summary = run_plan(ws, RunOptions(plan=str(path)))
    record = list_runs(ws)[-1]
    # Re-open the finished run as if it had stopped after task a: reopen b and c in its checkpoint.
    from coordinator.engine.checkpoint import open_saver
    from coordinator.engine.graph import build_graph

    with open_saver(ws.db) as saver:
        graph = build_graph(saver)
        config = {"configurable": {"thread_id": summary.run_id}}
        graph.update_state(config, {"tasks": {"b": {"status": "running", "dispatch": 1},
                                              "c": {"status": "pending", "dispatch": 0}},
                                    "phase": "running"}, as_node="advance")
    assert remove_record(ws.run_dir(summary.run_id), "b", 1)  # b's result was never recorded
    record["phase"] = "running"
    (ws.run_dir(summary.run_id) / "run.json").write_text(json.dumps(record))
    return summary.run_id


@pytest.mark.slow
def test_run_resumes_the_unfinished_run_and_fresh_starts_a_new_one(tmp_path):
    ws = Workspace.at(tmp_path)
    run_id = _interrupted_run(ws)
    result = invoke("run", str(tmp_path / "p.yaml"), "-w", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert f"run {run_id} resumed and finished" in result.output
    started = [e["task"] for e in read_events(ws.events, run_id) if e["kind"] == "task_started"]
    assert started.count("a") == 1 and started.count("b") == 2  # b re-ran: it had not finished
    fresh = invoke("run", str(tmp_path / "p.yaml"), "-w", str(tmp_path), "--fresh")
    assert fresh.exit_code == 0
    assert len(list_runs(ws)) == 2


@pytest.mark.slow
def test_resume_command_continues_a_run(tmp_path):
    ws = Workspace.at(tmp_path)
    run_id = _interrupted_run(ws)
    result = invoke("resume", "-w", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert run_id in result.output
    assert invoke("resume", "-w", str(tmp_path)).exit_code == 2  # nothing left to resume


@pytest.mark.slow
def test_changed_plan_does_not_silently_resume(tmp_path):
    ws = Workspace.at(tmp_path)
    _interrupted_run(ws)
    result = invoke("run", str(tmp_path / "p.yaml"), "-w", str(tmp_path), "--set", "n=9")
    assert result.exit_code == 2
    assert "--fresh" in result.output


@pytest.mark.slow
def test_workspace_coord_yaml_rebinds_roles(tmp_path):
    (tmp_path / "coord.yaml").write_text("roles:\n  execution: {agent: human_ops}\n")
    write_plan(tmp_path, PLAN, "p.yaml")
    result = invoke("run", str(tmp_path / "p.yaml"), "-w", str(tmp_path))
    assert result.exit_code == 0
    assert (tmp_path / "task_boards" / "HUMAN_OPS_TASKS.md").exists()
    status = json.loads(invoke("status", "--json", "-w", str(tmp_path)).output)
    assert status["tasks"]["c"]["agent"] == "human_ops"


def test_invalid_coord_yaml_names_the_field(tmp_path):
    (tmp_path / "coord.yaml").write_text("roles:\n  execution: {agent: x, driver: telepathy}\n")
    write_plan(tmp_path, PLAN, "p.yaml")
    result = invoke("run", str(tmp_path / "p.yaml"), "-w", str(tmp_path))
    assert result.exit_code == 2
    assert "coord.yaml" in result.output and "roles.execution" in result.output


@pytest.mark.parametrize("concurrency", ["0", "-1"])
def test_concurrency_must_be_positive(tmp_path, concurrency):
    write_plan(tmp_path, PLAN, "p.yaml")
    result = CliRunner().invoke(app, ["run", str(tmp_path / "p.yaml"), "-w", str(tmp_path),
                                      "--concurrency", concurrency])
    assert result.exit_code == 2


def test_plan_step_is_pure_and_orders_ready_tasks(tmp_path):
    from coordinator.engine.plan_loader import load_plan

    path = write_plan(tmp_path, PLAN, "p.yaml")
    plan = load_plan(str(path))
    state: RunState = {"tasks": {"a": {"status": "done"}}, "gates": {}}
    sched = plan_step(plan, state["tasks"], state["gates"])
    assert sched.ready == ["b"] and not sched.updates


def test_second_run_in_a_busy_workspace_is_refused(tmp_path):
    from coordinator.core.workspace import WorkspaceLock

    write_plan(tmp_path, PLAN, "p.yaml")
    with WorkspaceLock(Workspace.at(tmp_path)):
        result = invoke("run", str(tmp_path / "p.yaml"), "-w", str(tmp_path))
    assert result.exit_code == 2
    assert "is in use by pid" in result.output
    assert not list_runs(Workspace.at(tmp_path))


@pytest.mark.parametrize("budget", ["-1", "0", "nan", "abc", "inf", "-0.5"])
def test_bad_budget_is_refused_before_anything_is_written(tmp_path, budget):
    path = write_plan(tmp_path, PLAN, "p.yaml")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(app, ["run", str(path), "-w", str(tmp_path), f"--budget={budget}"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--budget must be a positive number of USD" in lines[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no run registered, no file written
    assert not list_runs(Workspace.at(tmp_path))


def test_budget_is_validated_by_the_run_service_too(tmp_path):
    from coordinator.core.errors import UsageError

    path = write_plan(tmp_path, PLAN, "p.yaml")
    with pytest.raises(UsageError, match="--budget"):
        run_plan(Workspace.at(tmp_path), RunOptions(plan=str(path), budget_usd=-1))
    assert not (tmp_path / ".coord").exists()


@pytest.mark.slow
def test_runs_shows_full_ids_and_json(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal must not cut ids
    path = write_plan(tmp_path, PLAN, "p.yaml")
    first = run_plan(Workspace.at(tmp_path), RunOptions(plan=str(path)))
    second = run_plan(Workspace.at(tmp_path), RunOptions(plan=str(path), fresh=True))
    text = invoke("runs", "-w", str(tmp_path))
    assert text.exit_code == 0
    assert first.run_id in text.stdout and second.run_id in text.stdout
    as_json = invoke("runs", "--json", "-w", str(tmp_path))
    rows = json.loads(as_json.stdout)
    assert [r["run_id"] for r in rows] == [first.run_id, second.run_id]
    assert rows[0]["plan"] == "cli_demo" and rows[0]["phase"] == "finished"
    assert set(rows[0]) == {"run_id", "plan", "plan_ref", "profile", "phase", "live_pid", "created_at",
                            "finished_at", "problems"}
    assert json.loads(invoke("runs", "--json", "-w", str(tmp_path / "empty")).stdout) == []


def _two_runs(tmp_path):
    path = write_plan(tmp_path, PLAN, "p.yaml")
    ws = Workspace.at(tmp_path)
    first = run_plan(ws, RunOptions(plan=str(path))).run_id
    second = run_plan(ws, RunOptions(plan=str(path), fresh=True)).run_id
    return first, second


@pytest.mark.slow
def test_find_run_takes_an_id_or_a_unique_prefix(tmp_path):
    from coordinator.core.errors import UsageError
    from coordinator.engine.runner import find_run

    first, second = _two_runs(tmp_path)
    ws = Workspace.at(tmp_path)
    assert find_run(ws, None)["run_id"] == second
    assert find_run(ws, first)["run_id"] == first
    assert find_run(ws, first[:-1])["run_id"] == first  # the last hex digits differ
    with pytest.raises(UsageError, match=r"ambiguous.*" + first + ".*" + second):
        find_run(ws, "cli_demo-")
    with pytest.raises(UsageError, match="unknown run 'nope'"):
        find_run(ws, "nope")
    with pytest.raises(UsageError, match="no unfinished run"):
        find_run(ws, None, unfinished=True)


@pytest.mark.slow
@pytest.mark.parametrize("command", [["status"], ["costs"], ["budget", "show"], ["resume"], ["board", "sync"],
                                     ["approve", "g", "--run"], ["reviews", "--run"], ["budget", "raise", "1", "--run"],
                                     ["review", "show", "g", "--run"]])
def test_every_command_picks_runs_the_same_way(tmp_path, command):
    _two_runs(tmp_path)
    for ref, expected in (("cli_demo-", "is ambiguous"), ("nope", "unknown run 'nope' (see `coord runs`)")):
        result = CliRunner().invoke(app, [*command, ref, "-w", str(tmp_path)])
        assert result.exit_code == 2, (command, result.output)
        assert expected in result.stderr and result.stdout == ""


def test_a_unique_prefix_names_a_run_on_the_command_line(tmp_path):
    first, _ = _two_runs(tmp_path)
    status = json.loads(invoke("status", first[:-1], "--json", "-w", str(tmp_path)).stdout)
    assert status["run_id"] == first
    costs = json.loads(invoke("costs", first[:-1], "--json", "-w", str(tmp_path)).stdout)
    assert costs["run_id"] == first


SLOW_PLAN = """name: slow_demo
tasks:
  - {id: a, title: A, role: lead, run: t_noop}
  - {id: b, title: B, role: quality, needs: [a], run: t_sleep, with: {seconds: 2.0}}
  - {id: c, title: C, role: execution, needs: [b], run: t_noop}
"""


@pytest.mark.slow
def test_status_of_a_live_run_says_running_not_interrupted(tmp_path):
    import os
    import threading
    import time

    from coordinator.engine.runner import run_status

    ws = Workspace.at(tmp_path)
    path = write_plan(tmp_path, SLOW_PLAN, "slow.yaml")
    worker = threading.Thread(target=run_plan, args=(ws, RunOptions(plan=str(path), render_interval=0)))
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if list_runs(ws) and run_status(ws)["tasks"]["b"].get("status") == "running":
                break
            time.sleep(0.05)
        st = run_status(ws)
        assert st["tasks"]["b"]["status"] == "running" and st["tasks"]["c"]["status"] == "pending"
        assert st["phase"] == "running" and st["live"] == {"pid": os.getpid()}
        assert not any("never became ready" in p for p in st["problems"])
        text = invoke("status", "-w", str(tmp_path))
        assert "phase running (live: pid" in text.stdout and "never became ready" not in text.output
        runs = json.loads(invoke("runs", "--json", "-w", str(tmp_path)).stdout)
        assert runs[0]["phase"] == "running" and runs[0]["live_pid"] == os.getpid()
    finally:
        worker.join()
    st = run_status(ws)
    assert st["phase"] == "finished" and st["live"] is None


def test_status_of_a_run_whose_process_died_says_interrupted(tmp_path):
    from coordinator.engine.runner import run_status

    ws = Workspace.at(tmp_path)
    run_id = _interrupted_run(ws)
    st = run_status(ws)
    assert st["phase"] == "interrupted" and st["live"] is None
    assert st["problems"] == ["the run stopped before b, c finished; continue it with `coord resume`"]
    runs = json.loads(invoke("runs", "--json", "-w", str(tmp_path)).stdout)
    assert runs[0]["run_id"] == run_id and runs[0]["phase"] == "interrupted" and runs[0]["live_pid"] is None


def test_never_became_ready_only_for_a_run_that_ended():
    from coordinator.engine.plan_loader import compile_plan, parse_plan
    from coordinator.engine.schedule import run_outcome

    spec, located = parse_plan(PLAN, "p.yaml")
    plan = compile_plan(spec, located, PLAN)
    tasks = {"a": {"status": "done"}, "b": {"status": "running"}, "c": {"status": "pending"}}
    assert run_outcome(plan, tasks, {}, live=True) == ("running", [])
    assert run_outcome(plan, tasks, {}, recorded="running")[0] == "interrupted"
    assert run_outcome(plan, tasks, {}, recorded="waiting")[0] == "waiting"
    assert run_outcome(plan, tasks, {}) == ("failed", ["tasks never became ready: b, c"])


def _untick(tmp_path, board: str, task: str) -> None:
    path = tmp_path / "task_boards" / board
    text = path.read_text()
    assert f"- [x] **{task}**" in text
    path.write_text(text.replace(f"- [x] **{task}**", f"- [ ] **{task}**"))


@pytest.mark.slow
def test_unticking_a_task_of_a_finished_run_reopens_the_run(tmp_path):
    ws = Workspace.at(tmp_path)
    path = write_plan(tmp_path, PLAN, "p.yaml")
    run_id = run_plan(ws, RunOptions(plan=str(path))).run_id
    _untick(tmp_path, "CODEX_TASKS.md", "b")
    sync = invoke("board", "sync", "-w", str(tmp_path))
    assert sync.exit_code == 0 and "reopened" in sync.stdout
    runs = json.loads(invoke("runs", "--json", "-w", str(tmp_path)).stdout)
    assert runs[0]["phase"] == "waiting" and "b, c" in runs[0]["problems"][0]
    status = json.loads(invoke("status", "--json", "-w", str(tmp_path)).stdout)
    assert status["phase"] == "waiting"
    assert not any("never became ready" in p for p in status["problems"])
    resumed = invoke("resume", "-w", str(tmp_path))  # the reopened run is the one to resume
    assert resumed.exit_code == 0 and f"run {run_id} resumed and finished" in resumed.stdout
    started = [e["task"] for e in read_events(ws.events, run_id) if e["kind"] == "task_started"]
    assert started.count("a") == 1 and started.count("b") == 2 and started.count("c") == 2
    assert list_runs(ws)[0]["phase"] == "finished"


def test_watch_runs_a_task_unticked_on_a_finished_run(tmp_path):
    import queue

    from task_boards.watch import BoardWatcher

    ws = Workspace.at(tmp_path)
    path = write_plan(tmp_path, PLAN, "p.yaml")
    run_id = run_plan(ws, RunOptions(plan=str(path))).run_id
    resumed: queue.Queue[tuple[str, str]] = queue.Queue()
    watcher = BoardWatcher(ws, debounce=0.05, on_resumed=lambda r, phase: resumed.put((r, phase))).start()
    try:
        _untick(tmp_path, "CURSOR_TASKS.md", "c")
        assert resumed.get(timeout=60) == (run_id, "finished")
    finally:
        watcher.stop()
    started = [e["task"] for e in read_events(ws.events, run_id) if e["kind"] == "task_started"]
    assert started.count("c") == 2 and started.count("b") == 1


def test_init_writes_a_sample_plan_with_a_human_task_example(tmp_path):
    import re

    from coordinator.engine.plan_loader import load_plan

    assert invoke("init", "-w", str(tmp_path)).exit_code == 0
    sample = tmp_path / "plans" / "example.yaml"
    text = sample.read_text()
    assert "driver: human" in text
    plan = load_plan("example", workspace=tmp_path)  # valid as written
    assert "signoff" not in plan.roles
    # uncommented, the example is a valid plan whose task waits for a person's tick
    sample.write_text(re.sub(r"^(\s*)# (signoff:|- id:|  \w+:)", r"\1\2", text, flags=re.M))
    plan = load_plan("example", workspace=tmp_path)
    assert plan.roles["signoff"].driver == "human" and plan.tasks["sign_off"].role == "signoff"
    result = invoke("run", "example", "-w", str(tmp_path))
    assert result.exit_code == 3, result.output
    # the sample's assignments check that their answer was written; the person's task then waits
    status = json.loads(invoke("status", "--json", "-w", str(tmp_path)).stdout)
    assert [status["tasks"][t]["status"] for t in ("draft_notes", "review_notes")] == ["done", "done"]
    board = tmp_path / "task_boards" / "HUMAN_TASKS.md"
    status = json.loads(invoke("status", "--json", "-w", str(tmp_path)).stdout)
    assert status["tasks"]["sign_off"]["status"] == "waiting"
    board.write_text(board.read_text().replace("- [ ] **sign_off**", "- [x] **sign_off**"))
    assert invoke("board", "sync", "-w", str(tmp_path)).exit_code == 0
    status = json.loads(invoke("status", "--json", "-w", str(tmp_path)).stdout)
    assert status["tasks"]["sign_off"]["status"] == "done"
    before = sample.read_text()
    assert invoke("init", "-w", str(tmp_path)).exit_code == 0 and sample.read_text() == before  # kept


FAILING_PLAN = """name: failing
tasks:
  - {id: ok, title: OK, role: lead, run: t_noop}
  - {id: bad, title: Bad, role: quality, needs: [ok], run: t_fail, with: {message: disk on fire}}
"""


def test_a_failed_run_exits_1_with_its_problems_on_stderr(tmp_path):
    path = write_plan(tmp_path, FAILING_PLAN, "f.yaml")
    result = CliRunner().invoke(app, ["run", str(path), "-w", str(tmp_path)])
    assert result.exit_code == 1
    assert "ended with problems" in result.stderr and "  - task bad failed" in result.stderr
    assert "  - task bad failed" not in result.stdout  # the problems follow their heading to stderr
    assert "boards: task_boards/" in result.stdout


def test_usage_errors_exit_2_on_stderr_and_warnings_go_to_stderr(tmp_path):
    result = CliRunner().invoke(app, ["status", "nope", "-w", str(tmp_path)])
    assert result.exit_code == 2 and result.stdout == "" and result.stderr.startswith("error: ")
    ws = Workspace.at(tmp_path)
    _interrupted_run(ws)
    from coordinator.core.workspace import WorkspaceLock

    board = next(p for p in sorted(ws.boards.glob("*_TASKS.md")) if "coord:task id=" in p.read_text())
    lines = board.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if "coord:task id=" in line)
    board.write_text("".join(lines[:at + 1] + ["  - a note for the agent\n"] + lines[at + 1:]))
    with WorkspaceLock(ws):  # a busy workspace and an edit waiting: board sync warns
        sync = CliRunner().invoke(app, ["board", "sync", "-w", str(tmp_path)])
    assert sync.exit_code == 0 and sync.stderr.startswith("warning: ") and "warning" not in sync.stdout
    assert board.name in sync.stderr and "not applied yet" in sync.stderr


def test_a_damaged_run_record_is_an_error_line_not_a_traceback(tmp_path):
    path = write_plan(tmp_path, PLAN, "p.yaml")
    run_id = run_plan(Workspace.at(tmp_path), RunOptions(plan=str(path))).run_id
    (tmp_path / ".coord" / "runs" / run_id / "plan.json").write_text("{")
    result = CliRunner().invoke(app, ["status", "-w", str(tmp_path)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: run '{run_id}': its stored plan") and "--fresh" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_file_the_system_refuses_is_an_error_line_not_a_traceback(tmp_path):
    path = write_plan(tmp_path, PLAN, "p.yaml")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = CliRunner().invoke(app, ["run", str(path), "-w", str(not_a_dir)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and str(not_a_dir) in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_every_command_runs_under_the_one_error_printer():
    import typer

    def commands(t: typer.Typer):
        yield from t.registered_commands
        for group in t.registered_groups:
            yield from commands(group.typer_instance)

    infos = list(commands(app))
    assert len(infos) > 15
    assert all(getattr(i.callback, "_coord_guarded", False) for i in infos), \
        [i.callback.__name__ for i in infos if not getattr(i.callback, "_coord_guarded", False)]


def test_adp_validate_warnings_go_to_stderr(tmp_path):
    import orjson

    row = {"schema_version": "1.3.1", "id": "t1", "details": {}, "content": [
        {"class_": "text_observation", "source": "user", "content": "count files"},
        {"class_": "message_action", "content": "There are 3 files."}]}
    path = tmp_path / "old.jsonl"
    path.write_bytes(orjson.dumps(row) + b"\n")
    result = CliRunner().invoke(app, ["adp", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "1.3.1" in result.stderr and result.stderr.startswith("warning: ")
    assert "warning:" not in result.stdout and "1 trajectories valid" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "week2", "--concurrency", "0"],
         "error: invalid value '0' for '--concurrency': input should be greater than or equal to 1"),
        (["resume", "--concurrency", "257"], "error: invalid value '257' for '--concurrency': input should be less than"),
        (["run", "week2", "--concurrency", "many"], "error: invalid value 'many' for '--concurrency': input should be a valid"),
        (["run", "week2", "--bogus"], "error: No such option: --bogus"),
        (["run"], "error: Missing argument 'plan'."),
        (["run", "a", "b"], "error: Got unexpected extra argument(s) (b)"),
        (["nosuch"], "error: No such command 'nosuch'."),
        (["adp", "validate", "--bogus"], "error: No such option: --bogus (see: coord adp validate --help)"),
    ],
)
def test_command_line_parse_errors_are_one_error_line(tmp_path, args, expected):
    result = CliRunner().invoke(app, [*args, "-w", str(tmp_path)] if args[0] != "nosuch" else args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(expected), line
    assert "╭" not in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_and_bare_groups_still_show_the_help():
    result = CliRunner().invoke(app, ["run", "--help"])
    assert result.exit_code == 0 and "--concurrency" in result.stdout and result.stderr == ""
    bare = CliRunner().invoke(app, [])
    assert "Usage: coord" in bare.stdout and bare.stderr == ""


def test_finished_message_counts_skipped_tasks():
    from coordinator.cli.run import _finished_counts
    from coordinator.engine.runner import RunSummary

    def summary(statuses: dict[str, str]) -> RunSummary:
        return RunSummary(run_id="r", plan="p", phase="finished", problems=[], resumed=False,
                          state={"tasks": {t: {"status": s} for t, s in statuses.items()}})  # type: ignore[typeddict-item]

    assert _finished_counts(summary({"a": "done", "b": "done"})) == "every task done"
    assert _finished_counts(summary({"a": "done", "scrub": "skipped", "b": "done"})) == \
        "every task done or skipped: 2 done, 1 skipped (scrub)"


def test_engine_loads_with_the_collector_paused_and_it_runs_again_after():
    from coordinator.core.loading import collector_paused as loading

    assert gc.isenabled()
    with loading():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ImportError), loading():
        import coordinator.no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert gc.isenabled()  # a failed import leaves it running too
    gc.disable()
    try:
        with loading():
            pass
        assert not gc.isenabled()  # a caller that had paused it keeps it paused
    finally:
        gc.enable()


@pytest.mark.slow
def test_a_run_and_status_do_not_load_git_or_the_adp_models_for_a_plan_without_branches(tmp_path):
    """Start-up: GitPython and the ADP models load only for the commands and gates that use them."""
    (tmp_path / "one.yaml").write_text("name: one\ntasks:\n  - {id: a, title: A, role: lead, run: 'mine:noop'}\n")
    (tmp_path / "mine.py").write_text("from coordinator import StepContext, StepResult\n\n\n"
                                      "def noop(ctx: StepContext) -> StepResult:\n    return StepResult()\n")
    probe = ("import sys, runpy; sys.argv = ['coord', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('coordinator', run_name='__main__')\n"
             "finally:\n    print(sorted(m for m in ('git', 'pipeline.adp.models') if m in sys.modules), "
             "file=sys.stderr)\n")
    repo = str(Path(__file__).resolve().parents[2])
    for args in (["run", "one.yaml"], ["status"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": repo}, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stderr.strip().splitlines()[-1] == "[]", (args, done.stderr)


def test_the_cli_leaves_what_is_alive_at_its_end_out_of_the_exit_collection(monkeypatch):
    """After a command (one that fails too) the heap is frozen: the interpreter's last full collection
    pass at exit (0.25–0.3 s with LangGraph loaded) has nothing to walk."""
    from coordinator.cli.app import main

    try:
        for argv, code in ((["coord", "--version"], 0), (["coord", "no-such-command"], 2)):
            gc.unfreeze()
            assert gc.get_freeze_count() == 0
            monkeypatch.setattr(sys, "argv", argv)
            with pytest.raises(SystemExit) as exited:
                main()
            assert exited.value.code == code
            assert gc.get_freeze_count() > 10_000, argv
    finally:
        gc.unfreeze()


def test_plans_says_which_plan_a_name_runs_and_which_plans_do_not_load(tmp_path, monkeypatch):
    plans = tmp_path / "plans"
    plans.mkdir()
    one = "name: x\ntitle: The X plan\ntasks: [{id: a, title: A, role: lead, command: 'true'}]\n"
    (plans / "x.yaml").write_text(one)
    (plans / "x.yml").write_text(one)
    (plans / "week2.yaml").write_text(one.replace("name: x", "name: week2"))
    (plans / "bad.yaml").write_text("name: bad\ntasks: [{id: a, title: A, role: leed, command: 'true'}]\n")
    result = invoke("plans", "-w", str(tmp_path))
    assert result.exit_code == 0
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert "x plans/x.yaml The X plan (1 tasks, 0 gates)" in lines
    assert "x plans/x.yml not used: plans/x.yaml has the same name" in lines
    assert any(line.startswith("week2 built in Week 2") and line.endswith("plans/week2.yaml is used instead")
               for line in lines), lines
    assert any("bad plans/bad.yaml does not load:" in line and "unknown role 'leed'" in line for line in lines), lines
    (tmp_path / "steps").mkdir()
    monkeypatch.chdir(tmp_path)
    ran = invoke("run", "steps")
    assert ran.exit_code == 2 and "unknown plan 'steps': a directory" in ran.output


def test_plan_show_and_graph_take_set_as_run_does(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nparams: {n: 2, tag: x}\ntasks:\n"
                    "  - {id: a, title: A, role: lead, command: 'echo ${tag}', foreach: [1, 2]}\n")
    shown = invoke("plan", "show", str(path), "--set", "tag=y")
    assert shown.exit_code == 0 and "tag: y" in shown.output and "echo y" in shown.output
    bad = invoke("plan", "show", str(path), "--set", "nope=1")
    assert bad.exit_code == 2 and "--set: plan 'p' has no parameter 'nope'" in bad.output
    graph = invoke("graph", str(path), "--set", "tag=z")
    assert graph.exit_code == 0 and "flowchart TD" in graph.output
