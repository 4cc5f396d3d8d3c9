"""The delta checkpointer: what it stores, that every checkpoint reads back whole, and pruning."""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from coordinator.core.state import merge_records
from coordinator.engine.checkpoint import (
    DELTA,
    MAX_CHAIN,
    CheckpointDamaged,
    DeltaSaver,
    open_saver,
    prune,
)


class S(TypedDict, total=False):
    tasks: Annotated[dict[str, Any], merge_records]
    gates: Annotated[dict[str, Any], merge_records]
    step: int


def graph(saver: SqliteSaver, n_tasks: int, steps: int):
    """Each step finishes one task (a chain), as coord's engine does with a one-task step."""

    def tick(state: S) -> dict[str, Any]:
        i = state.get("step", 0)
        out: dict[str, Any] = {"step": i + 1, "tasks": {f"t{i % n_tasks}": {"status": "done", "n": i}}}
        if i % 7 == 3:
            out["gates"] = {f"g{i % 3}": {"status": "approved", "at": i}}
        return out

    def route(state: S) -> str:
        return END if state["step"] >= steps else "tick"

    b = StateGraph(S)
    b.add_node("tick", tick)
    b.add_edge(START, "tick")
    b.add_conditional_edges("tick", route, ["tick", END])
    return b.compile(checkpointer=saver)


def initial(n: int) -> S:
    return {"tasks": {f"t{i}": {"status": "pending", "title": f"task number {i} " + "x" * 40} for i in range(n)},
            "gates": {}, "step": 0}


def expected(n: int, steps: int) -> S:
    st = initial(n)
    for i in range(steps):
        st["tasks"][f"t{i % n}"] = {**st["tasks"][f"t{i % n}"], "status": "done", "n": i}
        if i % 7 == 3:
            st["gates"][f"g{i % 3}"] = {"status": "approved", "at": i}
    st["step"] = steps
    return st


def run(db, n: int, steps: int, saver_cls=DeltaSaver) -> S:
    conn = sqlite3.connect(db, check_same_thread=False)
    try:
        g = graph(saver_cls(conn), n, steps)
        return g.invoke(initial(n), {"configurable": {"thread_id": "r"}, "recursion_limit": 10 ** 6},
                        durability="sync")
    finally:
        conn.close()


def blobs(db) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        return [len(r[0]) for r in conn.execute("SELECT checkpoint FROM checkpoints ORDER BY checkpoint_id")]
    finally:
        conn.close()


def test_every_checkpoint_reads_back_whole(tmp_path):
    n, steps = 60, 150
    final = run(tmp_path / "d.sqlite", n, steps)
    assert final == expected(n, steps)
    with open_saver(tmp_path / "d.sqlite") as saver:  # a new process: nothing held in memory
        history = list(graph(saver, n, steps).get_state_history({"configurable": {"thread_id": "r"}}))
    assert len(history) == steps + 2  # input, then one per step
    for snap in history:
        done = snap.values.get("step", 0)
        if done:
            assert snap.values == expected(n, done)
        else:  # the input, and the empty state before it
            assert snap.values.get("tasks") in (None, {}, initial(n)["tasks"])


@pytest.mark.slow
def test_deltas_are_stored_and_the_database_grows_with_the_changes(tmp_path):
    n, steps = 400, 300
    run(tmp_path / "delta.sqlite", n, steps)
    run(tmp_path / "plain.sqlite", n, steps, saver_cls=SqliteSaver)
    delta, plain = sum(blobs(tmp_path / "delta.sqlite")), sum(blobs(tmp_path / "plain.sqlite"))
    assert delta * 20 < plain, (delta, plain)  # every plain checkpoint holds all 400 records
    conn = sqlite3.connect(tmp_path / "delta.sqlite")
    raw = [SqliteSaver(conn).serde.loads_typed((t, b))["channel_values"].get("tasks")
           for t, b in conn.execute("SELECT type, checkpoint FROM checkpoints")]
    conn.close()
    deltas = [v for v in raw if isinstance(v, dict) and v.get(DELTA) == 1]
    assert deltas and all(len(d["set"]) <= 1 for d in deltas)
    keyframes = [v for v in raw if isinstance(v, dict) and v.get(DELTA) != 1]
    assert 1 <= len(keyframes) <= steps // MAX_CHAIN + 3  # a whole copy only every so often


def test_a_run_continues_from_a_delta_checkpoint_in_a_new_process(tmp_path):
    n = 30
    run(tmp_path / "d.sqlite", n, 40)
    conn = sqlite3.connect(tmp_path / "d.sqlite", check_same_thread=False)
    g = graph(DeltaSaver(conn), n, 80)
    out = g.invoke(None, {"configurable": {"thread_id": "r"}, "recursion_limit": 10 ** 6}, durability="sync")
    conn.close()
    assert out == expected(n, 40) or out["step"] == 40  # the earlier graph had ended: nothing more to do
    conn = sqlite3.connect(tmp_path / "d.sqlite", check_same_thread=False)
    g = graph(DeltaSaver(conn), n, 80)
    cfg = {"configurable": {"thread_id": "r"}, "recursion_limit": 10 ** 6}
    g.update_state(cfg, {"step": 40}, as_node="tick")  # go on from the stored state
    out = g.invoke(None, cfg, durability="sync")
    conn.close()
    assert out == expected(n, 80)


def test_a_database_written_without_deltas_still_reads(tmp_path):
    run(tmp_path / "old.sqlite", 20, 25, saver_cls=SqliteSaver)
    with open_saver(tmp_path / "old.sqlite") as saver:
        snap = graph(saver, 20, 25).get_state({"configurable": {"thread_id": "r"}})
    assert snap.values == expected(20, 25)


def test_prune_keeps_the_last_checkpoints_whole(tmp_path):
    db = tmp_path / "d.sqlite"
    run(db, 50, 120)
    with open_saver(db) as saver:
        dropped = prune(saver, "r", keep=2)
        assert dropped == 120  # 122 checkpoints: input + 120 steps + the end
        rows = saver.conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
        writes_of_dropped = saver.conn.execute(
            "SELECT count(*) FROM writes WHERE checkpoint_id NOT IN (SELECT checkpoint_id FROM checkpoints)"
        ).fetchone()[0]
    assert rows == 2 and writes_of_dropped == 0
    with open_saver(db) as saver:  # a new process reads the kept ones without the dropped bases
        history = list(graph(saver, 50, 120).get_state_history({"configurable": {"thread_id": "r"}}))
    assert history[0].values == expected(50, 120) and len(history) == 2


def test_prune_zero_keeps_everything(tmp_path):
    db = tmp_path / "d.sqlite"
    run(db, 5, 10)
    with open_saver(db) as saver:
        assert prune(saver, "r", keep=0) == 0
        assert saver.conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 12


def test_a_checkpoint_whose_base_is_gone_is_damage_not_a_wrong_state(tmp_path):
    db = tmp_path / "d.sqlite"
    run(db, 50, 30)
    conn = sqlite3.connect(db)
    first = conn.execute("SELECT checkpoint_id FROM checkpoints ORDER BY checkpoint_id LIMIT 1 OFFSET 2").fetchone()[0]
    conn.execute("DELETE FROM checkpoints WHERE checkpoint_id = ?", (first,))
    conn.commit()
    conn.close()
    with pytest.raises(CheckpointDamaged, match="is missing"), open_saver(db) as saver:
        graph(saver, 50, 30).get_state({"configurable": {"thread_id": "r"}})


def test_a_diff_follows_the_merges_instead_of_comparing_every_record() -> None:
    """Between two checkpoints the maps are linked by the merges that made them: the diff looks only at the
    ids those merges touched, and gives what comparing every record gives."""
    import random

    from coordinator.core.state import touched_since
    from coordinator.engine.checkpoint import _diff

    rng = random.Random(5)
    base = merge_records(None, {f"t{i}": {"status": "pending"} for i in range(2000)})
    for _ in range(30):
        after = base
        for _ in range(rng.randint(1, 4)):  # a step's writes
            after = merge_records(after, {f"t{rng.randrange(2100)}": {"status": rng.choice(["done", "pending"])}})
        touched = touched_since(base, after)
        assert touched is not None and len(touched) <= 4
        full = _diff(dict(base), dict(after))  # plain copies: no links, every record compared
        assert _diff(base, after) == full
        base = after
        base.derived_from = None  # what the saver does once the checkpoint is stored
    assert touched_since({"a": {}}, merge_records({"a": {}}, {"b": {}})) is None  # not linked: compare all
