"""The run page's task graph: every task and gate drawn once, every dependency an arrow pointing down,
no two boxes on top of each other — on the built-in week2 plan, fan-out included."""

from __future__ import annotations

from pathlib import Path

from coordinator.engine.plan_loader import load_plan
from coordinator.web.dag import NODE_H, NODE_W, layout


def test_week2_graph_has_every_task_gate_and_dependency_top_down(tmp_path: Path):
    plan = load_plan("week2", workspace=tmp_path)
    tasks = {t: {"status": "done" if i < 3 else "pending"} for i, t in enumerate(plan.order)}
    dag = layout(plan, tasks, {g: {"status": "waiting", "grade": "B"} for g in plan.gates})
    nodes = {(n.kind, n.id): n for n in dag.nodes}
    assert set(nodes) == {("task", t) for t in plan.order} | {("gate", g) for g in plan.gates}
    assert "finetune[qa]" in {n.id for n in dag.nodes}  # foreach instances are their own boxes
    edges = {(e.src, e.dst) for e in dag.edges}
    for tid in plan.order:
        for need in plan.tasks[tid].needs:
            assert (need, tid) in edges
        for gate in plan.tasks[tid].blocked_by:
            assert (gate, tid) in edges
    for gid, after in plan.gate_after.items():
        for tid in after:
            assert (tid, gid) in edges
    by_id = {n.id: n for n in dag.nodes}
    for src, dst in edges:  # dependencies always point down a layer or more
        assert by_id[src].y < by_id[dst].y, (src, dst)
    boxes = [(n.x, n.y) for n in dag.nodes]
    for i, (x1, y1) in enumerate(boxes):  # no overlaps
        for x2, y2 in boxes[i + 1:]:
            assert abs(x1 - x2) >= NODE_W or abs(y1 - y2) >= NODE_H
    assert all(n.x >= 0 and n.x + NODE_W <= dag.width and n.y + NODE_H <= dag.height for n in dag.nodes)
    assert nodes[("task", plan.order[0])].status == "done"
    assert nodes[("gate", "launch")].detail == "gate · waiting · B"
