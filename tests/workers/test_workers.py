"""`coord worker` processes take a run's tasks from the queue: each task done exactly once, a killed worker's
task taken over after its lease, `requires:` honoured and explained by `coord status`, `coord workers`."""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter

import pytest

from tests.e2e.conftest import coord_cmd
from tests.workers.conftest import sleep_plan

pytestmark = pytest.mark.slow


def _finished(events: list[dict]) -> Counter[str]:
    return Counter(e["task"] for e in events if e["kind"] == "task_finished")


def test_a_plan_run_by_three_workers_does_every_task_exactly_once(workers_ws):
    ws = workers_ws(lease_s=10)
    (ws.root / "p.yaml").write_text(sleep_plan(9, 0.3))
    for name in ("w1", "w2", "w3"):
        ws.worker(name)
    run = ws.coord("run", "p.yaml", "--concurrency", "9")
    assert run.returncode == 0, run.stderr + ws.logs()
    events = ws.events()
    assert _finished(events) == Counter({f"s{i}": 1 for i in range(9)})
    started = [e for e in events if e["kind"] == "task_started"]
    assert len(started) == 9 and all(e.get("worker") in {"w1", "w2", "w3"} for e in started)  # none ran locally
    assert len({e["worker"] for e in started}) >= 2  # the work was shared
    status = json.loads(ws.coord("status", "--json").stdout)
    assert status["phase"] == "finished" and {t["status"] for t in status["tasks"].values()} == {"done"}


def test_a_worker_killed_mid_task_loses_it_and_another_finishes_it_once(workers_ws):
    ws = workers_ws(lease_s=2)
    (ws.root / "p.yaml").write_text(sleep_plan(1, 2.5))
    doomed = ws.worker("doomed")
    run = ws.start("run", "p.yaml")
    ws.wait_for(lambda: any(e["kind"] == "task_started" for e in ws.events()), "the task to start", run)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    assert any(w["name"] == "doomed" for w in ws.workers())  # listed until it is known dead
    ws.worker("heir")
    assert run.wait(timeout=120) == 0, ws.logs()
    events = ws.events()
    started = [e["worker"] for e in events if e["kind"] == "task_started"]
    assert started == ["doomed", "heir"]  # the same dispatch, taken over
    assert [(e["task"], e["dispatch"], e["worker"]) for e in events if e["kind"] == "task_finished"] == \
        [("s0", 1, "heir")]
    listed = {w["name"]: w for w in ws.workers()}
    assert not listed["doomed"]["live"] and listed["heir"]["live"]
    import psycopg  # Postgres tests only

    with psycopg.connect(ws.url) as conn:
        schema = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'coord_%'").fetchone()[0]
        conn.execute(f'SET search_path TO "{schema}"')
        results = conn.execute("SELECT task, dispatch, worker FROM coord_task_results").fetchall()
        duplicated = conn.execute("SELECT count(*) FROM (SELECT run_id, kind, ref FROM calls GROUP BY "
                                  "run_id, kind, ref HAVING count(*) > 1) d").fetchone()[0]
    assert results == [("s0", 1, "heir")] and duplicated == 0


GPU_TASK = "  - {id: g, title: G, role: execution, run: t_sleep, with: {seconds: 0.1}, requires: [gpu]}\n"


def test_a_task_requiring_gpu_waits_for_a_gpu_worker_and_status_says_why(workers_ws):
    ws = workers_ws(lease_s=10)
    (ws.root / "p.yaml").write_text(sleep_plan(2, 0.1, GPU_TASK))
    ws.worker("plain")
    run = ws.start("run", "p.yaml")

    def g_waits() -> bool:
        st = json.loads(ws.coord("status", "--json").stdout or "{}")
        tasks = st.get("tasks", {})
        return tasks.get("s0", {}).get("status") == "done" and "waits for a worker with gpu" in \
            str(tasks.get("g", {}).get("reason"))

    ws.wait_for(g_waits, "g to wait for a gpu worker", run)
    assert run.poll() is None  # the run waits for it
    table = ws.coord("status").stdout
    assert "waits for a worker with gpu" in table
    listing = ws.coord("workers").stdout
    assert "plain" in listing and "live" in listing and "gpu" not in listing
    ws.worker("gpu-box", "--capabilities", "gpu,claude-cli")
    assert run.wait(timeout=120) == 0, ws.logs()
    by = {e["task"]: e["worker"] for e in ws.events() if e["kind"] == "task_started"}
    assert by["g"] == "gpu-box" and by["s0"] in {"plain", "gpu-box"}
    listing = ws.coord("workers").stdout
    assert "gpu-box" in listing and "claude-cli,gpu" in listing


def test_sigterm_lets_a_worker_finish_its_task_then_stop(workers_ws):
    ws = workers_ws(lease_s=10)
    (ws.root / "p.yaml").write_text(sleep_plan(1, 1.5))
    w = ws.worker("polite")
    run = ws.start("run", "p.yaml")
    ws.wait_for(lambda: any(e["kind"] == "task_started" for e in ws.events()), "the task to start", run)
    w.send_signal(signal.SIGTERM)
    assert w.wait(timeout=60) == 0, ws.logs()
    assert run.wait(timeout=60) == 0, ws.logs()
    assert [(e["task"], e["worker"]) for e in ws.events() if e["kind"] == "task_finished"] == [("s0", "polite")]
    assert ws.workers() == []  # it said it stopped
    assert "worker polite stopped" in ws.logs()


def test_a_coordinator_killed_mid_run_resumes_while_the_workers_keep_going(workers_ws):
    ws = workers_ws(lease_s=10)
    (ws.root / "p.yaml").write_text(sleep_plan(6, 1.0))
    ws.worker("w1")
    ws.worker("w2")
    run = ws.start("run", "p.yaml", "--concurrency", "6")
    ws.wait_for(lambda: sum(e["kind"] == "task_finished" for e in ws.events()) >= 2, "two tasks to finish", run)
    run.send_signal(signal.SIGKILL)
    run.wait()
    # the tasks it queued are done without it
    ws.wait_for(lambda: sum(e["kind"] == "task_finished" for e in ws.events()) == 6, "the workers to finish")
    resumed = ws.coord("resume")
    assert resumed.returncode == 0, resumed.stderr + ws.logs()
    events = ws.events()
    assert _finished(events) == Counter({f"s{i}": 1 for i in range(6)})
    assert Counter(e["task"] for e in events if e["kind"] == "task_started") == Counter({f"s{i}": 1 for i in range(6)})
    status = json.loads(ws.coord("status", "--json").stdout)
    assert status["phase"] == "finished" and {t["status"] for t in status["tasks"].values()} == {"done"}


def _data(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "data").rglob("*"))
            if p.is_file() and not p.name.endswith(".manifest.json") and not p.name.startswith(".")}


def test_week2_on_three_workers_writes_the_same_data_as_the_sqlite_run(workers_ws, tmp_path):
    from tests.e2e.conftest import SMALL

    lite = tmp_path / "lite"
    lite.mkdir()
    ws = workers_ws(lease_s=30)
    plain = subprocess.run([*coord_cmd(), "run", "week2", *SMALL], cwd=lite, capture_output=True, text=True,
                           env={k: v for k, v in ws.env().items() if k != "COORD_DATABASE_URL"}, timeout=600,
                           stdin=subprocess.DEVNULL)
    assert plain.returncode == 0, plain.stderr
    for name in ("w1", "w2", "w3"):
        ws.worker(name)
    run = ws.coord("run", "week2", *SMALL, "--concurrency", "8", timeout=600)
    assert run.returncode == 0, run.stderr + ws.logs()
    ours, theirs = _data(lite), _data(ws.root)
    assert len(ours) > 20 and ours.keys() == theirs.keys()
    assert [k for k in ours if ours[k] != theirs[k]] == []
    events = ws.events()
    assert all(n == 1 for n in _finished(events).values())
    assert {e.get("worker") for e in events if e["kind"] == "task_started"} <= {"w1", "w2", "w3"}


def test_the_coordinators_notify_targets_hear_a_task_that_failed_its_checks_on_a_worker(workers_ws):
    from tests.coordinator.test_notify import ACCEPT

    received: list[dict] = []
    server = _hook_server(received)
    try:
        ws = workers_ws(lease_s=10)
        with open(ws.root / "coord.yaml", "a") as config:
            config.write(f"notify:\n  targets:\n    - {{name: team, webhook: {server[0]}/hook, when: "
                         "[accept_failed, run_failed]}\n")
        (ws.root / "p.yaml").write_text(ACCEPT)
        ws.worker("w1")
        run = ws.coord("run", "p.yaml")
        assert run.returncode == 1, run.stderr + ws.logs()
        started = [e for e in ws.events() if e["kind"] == "task_started"]
        assert [e.get("worker") for e in started] == ["w1"]  # the worker ran it, not the coordinator
        kinds = sorted(body["kind"] for body in received)
        assert kinds == ["accept_failed", "run_failed"], received
        assert "reports/notes.md" in next(b["text"] for b in received if b["kind"] == "accept_failed")
    finally:
        server[1].shutdown()


def _hook_server(received: list[dict]):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers.get("content-length") or 0))))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


PAYING_STEP = '''
import time
from coordinator import StepContext, StepResult, step


@step(paid=lambda params: True)
def pay_then_work(ctx: StepContext, *, usd: float, ref: str, seconds: float) -> StepResult:
    ctx.record_cost(usd, model="m", provider="p", ref=ref)  # the paid call, made before the work
    time.sleep(seconds)
    return StepResult(metrics={"usd": usd})
'''


def test_a_paid_call_made_before_a_worker_was_killed_is_booked_once_when_another_redoes_the_task(workers_ws):
    """The side effect (a paid call) happens again when the heir redoes the task; its ledger row is keyed by
    (run, kind, ref), so the second booking is detected and the spend is not doubled."""
    ws = workers_ws(lease_s=2)
    (ws.root / "steps").mkdir()
    (ws.root / "steps" / "__init__.py").write_text("")
    (ws.root / "steps" / "paying.py").write_text(PAYING_STEP)
    (ws.root / "p.yaml").write_text("name: paid\ntasks:\n  - {id: buy, title: Buy, role: lead, "
                                    "run: 'steps.paying:pay_then_work', with: {usd: 0.25, ref: buy-1, seconds: 3}}\n")
    doomed = ws.worker("doomed")
    run = ws.start("run", "p.yaml", "--budget", "5")
    ws.wait_for(lambda: any(e["kind"] == "task_started" for e in ws.events()), "the task to start", run)
    import time

    time.sleep(1.0)  # past the paid call, in the middle of the work
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    ws.worker("heir")
    assert run.wait(timeout=120) == 0, ws.logs()
    started = [e["worker"] for e in ws.events() if e["kind"] == "task_started"]
    assert started == ["doomed", "heir"]  # the task was done twice, its payment made twice
    import psycopg  # Postgres tests only

    with psycopg.connect(ws.url) as conn:
        schema = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'coord_%'").fetchone()[0]
        conn.execute(f'SET search_path TO "{schema}"')
        rows = conn.execute("SELECT ref, usd FROM calls WHERE pending = 0").fetchall()
    assert rows == [("buy-1", 0.25)]
    costs = json.loads(ws.coord("costs", "--json").stdout)
    assert [(t["calls"], t["usd"]) for t in costs["task"]] == [(1, 0.25)]  # what coord reports: paid once
