"""`coord serve` and `coord run PLAN --serve [PORT]` as a person starts them: real processes, real
sockets on loopback, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.workspace import Workspace
from tests.conftest import PLUGINS
from tests.web.conftest import GATED_PLAN

REPO = Path(__file__).resolve().parents[2]
COORD = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(PLUGINS)!r}); "
         "from coordinator.cli.app import main; sys.argv[0] = 'coord'; main()"]
URL = re.compile(r"(http://127\.0\.0\.1:\d+/(?:\?token=\S+)?)")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COORD_SERVE_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["COLUMNS"] = "200"  # the URL on one line
    return env


def _start(args: list[str], cwd: Path) -> tuple[subprocess.Popen[str], list[str], str]:
    """Start coord; wait for the dashboard's address (the lines read so far, and the address)."""
    proc = subprocess.Popen([*COORD, *args], cwd=cwd, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    url = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = URL.search(line)
        url = url or (m.group(1) if m else None)
        if url and ("read-only" in line or "decisions enabled" in line):  # the line after the address
            return proc, lines, url
    proc.kill()
    raise AssertionError("no dashboard address printed:\n" + "".join(lines))


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


def test_cli_start_up_loads_no_web_library():
    code = ("import sys; import coordinator.cli.app; "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'matplotlib', 'coordinator.web') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_coord_serve_read_only_then_with_decisions_and_a_token(ws: Workspace, waiting_run):
    proc, lines, url = _start(["serve", "--port", "0", "-w", str(ws.root)], ws.root)
    try:
        assert "?token=" not in url and any("read-only" in line for line in lines)
        page = httpx.get(url + f"runs/{waiting_run.run_id}", timeout=10)
        assert page.status_code == 200 and 'data-gate="signoff" data-status="waiting"' in page.text
    finally:
        code, out = _stop(proc)
    assert code == 0, out
    proc, lines, url = _start(["serve", "--port", "0", "--allow-decisions", "--as", "Lee Lead", "-w", str(ws.root)],
                              ws.root)
    try:
        base, token = url.split("?token=")
        assert len(token) >= 24 and any("recorded as 'Lee Lead'" in line for line in lines)
        assert httpx.get(base, timeout=10).status_code == 401
        with httpx.Client(follow_redirects=True, timeout=10) as c:
            page = c.get(f"{base}runs/{waiting_run.run_id}?token={token}")
            assert page.status_code == 200 and 'value="approve"' in page.text and "Lee Lead" in page.text
    finally:
        code, out = _stop(proc)
    assert code == 0, out


def test_coord_serve_on_a_port_in_use_says_so(ws: Workspace):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = CliRunner().invoke(app, ["serve", "--port", str(port), "-w", str(ws.root)])
    assert out.exit_code == 2
    assert f"port {port} on 127.0.0.1 is in use; pick another with --port" in out.stderr
    assert "Traceback" not in out.output


def test_a_port_without_serve_or_not_a_port_is_refused(ws: Workspace):
    out = CliRunner().invoke(app, ["run", "plan.yaml", "9000", "-w", str(ws.root)])
    assert out.exit_code == 2 and "a PORT goes only with --serve" in out.stderr
    bad = CliRunner().invoke(app, ["run", "plan.yaml", "--serve", "http", "-w", str(ws.root)])
    assert bad.exit_code == 2 and "invalid value 'http' for PORT: a port number from 0 to 65535" in bad.stderr
    assert not (ws.root / ".coord").exists()


@pytest.mark.slow
def test_coord_run_serve_shows_the_run_and_keeps_serving_once_it_waits(ws: Workspace):
    (ws.root / "webplan.yaml").write_text(GATED_PLAN)
    with socket.socket() as probe:  # a free port to ask for by number
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc, lines, url = _start(["run", "webplan.yaml", "--serve", str(port), "-w", str(ws.root)], ws.root)
    try:
        assert url == f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while not any("keeps serving" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            assert proc.stdout is not None
            lines.append(proc.stdout.readline())
        runs = httpx.get(url, timeout=10)
        run_id = re.search(r'data-run="([^"]+)"', runs.text).group(1)
        page = httpx.get(f"{url}runs/{run_id}", timeout=10)
        assert 'id="phase" data-phase="waiting"' in page.text
    finally:
        code, out = _stop(proc)
    assert code == 3, "".join(lines) + out  # the run's own exit code: waiting for a person
    assert "waiting for a person" in "".join(lines) + out
