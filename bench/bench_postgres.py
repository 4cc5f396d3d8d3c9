"""Coordination overhead per task on Postgres beside SQLite: the same no-op plan, alternating, one process.

Each repeat runs ``run_plan`` on a generated plan of no-op tasks (boards, events, ledger, status —
everything a real run does) in a fresh temporary workspace twice: once on the embedded SQLite
files, once with ``COORD_DATABASE_URL`` on a fresh Postgres database. The two alternate (sqlite,
postgres, sqlite, …) so machine load hits both alike; the load average is printed before and
after. Reported: ms per task (median of the repeats) and the ratio.

The server is ``--url`` (a database coord may create databases on), else ``COORD_TEST_DATABASE_URL``,
else a throw-away one started from the system's initdb/pg_ctl (tests/postgres/server.py; fsync
off, as the SQLite side runs with synchronous=NORMAL).

Usage: python bench/bench_postgres.py [--tasks 1000] [--shape dag] [--concurrency 8] [--repeat 3] [--url URL]
Target (issue 12): Postgres ≤ 2× SQLite per task at 1,000 tasks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.bench_coordination import STEPS_MODULE, plan_text, shape_edges
from coordinator.core.database import close_all
from coordinator.core.workspace import Workspace
from coordinator.engine.runner import RunOptions, run_plan
from tests.conftest import database_url
from tests.postgres.server import PgServer


def run_once(edges: list[tuple[str, list[str]]], concurrency: int, url: str | None) -> float:
    """Seconds for one run of the plan on SQLite (``url`` None) or on the database ``url``."""
    if url is None:
        os.environ.pop("COORD_DATABASE_URL", None)
    else:
        os.environ["COORD_DATABASE_URL"] = url
    try:
        with tempfile.TemporaryDirectory() as d:
            ws = Workspace.at(d)
            (Path(d) / "bench_steps.py").write_text(STEPS_MODULE)
            path = Path(d) / "plan.yaml"
            path.write_text(plan_text(edges))
            t0 = time.perf_counter()
            summary = run_plan(ws, RunOptions(plan=str(path), concurrency=concurrency))
            elapsed = time.perf_counter() - t0
            assert summary.phase == "finished", summary.problems
            assert (ws.state_dir / "state.sqlite").exists() == (url is None)
            sys.modules.pop("bench_steps", None)
            return elapsed
    finally:
        os.environ.pop("COORD_DATABASE_URL", None)
        close_all()


def fresh_database(admin_url: str) -> str:
    name = f"coord_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    return database_url(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--shape", choices=("chain", "wide", "dag"), default="dag")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--url", default=os.environ.get("COORD_TEST_DATABASE_URL"))
    args = ap.parse_args()
    server = None
    admin = args.url
    if admin is None:
        server = PgServer().start()
        admin = server.url
    edges = shape_edges(args.tasks, args.shape)
    times: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  ({os.cpu_count()} cores)")
    try:
        run_once(edges[:20], args.concurrency, None)  # warm imports and caches for both
        for _ in range(args.repeat):
            times["sqlite"].append(run_once(edges, args.concurrency, None))
            url = fresh_database(admin)
            try:
                times["postgres"].append(run_once(edges, args.concurrency, url))
            finally:
                drop_database(admin, url)
    finally:
        if server is not None:
            server.remove()
    print(f"load after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    per = {k: statistics.median(v) * 1000 / args.tasks for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:9s} {per[k]:7.2f} ms/task  (runs: {', '.join(f'{t:.2f}s' for t in v)})")
    ratio = per["postgres"] / per["sqlite"]
    print(f"postgres / sqlite = {ratio:.2f}  (target <= 2.0; {args.tasks} tasks, shape {args.shape}, "
          f"concurrency {args.concurrency})")


if __name__ == "__main__":
    main()
