"""An LLM call is in the ledger before it is sent — pending, at its worst case — and settled after it ends.

A process killed mid-call leaves the pending row: `coord costs` shows it and the budget counts it at
its estimate. Older ledgers stay readable; one connection serves each thread.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.llm import CallRecord, Cost, LLMRequest, Usage
from coordinator.core.plan import Budget
from coordinator.engine.budget import RunBudget
from coordinator.engine.ledger import LEDGER_SCHEMA_VERSION, Ledger
from roles.providers import ProviderConfig, make_provider
from roles.providers.pricing import worst_case_cost
from tests.fakes.faults import Fault
from tests.fakes.llm_server import FakeLLMServer

KEY = "sk-ant-api03-pending-test-000000000"
PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeLLMServer() as srv:
        yield srv


def _wait_for(predicate, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_a_call_is_pending_while_in_flight_then_settled_with_its_real_usage(tmp_path, server):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    budget = RunBudget(ledger, "r", Budget(usd=1.0), {})
    provider = make_provider(ProviderConfig("anthropic", "claude-haiku-4-5", base_url=server.anthropic_url),
                             sink=budget.for_task("t", "lead", "claude"))
    request = LLMRequest.of("Summarize the release.", max_tokens=1000)
    worst = worst_case_cost("claude-haiku-4-5", request, provider="anthropic").usd
    assert worst is not None and worst >= 1000 * 5.0 / 1e6  # max_tokens at the output price, at least

    server.hold("messages")
    caller = threading.Thread(target=provider.complete, args=(request,))
    caller.start()
    _wait_for(lambda: server.calls("messages"))
    [row] = ledger.calls("r")  # stored before the answer exists
    assert row["pending"] == 1 and row["usd"] == pytest.approx(worst) and row["tokens_out"] == 0
    in_flight = budget.status(in_flight=True).run
    assert in_flight.remaining_usd == pytest.approx(1.0 - worst)  # a new call sees it reserved
    assert budget.status().run.spent_usd == 0.0  # and no alert fires for money not spent

    server.release("messages")
    caller.join(10)
    [row] = ledger.calls("r")
    assert row["pending"] == 0 and row["tokens_out"] > 0 and 0 < row["usd"] < worst
    assert budget.status().run.spent_usd == pytest.approx(row["usd"])


def test_a_failed_call_settles_its_pending_row_as_failed(tmp_path, server):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    budget = RunBudget(ledger, "r", Budget(usd=1.0), {})
    provider = make_provider(ProviderConfig("anthropic", "claude-haiku-4-5", base_url=server.anthropic_url),
                             sink=budget.for_task("t", "lead", "claude"))
    server.inject("messages", Fault.http(400, "bad request"))
    with pytest.raises(Exception, match="bad request"):
        provider.complete(LLMRequest.of("hi"))
    [row] = ledger.calls("r")
    assert row["pending"] == 0 and row["ok"] == 0 and row["usd"] == 0.0
    assert budget.status(in_flight=True).run.remaining_usd == pytest.approx(1.0)


PLAN = """name: paid
roles:
  lead: {{agent: claude, driver: llm, provider: anthropic, model: claude-haiku-4-5, base_url: "{url}"}}
budget: {{usd: 1.0}}
tasks:
  - {{id: notes, title: Notes, role: lead, instructions: Write the notes.}}
"""


@pytest.mark.slow
def test_a_call_cut_off_by_a_kill_stays_pending_in_costs_and_counts_against_the_budget(tmp_path, server):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "paid.yaml").write_text(PLAN.format(url=server.anthropic_url))
    server.hold("messages")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "coordinator", "run", "paid.yaml", "-w", str(root)], cwd=root,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: server.calls("messages"), 60)  # the request is at the server: the call is paid for
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        server.release("messages")

    ledger = Ledger.of(root / ".coord")
    [run_id] = [p.name for p in (root / ".coord" / "runs").iterdir()]
    [row] = ledger.calls(run_id)
    assert row["pending"] == 1 and row["task_id"] == "notes" and row["usd"] > 0
    out = CliRunner().invoke(app, ["costs", "-w", str(root)])
    assert out.exit_code == 0, out.output
    assert "1 pending call(s)" in out.output and "counted against the budget" in out.output
    calls = json.loads(CliRunner().invoke(app, ["costs", "--calls", "--json", "-w", str(root)]).stdout)["calls"]
    assert [(c["task_id"], c["pending"], c["usd"]) for c in calls] == [("notes", 1, row["usd"])]
    shown = CliRunner().invoke(app, ["budget", "show", "-w", str(root)]).output
    assert "1 pending call(s) counted at up to" in shown
    st = RunBudget(ledger, run_id, Budget(usd=1.0), {}).status()
    assert st.run.remaining_usd == pytest.approx(1.0 - row["usd"])  # counted at its estimate


V2_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL, task_id TEXT, role TEXT, agent TEXT,
    kind TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
    tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,
    tokens_cached INTEGER NOT NULL DEFAULT 0, tokens_cache_write INTEGER NOT NULL DEFAULT 0,
    usd REAL, cost_flag TEXT, duration_s REAL NOT NULL DEFAULT 0,
    ok INTEGER NOT NULL DEFAULT 1, error TEXT, ref TEXT, at TEXT NOT NULL, detail TEXT,
    UNIQUE (run_id, kind, ref)
);
CREATE TABLE budget_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL, scope TEXT NOT NULL, kind TEXT NOT NULL, usd REAL,
    note TEXT, at TEXT NOT NULL
);
INSERT INTO meta VALUES ('schema_version', '2');
INSERT INTO calls (run_id, task_id, role, agent, kind, provider, model, tokens_in, tokens_out, usd, at)
    VALUES ('r', 't', 'lead', 'claude', 'llm', 'anthropic', 'claude-haiku-4-5', 100, 50, 0.25, '2026-01-01');
"""


def test_a_ledger_written_before_pending_rows_is_read_and_upgraded(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(V2_SCHEMA)
    ledger = Ledger(path)
    spend = ledger.spent("r")
    assert (spend.usd, spend.pending, spend.pending_usd) == (0.25, 0, 0.0)
    [total] = ledger.totals("r", "role")
    assert (total.key, total.usd, total.pending) == ("lead", 0.25, 0)
    row_id = ledger.record_pending(CallRecord("llm", "anthropic", "claude-haiku-4-5", cost=Cost(0.5)), run_id="r",
                                   task_id="t", role="lead", agent="claude")
    assert ledger.spent("r").pending_usd == 0.5
    ledger.settle(row_id, CallRecord("llm", "anthropic", "claude-haiku-4-5", usage=Usage(10, 5), cost=Cost(0.01)))
    assert ledger.spent("r").usd == pytest.approx(0.26)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == \
            str(LEDGER_SCHEMA_VERSION)


def test_each_thread_keeps_one_connection_and_workers_still_write(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    budget = RunBudget(ledger, "r", Budget(usd=100.0), {})
    for _ in range(20):  # a budget view asks the ledger several questions: no reconnect per question
        budget.status()
    assert ledger._connection() is ledger._connection()
    seen: list[sqlite3.Connection] = []

    def work(i: int) -> None:
        spend = budget.for_task(f"t{i}", "lead", "claude")
        for _ in range(25):
            spend.record(CallRecord("llm", "anthropic", "m", cost=Cost(0.01)))
        seen.append(ledger._connection())

    workers = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(ledger.calls("r")) == 200 and ledger.spent("r").usd == pytest.approx(2.0)
    assert len({id(c) for c in seen}) == 8 and ledger._connection() not in seen
