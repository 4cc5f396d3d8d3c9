"""Serving the dashboard: in the foreground (``coord serve``) or beside a run (``coord run --serve``)."""

from __future__ import annotations

import errno
import logging
import secrets
import socket
import threading
import time

import uvicorn

from coordinator.core.errors import UsageError
from coordinator.web.app import create_app
from coordinator.web.config import ServeConfig, is_loopback

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 15.0


def new_token() -> str:
    """A fresh token for a server started without one."""
    return secrets.token_urlsafe(24)


def needs_token(host: str, allow_decisions: bool) -> bool:
    """A token is required to decide, and to serve beyond this machine."""
    return allow_decisions or not is_loopback(host)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: any free port), or a :class:`UsageError` saying why not."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use; pick another with --port") from None
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    except socket.gaierror as e:  # pragma: no cover - an unknown host name
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class DashboardServer:
    """One dashboard on a bound socket, served by uvicorn."""

    def __init__(self, config: ServeConfig) -> None:
        self.sock = bind(config.host, config.port)
        self.port = int(self.sock.getsockname()[1])
        self.config = config
        self.app = create_app(config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                                    timeout_graceful_shutdown=2, proxy_headers=False))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address to open (with the token, which the first visit moves into a cookie)."""
        host = self.config.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
        shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
        base = f"http://{shown}:{self.port}/"
        return base + (f"?token={self.config.token}" if self.config.token else "")

    @property
    def deciding(self) -> bool:
        """True while a decision made on the page is being applied (a resumed run runs in this process)."""
        return bool(self.app.state.dashboard.desk.busy)

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C, SIGTERM)."""
        self.server.run(sockets=[self.sock])

    def start(self) -> None:
        """Serve on a background thread; return once it accepts connections."""
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="coord-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise UsageError(f"the dashboard did not start on {self.config.host}:{self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop a server started with :meth:`start` (open event streams are closed)."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()
