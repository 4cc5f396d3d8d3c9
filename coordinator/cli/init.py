"""`coord init`: scaffold a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coordinator import console
from coordinator.cli._common import WorkspaceOpt
from coordinator.workspace import Workspace
from pipeline._io import atomic_write_text
from task_boards.markers import replace_block

CONFIG = """# coord workspace settings.
# Rebind a role to another agent or driver, e.g. a person reviews quality:
#   quality: {agent: human, driver: human}
# Drivers: offline (deterministic stand-in), pipeline, cli (the agent's CLI in a git worktree):
#   lead: {agent: claude, driver: cli, model: claude-sonnet-4-5, permissions: acceptEdits}
roles:
  lead: {agent: claude}
  quality: {agent: codex}
  execution: {agent: cursor}
"""


def register(app: typer.Typer) -> None:
    """Mount the command."""

    @app.command()
    def init(workspace: WorkspaceOpt = Path("."),
             git: Annotated[bool, typer.Option("--git", help="make the workspace a git repository with a "
                                               "first commit (the cli driver needs one)")] = False) -> None:
        """Create coord.yaml, plans/, task_boards/ and TEAM_COORDINATION.md (keeps what exists)."""
        from roles.git_worktrees import ensure_git_repo  # git and jinja2 load only when init runs
        from task_boards.render import TEAM_HEADER

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
        gitignore = ws.root / ".gitignore"
        if not gitignore.exists():
            atomic_write_text(gitignore, ".coord/\ndata/\n")
            created.append(".gitignore")
        if git:
            console.info(ensure_git_repo(ws.root))
        console.success(f"workspace ready at {ws.root}" + (f" (created {', '.join(created)})" if created else ""))
        console.info("next: coord run week2")
