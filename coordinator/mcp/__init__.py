"""``coord mcp``: coord as an MCP server, for agents that people run interactively.

Claude Code, Codex and Cursor speak the Model Context Protocol. Through this server such an
agent reads coord's runs, tasks, EXECUTE_NOW files, review records and costs, takes an
assignment in hand (the run waits for it instead of running the task's driver), reports its
result, which coord measures like any driver's, and, on a server started for a person
(``--allow-decisions --as NAME``), approves, rejects or overrides gates. See ``docs/mcp.md``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from coordinator.mcp.http import serve_http
from coordinator.mcp.server import ServerOptions, build_server
from roles.providers.secrets import register

__all__ = ["HttpOptions", "ServerOptions", "build_server", "new_token", "serve"]


@dataclass(frozen=True)
class HttpOptions:
    """Where and how to serve over HTTP."""

    port: int
    host: str
    token: str


def new_token() -> str:
    """A fresh bearer token for an HTTP server started without one."""
    return secrets.token_urlsafe(32)


def serve(options: ServerOptions, http: HttpOptions | None = None) -> None:
    """Serve until the client goes away (stdio) or the process is interrupted (HTTP)."""
    server = build_server(options)
    if http is None:
        server.run("stdio")
        return
    register(http.token)  # never echoed in an answer
    serve_http(server, http.token, http.host, http.port)
