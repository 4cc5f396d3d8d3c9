"""What ``coord serve`` was asked to do: one frozen value the whole application reads."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from coordinator.core.workspace import Workspace

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """Settings of one dashboard server."""

    ws: Workspace
    """The workspace whose runs are shown; nothing outside it is ever served."""
    host: str = DEFAULT_HOST
    """Address to bind (loopback by default)."""
    port: int = DEFAULT_PORT
    """TCP port (0: any free port, as tests use)."""
    token: str | None = None
    """When set, every request must carry it (``Authorization: Bearer``, or the cookie that
    visiting ``/?token=…`` once sets)."""
    allow_decisions: bool = False
    """Show approve/reject/override on gates waiting for a person (needs ``token``)."""
    identity: str | None = None
    """Who decides (``--as``); None: the workspace's git ``user.name`` (else ``$USER``)."""
    poll_s: float = 0.4
    """How often an open event stream looks for changes (a few ``stat`` calls)."""
    stream_s: float = 300.0
    """How long one event stream stays open; the browser reconnects by itself."""
    extra_hosts: tuple[str, ...] = field(default=())
    """Further ``Host`` header names to accept (besides the bound address and loopback names)."""

    def __post_init__(self) -> None:
        if self.allow_decisions and not self.token:
            raise ValueError("allow_decisions needs a token")

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Host names a request may address (a DNS-rebinding page names its own host and is refused);
        empty when bound to every interface (any name reaching it is accepted, with the token)."""
        if self.host in ("0.0.0.0", "::", ""):
            return frozenset()
        names = {self.host.strip("[]"), *self.extra_hosts}
        if is_loopback(self.host):
            names.update(LOOPBACK_NAMES)
        return frozenset(names)
