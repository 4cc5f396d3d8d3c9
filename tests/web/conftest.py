"""Workspaces with runs for the dashboard tests: a run waiting at a human gate, a ledger with spend
over time, a benchmark report, and a client or a real server for each."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import git
import orjson
import pytest
from starlette.testclient import TestClient

from coordinator.core.events import read_events
from coordinator.core.llm import CallRecord, Cost, Usage
from coordinator.core.workspace import Workspace
from coordinator.engine.ledger import Ledger
from coordinator.engine.runner import RunOptions, RunSummary, run_plan
from coordinator.web.app import create_app
from coordinator.web.config import ServeConfig
from coordinator.web.server import DashboardServer
from tests.coordinator.steps_for_tests import write_plan

TOKEN = "test-token-0123456789abcdef"
PERSON = "Dana Decider"

GATED_PLAN = """name: webplan
title: Dashboard test plan
budget: {usd: 2.0}
tasks:
  - {id: make, title: Make the data, role: execution, run: t_write, with: {out: out/a.txt, metric: 0.8}}
  - {id: check, title: Check the data, role: quality, needs: [make], run: t_noop}
  - {id: ship, title: Ship it, role: lead, needs: [check], run: g_count, with: {label: shipped}}
  - {id: side, title: A side job, role: quality, run: t_noop}
gates:
  - id: signoff
    title: Sign-off by a person
    after: [make]
    blocks: [ship]
    policy: human
    criteria:
      - {metric: make.metric, op: ">=", value: 0.5, critical: true, label: "metric at least 0.5"}
"""
"""A run of this plan stops with ``signoff`` waiting for a person and ``ship`` blocked behind it."""

SLOW_PLAN = GATED_PLAN.replace(
    "  - {id: side, title: A side job, role: quality, run: t_noop}",
    "  - {id: side, title: A side job, role: quality, run: t_noop}\n"
    "  - {id: slow, title: Wait for release, role: execution, needs: [side], run: t_wait_for_file, "
    "with: {name: release}}")
"""As :data:`GATED_PLAN`, plus ``slow``, which runs until the test creates the file ``release``."""


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A workspace that is a git repository whose user is "Ana Reviewer"."""
    root = tmp_path / "ws"
    root.mkdir()
    repo = git.Repo.init(root)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Ana Reviewer")
        cw.set_value("user", "email", "ana@example.invalid")
    return Workspace.at(root)


def start_run(ws: Workspace, text: str = GATED_PLAN) -> RunSummary:
    """Run ``text`` to its end or its first wait."""
    path = write_plan(ws.root, text, "webplan.yaml")
    return run_plan(ws, RunOptions(plan=str(path), render_interval=0))


@pytest.fixture
def waiting_run(ws: Workspace) -> RunSummary:
    """A run of :data:`GATED_PLAN`, waiting at ``signoff``."""
    summary = start_run(ws)
    assert summary.phase == "waiting", summary.problems
    return summary


def seed_costs(ws: Workspace, run_id: str) -> None:
    """Calls of three roles and three models over twenty minutes, crossing the 25 % and 50 % alerts of
    the $2 budget (with their events), one of unknown cost, as a run with paid roles leaves them."""
    ledger = Ledger.of(ws.state_dir)
    start = datetime.now(UTC) - timedelta(minutes=20)
    calls = [("make", "execution", "cursor", "openai", "gpt-5-mini", 0.08), ("check", "quality", "codex", "openai",
             "gpt-5", 0.21), ("make", "execution", "cursor", "openai", "gpt-5-mini", 0.05),
             ("side", "quality", "codex", "openai", "gpt-5", 0.18), ("ship", "lead", "claude", "anthropic",
             "claude-sonnet-4-5", 0.27), ("check", "quality", "codex", "openai", "gpt-5", 0.09),
             ("ship", "lead", "claude", "anthropic", "claude-sonnet-4-5", 0.22)]
    spent, alerts, times = 0.0, [], []
    for i, (task, role, agent, provider, model, usd) in enumerate(calls):
        ledger.record(CallRecord("llm", provider, model, Usage(1200 + 300 * i, 400 + 50 * i), Cost(usd),
                                 duration_s=2.5 + i, ref=f"call-{i}"), run_id=run_id, task_id=task, role=role,
                      agent=agent)
        at = start + timedelta(minutes=3 * i)
        times.append(at)
        before, spent = spent, spent + usd
        alerts += [(at, t, spent) for t in (0.25, 0.5, 0.8) if before < 2.0 * t <= spent]
    ledger.record(CallRecord("llm", "openai_compatible", "local-llama", Usage(900, 300), Cost(None, "no price for "
                             "local-llama"), ref="call-unknown"), run_id=run_id, task_id="side", role="quality",
                  agent="codex")
    times.append(start + timedelta(minutes=19))
    with sqlite3.connect(ledger.path) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM calls WHERE run_id = ? ORDER BY id", (run_id,))]
        for row_id, at in zip(ids, times, strict=True):
            conn.execute("UPDATE calls SET at = ? WHERE id = ?", (at.isoformat(timespec="milliseconds"), row_id))
    with ws.events.open("ab") as fh:
        for at, threshold, total in alerts:
            fh.write(orjson.dumps({"ts": at.isoformat(timespec="milliseconds"), "run": run_id, "kind": "budget_alert",
                                   "threshold": threshold, "spent_usd": round(total, 8), "limit_usd": 2.0}) + b"\n")


def write_benchmark(ws: Workspace) -> Path:
    """A small week2-shaped benchmark report at ``reports/benchmark/benchmark.json``."""
    agents = {
        "qa": (40, 12, 29, (0.18, 0.45), (0.57, 0.84)),
        "support": (40, 15, 27, (0.24, 0.53), (0.52, 0.80)),
        "legal": (40, 9, 30, (0.12, 0.38), (0.60, 0.86)),
    }
    data = {"schema_version": 2, "model": "offline-tfidf-retrieval", "stand_in": "Offline stand-in for a fine-tuned LLM",
            "params": {"confidence": 0.95, "alpha": 0.05}, "leakage": {"leaked_ids": 0},
            "agents": {name: {"n": n, "baseline_correct": b, "candidate_correct": c, "baseline_accuracy": b / n,
                              "candidate_accuracy": c / n, "baseline_ci": list(bci), "candidate_ci": list(cci),
                              "absolute_improvement": 100 * (c - b) / n, "mcnemar_p": 0.0004, "adjusted_p": 0.0006,
                              "cohens_h": 0.9, "significant": True}
                       for name, (n, b, c, bci, cci) in agents.items()},
            "pooled": {"n": 120, "baseline_accuracy": 0.3, "candidate_accuracy": 0.7167, "baseline_ci": [0.23, 0.39],
                       "candidate_ci": [0.63, 0.79], "absolute_improvement": 41.67, "mcnemar_p": 1e-9,
                       "cohens_h": 0.85}}
    path = ws.reports / "benchmark" / "benchmark.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data))
    return path


def config(ws: Workspace, **kw: object) -> ServeConfig:
    """A dashboard configuration for tests (identity :data:`PERSON` unless given)."""
    return ServeConfig(ws=ws, **{"identity": PERSON, "poll_s": 0.05, **kw})  # type: ignore[arg-type]


def client(cfg: ServeConfig) -> TestClient:
    """A test client addressing the dashboard as the browser would (loopback host)."""
    return TestClient(create_app(cfg), base_url="http://127.0.0.1:8765", follow_redirects=False)


@pytest.fixture
def serve() -> Iterator[list[DashboardServer]]:
    """Started servers, stopped at the end of the test."""
    started: list[DashboardServer] = []
    yield started
    for s in started:
        s.stop()


def start_server(started: list[DashboardServer], cfg: ServeConfig) -> DashboardServer:
    """A real dashboard on a free loopback port, on a background thread."""
    server = DashboardServer(cfg)
    server.start()
    started.append(server)
    return server


def events(ws: Workspace, kind: str) -> list[dict]:
    """Events of one kind, every run."""
    return [e for e in read_events(ws.events) if e["kind"] == kind]


def run_in_thread(ws: Workspace, text: str) -> tuple[threading.Thread, list[RunSummary]]:
    """Start a run of ``text`` on a thread; its summary lands in the returned list."""
    out: list[RunSummary] = []
    thread = threading.Thread(target=lambda: out.append(start_run(ws, text)), daemon=True)
    thread.start()
    return thread, out
