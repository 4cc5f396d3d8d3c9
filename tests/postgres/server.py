"""A throw-away Postgres server for tests and benchmarks: the system's ``initdb``/``pg_ctl`` in a temp dir.

Root may not run ``initdb``: as root the server runs as the ``postgres`` user (the distribution's
package creates it). It listens on 127.0.0.1 on a free port and on a unix socket in its own
directory, trusts local connections, and skips fsync (nothing in it outlives the tests).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SETTINGS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
            "-c listen_addresses=127.0.0.1")


class NoServerBinaries(RuntimeError):
    """This machine has no initdb/pg_ctl: no server can be started here."""


def find_binary(name: str) -> str | None:
    """``initdb`` / ``pg_ctl`` on PATH, else in the Debian packages' versioned directory."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One server: :meth:`start` (initdb on first call), :meth:`stop`, and its :attr:`url`."""

    def __init__(self, base: Path | None = None, *, host_auth: str = "trust") -> None:
        self.initdb, self.pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        if self.initdb is None or self.pg_ctl is None:
            raise NoServerBinaries("no initdb/pg_ctl on this machine (apt-get install postgresql)")
        self.dir = Path(tempfile.mkdtemp(prefix="coord-pg-", dir=base))
        self.port = free_port()
        self.as_user = "postgres" if os.geteuid() == 0 else None
        if self.as_user is not None:
            shutil.chown(self.dir, self.as_user)
        self._initialised = False
        self.host_auth = host_auth
        """How TCP connections authenticate (``scram-sha-256``: by password; the unix socket always trusts)."""

    @property
    def socket_url(self) -> str:
        """The superuser over the unix socket (trusted whatever :attr:`host_auth` is)."""
        return f"postgresql://postgres@/postgres?host={self.dir}&port={self.port}"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        cmd = list(args)
        if self.as_user is not None:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")

    def start(self) -> PgServer:
        """Start the server (creating its cluster the first time) and wait until it accepts connections."""
        data = self.dir / "data"
        if not self._initialised:
            self._run(str(self.initdb), "-D", str(data), "--auth-local=trust", f"--auth-host={self.host_auth}",
                      "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
            self._initialised = True
        self._run(str(self.pg_ctl), "-D", str(data), "-l", str(self.dir / "log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.dir} {SETTINGS}", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as if it crashed)."""
        self._run(str(self.pg_ctl), "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop it if it runs and delete its files."""
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> None:
    """``python -m tests.postgres.server``: start a server, print its URL, keep it until Enter."""
    server = PgServer().start()
    print(server.url, flush=True)
    try:
        input()
    finally:
        server.remove()


if __name__ == "__main__":
    main()
