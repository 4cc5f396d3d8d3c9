"""`coord plans`, `coord plan show`, `coord graph`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from coordinator.cli import console
from coordinator.cli._common import WorkspaceOpt, call
from coordinator.core.errors import CoordError
from coordinator.core.plan import CompiledPlan, PlanSpec
from coordinator.core.yaml_io import dump
from coordinator.engine.plan_loader import builtin_plans, load_plan, load_spec, parse_override


def mermaid(plan: CompiledPlan) -> str:
    """A Mermaid flowchart of tasks (by role) and gates."""

    ids = {i: f"n{k}" for k, i in enumerate([*plan.tasks, *plan.gates])}  # distinct whatever the ids hold

    def node(i: str) -> str:
        return ids[i]

    def text(label: str) -> str:  # Mermaid's entity for a quote; one line
        return " ".join(label.replace('"', "#quot;").split())

    lines = ["flowchart TD"]
    for role in plan.roles:
        mine = plan.tasks_of_role(role)
        if not mine:
            continue
        lines.append(f'  subgraph {role}["{role} · {plan.roles[role].agent}"]')
        for task in mine:
            label = task.id + (" (optional)" if task.optional else "")
            lines.append(f'    {node(task.id)}["{text(label)}"]')
        lines.append("  end")
    for gid in plan.gates:
        lines.append(f'  {node(gid)}{{{{"gate: {text(gid)}"}}}}')
        for t in plan.gate_after[gid]:
            lines.append(f"  {node(t)} --> {node(gid)}")
    for t in plan.order:
        for need in plan.tasks[t].needs:
            arrow = "-.->" if need in plan.gates else "-->"
            lines.append(f"  {node(need)} {arrow} {node(t)}")
        for gid in plan.tasks[t].blocked_by:
            lines.append(f"  {node(gid)} -. approves .-> {node(t)}")
    return "\n".join(lines) + "\n"


def _overrides(raw: list[str] | None) -> dict[str, object]:
    """``--set key=value`` options as a mapping (each read as ``coord run`` reads it)."""
    return dict(call(lambda: [parse_override(r) for r in raw or []]))


def _summary(spec: PlanSpec) -> str:
    return f"{spec.title or ''} ({len(spec.tasks)} tasks, {len(spec.gates)} gates)".lstrip()


def register(app: typer.Typer) -> None:
    """Mount the commands."""

    @app.command()
    def plans(workspace: WorkspaceOpt = Path(".")) -> None:
        """List the workspace's plans/ directory and the built-in plans: the one `coord run NAME` uses first."""
        folder = workspace / "plans"
        local = sorted((p for ext in (".yaml", ".yml") for p in folder.glob(f"*{ext}")),
                       key=lambda p: (p.stem, p.suffix != ".yaml")) if folder.is_dir() else []
        used: dict[str, Path] = {}
        for path in local:
            shadowed = used.get(path.stem)
            used.setdefault(path.stem, path)
            rel = f"plans/{path.name}"
            if shadowed is not None:
                console.info(f"{path.stem:12} {rel:24} not used: plans/{shadowed.name} has the same name")
                continue
            try:
                spec = load_spec(str(path), workspace=workspace)
            except CoordError as e:
                first = str(e).splitlines()[0]
                console.warn(f"{path.stem:12} {rel:24} does not load: {first}")
                continue
            console.info(f"{path.stem:12} {rel:24} {_summary(spec)}")
        for name in builtin_plans():
            spec = call(functools.partial(load_spec, name))
            note = f" — plans/{used[name].name} is used instead" if name in used else ""
            console.info(f"{name:12} {'built in':24} {_summary(spec)}{note}")

    plan_app = typer.Typer(help="Inspect plans.", no_args_is_help=True)

    @plan_app.command("show")
    def show(
        plan: Annotated[str, typer.Argument(help="Plan name or path.")],
        profile: Annotated[str | None, typer.Option()] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Override a plan parameter: key=value.")] = None,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """Validate a plan and print it compiled (foreach expanded, parameters filled in)."""
        compiled = call(lambda: load_plan(plan, workspace=workspace, profile=profile, overrides=_overrides(set_)))
        console.info(f"# plan {compiled.name} — {compiled.title} (profile {compiled.profile})")
        console.info(f"# source: {compiled.source}")
        data = {
            "params": compiled.params,
            "roles": {r: b.model_dump(exclude_none=True) for r, b in compiled.roles.items()},
            "tasks": [{"id": t.id, "role": t.role, "needs": t.needs, **({"run": t.run} if t.run else {}),
                       **({"command": t.command} if t.command is not None else {}),
                       **({"foreach": "${" + t.fanout + "} (fans out when the run reaches it)"} if t.fanout else {}),
                       **({"skip": True} if t.skip else {}), **({"waits_for_gates": t.blocked_by} if t.blocked_by else {})}
                      for t in (compiled.tasks[i] for i in compiled.order)],
            "gates": {g: {"after": compiled.gate_after[g], "policy": s.policy, "criteria": len(s.criteria)}
                      for g, s in compiled.gates.items()},
        }
        console.out.print(dump(data), markup=False)

    app.add_typer(plan_app, name="plan")

    @app.command()
    def graph(
        plan: Annotated[str, typer.Argument(help="Plan name or path.")],
        profile: Annotated[str | None, typer.Option()] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Override a plan parameter: key=value.")] = None,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """Print a Mermaid diagram of the plan's tasks and gates."""
        compiled = call(lambda: load_plan(plan, workspace=workspace, profile=profile, overrides=_overrides(set_)))
        console.out.print(mermaid(compiled), markup=False)
