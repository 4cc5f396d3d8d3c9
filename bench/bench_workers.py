"""Workers: makespan of a plan of sleeping tasks with 1, 2, 4 and 8 `coord worker` processes, and claim latency.

Each round uses a fresh database and workspace (``workers: true``), starts N workers (concurrency 1
each), waits until every one is listed live, then runs the plan with ``coord run --concurrency 64``
(the coordinator queues up to 64 tasks; the workers take them). Makespan is the time from the run's
``run_started`` event to its ``run_finished`` event (process start-up excluded). Speed-up is against
one worker; the target (issue 12) is ≥ 0.8 × N.

Claim latency is measured apart, with the queue kept short (``--concurrency`` equal to the number of
workers, so a worker is idle when a task is queued): from the job's ``deferred`` event to its
``started`` event in procrastinate's event table (both the database's clock). p50 and p95.

The server is ``--url`` (a database coord may create databases on), else ``COORD_TEST_DATABASE_URL``,
else a throw-away one started from the system's initdb/pg_ctl (tests/postgres/server.py).

Usage: python bench/bench_workers.py [--tasks 200] [--seconds 0.5] [--workers 1,2,4,8] [--url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg

from tests.conftest import database_url
from tests.e2e.conftest import coord_cmd, coord_env
from tests.postgres.server import PgServer

STEPS = '''from coordinator import StepContext, StepResult, step
import time


@step()
def nap(ctx: StepContext, *, seconds: float = 0.5) -> StepResult:
    time.sleep(seconds)
    return StepResult(metrics={"slept": seconds})
'''


def plan_text(n: int, seconds: float) -> str:
    """``n`` independent tasks, each sleeping ``seconds``."""
    return "name: naps\ntasks:\n" + "".join(
        f"  - {{id: t{i}, title: T{i}, role: lead, run: 'bench_naps:nap', with: {{seconds: {seconds}}}}}\n"
        for i in range(n))


def _env() -> dict[str, str]:
    env = coord_env()
    env.pop("COORD_DATABASE_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _coord(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*coord_cmd(), *args], cwd=root, capture_output=True, text=True, env=_env(),
                          stdin=subprocess.DEVNULL, timeout=1800)


def _new_database(admin: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    return database_url(admin, name)


def _at(event: dict) -> datetime:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))


def round_(admin: str, workers: int, n: int, seconds: float, concurrency: int) -> dict:
    """One run with ``workers`` workers: makespan and claim latencies."""
    url = _new_database(admin)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "coord.yaml").write_text(f"database: {url}\nworkers: true\n")
        (root / "bench_naps.py").write_text(STEPS)
        (root / "plan.yaml").write_text(plan_text(n, seconds))
        procs = [subprocess.Popen([*coord_cmd(), "worker", "--name", f"w{i}"], cwd=root, env=_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
                 for i in range(workers)]
        try:
            deadline = time.monotonic() + 120
            while True:
                out = _coord(root, "workers", "--json")
                live = [w for w in json.loads(out.stdout or "[]") if w["live"]] if out.returncode == 0 else []
                if len(live) == workers:
                    break
                assert time.monotonic() < deadline, out.stderr
                time.sleep(0.2)
            run = _coord(root, "run", "plan.yaml", "--concurrency", str(concurrency))
            assert run.returncode == 0, run.stderr
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=60)
        events = [json.loads(line) for line in (root / ".coord" / "events.jsonl").read_text().splitlines()]
        first = next(e for e in events if e["kind"] == "run_started")
        last = next(e for e in reversed(events) if e["kind"] == "run_finished")
        finished = [e for e in events if e["kind"] == "task_finished"]
        assert len(finished) == n and len({e["task"] for e in finished}) == n
        with psycopg.connect(url) as conn:
            ns = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'coord\\_%'").fetchone()[0]
            conn.execute(f'SET search_path TO "{ns}"')
            rows = conn.execute(
                "SELECT EXTRACT(EPOCH FROM min(at) FILTER (WHERE type = 'started') - min(at) FILTER "
                "(WHERE type = 'deferred')) FROM procrastinate_events GROUP BY job_id").fetchall()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    waits = sorted(float(r[0]) for r in rows if r[0] is not None)
    return {"workers": workers, "makespan_s": (_at(last) - _at(first)).total_seconds(), "claims": waits}


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--workers", default="1,2,4,8")
    ap.add_argument("--latency-tasks", type=int, default=60)
    ap.add_argument("--url", default=os.environ.get("COORD_TEST_DATABASE_URL"))
    args = ap.parse_args()
    server = None
    admin = args.url
    if admin is None:
        server = PgServer().start()
        admin = server.url
    try:
        print(f"load average before: {os.getloadavg()}")
        results = []
        for n in (int(x) for x in args.workers.split(",")):
            r = round_(admin, n, args.tasks, args.seconds, 64)
            results.append(r)
            base = results[0]["makespan_s"] * results[0]["workers"]
            speedup = base / r["makespan_s"]
            print(f"{n} worker(s): makespan {r['makespan_s']:.2f}s for {args.tasks} × {args.seconds}s tasks "
                  f"(ideal {args.tasks * args.seconds / n:.2f}s); speed-up {speedup:.2f}× = "
                  f"{speedup / n:.2f} of linear", flush=True)
        lat = round_(admin, 4, args.latency_tasks, 0.1, 4)
        claims = lat["claims"]
        print(f"claim latency (4 workers, queue kept short, {len(claims)} tasks): p50 {1000 * _pct(claims, 50):.0f} ms, "
              f"p95 {1000 * _pct(claims, 95):.0f} ms, max {1000 * max(claims):.0f} ms")
        print(f"load average after: {os.getloadavg()}")
    finally:
        if server is not None:
            server.remove()


if __name__ == "__main__":
    main()
