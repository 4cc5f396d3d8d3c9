"""Who may see the dashboard and what it may serve.

- **Host**: a request must name the address the server is bound to (or a loopback name when it
  is bound to loopback); a page on another site that rebinds its DNS to 127.0.0.1 names its own
  host and is refused.
- **Token**: when the server has one, every request carries it — ``Authorization: Bearer T``, or
  the cookie that visiting ``/?token=T`` once sets (HttpOnly, SameSite=Strict, named after the
  port so two dashboards on one machine keep their own).
- **CSRF**: a POST must come from the dashboard's own pages: its ``Origin`` (else ``Referer``)
  is the server's own, and its form carries the CSRF value derived from the token.
- **Paths**: a file parameter names a file inside the workspace's data, reports, reviews or
  boards; ``..``, absolute paths, hidden parts (``.coord``, ``.git``, ``.env``) and symbolic
  links that lead outside are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from coordinator.core.errors import UsageError
from coordinator.core.workspace import Workspace
from coordinator.web.config import ServeConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SERVED_TOPS = ("data", "reports", "reviews", "task_boards")
"""Workspace folders whose files the dashboard may show."""
SERVED_FILES = ("TEAM_COORDINATION.md",)
"""Single files at the workspace root it may show."""


class PathRefused(UsageError):
    """A file parameter that names something the dashboard does not serve."""


def safe_path(ws: Workspace, raw: str) -> Path:
    """The workspace file ``raw`` names (workspace-relative, ``/``-separated), or :class:`PathRefused`.

    Refused: empty, absolute, ``\\`` or NUL in it, a ``..`` or hidden part, a first part other than
    :data:`SERVED_TOPS` (or one of :data:`SERVED_FILES`), anything whose real path (symbolic links
    followed) leaves that folder, and anything that is not a regular file.
    """
    if not raw or "\x00" in raw or "\\" in raw or raw.startswith("/") or len(raw) > 1024:
        raise PathRefused(f"refused path {raw[:200]!r}: give a path inside the workspace, like reports/x.md")
    parts = PurePosixPath(raw).parts
    if any(p in ("..", ".") or p.startswith(".") for p in parts):
        raise PathRefused(f"refused path {raw[:200]!r}: no '..' or hidden parts")
    if not ((len(parts) > 1 and parts[0] in SERVED_TOPS) or (len(parts) == 1 and parts[0] in SERVED_FILES)):
        raise PathRefused(f"refused path {raw[:200]!r}: the dashboard shows files under "
                          f"{', '.join(SERVED_TOPS)} and {', '.join(SERVED_FILES)} only")
    root = ws.root.resolve()
    base = root if len(parts) == 1 else (root / parts[0]).resolve()
    target = (root / raw).resolve()
    if not target.is_relative_to(base) or not base.is_relative_to(root):
        raise PathRefused(f"refused path {raw[:200]!r}: it leads outside the workspace")
    if not target.is_file():
        raise PathRefused(f"no file {raw[:200]!r} in the workspace")
    return target


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of a presented secret (any characters) with the expected one."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def csrf_value(token: str) -> str:
    """The CSRF value forms carry: derived from the token, so only pages that were given it know it."""
    return hmac.new(token.encode(), b"coord-serve-csrf", hashlib.sha256).hexdigest()[:40]


def cookie_name(port: int) -> str:
    """The token cookie of the dashboard on ``port`` (cookies do not tell ports apart)."""
    return f"coord_token_{port}"


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _host_name(host_header: str) -> str:
    """``example.org`` of ``example.org:8765``; ``::1`` of ``[::1]:8765``."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def same_origin(scope: Scope) -> bool:
    """True when a POST's ``Origin`` (else ``Referer``) names the host it was sent to."""
    headers = _headers(scope)
    source = headers.get("origin") or headers.get("referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc == headers.get("host", "")


async def _respond(send: Send, status: int, body: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = body.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(data)).encode()),
                            (b"cache-control", b"no-store"), *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


def _page(title: str, text: str) -> str:
    return (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<body style='font-family:sans-serif;margin:3em'><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(text)}</p></body>")


class Guard:
    """ASGI middleware: the host check and the token check in front of every route."""

    def __init__(self, app: ASGIApp, config: ServeConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # the dashboard has none: refuse before anything is read
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        allowed = self.config.allowed_hosts
        if allowed and _host_name(headers.get("host", "")) not in allowed:
            await _respond(send, 400, _page("Unknown host", "This dashboard answers only to the address it "
                                            "is bound to."))
            return
        token = self.config.token
        if token is None or self._authorized(scope, headers, token):
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = query.pop("token", None)
        if scope["method"] == "GET" and given is not None and _same(given, token):
            # remember the token in a cookie and take it out of the address bar (and the history)
            location = scope.get("root_path", "") + scope["path"] + (f"?{urlencode(query)}" if query else "")
            cookie = (f"{cookie_name(self._port(scope))}={token}; HttpOnly; SameSite=Strict; Path=/")
            await _respond(send, 303, "", [(b"location", location.encode()), (b"set-cookie", cookie.encode())])
            return
        await _respond(send, 401, _page("Token needed", "This dashboard needs its token: open the address "
                                        "`coord serve` printed (it ends in ?token=…), or send "
                                        "Authorization: Bearer <token>."),
                       [(b"www-authenticate", b'Bearer realm="coord"')])

    @staticmethod
    def _port(scope: Scope) -> int:
        server = scope.get("server") or ("", 0)
        return int(server[1] or 0)

    def _authorized(self, scope: Scope, headers: dict[str, str], token: str) -> bool:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and _same(auth[7:].strip(), token):
            return True
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except ValueError:
            return False
        morsel = cookie.get(cookie_name(self._port(scope)))
        return morsel is not None and _same(morsel.value, token)
