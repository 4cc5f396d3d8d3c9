"""A user's own plans and steps that go wrong: each gets a clear error, at load when it can be known
there, and the run says what happened (no traceback on the console, no claim that is not true)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from coordinator.core.errors import PlanError, UsageError
from coordinator.core.events import read_events
from coordinator.core.workspace import Workspace
from coordinator.engine.plan_loader import load_plan, parse_override
from coordinator.engine.runner import RunOptions, run_plan

STEPS = '''
import sys, time
from pathlib import Path
from coordinator import StepResult


class Obj:
    pass


def as_dict(ctx):
    return {"rows": 3}


def exits(ctx):
    sys.exit(3)


def nested(ctx):
    return StepResult(metrics={"by_agent": {"qa": 1}})


def not_finite(ctx):
    return StepResult(metrics={"ratio": float("nan")})


def an_object(ctx):
    return StepResult(metrics={"o": Obj()})


def numbers(ctx):
    return StepResult(metrics={"n": 2, "xs": [1, 2.5, "a", None, True]})


def sleeps(ctx, *, s: float = 2.0):
    time.sleep(s)
    (Path(ctx.workspace) / "late.txt").write_text("written after the timeout")
    return StepResult()
'''


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "mysteps").mkdir(parents=True)
    (root / "mysteps" / "__init__.py").write_text("")
    (root / "mysteps" / "s.py").write_text(STEPS)
    return Workspace.at(root)


def _run(ws: Workspace, plan: str):
    (ws.root / "plan.yaml").write_text(textwrap.dedent(plan))
    return run_plan(ws, RunOptions(plan=str(ws.root / "plan.yaml"), render_interval=0))


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN", "-.Inf"])
def test_a_number_json_cannot_hold_is_refused_at_load_with_its_line(tmp_path, value):
    path = tmp_path / "plan.yaml"
    path.write_text("name: p\ntasks:\n  - {id: a, title: A, role: lead, command: 'true'}\n"
                    f"gates:\n  - {{id: g, after: [a], criteria: [{{metric: a.n, op: '<', value: {value}}}]}}\n")
    with pytest.raises(PlanError) as exc:
        load_plan(str(path))
    text = exc.value.describe()
    assert "plan.yaml:5" in text and "gates[0].criteria[0].value" in text and "not a finite number" in text, text
    with pytest.raises(UsageError, match=r"--set x: .* is not a finite number"):
        parse_override(f"x={value}")
    assert parse_override("x=1.0e+300") == ("x", 1e300)  # what the message suggests is a number in YAML


@pytest.mark.parametrize("agent", ["../../tmp/pwn", "x y", "a/b", "-dash", "ünï", "x" * 41, "1abc"])
def test_an_agent_name_that_cannot_name_a_board_file_is_refused_at_load(tmp_path, agent):
    path = tmp_path / "plan.yaml"
    path.write_text(f"name: p\nroles:\n  evil: {{agent: {agent!r}, driver: human}}\n"
                    "tasks:\n  - {id: a, title: A, role: evil, instructions: sign}\n")
    with pytest.raises(PlanError) as exc:
        load_plan(str(path))
    text = exc.value.describe()
    assert "plan.yaml:3" in text and "roles.evil.agent" in text and "letters, digits" in text, text


@pytest.mark.parametrize(("step", "error"), [
    ("as_dict", "step mysteps.s:as_dict returned dict; a step returns coordinator.StepResult"),
    ("exits", "step mysteps.s:exits called sys.exit(3)"),
    ("nested", "by_agent: a metric is a number, string, boolean, null or a list of them (no nested objects), got dict"),
    ("not_finite", "ratio: not a finite number (nan)"),
    ("an_object", "o: a metric is a number, string, boolean, null or a list of them (no nested objects), got Obj"),
])
def test_a_step_that_returns_what_coord_cannot_keep_fails_with_the_reason(ws, step, error):
    summary = _run(ws, f"""
    name: p
    tasks:
      - {{id: a, title: A, role: lead, run: "mysteps.s:{step}"}}
      - {{id: b, title: B, role: lead, run: "mysteps.s:numbers"}}
    """)
    rec = summary.state["tasks"]["a"]
    assert rec["status"] == "failed" and error in rec["error"], rec["error"]
    assert summary.state["tasks"]["b"]["status"] == "done"
    assert summary.state["tasks"]["b"]["metrics"] == {"n": 2, "xs": [1, 2.5, "a", None, True]}
    failed = [e for e in read_events(ws.events) if e["kind"] == "task_failed" and e.get("task") == "a"]
    assert failed and error in failed[-1]["error"]


@pytest.mark.slow
def test_step_crashes_reach_the_console_as_one_line_and_the_traceback_goes_to_the_log(ws):
    (ws.root / "mysteps" / "boom.py").write_text("def boom(ctx):\n    raise RuntimeError('bug in the step')\n")
    (ws.root / "plan.yaml").write_text(
        "name: p\ntasks:\n  - {id: a, title: A, role: lead, run: 'mysteps.boom:boom'}\n"
        "  - {id: b, title: B, role: lead, run: 'mysteps.s:exits'}\n"
        "  - {id: c, title: C, role: lead, run: 'mysteps.s:as_dict'}\n")
    repo = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-m", "coordinator", "run", "plan.yaml"], cwd=ws.root, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": repo}, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out and 'File "' not in out, out
    assert "✗ a: RuntimeError: bug in the step (traceback in .coord/logs/" in out
    assert "✗ b: step mysteps.s:exits called sys.exit(3)" in out
    assert "✗ c: step mysteps.s:as_dict returned dict" in out
    logs = list((ws.root / ".coord" / "logs").rglob("a.1.log"))
    assert len(logs) == 1 and "RuntimeError: bug in the step" in logs[0].read_text()


@pytest.mark.slow
def test_each_attempt_of_a_command_gets_the_whole_timeout_and_a_timed_out_one_is_retried(ws):
    started = time.monotonic()
    summary = _run(ws, """
    name: p
    tasks:
      - {id: s, title: S, role: lead, command: "echo run >> attempts.txt; sleep 5", timeout: 1, retries: 2,
         retry_backoff: 0}
    """)
    assert time.monotonic() - started < 15
    rec = summary.state["tasks"]["s"]
    assert rec["status"] == "failed" and rec["attempts"] == 3, rec
    assert (ws.root / "attempts.txt").read_text().split() == ["run", "run", "run"]
    assert rec["error"].startswith("timed out after 1s; its process group was killed"), rec["error"]
    assert "# timed out" not in rec["error"]  # coord's own line in the log is not quoted as the command's output


@pytest.mark.slow
def test_a_python_step_past_its_timeout_is_said_to_be_left_running_not_stopped(ws):
    summary = _run(ws, """
    name: p
    tasks:
      - {id: a, title: A, role: lead, run: "mysteps.s:sleeps", timeout: 0.5, retries: 2, with: {s: 1.5}}
    """)
    rec = summary.state["tasks"]["a"]
    assert rec["status"] == "failed"
    assert rec["error"].startswith("timed out after 0.5s; a step running in coord's process cannot be stopped"), rec
    assert "may still write its outputs" in rec["error"] and "was stopped" not in rec["error"]
    timed_out = [e for e in read_events(ws.events) if e["kind"] == "task_timed_out"]
    assert len(timed_out) == 1 and timed_out[0]["error"] == rec["error"]
    for _ in range(40):  # what the message warned of: the step went on and wrote its file
        if (ws.root / "late.txt").exists():
            break
        time.sleep(0.1)
    assert (ws.root / "late.txt").exists()


def test_a_gate_whose_criteria_all_weigh_nothing_is_refused_unless_every_one_is_critical(tmp_path):
    head = "name: p\ntasks:\n  - {id: a, title: A, role: lead, command: 'true'}\ngates:\n"
    path = tmp_path / "plan.yaml"
    path.write_text(head + "  - {id: g, after: [a], criteria: [{metric: a.n, value: 100, weight: 0}]}\n")
    with pytest.raises(PlanError) as exc:
        load_plan(str(path))
    assert "plan.yaml:5 → gates[0]: every criterion has weight 0" in exc.value.describe()
    path.write_text(head + "  - {id: g, after: [a], criteria: [{metric: a.n, value: 100, weight: 0, critical: true}]}\n")
    assert load_plan(str(path)).gates["g"].criteria[0].critical


@pytest.mark.parametrize(("items", "message"), [
    ("[x, x, y]", "foreach lists the item 'x' twice"),
    ("[1, '1']", "foreach lists the item '1' twice"),
    ("['x]y']", "foreach item 'x]y': an item is one line without control characters, brackets"),
    ("[\"a\\nb\"]", "foreach item 'a\\nb': an item is one line"),
    ("['<!-- x -->']", "HTML comment marks"),
    ("[[1, 2]]", "must give a non-empty list of names or numbers, got [1, 2] (list) among them"),
    ("[true]", "got True (bool) among them"),
    ("[' ']", "a name of 1 to 100 characters"),
])
def test_foreach_items_that_would_make_ambiguous_or_broken_task_ids_are_refused_at_load(tmp_path, items, message):
    path = tmp_path / "plan.yaml"
    path.write_text(f"name: p\ntasks:\n  - {{id: a, title: A, role: lead, command: 'echo ${{item}}', foreach: {items}}}\n")
    with pytest.raises(PlanError) as exc:
        load_plan(str(path))
    assert "plan.yaml:3 → tasks[0].foreach:" in exc.value.describe() and message in exc.value.describe(), \
        exc.value.describe()


def test_log_names_and_graph_nodes_of_ids_that_look_alike_stay_apart():
    from coordinator.cli.plans import mermaid
    from coordinator.engine.result_log import dispatch_stem

    ids = ["a[a b]", "a[a/b]", "a[a_b]", "a_a_b_", "a[x:y]", "a[x;y]"]
    assert len({dispatch_stem(i, 1) for i in ids}) == len(ids)
    assert dispatch_stem("finetune[qa]", 2) == "finetune@qa.2" and dispatch_stem("a_a_b_", 1) == "a_a_b_.1"
    plan = load_plan_text("name: p\ntasks:\n  - {id: a, title: A, role: lead, command: 'echo ${item}', "
                          "foreach: ['a b', 'a/b', 'a_b', 'say \"hi\"']}\n")
    chart = mermaid(plan)
    nodes = {line.split("[", 1)[0].strip() for line in chart.splitlines() if '["a[' in line}
    assert len(nodes) == 4 and '["a[say #quot;hi#quot;]"]' in chart, chart


def load_plan_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "plan.yaml"
        path.write_text(text)
        return load_plan(str(path))


def test_titles_cannot_break_or_spoof_the_markers_a_board_is_read_by(ws):
    summary = _run(ws, """
    name: p
    tasks:
      - {id: a, title: "evil <!-- coord:tasks:end --> after", role: lead, command: "true"}
      - {id: b, title: "spoof <!-- coord:task id=a -->", role: lead, command: "true"}
      - {id: c, title: "two\\nlines", role: lead, instructions: "do it", needs: [a, b]}
    """)
    assert summary.phase == "waiting"
    board = (ws.root / "task_boards" / "CLAUDE_TASKS.md").read_text()
    line_a = next(line for line in board.splitlines() if line.startswith("- [x] **a**"))
    assert line_a == "- [x] **a** — evil &lt;!-- coord:tasks:end --&gt; after <!-- coord:task id=a -->"
    assert "- [ ] **c** — two lines <!-- coord:task id=c -->" in board
    assert board.count("<!-- coord:task id=a -->") == 1
    (ws.root / "task_boards" / "CLAUDE_TASKS.md").write_text(board.replace("- [ ] **c**", "- [x] **c**"))
    from coordinator.engine.runner import resume_run
    from task_boards.sync import sync_boards

    sync_boards(ws)
    done = resume_run(ws, None, RunOptions(plan=""))
    assert done.phase == "finished" and done.state["tasks"]["c"]["status"] == "done"


@pytest.mark.slow
def test_ctrl_c_leaves_boards_that_say_interrupted_and_names_the_run_to_resume(ws):
    import signal

    (ws.root / "plan.yaml").write_text("name: p\ntasks:\n  - {id: a, title: A, role: lead, command: 'true'}\n"
                                       "  - {id: b, title: B, role: lead, command: 'sleep 30', needs: [a]}\n")
    repo = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-m", "coordinator", "run", "plan.yaml"], cwd=ws.root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": repo})
    for _ in range(200):  # until b runs
        if any(e["kind"] == "task_started" and e.get("task") == "b" for e in read_events(ws.events)):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    run_id = next(e["run"] for e in read_events(ws.events) if e["kind"] == "run_started")
    assert f"continue with `coord resume {run_id}`" in out
    for board in (ws.root / "TEAM_COORDINATION.md", ws.root / "task_boards" / "CLAUDE_TASKS.md"):
        text = board.read_text()
        assert "phase **interrupted**" in text and "phase **running**" not in text, board


def test_a_gate_on_a_metric_that_is_a_list_says_so_instead_of_inventing_a_number(ws):
    summary = _run(ws, """
    name: p
    tasks:
      - {id: a, title: A, role: lead, run: "mysteps.s:numbers"}
    gates:
      - {id: g, after: [a], criteria: [{metric: a.xs, op: "==", value: 3}, {metric: a.n, op: "==", value: 2}]}
    """)
    crit = summary.state["gates"]["g"]["criteria"]
    assert crit[0]["passed"] is False and crit[0]["measured"] is None
    assert crit[0]["detail"] == "a.xs is a list (5 items), not one number or string: == 3 cannot compare it"
    assert crit[1]["passed"] is True and crit[1]["measured"] == 2


def test_a_profile_may_only_override_declared_params_and_the_default_must_exist(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("name: p\nparams: {examples_per_agent: 5}\nprofiles:\n"
                    "  fast: {set: {exmaples_per_agent: 1, nope: 2}}\n"
                    "tasks: [{id: a, title: A, role: lead, command: 'echo ${examples_per_agent}'}]\n")
    with pytest.raises(PlanError) as exc:
        load_plan(str(path))
    lines = exc.value.describe().replace(f"{tmp_path}/", "").splitlines()
    assert lines == [
        "plan.yaml:3 → profiles: no profile is named 'thorough', the default one: name the default with "
        "default_profile: (one of fast)",
        "plan.yaml:4 → profiles.fast.set.exmaples_per_agent: profile 'fast' sets 'exmaples_per_agent', which is not "
        "one of the plan's params; did you mean 'examples_per_agent'?",
        "plan.yaml:4 → profiles.fast.set.nope: profile 'fast' sets 'nope', which is not one of the plan's params "
        "(declare it under params: with its default)",
    ], lines


def test_a_command_output_outside_the_workspace_is_refused_at_load(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("name: p\ntasks:\n  - {id: a, title: A, role: lead, command: 'true', "
                    "outputs: [/tmp/x.txt, ../x.txt, ok/x.txt]}\n")
    with pytest.raises(PlanError) as exc:
        load_plan(str(path))
    lines = exc.value.describe().replace(f"{tmp_path}/", "").splitlines()
    assert lines == ["plan.yaml:3 → tasks[0].outputs[0]: path '/tmp/x.txt' escapes the workspace (absolute paths "
                     "are not allowed)", "plan.yaml:3 → tasks[0].outputs[1]: path '../x.txt' escapes the workspace"]


def test_resuming_a_failed_run_by_its_id_runs_its_failed_tasks_again_and_what_they_held_up(ws):
    import tests.coordinator.steps_for_tests  # noqa: F401  (registers t_flaky)
    from coordinator.engine.run_view import find_run
    from coordinator.engine.runner import resume_run

    first = _run(ws, """
    name: p
    tasks:
      - {id: a, title: A, role: lead, run: t_flaky, with: {fail_times: 1}}
      - {id: b, title: B, role: lead, needs: [a], command: "echo b >> b.txt"}
      - {id: c, title: C, role: lead, command: "echo c >> c.txt"}
    """)
    assert first.phase == "failed"
    assert first.state["tasks"]["a"]["status"] == "failed" and first.state["tasks"]["b"]["status"] == "skipped"
    with pytest.raises(UsageError, match=f"the latest, {first.run_id}, failed: `coord resume {first.run_id}`"):
        find_run(ws, None, unfinished=True)
    again = resume_run(ws, first.run_id, RunOptions(plan="", render_interval=0))
    assert again.run_id == first.run_id and again.phase == "finished", again.problems
    assert again.state["tasks"]["a"]["metrics"] == {"calls": 2} and again.state["tasks"]["a"]["dispatch"] == 2
    assert (ws.root / "b.txt").read_text() == "b\n" and (ws.root / "c.txt").read_text() == "c\n"  # c ran once


@pytest.mark.parametrize(("plan", "expected"), [
    ("name: p\ntasks:\n  - {id: a, title: !!python/object/apply:os.system ['echo x'], role: lead, command: 'true'}\n",
     ["plan.yaml:3 → tasks[0].title: the tag !!python/object/apply:os.system is not allowed: coord reads plain YAML "
      "data and never builds Python objects from a file"]),
    ("name: p\ntasks:\n  - {id: a, title: A, role: lead, run: 'mysteps.nope:ok'}\n",
     ["plan.yaml:3 → tasks[0].run: step 'mysteps.nope:ok': cannot import 'mysteps.nope': no module named "
      "'mysteps.nope' (looked in the workspace and on the Python path)"]),
    ("name: p\ntasks:\n  - {id: a, title: A, role: lead, run: 'mysteps.s:sleeps', foreach: [], with: {s: '${item}'}}\n",
     ["plan.yaml:3 → tasks[0].foreach: foreach must give a non-empty list of names or numbers, got []"]),
])
def test_messages_name_the_problem_once_and_in_the_user_s_terms(ws, plan, expected):
    path = ws.root / "plan.yaml"
    path.write_text(plan)
    with pytest.raises(PlanError) as exc:
        load_plan(str(path), workspace=ws.root)
    assert exc.value.describe().replace(f"{ws.root}/", "").splitlines() == expected


def test_a_number_given_where_a_step_wants_text_says_to_quote_it(ws):
    (ws.root / "quote_steps.py").write_text("from coordinator import StepResult\n\n\n"
                                             "def label(ctx, *, label: str = 'x'):\n    return StepResult()\n")
    path = ws.root / "plan.yaml"
    path.write_text("name: p\ntasks:\n  - {id: a, title: A, role: lead, run: 'quote_steps:label', with: {label: 5}}\n")
    with pytest.raises(PlanError) as exc:
        load_plan(str(path), workspace=ws.root)
    assert "expects a string, got 5 (YAML reads it as a number or true/false: quote it" in exc.value.describe()


def test_what_a_step_prints_goes_to_its_task_log_not_the_console(ws, capsys):
    (ws.root / "chatty_steps.py").write_text(
        "import sys\nfrom coordinator import StepResult\n\n\n"
        "def chatty(ctx):\n    for i in range(3):\n        print('line', i)\n"
        "    print('careful', file=sys.stderr)\n    sys.stdout.write('no newline')\n    return StepResult()\n")
    summary = _run(ws, """
    name: p
    tasks:
      - {id: a, title: A, role: lead, run: "chatty_steps:chatty"}
    """)
    rec = summary.state["tasks"]["a"]
    assert rec["status"] == "done"
    out = capsys.readouterr()
    assert "line 0" not in out.out + out.err and "careful" not in out.out + out.err
    (log,) = list((ws.state_dir / "logs").rglob("a.1.log"))
    assert log.read_text() == "line 0\nline 1\nline 2\n[stderr] careful\nno newline\n"
    assert f"printed 5 line(s): {log.relative_to(ws.root).as_posix()}" in rec["notes"]
    print("after the step")  # this thread's output is the console's again
    assert capsys.readouterr().out == "after the step\n"
    quiet = _run(ws, """
    name: q
    tasks:
      - {id: b, title: B, role: lead, run: "mysteps.s:numbers"}
    """)
    assert quiet.state["tasks"]["b"]["status"] == "done"
    assert not list((ws.state_dir / "logs").rglob("b.1.log"))  # a step that prints nothing leaves no log file


def test_every_problem_of_a_task_the_schema_rejected_is_reported_at_once(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("name: p\ntasks:\n  - {id: a, title: A, role: lead, command: 'true'}\n"
                    "  - id: b\n    title: B\n    role: leed\n    command: 'true'\n    retries: 99\n"
                    "    needs: [a, zz]\n    outputs: [/etc/passwd]\n  - 5\nbudget: 5\n")
    with pytest.raises(PlanError) as exc:
        load_plan(str(path))
    lines = exc.value.describe().replace(f"{tmp_path}/", "").splitlines()
    assert sorted(lines) == sorted([
        "plan.yaml:12 → budget: expected a mapping (key: value pairs), got a number (5)",
        "plan.yaml:8 → tasks[1].retries: Input should be less than or equal to 10",
        "plan.yaml:11 → tasks[2]: expected a mapping (key: value pairs), got a number (5)",
        "plan.yaml:6 → tasks[1].role: unknown role 'leed' (known: execution, lead, quality; declare it under the "
        "plan's roles:, coord.yaml only rebinds roles)",
        "plan.yaml:9 → tasks[1].needs[1]: unknown task or gate 'zz'",
        "plan.yaml:10 → tasks[1].outputs[0]: path '/etc/passwd' escapes the workspace (absolute paths are not allowed)",
    ]), lines


def test_a_gate_that_sends_work_back_makes_the_other_gates_on_it_review_again(ws):
    from typer.testing import CliRunner

    from coordinator.cli.app import app
    from coordinator.engine.runner import resume_run

    (ws.root / "aud.py").write_text("import json, os\na = int(os.environ['COORD_ATTEMPT'])\n"
                                    "json.dump({'dup': 0.05 if a == 1 else 0.9}, open(os.environ['COORD_METRICS'], 'w'))\n")
    first = _run(ws, """
    name: g3
    tasks:
      - {id: audit, title: Audit, role: quality, command: "python aud.py"}
      - {id: scrub, title: Scrub, role: lead, needs: [audit], command: "echo scrub >> scrub.txt"}
      - {id: train, title: Train, role: execution, needs: [hgate], command: "echo trained >> train.txt"}
    gates:
      - {id: dq, after: [audit], blocks: [train], criteria: [{metric: audit.dup, op: "<=", value: 0.1, critical: true}]}
      - {id: hgate, after: [audit], policy: human, on_fail: retry, max_retries: 2,
         criteria: [{metric: audit.dup, op: "<=", value: 1}]}
    """)
    assert first.phase == "waiting" and first.state["gates"]["dq"]["status"] == "approved"
    assert (ws.root / "scrub.txt").read_text() == "scrub\n"
    cli = CliRunner()
    rejected = cli.invoke(app, ["reject", "hgate", "--note", "redo", "-w", str(ws.root)])
    assert rejected.exit_code == 3, rejected.output  # the run went on and waits for hgate's next decision
    again = resume_run(ws, None, RunOptions(plan="", render_interval=0))
    assert again.state["tasks"]["audit"]["metrics"] == {"dup": 0.9}
    assert again.state["gates"]["dq"]["status"] == "rejected"  # reviewed again, on what audit measured now
    assert (ws.root / "scrub.txt").read_text() == "scrub\nscrub\n"  # ran again on the new output
    approved = cli.invoke(app, ["approve", "hgate", "-w", str(ws.root)])
    assert approved.exit_code == 1, approved.output  # the run went on and ended: train is blocked by dq
    assert "task train blocked: gate dq rejected" in approved.output
    assert not (ws.root / "train.txt").exists()


@pytest.mark.parametrize(("by", "note", "message"), [
    ("evil\n- [x] approve: **au**", None, "--by is a person's name: one line of printable text"),
    ("", None, "--by is a person's name"),
    ("ana", "why\x1b[31m", "--note holds control characters"),
])
def test_a_decision_s_name_and_note_cannot_carry_lines_or_control_characters(ws, by, note, message):
    from coordinator.engine.decisions import queue_decision

    with pytest.raises(UsageError, match=re.escape(message)):
        queue_decision(ws, "g", "reject", note=note or "because", by=by)


def test_a_criterion_passed_by_every_copy_shows_the_copy_closest_to_failing(ws):
    summary = _run(ws, """
    name: p
    tasks:
      - {id: scale, title: Scale, role: lead, foreach: [a, b, c], command: "python -c \\"import json, os; json.dump({'rows': {'a': 50, 'b': 30, 'c': 41}['${item}']}, open(os.environ['COORD_METRICS'], 'w'))\\""}
    gates:
      - {id: g, after: [scale], criteria: [{metric: scale.rows, op: ">=", value: 30}, {metric: scale.rows, op: "<=", value: 60}]}
    """)
    low, high = summary.state["gates"]["g"]["criteria"]
    assert low["passed"] and low["measured"] == 30 and low["detail"] == "passes for all 3 instances (closest: scale[b]=30)"
    assert high["passed"] and high["measured"] == 50 and "closest: scale[a]=50" in high["detail"]


def test_a_task_s_cost_counts_every_attempt_and_every_time_a_gate_sent_it_back(ws):
    (ws.root / "spend.py").write_text(
        "import json, os\nopen(os.environ['COORD_COSTS'], 'a').write(json.dumps({'usd': 0.25}) + '\\n')\n"
        "n = int(os.environ['COORD_ATTEMPT'])\njson.dump({'n': n}, open(os.environ['COORD_METRICS'], 'w'))\n"
        "raise SystemExit(1 if n == 1 else 0)\n")
    summary = _run(ws, """
    name: p
    tasks:
      - {id: prod, title: Prod, role: lead, command: "python spend.py", retries: 1, retry_backoff: 0}
    gates:
      - {id: g, after: [prod], on_fail: retry, max_retries: 1, criteria: [{metric: prod.n, op: ">=", value: 3}]}
    """)
    rec = summary.state["tasks"]["prod"]
    assert rec["attempts"] == 3  # failed, passed (gate sent it back), ran once more
    assert rec["cost_usd"] == pytest.approx(0.75)
    from coordinator.engine.ledger import Ledger

    assert Ledger.of(ws.state_dir).spent(summary.run_id).usd == pytest.approx(0.75)


def test_a_role_limit_passed_is_reported_as_that_role_s_with_the_raise_that_fits(ws):
    summary = _run(ws, """
    name: p
    roles: {execution: {agent: cursor, budget_usd: 0.5}}
    budget: {usd: 5}
    tasks:
      - {id: a, title: A, role: execution, command: "echo '{\\"usd\\": 0.45}' >> $COORD_COSTS"}
      - {id: b, title: B, role: execution, needs: [a], command: "echo '{\\"usd\\": 0.2}' >> $COORD_COSTS"}
    """)
    assert summary.phase == "waiting"
    line = summary.problems[0]
    assert line.startswith("budget of role execution: $0.65 of $0.50"), line
    assert "`coord budget raise USD --role execution`" in line and "budget: $0.65 of $5.00" not in line


def test_a_decision_on_a_pending_gate_of_a_live_run_says_to_wait_not_to_resume():
    from coordinator.engine.decisions import not_waiting

    live = not_waiting("h", "r1", {"status": "pending"}, "human", live=True)
    assert "the run is going now" in live and "coord resume" not in live
    idle = not_waiting("h", "r1", {"status": "pending"}, "human")
    assert "`coord resume r1` runs them" in idle


def test_a_deferred_item_is_not_resolved_by_a_figure_measured_before_the_gate_found_the_problem(ws):
    summary = _run(ws, """
    name: p
    tasks:
      - {id: early, title: Early, role: lead, command: "echo '{\\"pii\\": 0}' > $COORD_METRICS"}
      - {id: audit, title: Audit, role: quality, command: "sleep 0.2; echo '{\\"pii\\": 5}' > $COORD_METRICS"}
      - {id: after, title: After, role: lead, needs: [g], command: "true"}
    gates:
      - id: g
        after: [audit]
        on_fail: defer
        criteria: [{metric: audit.pii, op: "==", value: 0, defer: "Scrub PII", resolved_by: [early]}]
    """)
    (item,) = summary.state["deferred"].values()
    assert item["status"] == "open", item
    assert "early measured 'pii' before the gate decided" in (item.get("remeasured") or {}).get("detail", ""), item


def test_coord_costs_says_why_each_unknown_cost_is_unknown(ws):
    from typer.testing import CliRunner

    from coordinator.cli.app import app

    summary = _run(ws, """
    name: p
    tasks:
      - {id: a, title: A, role: lead, command: "echo '{\\"usd\\": null, \\"note\\": \\"free tier\\"}' >> $COORD_COSTS"}
    """)
    result = CliRunner().invoke(app, ["costs", summary.run_id, "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    assert "plus 1 call(s) of unknown cost (never guessed)" in result.output
    assert "unknown because: the command reported no price" in result.output
    assert "not in the price table" not in result.output


def test_every_problem_of_a_gate_the_schema_rejected_is_reported_at_once(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("name: p\ntasks: [{id: a, title: A, role: lead, command: 'true'}]\ngates:\n  - id: g\n"
                    "    after: [a, nope]\n    blocks: [zz]\n    criteria:\n      - {metric: y, value: 1}\n"
                    "      - {file: /etc/passwd}\n      - {metric: a.n, value: 1, defer: x, resolved_by: [ghost]}\n")
    with pytest.raises(PlanError) as exc:
        load_plan(str(path))
    lines = exc.value.describe().replace(f"{tmp_path}/", "").splitlines()
    assert sorted(lines) == sorted([
        "plan.yaml:8 → gates[0].criteria[0]: metric 'y' must look like '<task>.<metric>'",
        "plan.yaml:5 → gates[0].after[1]: unknown task 'nope'",
        "plan.yaml:6 → gates[0].blocks[0]: unknown task 'zz'",
        "plan.yaml:9 → gates[0].criteria[1].file: path '/etc/passwd' escapes the workspace (absolute paths are not "
        "allowed)",
        "plan.yaml:10 → gates[0].criteria[2].resolved_by[0]: unknown task 'ghost'",
    ]), lines


def test_a_metric_reported_as_null_is_said_to_be_null():
    from coordinator.core.plan import Check
    from reviews.criteria import evaluate, metric_lookup

    result = evaluate(Check(metric="a.rate", op=">=", value=0.5), metric_lookup({"a": {"rate": None}}, {}), Path("."))
    assert result["passed"] is False and result["detail"] == "a.rate was reported as null (no value to compare)"
