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
        git: Annotated[str, typer.Option(
            "--git", metavar="URL", help="Work from a clone of the workspace repository instead of the workspace's "
            "path: agent branches are pushed to URL (needs `workers: {git_remote: …}`; docs/workers.md).")] = "",
        checkout: Annotated[Path | None, typer.Option(
            help="With --git: the clone (made on first use, fetched after; default ./coord-checkout).")] = None,
        branch: Annotated[str, typer.Option(help="With --git: the branch runs merge into (default: the "
                                                 "remote's).")] = "",
        shared_workspace: Annotated[Path | None, typer.Option(
            help="With --git: the workspace's path when this machine sees it too (steps run there).")] = None,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """Take this workspace's dispatched tasks and run them, until SIGINT/SIGTERM (needs `workers: true`)."""
        # start-up: the engine and the queue library load only when a worker runs
        from coordinator.engine.workers.git_layout import GitLayout  # start-up: with the command
        from coordinator.engine.workers.worker import WorkerOptions, serve

        if not git and (checkout is not None or branch or shared_workspace is not None):
            raise UsageError("--checkout, --branch and --shared-workspace go with --git URL")
        layout = GitLayout(url=git, checkout=(checkout or Path("coord-checkout")).resolve(), branch=branch or None,
                           shared_workspace=shared_workspace.resolve() if shared_workspace else None) if git else None
        options = WorkerOptions(roles=_names(roles), agents=_names(agents), capabilities=_names(capabilities),
                                concurrency=concurrency, name=name or None, git=layout)
        serve(None if layout else Workspace.at(workspace), options, note=console.status)

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
