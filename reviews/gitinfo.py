"""What git says about the workspace: the commit under review and who is deciding."""

from __future__ import annotations

import getpass
import logging
import os
from pathlib import Path

import git

log = logging.getLogger(__name__)


def _repo(root: Path) -> git.Repo | None:
    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def workspace_commit(root: Path) -> str | None:
    """HEAD's sha of the repository holding ``root`` (``+dirty`` with uncommitted changes), or None."""
    repo = _repo(root)
    if repo is None:
        return None
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
    """Who is deciding: git ``user.name`` of the workspace's repository, else ``$USER``."""
    repo = _repo(root)
    if repo is not None:
        try:
            name = repo.config_reader().get_value("user", "name", default="")
        except (OSError, git.GitCommandError) as e:
            log.debug("no git user.name: %s", e)
            name = ""
        if name:
            return str(name)
    user = os.environ.get("USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
