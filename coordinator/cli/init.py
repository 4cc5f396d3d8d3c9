"""`coord init`: scaffold a workspace."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

import typer

from coordinator.cli import console
from coordinator.cli._common import WorkspaceOpt
from coordinator.core.io import atomic_write_text
from coordinator.core.workspace import Workspace
from task_boards.markers import replace_block

CONFIG = """# coord workspace settings.
# Rebind a role to another agent or driver, e.g. a person reviews quality:
#   quality: {agent: human, driver: human}
# A new role is declared in the plan's roles: (this file rebinds roles, it does not add them).
# Drivers (README.md, Concepts): auto (the default: picks one), offline (deterministic stand-in),
# pipeline (in-process steps), llm (an API, see README.md "LLM providers"), human (a person ticks
# the board), cli (the agent's CLI in a git worktree, see README.md "Coding-agent CLI drivers"):
#   lead: {agent: claude, driver: cli, model: claude-sonnet-4-5, permissions: acceptEdits}
roles:
  lead: {agent: claude}
  quality: {agent: codex}
  execution: {agent: cursor}
"""

SAMPLE_PLAN = """# A sample plan: `coord plan show example` validates it, `coord run example` runs it.
# Every key is described in README.md ("Concepts" and "A plan, briefly").
name: example
title: Example plan
roles:
  lead: {agent: claude}
  quality: {agent: codex}
  execution: {agent: cursor}
  # lead, quality and execution exist in every plan; roles: here rebinds them and adds new ones.
  # A role a person plays, added next to them (`driver` is a key of the role binding; coord.yaml
  # can rebind it once the plan declares it):
  # signoff: {agent: human, driver: human}
tasks:
  - id: draft_notes
    title: Draft the release notes
    role: lead
    instructions: Write the release notes for this week's changes.
    # What coord checks before it calls the task done; a task with nothing to check waits for a
    # person to tick it. The offline stand-in (no agent configured) writes reports/assignments/<task>.md.
    accept: [{file: reports/assignments/draft_notes.md}]
  - id: review_notes
    title: Review the release notes
    role: quality
    needs: [draft_notes]
    instructions: Review the release notes and list what is missing.
    accept: [{file: reports/assignments/review_notes.md}]
  # A task a person does (its role is bound to `driver: human`): coord hands it over and
  # the run waits (exit code 3) until the person ticks it on task_boards/HUMAN_TASKS.md;
  # `coord watch` (or `coord board sync` and `coord resume`) applies the tick and goes on.
  # - id: sign_off
  #   title: Sign off the release
  #   role: signoff
  #   needs: [review_notes]
  #   instructions: Read the release notes and tick this task when the release may ship.
"""

GITIGNORE = """# coord's own state: checkpoints, events, the cost ledger, logs and the agents' git worktrees.
.coord/
# Bytecode Python leaves when agents and checks run tests; it does not belong on an agent's branch.
__pycache__/
# data/ is deliberately NOT ignored. An agent (driver: cli) works in its own git worktree and
# only what git tracks leaves it: data an agent writes under an ignored path is never committed,
# measured by a gate or merged. Data you commit is in every worktree; data a run's steps
# generate shows up untracked, and coord copies the files a task's `needs` produced into its
# worktree either way (never committing them). To hide data your steps regenerate, ignore
# those directories only, e.g.:
#   data/generated_examples/
"""


def register(app: typer.Typer) -> None:
    """Mount the command."""

    @app.command()
    def init(workspace: WorkspaceOpt = Path("."),
             git: Annotated[bool, typer.Option("--git", help="make the workspace a git repository with a "
                                               "first commit (the cli driver needs one)")] = False,
             example: Annotated[str | None, typer.Option(
                 "--example", help=f"also write an example pipeline ({', '.join(examples())}): its plan, "
                                   "steps/ and tools/")] = None) -> None:
        """Create coord.yaml, plans/example.yaml, task_boards/ and TEAM_COORDINATION.md (keeps what exists)."""
        from roles.git_worktrees import ensure_git_repo  # git and jinja2 load only when init runs

        # start-up: the engine loads only when this command runs
        from task_boards.render import TEAM_HEADER

        if example is not None and example not in examples():
            console.error(f"unknown example {example!r} (examples: {', '.join(examples())})")
            raise typer.Exit(2)
        ws = Workspace.at(workspace)
        ws.root.mkdir(parents=True, exist_ok=True)
        ws.ensure()
        (ws.root / "plans").mkdir(exist_ok=True)
        created = []
        if not ws.config.exists():
            atomic_write_text(ws.config, CONFIG)
            created.append("coord.yaml")
        if not ws.team_file.exists():
            atomic_write_text(ws.team_file, replace_block(TEAM_HEADER, "status", "_No run yet._"))
            created.append("TEAM_COORDINATION.md")
        if example is not None:
            created += write_example(example, ws.root)
        sample = ws.root / "plans" / "example.yaml"
        if example is None and not sample.exists():
            atomic_write_text(sample, SAMPLE_PLAN)
            created.append("plans/example.yaml")
        gitignore = ws.root / ".gitignore"
        if not gitignore.exists():
            atomic_write_text(gitignore, GITIGNORE)
            created.append(".gitignore")
        if git:
            console.info(ensure_git_repo(ws.root))
        console.success(f"workspace ready at {ws.root}" + (f" (created {', '.join(created)})" if created else ""))
        if example is not None:
            console.info(f"next: coord run {example} (plans/{example}.yaml)")
        else:
            console.info("next: coord run example (plans/example.yaml) or coord run week2 (built in)")


def examples() -> list[str]:
    """The example workspaces coord ships."""
    root = resources.files("coordinator.examples")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def write_example(name: str, root: Path) -> list[str]:
    """Copy example ``name`` into ``root``, keeping files that exist; the workspace-relative paths written."""
    written: list[str] = []

    def copy(src: Traversable, rel: Path) -> None:
        for entry in sorted(src.iterdir(), key=lambda e: e.name):
            if entry.name == "__pycache__" or (rel == Path() and entry.name == "__init__.py"):
                continue
            if entry.is_dir():
                copy(entry, rel / entry.name)
            elif not (root / rel / entry.name).exists():
                (root / rel).mkdir(parents=True, exist_ok=True)
                atomic_write_text(root / rel / entry.name, entry.read_text(encoding="utf-8"))
                written.append((rel / entry.name).as_posix())

    copy(resources.files("coordinator.examples") / name, Path())
    return written
