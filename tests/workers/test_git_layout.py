"""Work that travels through git: a worker with a clone of its own (no shared workspace path) does an agent's
assignment on ``coord/<run>/<task>``, pushes the branch, and the coordinator merges it after the gate — or
leaves it unmerged when the gate rejects it. A step waits for a worker in the workspace's path, and
``coord status`` says why."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from git import Actor, Repo

from tests.e2e.conftest import coord_cmd
from tests.roles.conftest import fake_clis  # noqa: F401 - the fake agent CLIs on PATH (a fixture)
from tests.workers.conftest import Workspace

pytestmark = pytest.mark.slow

PLAN = """name: p
roles:
  lead: {agent: claude, driver: cli}
tasks:
  - id: write
    title: Write the report
    role: lead
    instructions: "Write reports/x.md with the number of rows."
gates:
  - id: report_check
    after: [write]
    reviewer: lead
    policy: auto
    on_fail: block
    criteria:
      - {file: reports/x.md, critical: true}
      - {command: "grep -qx 'rows: 3' reports/x.md", critical: true, label: "the report counts 3 rows"}
"""
STEP_PLAN = "name: s\ntasks:\n  - {id: s0, title: S0, role: lead, run: t_sleep, with: {seconds: 0.1}}\n"
WHO = Actor("Test Person", "person@example.com")


class GitSetup:
    """A bare "remote", the coordinator's workspace as a clone of it, and a directory elsewhere for workers."""

    def __init__(self, tmp_path: Path, ws: Workspace) -> None:
        self.ws = ws
        self.remote = tmp_path / "remote.git"
        Repo.init(self.remote, bare=True, initial_branch="main")
        config = (f"database: {ws.url}\nworkspace_id: gitws\nworkers:\n  lease_s: 10\n  git_remote: origin\n")
        (ws.root / "coord.yaml").write_text(config)
        (ws.root / ".gitignore").write_text(".coord/\n")
        repo = Repo.init(ws.root, initial_branch="main")
        repo.index.add(["coord.yaml", ".gitignore"])
        repo.index.commit("coord's configuration", author=WHO, committer=WHO)
        repo.create_remote("origin", str(self.remote))
        repo.git.push("origin", "main")
        self.repo = repo
        self.away = tmp_path / "worker-machine"  # the worker's own directory: not the workspace's path
        self.away.mkdir()

    def git_worker(self, name: str, *args: str) -> subprocess.Popen[str]:
        """`coord worker --git REMOTE --checkout <away>/<name>`, started in a directory of its own."""
        log = open(self.ws.root / f"proc-{len(self.ws.procs)}.log", "w")  # noqa: SIM115 - the process writes it
        proc = subprocess.Popen([*coord_cmd(), "worker", "--name", name, "--git", str(self.remote), "--checkout",
                                 str(self.away / name), *args], cwd=self.away, stdout=log,
                                stderr=subprocess.STDOUT, text=True, env=self.ws.env(), stdin=subprocess.DEVNULL)
        self.ws.procs.append(proc)
        self.ws.wait_for(lambda: name in {w["name"] for w in self.ws.workers() if w["live"]},
                         f"worker {name} to start", proc)
        return proc


def _recipes(tmp_path: Path, monkeypatch, text: str) -> None:
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps({"write": {"files": {"reports/x.md": text}}}))
    monkeypatch.setenv("FAKE_AGENT_RECIPES", str(path))


@pytest.fixture
def git_setup(tmp_path, workers_ws, fake_clis, monkeypatch):  # noqa: F811 - fake_clis is the fixture
    monkeypatch.delenv("COORD_DATABASE_URL", raising=False)
    return GitSetup(tmp_path, workers_ws(lease_s=10))


def test_a_branch_pushed_by_a_git_worker_is_merged_after_the_gate_approves(git_setup, tmp_path, monkeypatch):
    _recipes(tmp_path, monkeypatch, "# X\nrows: 3\n")
    ws, setup = git_setup.ws, git_setup
    (ws.root / "p.yaml").write_text(PLAN)
    setup.git_worker("gw")
    run = ws.coord("run", "p.yaml")
    assert run.returncode == 0, run.stderr + ws.logs()
    status = json.loads(ws.coord("status", "--json").stdout)
    assert status["gates"]["report_check"]["status"] == "approved"
    rec = status["tasks"]["write"]
    branch = rec["metrics"]["branch"]
    assert branch == f"coord/{status['run_id']}/write"
    assert rec["metrics"]["merge"] == "merged" and rec["metrics"]["pushed"] and rec["metrics"]["worker_host"]
    # the work came by push: the agent ran in the worker's clone, not in the workspace
    assert (ws.root / "reports" / "x.md").read_text() == "# X\nrows: 3\n"
    assert not (ws.root / ".coord" / "worktrees" / status["run_id"] / "write").exists()
    mirror = setup.away / "gw" / ".coord" / "events.jsonl"  # the worker's own mirror of the event log
    started = [e for e in map(json.loads, mirror.read_text().splitlines()) if e["kind"] == "task_started"]
    assert [e.get("worker") for e in started] == ["gw"]
    merge = setup.repo.head.commit
    assert len(merge.parents) == 2 and merge.parents[1].hexsha == rec["metrics"]["pushed"]
    assert f"Coord-Host: {rec['metrics']['worker_host']}" in merge.message
    assert "Coord-Task: write" in merge.parents[1].message  # the agent's own commit, as pushed
    # the coordinator pushed the merged base, so the next git worker starts from it
    assert Repo(setup.remote).heads["main"].commit.hexsha == merge.hexsha
    assert Repo(setup.away / "gw").heads[branch].commit.hexsha == rec["metrics"]["pushed"]


def test_a_rejected_gate_leaves_the_pushed_branch_unmerged(git_setup, tmp_path, monkeypatch):
    _recipes(tmp_path, monkeypatch, "rows: 2\n")
    ws, setup = git_setup.ws, git_setup
    (ws.root / "p.yaml").write_text(PLAN)
    base = setup.repo.head.commit.hexsha
    setup.git_worker("gw")
    run = ws.coord("run", "p.yaml")
    assert run.returncode == 1, run.stderr + ws.logs()
    status = json.loads(ws.coord("status", "--json").stdout)
    assert status["gates"]["report_check"]["status"] == "rejected"
    rec = status["tasks"]["write"]
    assert rec["metrics"]["merge"] == "withheld" and rec["metrics"]["pushed"]
    assert setup.repo.head.commit.hexsha == base and not (ws.root / "reports" / "x.md").exists()
    branch = rec["metrics"]["branch"]
    # the branch is kept where a person can look at it: fetched into the workspace and on the remote
    assert setup.repo.heads[branch].commit.hexsha == rec["metrics"]["pushed"]
    assert Repo(setup.remote).heads[branch].commit.hexsha == rec["metrics"]["pushed"]
    assert Repo(setup.remote).heads["main"].commit.hexsha == base


def test_a_step_waits_for_a_worker_in_the_workspace_and_status_says_why(git_setup):
    ws, setup = git_setup.ws, git_setup
    (ws.root / "s.yaml").write_text(STEP_PLAN)
    setup.git_worker("gw")
    run = ws.start("run", "s.yaml")

    def reason() -> str:
        out = ws.coord("status", "--json")
        if out.returncode != 0:
            return ""
        return str((json.loads(out.stdout).get("tasks", {}).get("s0") or {}).get("reason") or "")

    ws.wait_for(lambda: "workspace's files" in reason(), "coord status to say why the step waits", run)
    assert "workspace-files" in reason() and "--shared-workspace" in reason()
    assert not (setup.away / "gw" / ".coord" / "events.jsonl").exists()  # the git worker did not take it
    ws.worker("local")  # a worker in the workspace's path takes it
    assert run.wait(timeout=120) == 0, ws.logs()
    assert [e.get("worker") for e in ws.events() if e["kind"] == "task_started"] == ["local"]


def test_a_git_worker_is_refused_when_the_workspace_does_not_route_by_git(git_setup):
    ws, setup = git_setup.ws, git_setup
    (ws.root / "coord.yaml").write_text(f"database: {ws.url}\nworkspace_id: gitws\nworkers: true\n")
    setup.repo.index.add(["coord.yaml"])
    setup.repo.index.commit("no git routing", author=WHO, committer=WHO)
    setup.repo.git.push("origin", "main")
    out = subprocess.run([*coord_cmd(), "worker", "--git", str(setup.remote), "--checkout", str(setup.away / "c")],
                         cwd=setup.away, capture_output=True, text=True, env=ws.env(), timeout=120,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 2, out.stderr
    assert "git_remote" in out.stderr and "Traceback" not in out.stderr
