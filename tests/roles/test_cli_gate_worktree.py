"""A gate over cli work measures the unmerged branch (a merge candidate), and an agent's
worktree holds the inputs its `needs` wrote in the workspace without committing them."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from git import Actor, Repo
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.events import read_events
from coordinator.engine.runner import run_status
from roles import git_worktrees
from roles.git_worktrees import commit_all, create_worktree, merge_candidate, remove_worktree
from tests.roles.test_cli_drivers import run

REPORT_PLAN = """name: p
roles:
  lead: {{agent: claude, driver: cli}}
tasks:
  - id: write
    title: Write the report
    role: lead
    instructions: "Write reports/x.md with the number of rows."
gates:
  - id: report_check
    after: [write]
    reviewer: lead
    policy: {policy}
    on_fail: block
    criteria:
      - {{file: reports/x.md, critical: true}}
      - {{command: "grep -qx 'rows: 3' reports/x.md", critical: true, label: "the report counts 3 rows"}}
"""


def _recipes(tmp_path: Path, monkeypatch, recipes: dict) -> None:
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps({t: {"files": files} for t, files in recipes.items()}))
    monkeypatch.setenv("FAKE_AGENT_RECIPES", str(path))


def _events(ws, kind):
    return [e for e in read_events(ws.events) if e["kind"] == kind]


def _tree(commit) -> set[str]:
    return {b.path for b in commit.tree.traverse() if b.type == "blob"}


def _no_candidates_left(ws, run_id) -> bool:
    return not list((ws.state_dir / "worktrees" / run_id).glob(".candidate-*"))


def test_gate_measures_the_branch_and_it_merges_afterwards(git_ws, fake_clis, tmp_path, monkeypatch):
    _recipes(tmp_path, monkeypatch, {"write": {"reports/x.md": "# X\nrows: 3\n"}})
    summary = run(git_ws, REPORT_PLAN.format(policy="auto"))
    assert summary.exit_code == 0, summary.problems
    gate = summary.state["gates"]["report_check"]
    assert gate["status"] == "approved"
    assert [c["passed"] for c in gate["criteria"]] == [True, True]
    rec = summary.state["tasks"]["write"]
    assert rec["metrics"]["merge"] == "merged"
    assert (git_ws.root / "reports" / "x.md").read_text() == "# X\nrows: 3\n"
    kinds = [e["kind"] for e in read_events(git_ws.events) if e["kind"] in
             ("task_finished", "gate_decided", "branch_merged")]
    assert kinds == ["task_finished", "gate_decided", "branch_merged"]
    (decided,) = _events(git_ws, "gate_decided")
    assert decided["measured_in"].startswith(f"merge candidate of coord/{summary.run_id}/write on main")
    assert _no_candidates_left(git_ws, summary.run_id)


def test_a_gate_that_waits_for_a_person_measured_work_not_yet_in_the_workspace(git_ws, fake_clis, tmp_path,
                                                                               monkeypatch):
    _recipes(tmp_path, monkeypatch, {"write": {"reports/x.md": "rows: 3\n"}})
    summary = run(git_ws, REPORT_PLAN.format(policy="human"))
    assert summary.exit_code == 3
    gate = summary.state["gates"]["report_check"]
    assert gate["status"] == "waiting" and gate["verdict"] == "approved"
    assert "files measured in the merge candidate" in gate["reason"]
    assert summary.state["tasks"]["write"]["metrics"]["merge"] == "pending_gate"
    assert not (git_ws.root / "reports" / "x.md").exists()  # measured on the branch, not the workspace
    assert _no_candidates_left(git_ws, summary.run_id)
    res = CliRunner().invoke(app, ["approve", "report_check", "-w", str(git_ws.root)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    st = run_status(git_ws)
    assert st["phase"] == "finished" and st["tasks"]["write"]["metrics"]["merge"] == "merged"
    assert (git_ws.root / "reports" / "x.md").read_text() == "rows: 3\n"


def test_a_failing_file_criterion_still_fails_on_the_branch(git_ws, fake_clis, tmp_path, monkeypatch):
    _recipes(tmp_path, monkeypatch, {"write": {"reports/x.md": "rows: 2\n"}})
    summary = run(git_ws, REPORT_PLAN.format(policy="auto"))
    assert summary.exit_code == 1
    gate = summary.state["gates"]["report_check"]
    assert gate["status"] == "rejected"
    assert [c["passed"] for c in gate["criteria"]] == [True, False]
    assert summary.state["tasks"]["write"]["metrics"]["merge"] == "withheld"


TWO_BRANCHES = """name: p
roles:
  lead: {agent: claude, driver: cli}
  execution: {agent: cursor, driver: cli}
  quality: {agent: codex, driver: offline}
tasks:
  - {id: brief, title: Brief, role: quality, instructions: "Write the brief.",
     accept: [{file: reports/assignments/brief.md}]}
  - {id: a, title: Part A, role: lead, instructions: "Write part A."}
  - {id: b, title: Part B, role: execution, instructions: "Write part B."}
gates:
  - id: both
    after: [a, b]
    reviewer: lead
    policy: auto
    on_fail: block
    criteria:
      - {file: FILE_A, critical: true}
      - {file: reports/b.md, critical: true}
      - {file: reports/assignments/brief.md, critical: true, label: "the stand-in's brief (workspace)"}
      - {command: "cat FILE_A reports/b.md | grep -c done | grep -qx 2", critical: true}
"""


def test_a_gate_over_two_branches_measures_them_merged_together(git_ws, fake_clis, tmp_path, monkeypatch):
    _recipes(tmp_path, monkeypatch, {"a": {"reports/a.md": "a done\n"}, "b": {"reports/b.md": "b done\n"}})
    summary = run(git_ws, TWO_BRANCHES.replace("FILE_A", "reports/a.md"))
    assert summary.exit_code == 0, summary.problems
    gate = summary.state["gates"]["both"]
    assert gate["status"] == "approved", gate["findings"]
    assert all(c["passed"] for c in gate["criteria"])
    tasks = summary.state["tasks"]
    assert tasks["a"]["metrics"]["merge"] == tasks["b"]["metrics"]["merge"] == "merged"
    (decided,) = _events(git_ws, "gate_decided")
    assert f"coord/{summary.run_id}/a, coord/{summary.run_id}/b on main" in decided["measured_in"]
    assert (git_ws.root / "reports" / "a.md").exists() and (git_ws.root / "reports" / "b.md").exists()
    assert _no_candidates_left(git_ws, summary.run_id)


def test_branches_that_conflict_are_named_and_none_merges(git_ws, fake_clis, tmp_path, monkeypatch):
    _recipes(tmp_path, monkeypatch, {"a": {"reports/a.md": "a done\n", "reports/b.md": "a wrote this\n"},
                                     "b": {"reports/b.md": "b done\n"}})
    summary = run(git_ws, TWO_BRANCHES.replace("FILE_A", "reports/a.md"))
    assert summary.exit_code == 1
    gate = summary.state["gates"]["both"]
    assert gate["status"] == "rejected"
    left_out = [f for f in gate["findings"] if "left out of the merge candidate" in f]
    assert left_out == [f"branch coord/{summary.run_id}/b (task b) was left out of the merge candidate the gate "
                        "measured: conflicts in reports/b.md; its files were not measured, and it cannot merge "
                        "as it stands"]
    tasks = summary.state["tasks"]
    assert tasks["a"]["metrics"]["merge"] == tasks["b"]["metrics"]["merge"] == "withheld"
    assert not (git_ws.root / "reports" / "b.md").exists()


# -- inputs: what a task's needs wrote in the workspace is in its worktree, never in its commit --

STEP = '''
import hashlib

from coordinator import Artifact, StepContext, StepResult, step


@step()
def make(ctx: StepContext) -> StepResult:
    data = b'{"id": 1}\\n{"id": 2}\\n'
    path = ctx.path("data/in.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return StepResult(metrics={"rows": 2},
                      artifacts=[Artifact("data/in.jsonl", hashlib.sha256(data).hexdigest(), len(data), 2)])
'''

AGENT = '''#!{python}
"""A claude stand-in: counts the lines of its input; with AGENT_COMMITS=1 commits everything itself."""
import json
import os
import subprocess
from pathlib import Path

src = Path("data/in.jsonl")
rows = len([x for x in src.read_text().splitlines() if x.strip()]) if src.is_file() else -1
Path("reports").mkdir(exist_ok=True)
Path("reports/count.md").write_text(f"lines: {{rows}}\\n")
if os.environ.get("AGENT_COMMITS") == "1":
    who = {{"GIT_AUTHOR_NAME": "agent", "GIT_AUTHOR_EMAIL": "a@example.invalid",
           "GIT_COMMITTER_NAME": "agent", "GIT_COMMITTER_EMAIL": "a@example.invalid"}}
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "add", "-f", "data/in.jsonl"], check=True)
    subprocess.run(["git", "commit", "-q", "-m", "wip"], check=True, env={{**os.environ, **who}})
print(json.dumps({{"type": "result", "subtype": "success", "is_error": False, "result": f"counted {{rows}} lines",
                  "session_id": "s-1", "total_cost_usd": 0.001}}))
'''

INPUT_PLAN = """name: p
roles:
  lead: {{agent: claude, driver: cli, executable: "{exe}"}}
tasks:
  - {{id: make, title: Make the input, role: execution, run: "steps.make_input:make"}}
  - id: use
    title: Count the input
    role: lead
    needs: [make]
    instructions: "Count the lines of data/in.jsonl into reports/count.md."
    accept: [{{file: reports/count.md}}]
gates:
  - id: counted
    after: [use]
    reviewer: lead
    policy: auto
    on_fail: block
    criteria:
      - {{command: "test $(wc -l < data/in.jsonl) -eq 2 && grep -qx 'lines: 2' reports/count.md",
         critical: true, label: "the count matches the input"}}
"""


@pytest.fixture
def input_ws(git_ws, fake_clis, tmp_path):
    steps = git_ws.root / "steps"
    steps.mkdir()
    (steps / "__init__.py").write_text("")
    (steps / "make_input.py").write_text(textwrap.dedent(STEP))
    exe = tmp_path / "bin" / "counting-claude"
    exe.parent.mkdir()
    exe.write_text(AGENT.format(python=sys.executable))
    exe.chmod(0o755)
    yield git_ws, exe
    for name in [m for m in sys.modules if m == "steps" or m.startswith("steps.")]:
        del sys.modules[name]


@pytest.mark.parametrize("ignored", [True, False], ids=["data-ignored", "data-tracked-by-git"])
@pytest.mark.parametrize("agent_commits", [False, True], ids=["coord-commits", "agent-commits-too"])
def test_inputs_are_in_the_worktree_and_never_committed(input_ws, monkeypatch, ignored, agent_commits):
    ws, exe = input_ws
    repo = Repo(ws.root)
    if not ignored:
        (ws.root / ".gitignore").write_text(".coord/\n")
        repo.index.add([".gitignore"])
        who = Actor("Test Person", "person@example.com")
        repo.index.commit("track data/", author=who, committer=who)
    monkeypatch.setenv("AGENT_COMMITS", "1" if agent_commits else "0")
    summary = run(ws, INPUT_PLAN.format(exe=exe))
    assert summary.exit_code == 0, summary.problems
    rec = summary.state["tasks"]["use"]
    # the agent found its input: it counted two lines, and the gate agreed in the merge candidate
    assert (ws.root / "reports" / "count.md").read_text() == "lines: 2\n"
    assert summary.state["gates"]["counted"]["status"] == "approved"
    assert any("provided 1 input file(s)" in n for n in rec["notes"])
    prompt = next((ws.state_dir / "logs" / summary.run_id).glob("use.*.prompt.md")).read_text()
    assert "data/in.jsonl" in prompt
    # ... and the branch carries only the agent's own work
    m = rec["metrics"]
    assert m["merge"] == "merged" and m["files_changed"] == 1 and m["files_added"] == 1
    head = repo.heads[m["branch"]].commit
    assert "data/in.jsonl" not in _tree(head) and "reports/count.md" in _tree(head)
    assert head.hexsha == m["commit"] and head.trailers_dict["Coord-Task"] == ["use"]
    assert "data/in.jsonl" not in _tree(repo.head.commit)
    assert (ws.root / "data" / "in.jsonl").read_bytes() == b'{"id": 1}\n{"id": 2}\n'
    if not agent_commits:
        assert sorted(head.stats.files) == ["reports/count.md"]


# -- the git helpers on their own --


def test_provide_files_copies_small_links_large_and_skips_what_must_not_go_in(git_ws, monkeypatch):
    root = git_ws.root
    (root / "data").mkdir()
    (root / "data" / "small.jsonl").write_text('{"a": 1}\n')
    (root / "data" / "big.bin").write_bytes(b"x" * 2048)
    (root / ".coord").mkdir(exist_ok=True)
    (root / ".coord" / "secret.json").write_text("{}")
    monkeypatch.setattr(git_worktrees, "COPY_UP_TO_BYTES", 1024)
    wt = create_worktree(root, "r1", "t", inputs=[
        "data/small.jsonl", "data/big.bin", "README.md", "data/missing.jsonl", "../outside.txt",
        str(root / "data" / "small.jsonl"), ".coord/secret.json", "data/small.jsonl"])
    assert wt.inputs == ("data/small.jsonl", "data/big.bin")  # README.md is tracked: already there
    small, big = wt.cwd / "data" / "small.jsonl", wt.cwd / "data" / "big.bin"
    assert small.is_file() and not small.is_symlink()
    assert big.is_symlink() and big.resolve() == (root / "data" / "big.bin").resolve()
    assert not (wt.cwd / ".coord").exists()
    small.write_text("the agent's edit stays in its worktree\n")
    assert (root / "data" / "small.jsonl").read_text() == '{"a": 1}\n'
    (wt.path / "notes.md").write_text("work\n")
    sha = commit_all(wt, "m", "agent (via coord)")
    assert _tree(Repo(root).commit(sha)) == {"README.md", ".gitignore", "notes.md"}
    assert small.exists() and big.is_symlink()  # still there for the checks that run next


def test_merge_candidate_merges_in_order_links_workspace_files_and_is_removable(git_ws):
    root = git_ws.root
    (root / "data").mkdir()
    (root / "data" / "made.jsonl").write_text("{}\n")
    wts = [create_worktree(root, "r1", t) for t in ("a", "b", "c")]
    for wt, text in zip(wts, ("a\n", "b\n", "c\n"), strict=True):
        (wt.path / f"{wt.branch.rsplit('/', 1)[1]}.md").write_text(text)
    (wts[2].path / "a.md").write_text("c's version of a\n")  # c conflicts with a
    for wt in wts:
        commit_all(wt, "m", "agent")
    cand = merge_candidate(root, "r1", "g", [w.branch for w in wts] + ["coord/r1/gone"], "main",
                           provide=["data/made.jsonl", "a.md"])
    assert cand.merged == ("coord/r1/a", "coord/r1/b")
    assert cand.left_out == {"coord/r1/c": "conflicts in a.md", "coord/r1/gone": "the branch no longer exists"}
    assert (cand.cwd / "a.md").read_text() == "a\n" and (cand.cwd / "b.md").read_text() == "b\n"
    assert not (cand.cwd / "c.md").exists()
    assert cand.provided == ("data/made.jsonl",) and (cand.cwd / "data" / "made.jsonl").is_symlink()
    repo = Repo(root)
    assert repo.head.commit.hexsha == cand.base_commit and repo.active_branch.name == "main"
    assert not repo.is_dirty(untracked_files=False)
    remove_worktree(root, cand.path)
    assert not cand.path.exists()
    assert os.path.isdir(root / ".coord" / "worktrees" / "r1" / "a")
