"""`coord serve`: the live web dashboard of a workspace's runs."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from coordinator.cli import console
from coordinator.cli._common import WorkspaceOpt, call
from coordinator.core.workspace import Workspace

if TYPE_CHECKING:
    from coordinator.web.server import DashboardServer

DEFAULT_PORT = 8765
"""Also in coordinator.web.config, which the CLI does not import at start-up."""


def start_dashboard(ws: Workspace, *, host: str, port: int, allow_decisions: bool, token: str | None,
                    identity: str | None) -> DashboardServer:
    """Bind the dashboard's socket (refusing a port in use before anything else starts) and say where it is."""
    # start-up: the dashboard (Starlette, uvicorn, the engine) loads only when a command serves it
    from coordinator.web.config import ServeConfig, is_loopback
    from coordinator.web.server import DashboardServer, needs_token, new_token

    if token is not None and not token.strip():
        console.abort("--token (or COORD_SERVE_TOKEN) is empty")
    if identity is not None and not identity.strip():
        console.abort("--as needs a name")
    if token is None and needs_token(host, allow_decisions):
        token = new_token()
    server = call(lambda: DashboardServer(ServeConfig(ws=ws, host=host, port=port, token=token,
                                                      allow_decisions=allow_decisions, identity=identity)))
    console.success(f"dashboard of {ws.root}: {server.url}")
    if allow_decisions:
        who = server.app.state.dashboard.identity
        console.info(f"decisions enabled: approve, reject and override are recorded as {who!r} (--as to change)")
    else:
        console.info("read-only (--allow-decisions adds approve/reject/override buttons)")
    if not is_loopback(host):
        console.warn(f"listening on {host}: other machines can reach it; every request needs the token")
    return server


def register(app: typer.Typer) -> None:
    """Mount the command."""

    @app.command()
    def serve(
        port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")] = DEFAULT_PORT,
        host: Annotated[str, typer.Option(help="Address to listen on; the default serves this machine "
                                          "only. Any other address always needs the token.")] = "127.0.0.1",
        allow_decisions: Annotated[bool, typer.Option("--allow-decisions", help="Show approve, reject and "
                                                      "override on gates waiting for a person (a token is "
                                                      "made and printed unless given).")] = False,
        token: Annotated[str | None, typer.Option("--token", envvar="COORD_SERVE_TOKEN", show_default=False,
                                                  help="Require this token on every request (default: none for a "
                                                  "read-only dashboard on this machine, else a fresh one, "
                                                  "printed).")] = None,
        as_: Annotated[str | None, typer.Option("--as", help="Who decides (default: git user.name, else "
                                                "$USER).", show_default=False)] = None,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """A live web dashboard: runs, each run's task graph, gates, costs and benchmark, updated as
        the run goes. Read-only unless --allow-decisions."""
        ws = Workspace.at(workspace)
        server = start_dashboard(ws, host=host, port=port, allow_decisions=allow_decisions, token=token,
                                 identity=as_)
        console.status("Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn stops, then passes Ctrl-C on: the normal way out
            server.serve_forever()
        console.info("dashboard stopped")
        if server.deciding:
            console.warn("a run resumed by a decision was still running here; it was interrupted and continues "
                         "with `coord resume`")
