"""What git says about the workspace: the commit under review and who is deciding."""

from __future__ import annotations

import functools
import getpass
import logging
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import git

log = logging.getLogger(__name__)


def _repo(root: Path) -> git.Repo | None:
    import git  # start-up: GitPython loads when a gate is reviewed, not with the engine

    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def workspace_commit(root: Path) -> str | None:
    """HEAD's sha of the repository holding ``root`` (``+dirty`` with uncommitted changes), or None."""
    repo = _repo(root)
    if repo is None:
        return None
    import git  # start-up: loaded by _repo already

    try:
        sha = repo.head.commit.hexsha
    except ValueError:  # a repository without commits yet
        return None
    try:
        dirty = repo.is_dirty(untracked_files=False)
    except git.GitCommandError:
        dirty = False
    return sha + ("+dirty" if dirty else "")


def person(root: Path) -> str:
    """Who is deciding or editing, the one answer for CLI decisions and board edits: git ``user.name``
    of the repository holding ``root``, else the global git ``user.name``, else ``$USER``, else the
    login name. Git is asked once per workspace per process (``coord watch`` syncs often)."""
    name = _git_user_name(str(Path(root).resolve()))
    if name:
        return name
    user = os.environ.get("USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@functools.lru_cache(maxsize=16)
def _git_user_name(root: str) -> str:
    """``git config user.name`` as seen from ``root``: the repository's value, else the global (and system) one."""
    try:
        done = subprocess.run(["git", "config", "--get", "user.name"], capture_output=True, text=True,
                              timeout=5, check=False, cwd=root if os.path.isdir(root) else None)
    except (OSError, subprocess.SubprocessError) as e:
        log.debug("no git user.name: %s", e)
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
