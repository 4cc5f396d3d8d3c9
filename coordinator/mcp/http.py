"""``coord mcp --http PORT``: the server over streamable HTTP, behind a bearer token.

Bound to 127.0.0.1 unless told otherwise (the SDK then also refuses requests whose ``Host`` or
``Origin`` is not the loopback, against DNS rebinding). Every HTTP request must carry
``Authorization: Bearer <token>``; the token is compared in constant time, and a request without
it is answered 401 before it reaches the MCP session manager.
"""

from __future__ import annotations

import hmac
from typing import Any

import orjson
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from coordinator.mcp.server import CoordMCP

PATH = "/mcp"
"""Where the MCP endpoint is served."""


class BearerToken:
    """ASGI middleware: HTTP requests need ``Authorization: Bearer <token>``; lifespan events pass through."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = orjson.dumps({"error": "unauthorized",
                                     "error_description": "this coord mcp server needs its bearer token "
                                                          "(Authorization: Bearer <token>)"})
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b'Bearer realm="coord"'),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(server: CoordMCP, token: str, host: str) -> ASGIApp:
    """The streamable-HTTP app of ``server`` behind the token check."""
    return BearerToken(server.streamable_http_app(streamable_http_path=PATH, host=host), token)


def serve_http(server: CoordMCP, token: str, host: str, port: int) -> None:
    """Serve until interrupted."""
    config: Any = uvicorn.Config(http_app(server, token, host), host=host, port=port, log_level="warning",
                                 lifespan="on")
    uvicorn.Server(config).run()
