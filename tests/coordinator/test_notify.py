"""Notifications from `notify:` in coord.yaml: a webhook per kind (coord's JSON and Slack's shape), retries
with backoff, targets that fail or hang never slow or fail the run, the desktop bell, and clear config errors.

Webhooks go to a real HTTP server on 127.0.0.1 whose behaviour each path chooses.
"""

from __future__ import annotations

import json
import shutil
import stat
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.events import read_events
from coordinator.core.workspace import Workspace
from coordinator.engine import notify
from coordinator.engine.decisions import record_decision
from coordinator.engine.runner import RunOptions, run_plan
from tests.coordinator.steps_for_tests import write_plan

SECRET = "hook-token-7f3a9c2e51"


class Hooks:
    """What the server received, per path; ``/flaky`` answers 500 once then 200, ``/fail`` always 500,
    ``/hang`` never answers (until the test ends)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], dict]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.url = ""

    def of(self, path: str) -> list[tuple[dict[str, str], dict]]:
        with self.lock:
            return [(h, body) for p, h, body in self.received if p == path]


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    state = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
            with state.lock:
                state.received.append((self.path, dict(self.headers), body))
                seen = sum(p == self.path for p, _, _ in state.received)
            if self.path == "/hang":
                state.release.wait(30)
            code = 500 if self.path == "/fail" or (self.path == "/flaky" and seen == 1) else 200
            self.send_response(code)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


GATE = """name: gated
tasks:
  - {id: make, title: Make, role: execution, run: t_write, with: {out: out/a.txt, metric: 0.5}}
  - {id: ship, title: Ship, role: lead, needs: [make], run: t_noop}
gates:
  - id: signoff
    after: [make]
    blocks: [ship]
    policy: human
    criteria:
      - {metric: make.metric, op: ">=", value: 0.1, critical: true}
"""
ACCEPT = """name: checked
tasks:
  - {id: notes, title: Notes, role: lead, run: t_noop, accept: [{file: reports/notes.md}]}
"""
BUDGET = """name: paid
budget: {usd: 0.5, alerts: [0.5]}
tasks:
  - {id: s1, title: One, role: lead, run: 'steps.money:spend', with: {usd: 0.3, ref: s1}}
  - {id: s2, title: Two, role: lead, needs: [s1], run: 'steps.money:spend', with: {usd: 0.3, ref: s2}}
  - {id: s3, title: Three, role: lead, needs: [s2], run: 'steps.money:spend', with: {usd: 0.3, ref: s3}}
"""
MONEY = '''
from coordinator import StepContext, StepResult, step


@step(paid=lambda params: True)
def spend(ctx: StepContext, *, usd: float, ref: str) -> StepResult:
    ctx.record_cost(usd, model="m", provider="p", ref=ref)
    return StepResult(metrics={"usd": usd})
'''


@pytest.fixture
def money(ws: Workspace) -> Iterator[None]:
    (ws.root / "steps").mkdir()
    (ws.root / "steps" / "__init__.py").write_text("")
    (ws.root / "steps" / "money.py").write_text(textwrap.dedent(MONEY))
    yield
    for name in [m for m in sys.modules if m == "steps" or m.startswith("steps.")]:
        del sys.modules[name]


def _config(ws: Workspace, text: str) -> None:
    ws.config.write_text(textwrap.dedent(text))


def _run(ws: Workspace, text: str, name: str):
    return run_plan(ws, RunOptions(plan=str(write_plan(ws.root, text, f"{name}.yaml")), render_interval=0))


def _events(ws: Workspace, kind: str) -> list[dict]:
    return [e for e in read_events(ws.events) if e["kind"] == kind]


def test_one_webhook_per_kind_in_coords_json_and_in_slacks_shape(ws, hooks, money, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", SECRET)
    _config(ws, f"""
        notify:
          targets:
            - name: generic
              webhook: {hooks.url}/generic
              headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}
            - name: chat
              webhook: {hooks.url}/slack
              format: slack
        """)
    assert _run(ws, ACCEPT, "checked").phase == "failed"  # accept_failed, run_failed
    gated = _run(ws, GATE, "gated")  # gate_waiting
    assert gated.phase == "waiting"
    assert record_decision(ws, "signoff", "approve", by="ana").phase == "finished"  # run_finished
    assert _run(ws, BUDGET, "paid").phase == "waiting"  # budget_alert, budget_hold

    generic = hooks.of("/generic")
    kinds = sorted(body["kind"] for _, body in generic)
    assert kinds == sorted(["accept_failed", "run_failed", "gate_waiting", "run_finished", "budget_alert",
                            "budget_hold"])  # one each: three held or alerting events make one notice each
    by_kind = {body["kind"]: (headers, body) for headers, body in generic}
    headers, gate = by_kind["gate_waiting"]
    assert headers["Authorization"] == f"Bearer {SECRET}" and headers["Content-Type"] == "application/json"
    assert gate["source"] == "coord" and gate["run_id"] == gated.run_id and gate["plan"] == "gated"
    assert gate["event"]["kind"] == "gate_decided" and gate["event"]["gate"] == "signoff"
    assert "`coord approve signoff`" in gate["text"]
    assert "task notes of run" in by_kind["accept_failed"][1]["text"] and "reports/notes.md" in \
        by_kind["accept_failed"][1]["text"]
    assert by_kind["budget_alert"][1]["event"]["threshold"] == 0.5
    assert "crossed 50% of its budget ($0.30 spent of $0.50)" in by_kind["budget_alert"][1]["text"]
    assert "coord budget raise" in by_kind["budget_hold"][1]["text"]

    slack = [body for _, body in hooks.of("/slack")]
    assert len(slack) == 6
    for body in slack:
        assert set(body) == {"text", "blocks"} and body["text"].startswith("coord: ")
        [block] = body["blocks"]
        assert block["type"] == "section" and block["text"]["type"] == "mrkdwn"
    attempts = _events(ws, "notify_attempt")
    assert len(attempts) == 12 and all(a["ok"] and a["status"] == 200 and a["attempt"] == 1 for a in attempts)
    assert {a["target"] for a in attempts} == {"generic", "chat"}
    for path in ws.root.rglob("*"):  # the header's secret is nowhere coord wrote
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_500_is_retried_with_backoff_and_the_attempts_are_logged(ws, hooks):
    _config(ws, f"""
        notify:
          targets:
            - {{name: flaky, webhook: "{hooks.url}/flaky", when: [run_finished]}}
        """)
    assert _run(ws, "name: one\ntasks:\n  - {id: a, title: A, role: lead, run: t_noop}\n", "one").phase == "finished"
    assert len(hooks.of("/flaky")) == 2
    attempts = [(a["attempt"], a["ok"], a["status"]) for a in _events(ws, "notify_attempt")]
    assert attempts == [(1, False, 500), (2, True, 200)]
    first, second = _events(ws, "notify_attempt")
    assert first["about"] == "run_finished" and first["notice"] == second["notice"]
    assert _events(ws, "notify_dropped") == []


SPEND = """name: spend
budget: {usd: 1.0, alerts: [0.25]}
tasks:
  - {id: s1, title: One, role: lead, run: 'steps.money:spend', with: {usd: 0.3, ref: s1}}
  - {id: s2, title: Two, role: lead, needs: [s1], run: t_sleep, with: {seconds: 0.3}}
  - {id: s3, title: Three, role: lead, needs: [s2], run: t_sleep, with: {seconds: 0.3}}
"""


@pytest.mark.slow  # two runs, and a grace period
def test_a_hanging_or_failing_target_neither_slows_nor_fails_the_run(ws, tmp_path, hooks, money):
    plain_ws = Workspace.at(tmp_path / "plain")
    plain_ws.root.mkdir()
    shutil.copytree(ws.root / "steps", plain_ws.root / "steps")  # the same steps, without notify:
    start = time.monotonic()
    plain = _run(plain_ws, SPEND, "spend")
    without = time.monotonic() - start
    _config(ws, f"""
        notify:
          grace_s: 0.5
          targets:
            - {{name: hang, webhook: "{hooks.url}/hang", timeout_s: 20}}
            - {{name: fail, webhook: "{hooks.url}/fail", retries: 5}}
        """)
    start = time.monotonic()
    summary = _run(ws, SPEND, "spend")
    with_notify = time.monotonic() - start

    assert (summary.phase, summary.exit_code) == (plain.phase, plain.exit_code) == ("finished", 0)
    # the budget alert went out mid-run: a hanging target would hold the run 20 s per attempt, the failing
    # one 0.5 + 1 + 2 + 4 + 8 s of backoff; the run waits its 0.5 s grace at the end, no more
    assert with_notify < without + 0.5 + 3.0, (without, with_notify)
    assert [b["kind"] for _, b in hooks.of("/hang")] == ["budget_alert"]  # run_finished waits behind it
    assert hooks.of("/fail")[0][1]["kind"] == "budget_alert"
    dropped = {(e["target"], e["about"]): e["reason"] for e in _events(ws, "notify_dropped")}
    assert "grace period" in dropped[("hang", "budget_alert")] and ("hang", "run_finished") in dropped
    assert "grace period" in dropped[("fail", "budget_alert")]
    failed = [a for a in _events(ws, "notify_attempt") if a["target"] == "fail"]
    assert len(failed) >= 2 and all(not a["ok"] and a["status"] == 500 for a in failed)
    assert [a["attempt"] for a in failed] == list(range(1, len(failed) + 1))


def test_the_desktop_target_rings_the_bell_without_notify_send(ws, hooks, monkeypatch, capfd):
    monkeypatch.setenv("PATH", str(ws.root))  # no notify-send here
    _config(ws, """
        notify:
          targets:
            - {desktop: true, when: [gate_waiting]}
        """)
    assert _run(ws, GATE, "gated").phase == "waiting"
    err = capfd.readouterr().err
    assert "\acoord: gate waiting: gate signoff of run" in err and "`coord approve signoff`" in err
    [attempt] = _events(ws, "notify_attempt")
    assert (attempt["target"], attempt["ok"], attempt["about"]) == ("desktop", True, "gate_waiting")


def test_the_desktop_target_uses_notify_send_when_it_is_on_path(ws, monkeypatch, tmp_path):
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    fake = bin_dir / "notify-send"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> {calls}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    _config(ws, "notify:\n  targets:\n    - {desktop: true, when: [run_finished]}\n")
    assert _run(ws, "name: one\ntasks:\n  - {id: a, title: A, role: lead, run: t_noop}\n", "one").phase == "finished"
    args = calls.read_text().splitlines()
    assert args[:2] == ["--app-name=coord", "coord: run finished"] and "finished: every task done" in args[2]


def test_a_secret_in_a_webhook_url_is_masked_in_the_errors_the_event_log_keeps(ws, monkeypatch):
    monkeypatch.setenv("HOOK_PATH", SECRET)
    _config(ws, "notify:\n  grace_s: 0.2\n  targets:\n    - webhook: http://127.0.0.1:9/${HOOK_PATH}\n"
                "      retries: 0\n      when: [run_finished]\n")
    assert _run(ws, "name: one\ntasks:\n  - {id: a, title: A, role: lead, run: t_noop}\n", "one").phase == "finished"
    [attempt] = _events(ws, "notify_attempt")
    assert not attempt["ok"] and attempt["error"] and attempt["target"] == "webhook 1 (127.0.0.1)"
    assert SECRET not in ws.events.read_text()


def test_a_full_queue_drops_the_notice_and_says_so(ws, hooks, monkeypatch):
    monkeypatch.setattr(notify, "QUEUE_SIZE", 1)
    _config(ws, f"notify:\n  grace_s: 0.2\n  targets:\n    - {{name: hang, webhook: '{hooks.url}/hang'}}\n")
    three = ACCEPT + "".join(f"  - {{id: n{i}, title: N, role: lead, run: t_noop, accept: [{{file: no{i}.md}}]}}\n"
                             for i in (2, 3))
    assert _run(ws, three, "checked").phase == "failed"  # four notices: three accept_failed, a run_failed
    reasons = [e["reason"] for e in _events(ws, "notify_dropped")]
    # one is in flight to the hanging target and one waits in its queue of 1: the others do not fit
    assert reasons.count("more than 1 notices waiting") >= 2
    assert len(_events(ws, "notify_dropped")) == 4  # every notice accounted for: in flight, queued, refused


def test_a_bad_notify_section_is_refused_before_anything_runs_with_file_line_and_field(ws, monkeypatch):
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    _config(ws, """\
        notify:
          targets:
            - webhook: ftp://example.invalid/hook
            - webhook: https://example.invalid/x
              headers: {Authorization: "Bearer ${NO_SUCH_TOKEN}"}
              when: [gate, run_failed]
              format: teams
            - {desktop: yes please}
          graze_s: 2
        """)
    path = write_plan(ws.root, "name: one\ntasks:\n  - {id: a, title: A, role: lead, run: t_noop}\n", "one.yaml")
    result = CliRunner().invoke(app, ["run", str(path), "-w", str(ws.root)])
    assert result.exit_code == 2
    err = result.stderr.replace(f"{ws.root}/", "")
    for expected in ("coord.yaml:3 → notify.targets[0].webhook: must be an http:// or https:// URL",
                     "coord.yaml:5 → notify.targets[1].headers.Authorization: environment variable NO_SUCH_TOKEN "
                     "is not set",
                     "coord.yaml:6 → notify.targets[1].when[0]: unknown kind 'gate'",
                     "coord.yaml:7 → notify.targets[1].format: must be json or slack, got 'teams'",
                     "coord.yaml:8 → notify.targets[2].desktop: must be true, got 'yes please'",
                     "coord.yaml:9 → notify.graze_s: unknown field"):
        assert expected in err, f"missing {expected!r} in:\n{err}"
    assert "Traceback" not in result.output and not (ws.root / ".coord").exists()


def test_a_resume_without_the_notify_secret_goes_on_without_notifications(ws, hooks, monkeypatch, caplog):
    monkeypatch.setenv("HOOK_TOKEN", SECRET)
    _config(ws, f"""
        notify:
          targets:
            - {{webhook: "{hooks.url}/generic", headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}}}
        """)
    assert _run(ws, GATE, "gated").phase == "waiting"
    monkeypatch.delenv("HOOK_TOKEN")  # another shell: `coord approve` must still approve
    with caplog.at_level("WARNING", logger="coordinator.engine.notify"):
        assert record_decision(ws, "signoff", "approve", by="ana").phase == "finished"
    assert "notifications are off for run" in caplog.text and "HOOK_TOKEN is not set" in caplog.text
    assert [b["kind"] for _, b in hooks.of("/generic")] == ["gate_waiting"]
