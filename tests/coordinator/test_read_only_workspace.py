"""A workspace whose ``.coord`` cannot be written: status and costs read it, approve says it is read-only.

coord runs as root here, and root writes through file permissions, so a chmod alone proves
nothing. The read-only condition is made two ways root cannot write through: a read-only bind
mount of ``.coord`` in a private mount namespace (``unshare -m``; gone when the command exits),
and the command run as the unprivileged user ``nobody`` (``setpriv``) on a workspace it does not
own. Each way is skipped, with the reason, where this machine cannot make it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coordinator.core.llm import CallRecord, Cost, Usage
from coordinator.core.workspace import Workspace
from coordinator.engine.ledger import Ledger
from coordinator.engine.runner import RunOptions, run_plan
from tests.conftest import PLUGINS
from tests.coordinator.steps_for_tests import write_plan

pytestmark = pytest.mark.slow  # each command is a subprocess

REPO = Path(__file__).resolve().parents[2]
PLAN = """name: ro
tasks:
  - {id: make, title: Make, role: execution, run: t_noop, with: {value: 1}}
  - {id: ship, title: Ship, role: lead, needs: [make], run: t_noop}
gates:
  - id: signoff
    after: [make]
    blocks: [ship]
    policy: human
    criteria:
      - {metric: make.value, op: ">=", value: 1, critical: true}
"""
Runner = Callable[[Workspace, list[str]], subprocess.CompletedProcess[str]]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)]), "COLUMNS": "200",
            "NO_COLOR": "1"}


def _coord(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "coordinator", *args]


def _read_only_mount(ws: Workspace, args: list[str]) -> subprocess.CompletedProcess[str]:
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(ws.state_dir), *_coord(args)],
                          capture_output=True, text=True, env=_env(), timeout=120)


def _as_nobody(ws: Workspace, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**_env(), "HOME": str(ws.root)}
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *_coord(args)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=ws.root)


def _mount_unavailable() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare on PATH"
    with tempfile.TemporaryDirectory() as d:
        probe = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$1" "$1" && mount -o remount,ro,bind '
                                '"$1" "$1" && ! touch "$1/probe" 2>/dev/null', "sh", d], capture_output=True)
        if probe.returncode != 0:
            return f"cannot make a read-only bind mount here: {probe.stderr.decode().strip() or 'refused'}"
    return None


def _nobody_unavailable(root: Path) -> str | None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return "needs root and setpriv to run a command as nobody"
    probe = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c",
                            "import coordinator.cli.app, os, sys; sys.exit(os.access(sys.argv[1], os.W_OK))",
                            str(root)], capture_output=True, text=True, env=_env())
    if probe.returncode != 0:
        return f"nobody cannot run coord from {REPO} or can write {root}: {probe.stderr.strip()[-200:] or 'refused'}"
    return None


@pytest.fixture(params=["read-only mount", "unprivileged user"])
def read_only(request: pytest.FixtureRequest) -> Iterator[tuple[Workspace, Runner]]:
    """A workspace with a run waiting on a person's decision and one paid call in its ledger, and a way to
    run coord on it that cannot write its ``.coord``."""
    # nobody must be able to reach the workspace: pytest's tmp_path sits in a directory only root may enter
    root = Path(tempfile.mkdtemp(prefix="coord-ro-"))
    try:
        os.chmod(root, 0o755)
        ws = Workspace.at(root)
        reason = _mount_unavailable() if request.param == "read-only mount" else _nobody_unavailable(root)
        if reason:
            pytest.skip(f"{request.param}: {reason}")
        summary = run_plan(ws, RunOptions(plan=str(write_plan(ws.root, PLAN)), render_interval=0))
        assert summary.phase == "waiting"
        ledger = Ledger.of(ws.state_dir)
        ledger.record(CallRecord(kind="llm", provider="anthropic", model="claude-haiku-4-5",
                                 usage=Usage(input_tokens=1200, output_tokens=300), cost=Cost(0.0123)),
                      run_id=summary.run_id, task_id="make", role="execution", agent="cursor")
        del ledger  # its connection closes: the call is in the database file itself
        yield ws, (_read_only_mount if request.param == "read-only mount" else _as_nobody)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _one_clean_error(result: subprocess.CompletedProcess[str]) -> str:
    text = result.stdout + result.stderr
    assert "Traceback" not in text and "OperationalError" not in text, text
    return " ".join(text.split())


def test_status_and_costs_read_a_read_only_workspace(read_only):
    ws, run = read_only
    status = run(ws, ["status", "-w", str(ws.root)])
    text = _one_clean_error(status)
    assert status.returncode == 0, text
    assert "signoff" in text and "waiting" in text and "damaged" not in text

    costs = run(ws, ["costs", "-w", str(ws.root)])
    text = _one_clean_error(costs)
    assert costs.returncode == 0, text
    assert "$0.012" in text and "1,200" in text  # the recorded call, read from the ledger


def test_approve_on_a_read_only_workspace_says_so_and_changes_nothing(read_only):
    ws, run = read_only
    before = {p.name: p.read_bytes() for p in ws.state_dir.rglob("*") if p.is_file()}
    approve = run(ws, ["approve", "signoff", "-w", str(ws.root)])
    text = _one_clean_error(approve)
    assert approve.returncode == 2
    assert text.startswith("error: the workspace is read-only:") and "record a decision on gate 'signoff'" in text
    budget = run(ws, ["budget", "raise", "1", "-w", str(ws.root)])
    assert budget.returncode == 2 and "the workspace is read-only" in _one_clean_error(budget)
    assert {p.name: p.read_bytes() for p in ws.state_dir.rglob("*") if p.is_file()} == before
