"""`coord mcp`: serve the workspace to interactive agents over the Model Context Protocol."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from coordinator.cli import console
from coordinator.cli._common import WorkspaceOpt
from coordinator.core.errors import UsageError
from coordinator.core.workspace import Workspace

TOKEN_ENV = "COORD_MCP_TOKEN"


def register(app: typer.Typer) -> None:
    """Mount the command."""

    @app.command("mcp")
    def mcp(
        http: Annotated[int | None, typer.Option("--http", min=1, max=65535, metavar="PORT",
                                                 help="Serve streamable HTTP on this port (default: stdio).")] = None,
        host: Annotated[str, typer.Option("--host", help="Address to bind with --http.")] = "127.0.0.1",
        token: Annotated[str | None, typer.Option("--token", help=f"Bearer token HTTP clients must send (default: "
                                                  f"${TOKEN_ENV}, else a new one printed to stderr).",
                                                  show_default=False)] = None,
        allow_decisions: Annotated[bool, typer.Option("--allow-decisions", help="Offer approve, reject and "
                                                      "override (needs --as).")] = False,
        as_: Annotated[str | None, typer.Option("--as", help="Who this server acts as: decisions are recorded "
                                                "by this name, claims held under it.")] = None,
        lease: Annotated[float, typer.Option("--lease", min=1.0, help="Seconds a claim lasts without a report "
                                             "or note from its session.")] = 1800.0,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """Serve runs, tasks, boards and reviews to MCP clients (Claude Code, Codex, Cursor)."""
        if allow_decisions and not (as_ and as_.strip()):
            raise UsageError("--allow-decisions needs --as NAME: decisions are recorded under a person's name")
        if http is None and host != "127.0.0.1":
            raise UsageError("--host only goes with --http PORT")
        ws = Workspace.at(workspace)
        if not ws.root.is_dir():
            raise UsageError(f"workspace {ws.root} does not exist")
        # start-up: the MCP SDK and the engine load only when the server starts
        from coordinator.mcp import HttpOptions, ServerOptions, new_token, serve

        options = ServerOptions(ws.root, allow_decisions=allow_decisions, identity=(as_ or "").strip() or None,
                                lease_s=lease)
        if http is None:
            serve(options)
            return
        secret = token or os.environ.get(TOKEN_ENV) or ""
        if not secret:
            secret = new_token()
            console.err.print(f"bearer token for this server (send `Authorization: Bearer <token>`): "
                              f"{escape(secret)}")
        console.err.print(escape(f"coord mcp: serving {ws.root} on http://{host}:{http}/mcp"
                                 + (" (decisions as " + options.identity + ")" if options.identity
                                    and allow_decisions else "")))
        serve(options, HttpOptions(port=http, host=host, token=secret))
