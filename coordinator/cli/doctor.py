"""`coord doctor`: are the agent CLIs a run would use installed, new enough and logged in?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from coordinator.cli import console
from coordinator.cli._common import WorkspaceOpt, call
from coordinator.core.workspace import Workspace


def _bindings(ws: Workspace, plan: str | None) -> dict[str, dict[str, Any]]:
    """Role → binding: the plan's roles (when named) as coord.yaml rebinds them, else coord.yaml's own."""
    from coordinator.engine.plan_loader import load_plan  # start-up: only this command loads plans
    from roles.definitions import load_workspace_roles  # start-up: loads with the command

    overrides = load_workspace_roles(ws.config)
    if plan is None:
        return {name: dict(b) for name, b in overrides.items() if isinstance(b, dict)}
    compiled = load_plan(plan, workspace=ws.root)
    return {name: {**b.model_dump(), **(overrides.get(name) or {})} for name, b in compiled.roles.items()}


def register(app: typer.Typer) -> None:
    """Mount `coord doctor`."""

    @app.command()
    def doctor(
        plan: Annotated[str | None, typer.Argument(help="Check the CLIs this plan's roles use (default: the "
                                                   "roles coord.yaml binds to driver cli; with none, all three).")] = None,
        smoke: Annotated[bool, typer.Option("--smoke", help="Also run a short prompt through each CLI "
                                            "(real tools: it may cost a few cents).")] = False,
        smoke_timeout: Annotated[float, typer.Option("--smoke-timeout", help="Seconds a smoke prompt may "
                                                     "take.")] = 60.0,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """Find each agent CLI, print its version and login, and (--smoke) try it; exit 1 if one a role uses fails."""
        from roles.drivers.cli._flavors import FLAVORS, show_version  # start-up: with the command
        from roles.drivers.cli.doctor import diagnose  # start-up: loads with the command

        ws = Workspace.at(workspace)
        bindings = call(lambda: _bindings(ws, plan))
        checks = diagnose(bindings, run_smoke=smoke, smoke_timeout=smoke_timeout)
        if as_json:
            console.out.print_json(json.dumps([{
                "agent": c.agent, "executable": c.executable, "roles": c.roles,
                "path": c.version.path if c.version else None,
                "version": c.version.shown if c.version and c.version.path else None,
                "min_version": show_version(FLAVORS[c.agent].min_version),
                "problem": c.version.problem if c.version else None,
                "auth": c.auth, "auth_ok": c.auth_ok, "smoke": c.smoke, "smoke_ok": c.smoke_ok,
                "ok": c.ok} for c in checks]))
        else:
            table = Table("agent", "roles", "executable", "version", "login / key", *(["smoke"] if smoke else []))
            for c in checks:
                v = c.version
                if v is None or v.path is None:
                    version = "[red]not on PATH[/red]"
                elif v.problem:
                    version = f"[red]{escape(v.shown)} (needs ≥ {show_version(FLAVORS[c.agent].min_version)})[/red]"
                else:
                    version = escape(v.text or v.shown)
                auth = escape(c.auth) if c.auth_ok is not False else f"[red]{escape(c.auth)}[/red]"
                row = [c.agent, ", ".join(c.roles) or "[dim](no role)[/dim]",
                       escape(v.path if v and v.path else c.executable), version, auth]
                if smoke:
                    row.append("" if c.smoke is None else escape(c.smoke) if c.smoke_ok
                               else f"[red]{escape(c.smoke)}[/red]")
                table.add_row(*row)
            console.out.print(table)
            for c in checks:
                if c.version is not None and c.version.problem:
                    console.warn(c.version.problem)
            if not any(c.roles for c in checks):
                console.info("no role is bound to driver cli (coord.yaml or the plan named); all three CLIs "
                             "were checked for information")
        broken = [c for c in checks if c.roles and not c.ok]
        if broken:
            raise typer.Exit(1)
