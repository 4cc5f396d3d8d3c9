"""Workers on a throw-away Postgres database: a workspace set up for them and `coord worker` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import PLUGINS
from tests.e2e.conftest import REPO, coord_cmd, coord_env


def sleep_plan(n: int, seconds: float, extra: str = "") -> str:
    """A plan of ``n`` independent sleeping steps (role lead), plus ``extra`` task lines."""
    lines = ["name: sleepy", "tasks:"]
    lines += [f"  - {{id: s{i}, title: S{i}, role: lead, run: t_sleep, with: {{seconds: {seconds}}}}}"
              for i in range(n)]
    return "\n".join(lines) + "\n" + extra


class Workspace:
    """A workspace whose state is on a fresh database and whose runs dispatch to workers."""

    def __init__(self, root: Path, url: str, lease_s: float) -> None:
        self.root, self.url = root, url
        root.mkdir(parents=True, exist_ok=True)
        (root / "coord.yaml").write_text(f"database: {url}\nworkers:\n  lease_s: {lease_s}\n")
        self.procs: list[subprocess.Popen[str]] = []

    def env(self) -> dict[str, str]:
        env = coord_env()
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGINS), str(REPO), env.get("PYTHONPATH")) if p)
        env.pop("COORD_DATABASE_URL", None)
        return env

    def coord(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*coord_cmd(), *args], cwd=self.root, capture_output=True, text=True,
                              timeout=timeout, env=self.env(), stdin=subprocess.DEVNULL)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """A coord process in the background (a worker, a run)."""
        log = open(self.root / f"proc-{len(self.procs)}.log", "w")  # noqa: SIM115 - the process writes it
        proc = subprocess.Popen([*coord_cmd(), *args], cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                text=True, env=self.env(), stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def worker(self, name: str, *args: str) -> subprocess.Popen[str]:
        """Start `coord worker --name NAME` and wait until it is listed live."""
        proc = self.start("worker", "--name", name, *args)
        self.wait_for(lambda: name in {w["name"] for w in self.workers() if w["live"]}, f"worker {name} to start",
                      proc)
        return proc

    def workers(self) -> list[dict]:
        out = self.coord("workers", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def events(self) -> list[dict]:
        path = self.root / ".coord" / "events.jsonl"
        found = []
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return found

    def wait_for(self, ready: Callable[[], bool], what: str, proc: subprocess.Popen[str] | None = None,
                 timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"{what}: the process ended ({proc.returncode}): {self.logs()}")
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.logs()}"
            time.sleep(0.1)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.root.glob("proc-*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers_ws(tmp_path: Path, pg_database: str) -> Iterator[Callable[..., Workspace]]:
    """Make a workers workspace (``lease_s`` given); every process it started is stopped afterwards."""
    made: list[Workspace] = []

    def make(lease_s: float = 30, name: str = "ws") -> Workspace:
        ws = Workspace(tmp_path / name, pg_database, lease_s)
        made.append(ws)
        return ws

    yield make
    for ws in made:
        ws.stop_all()
