"""A run's task graph laid out in layers, top to bottom, for the dashboard's SVG.

Nodes are the plan's tasks and gates; an edge runs from each task to the tasks that need it,
from the tasks a gate reviews to the gate, and from the gate to the tasks it blocks. A node's
layer is its longest distance from a source; an edge that skips layers passes each of them through
a virtual point of its own, beside the boxes there rather than through them; within a layer, boxes
and points are ordered by the mean position of their neighbours (a few barycenter sweeps), which
keeps most edges from crossing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from coordinator.core.plan import CompiledPlan

NODE_W = 168
NODE_H = 46
GAP_X = 26
GAP_Y = 40
MARGIN = 16
VIRTUAL_W = 12
"""Width an edge takes where it passes a layer it skips (beside that layer's boxes, not through them)."""
SWEEPS = 4


@dataclass(frozen=True)
class Node:
    """One box of the drawing."""

    id: str
    kind: Literal["task", "gate"]
    status: str
    label: str
    """The id as drawn (shortened when long; the full id is in ``title``)."""
    detail: str
    """The second line: role and status of a task, status and grade of a gate."""
    title: str
    x: float
    y: float


@dataclass(frozen=True)
class Edge:
    """One arrow: an SVG path from the bottom of ``src`` to the top of ``dst``."""

    src: str
    dst: str
    path: str
    status: str
    """The status of ``src`` (a done dependency draws solid)."""


@dataclass(frozen=True)
class Dag:
    """The laid-out graph."""

    nodes: list[Node]
    edges: list[Edge]
    width: float
    height: float
    node_w: int = NODE_W
    node_h: int = NODE_H


def _graph(plan: CompiledPlan) -> tuple[list[str], dict[str, list[str]]]:
    """Node keys (``t:<task>``, ``g:<gate>``) in plan order and each node's predecessors."""
    nodes = [f"t:{t}" for t in plan.order] + [f"g:{g}" for g in plan.gates]
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for tid in plan.order:
        task = plan.tasks[tid]
        # a task may need a gate by name (week2's report needs launch), and a gate blocks the tasks it names
        preds[f"t:{tid}"] += [f"t:{n}" if n in plan.tasks else f"g:{n}" for n in task.needs
                              if n in plan.tasks or n in plan.gates]
        preds[f"t:{tid}"] += [f"g:{g}" for g in task.blocked_by
                              if g in plan.gates and f"g:{g}" not in preds[f"t:{tid}"]]
    for gid, after in plan.gate_after.items():
        if f"g:{gid}" in preds:
            preds[f"g:{gid}"] += [f"t:{t}" for t in after if t in plan.tasks]
    return nodes, preds


def _layers(nodes: list[str], preds: dict[str, list[str]]) -> dict[str, int]:
    """Longest-path layer of every node (a node on a cycle, which plans refuse, goes last)."""
    layer: dict[str, int] = {}
    remaining = list(nodes)
    while remaining:
        progressed = False
        for n in list(remaining):
            if all(p in layer for p in preds[n]):
                layer[n] = 1 + max((layer[p] for p in preds[n]), default=-1)
                remaining.remove(n)
                progressed = True
        if not progressed:  # a cycle: place what is left below everything else
            bottom = 1 + max(layer.values(), default=-1)
            layer.update({n: bottom for n in remaining})
            break
    return layer


Preds = dict[str, list[str]]
"""Node key → the keys of its predecessors."""


def _expand(preds: Preds, layer: dict[str, int]) -> tuple[Preds, dict[tuple[str, str], list[str]]]:
    """Predecessors with every edge that skips layers cut into one-layer steps through virtual points
    (``v:<src>><dst>:<i>``, one per layer crossed), and each such edge's points, top down."""
    out: dict[str, list[str]] = {n: [] for n in preds}
    via: dict[tuple[str, str], list[str]] = {}
    for n, ps in preds.items():
        for p in ps:
            points = [f"v:{p}>{n}:{i}" for i in range(1, layer[n] - layer[p])]
            for i, v in enumerate(points):
                layer[v] = layer[p] + 1 + i
                out[v] = [points[i - 1] if i else p]
            out[n].append(points[-1] if points else p)
            via[(p, n)] = points
    return out, via


def _order(preds: dict[str, list[str]], layer: dict[str, int]) -> list[list[str]]:
    """Nodes of each layer, ordered to keep edges short (barycenter sweeps down and up)."""
    rows: list[list[str]] = [[] for _ in range(1 + max(layer.values(), default=0))]
    for n in preds:
        rows[layer[n]].append(n)
    succs: dict[str, list[str]] = {n: [] for n in preds}
    for n, ps in preds.items():
        for p in ps:
            succs[p].append(n)

    def sweep(index: int, neighbours: dict[str, list[str]]) -> None:
        pos = {n: i for row in rows for i, n in enumerate(row)}
        row = rows[index]
        keyed = []
        for i, n in enumerate(row):
            near = [pos[m] for m in neighbours[n] if m in pos]
            keyed.append((sum(near) / len(near) if near else float(i), i, n))
        rows[index] = [n for _, _, n in sorted(keyed)]

    for _ in range(SWEEPS):
        for i in range(1, len(rows)):
            sweep(i, preds)
        for i in range(len(rows) - 2, -1, -1):
            sweep(i, succs)
    return rows


def _short(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _node(plan: CompiledPlan, key: str, tasks: dict[str, Any], gates: dict[str, Any], x: float, y: float) -> Node:
    kind, ident = key.split(":", 1)
    if kind == "t":
        rec = tasks.get(ident, {})
        status = str(rec.get("status", "pending"))
        role = rec.get("role") or plan.tasks[ident].role
        title = f"{ident}: {plan.tasks[ident].title} ({role}, {status})"
        return Node(ident, "task", status, _short(ident), f"{role} · {status}", title, x, y)
    rec = gates.get(ident, {})
    status = str(rec.get("status", "pending"))
    grade = f" · {rec['grade']}" if rec.get("grade") else ""
    title = f"gate {ident} ({status}{grade.replace(' · ', ', grade ')})"
    return Node(ident, "gate", status, _short(ident), f"gate · {status}{grade}", title, x, y)


def _path(points: list[tuple[float, float]]) -> str:
    """An SVG path down through ``points`` (pairs: where it leaves a layer, where it enters the next)."""
    x, y = points[0]
    parts = [f"M{x:.1f},{y:.1f}"]
    for i in range(1, len(points)):
        x2, y2 = points[i]
        if i % 2:  # between two layers: a smooth S
            bend = (y2 - y) / 2
            parts.append(f"C{x:.1f},{y + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}")
        else:  # through a layer, beside its boxes: straight down
            parts.append(f"L{x2:.1f},{y2:.1f}")
        x, y = x2, y2
    return " ".join(parts)


def layout(plan: CompiledPlan, tasks: dict[str, Any], gates: dict[str, Any]) -> Dag:
    """Lay out ``plan``'s tasks and gates with the statuses of ``tasks`` and ``gates`` (run_status form)."""
    nodes, preds = _graph(plan)
    layer = _layers(nodes, preds)
    steps, via = _expand(preds, layer)
    rows = _order(steps, layer)

    def size(key: str) -> float:
        return VIRTUAL_W if key.startswith("v:") else NODE_W

    row_widths = [sum(size(k) for k in row) + GAP_X * (len(row) - 1) for row in rows]
    width = 2 * MARGIN + max(row_widths, default=NODE_W)
    placed: dict[str, Node] = {}
    centre: dict[str, float] = {}
    for depth, row in enumerate(rows):
        x = (width - row_widths[depth]) / 2
        y = MARGIN + depth * (NODE_H + GAP_Y)
        for key in row:
            centre[key] = x + size(key) / 2
            if not key.startswith("v:"):
                placed[key] = _node(plan, key, tasks, gates, x, y)
            x += size(key) + GAP_X
    edges = []
    for dst_key, ps in preds.items():
        dst = placed[dst_key]
        for src_key in ps:
            src = placed[src_key]
            points = [(centre[src_key], src.y + NODE_H)]
            for v in via[(src_key, dst_key)]:
                top = MARGIN + layer[v] * (NODE_H + GAP_Y)
                points += [(centre[v], top), (centre[v], top + NODE_H)]
            points.append((centre[dst_key], dst.y - 2))
            edges.append(Edge(src.id, dst.id, _path(points), src.status))
    height = 2 * MARGIN + len(rows) * NODE_H + (len(rows) - 1) * GAP_Y
    return Dag(list(placed.values()), edges, width, height)
