"""The pieces of the Postgres store one by one: the workspace lock, documents, the ledger, the direct reader."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from coordinator.core import state_files
from coordinator.core.errors import WorkspaceBusyError
from coordinator.core.llm import CallRecord, Cost
from coordinator.core.workspace import Workspace, WorkspaceLock, lock_holder
from coordinator.engine.pg import reader
from coordinator.engine.run_state import read_run_state
from coordinator.engine.runner import RunOptions, run_plan
from coordinator.engine.stores import open_checkpointer, open_ledger
from tests.coordinator.steps_for_tests import write_plan


@pytest.fixture
def pws(tmp_path, store):
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace.at(root)


pytestmark = pytest.mark.parametrize("store", ["postgres"], indirect=True)


def test_the_workspace_lock_refuses_a_second_holder_and_names_the_first(pws):
    with WorkspaceLock(pws) as lock:
        lock.claim("r-1")
        holder = lock_holder(pws)
        assert holder is not None and holder.run_id == "r-1" and "running run r-1" in holder.text
        with pytest.raises(WorkspaceBusyError, match=r"in use by pid .* running run r-1") as caught:
            WorkspaceLock(pws).__enter__()
        assert caught.value.run_id == "r-1"
    assert lock_holder(pws) is None
    with WorkspaceLock(pws):  # free again
        pass


def test_a_killed_holder_loses_the_lock_with_its_session(pws, monkeypatch):
    code = ("import sys, time; from coordinator.core.workspace import Workspace, WorkspaceLock; "
            "lock = WorkspaceLock(Workspace.at(sys.argv[1])).__enter__(); lock.claim('held'); "
            "print('ok', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(pws.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ok"
        holder = lock_holder(pws)
        assert holder is not None and holder.run_id == "held"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while lock_holder(pws) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    with WorkspaceLock(pws):
        assert lock_holder(pws) is not None


def test_creating_a_document_twice_at_once_stores_exactly_one(pws):
    path = pws.state_dir / "runs" / "r" / "inbox" / "gate.json"
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def create(n: int) -> None:
        barrier.wait()
        results.append(state_files.create(pws, path, f"{n}".encode()))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    stored = state_files.read_bytes(pws, path)
    assert stored is not None and int(stored) in range(8)
    assert not state_files.delete(pws, path, if_body=b"not it") and state_files.delete(pws, path, if_body=stored)
    assert state_files.read_bytes(pws, path) is None


def test_documents_matching_a_pattern_stay_within_one_path_part(pws):
    for rel in ("a/run.json", "b/run.json", "b/inbox/run.json", "c_x/run.json"):
        state_files.write_bytes(pws, pws.state_dir / "runs" / rel, b"{}")
    found = [p.relative_to(pws.state_dir).as_posix()
             for p, _ in state_files.read_all(pws, pws.state_dir / "runs", "*/run.json")]
    assert found == ["runs/a/run.json", "runs/b/run.json", "runs/c_x/run.json"]
    assert not (pws.state_dir / "runs").exists()  # rows of the database, not files


def test_the_ledger_speaks_postgres(pws):
    ledger = open_ledger(pws)
    assert ledger.record(CallRecord("llm", "anthropic", "m", cost=Cost(0.5), ref="a"), run_id="r", task_id="t",
                         role="lead", agent="claude")
    assert not ledger.record(CallRecord("llm", "anthropic", "m", cost=Cost(0.5), ref="a"), run_id="r", task_id="t",
                             role="lead", agent="claude")  # the same call again: ignored, as on SQLite
    row = ledger.record_pending(CallRecord("llm", "openai", "g", cost=Cost(2.0), ref="x"), run_id="r",
                                task_id="t", role="quality", agent="codex")
    spend = ledger.spent("r")
    assert (spend.usd, spend.pending, spend.pending_usd) == (0.5, 1, 2.0)
    ledger.settle(row, CallRecord("llm", "openai", "g", cost=Cost(None, "no price"), ref="x"))
    spend = ledger.spent("r")
    assert (spend.usd, spend.unknown, spend.pending) == (0.5, 1, 0)
    by_role = {t.key: t for t in ledger.totals("r", "role")}
    assert by_role["lead"].usd == 0.5 and by_role["quality"].unknown == 1
    assert ledger.flags("r") == ["no price"] and len(ledger.calls("r")) == 2
    ledger.change_budget("r", "run", "raise", 3.0, "more")
    assert [(c.kind, c.usd) for c in ledger.budget_changes("r")] == [("raise", 3.0)]


CHAIN = "name: c\ntasks:\n" + "".join(
    f"  - {{id: t{i}, title: T{i}, role: lead, run: t_noop{f', needs: [t{i - 1}]' if i else ''}}}\n"
    for i in range(12))


@pytest.mark.parametrize("keep", ["0", "1", "3"])
def test_the_direct_reader_shows_what_langgraph_shows_before_and_after_pruning(pws, monkeypatch, keep):
    monkeypatch.setenv("COORD_KEEP_CHECKPOINTS", keep)
    summary = run_plan(pws, RunOptions(plan=str(write_plan(pws.root, CHAIN, "c.yaml")), render_interval=0))
    assert summary.phase == "finished"
    direct = reader.latest_state(pws.database, summary.run_id)
    assert direct is not None
    graph_state = dict(read_run_state(pws, summary.run_id)[0])
    assert {k: direct[0][k] for k in ("tasks", "gates", "deferred", "phase")} == \
        {k: graph_state[k] for k in ("tasks", "gates", "deferred", "phase")}
    assert all(r["status"] == "done" for r in direct[0]["tasks"].values())
    with pws.database.connection() as conn:
        count = conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", (summary.run_id,)).fetchone()[0]
    if keep != "0":
        assert count == int(keep)
    else:
        assert count > 12
    with open_checkpointer(pws) as saver:
        assert saver.get_tuple({"configurable": {"thread_id": summary.run_id}}) is not None
