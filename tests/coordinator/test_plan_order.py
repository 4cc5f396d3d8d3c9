"""The plan's task order: layers of tasks whose needs are in earlier layers, each in declaration order."""

from __future__ import annotations

import random

import pytest

from coordinator.engine.plan_loader import _topo_order, load_plan


class _Task:
    def __init__(self, needs: list[str]) -> None:
        self.needs = needs


def _layered(tasks: dict[str, _Task]) -> list[str]:
    """The definition, computed the slow way."""
    remaining = {t: {n for n in c.needs if n in tasks} for t, c in tasks.items()}
    order: list[str] = []
    while remaining:
        ready = [t for t in tasks if t in remaining and not remaining[t]]
        order += ready
        for t in ready:
            del remaining[t]
        for deps in remaining.values():
            deps.difference_update(ready)
    return order


def test_the_order_follows_the_definition_on_random_plans():
    rng = random.Random(7)
    for _ in range(300):
        topo = [f"t{i}" for i in range(rng.randint(1, 40))]
        rng.shuffle(topo)
        tasks = {t: _Task(rng.sample(topo[:i], k=min(i, rng.randint(0, 3))) + (["a_gate"] if rng.random() < 0.1 else []))
                 for i, t in enumerate(topo)}
        declared = dict(sorted(tasks.items(), key=lambda _: rng.random()))
        assert _topo_order(declared) == _layered(declared)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_10000_task_chain_loads(tmp_path):
    lines = ["name: chain", "tasks:"] + [
        f"  - {{id: t{i}, title: t, role: lead, instructions: go{', needs: [t' + str(i - 1) + ']' if i else ''}}}"
        for i in range(10_000)]
    (tmp_path / "chain.yaml").write_text("\n".join(lines) + "\n")
    plan = load_plan(str(tmp_path / "chain.yaml"), workspace=tmp_path)
    assert plan.order[:3] == ["t0", "t1", "t2"] and len(plan.order) == 10_000
