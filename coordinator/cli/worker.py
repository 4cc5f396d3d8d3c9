"""`coord worker` (take a workspace's queued tasks) and `coord workers` (who is taking them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from coordinator.cli import console
from coordinator.cli._common import WorkspaceOpt, plain_columns
from coordinator.core.errors import UsageError
from coordinator.core.workspace import Workspace


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def register(app: typer.Typer) -> None:
    """Mount the commands."""

    @app.command()
    def worker(
        roles: Annotated[str, typer.Option(help="Roles whose tasks it takes, comma-separated (default: all).")] = "",
        agents: Annotated[str, typer.Option(help="Agents whose tasks it takes, comma-separated (default: all).")] = "",
        capabilities: Annotated[str, typer.Option(
            help="What it offers to tasks that `requires:` something, comma-separated (gpu,claude-cli).")] = "",
        concurrency: Annotated[int, typer.Option(min=1, max=64, help="Tasks it runs at once.")] = 1,
        name: Annotated[str, typer.Option(help="How it is listed (default: host:pid).")] = "",
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """Take this workspace's dispatched tasks and run them, until SIGINT/SIGTERM (needs `workers: true`)."""
        # start-up: the engine and the queue library load only when a worker runs
        from coordinator.engine.workers.worker import WorkerOptions, serve

        options = WorkerOptions(roles=_names(roles), agents=_names(agents), capabilities=_names(capabilities),
                                concurrency=concurrency, name=name or None)
        serve(Workspace.at(workspace), options, note=console.status)

    @app.command("workers")
    def list_workers(
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output: a JSON array.")] = False,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """List the workspace's workers: capabilities, current task, last heartbeat."""
        from coordinator.engine.workers import registry  # start-up: loads with the command

        ws = Workspace.at(workspace)
        if ws.database is None:
            raise UsageError("this workspace keeps its state in SQLite files: workers need a Postgres database "
                             "(docs/workers.md)")
        from coordinator.engine.workers.queue import install  # start-up: loads with the command

        install(ws.database)
        rows = registry.workers(ws.database)
        if as_json:
            console.out.print_json(orjson.dumps([{
                "name": w.name, "host": w.host, "pid": w.pid, "live": w.live, "roles": w.roles, "agents": w.agents,
                "capabilities": w.capabilities, "concurrency": w.concurrency, "current": w.current,
                "last_heartbeat": w.last_heartbeat.isoformat(), "seconds_since_heartbeat":
                    round(w.seconds_since_heartbeat, 1), "started_at": w.started_at.isoformat()} for w in rows]).decode())
            return
        if not rows:
            console.info("no workers: start one with `coord worker` (needs `workers: true` in coord.yaml)")
            return
        console.info(plain_columns([("worker", "state", "roles", "agents", "capabilities", "current task",
                                     "last heartbeat")] + [
            (w.name, "live" if w.live else f"silent (lease {w.lease_s:g}s ran out)", ",".join(w.roles) or "all",
             ",".join(w.agents) or "all", ",".join(w.capabilities) or "-", ", ".join(w.current) or "-",
             f"{w.seconds_since_heartbeat:.0f}s ago") for w in rows]))
