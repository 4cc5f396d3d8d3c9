"""Work that travels through git: a worker with a clone of its own instead of the workspace's path.

``coord worker --git URL [--checkout DIR]`` clones the workspace repository (or fetches it when DIR is a
clone already) and serves the workspace from there: its ``coord.yaml`` (committed) names the database and
``workers: {git_remote: …}``. Before each assignment it puts its clone's branch at the remote's head; the
driver works in a worktree of the clone on ``coord/<run>/<task>`` and commits, as on the coordinator's
machine; then the worker pushes that branch to URL (:func:`publish`) and stores a record that says so
(``metrics.pushed``, ``metrics.worker_host``, ``metrics.merge = pending_gate``). The coordinator fetches
the branch from its ``git_remote`` when it takes the record (:func:`take_pushed_branch`), and from there
the branch is what a local worktree's branch is: gates measure it in a merge candidate and the driver's
``after_gates`` hook merges it once they approve.

Only work that lands on a branch can travel this way (:func:`travels_by_git`). Steps and the drivers
that write into the workspace's files need the workspace path: such tasks are queued as needing
:data:`WORKSPACE_FILES`, which a git worker offers only with ``--shared-workspace PATH`` (and then runs
them there).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from coordinator.core.errors import CoordError
from coordinator.core.plan import CompiledTask
from coordinator.core.ports import PENDING_GATE, driver_of, driver_traits
from coordinator.core.roles import RoleDefinition
from coordinator.core.state import TaskRecord
from roles.git_worktrees import (
    clone_or_fetch,
    fetch_branch,
    open_repo,
    push_branch,
    remove_worktree,
    sync_to_remote,
)

log = logging.getLogger(__name__)

WORKER_REMOTE = "origin"
"""The remote of a worker's clone: the URL it was cloned from, where it pushes."""
WORKSPACE_FILES = "workspace-files"
"""The capability a task needs when its work does not travel through git (a step writing data files, an
assignment whose driver writes into the workspace): required only with ``workers: {git_remote: …}``,
offered by every worker that runs in the workspace's path (not by ``coord worker --git`` without
``--shared-workspace``)."""


@dataclass(frozen=True)
class GitLayout:
    """How a worker that does not share the coordinator's filesystem reaches the workspace."""

    url: str
    """The workspace repository (a URL or a path git can clone); branches are pushed here."""
    checkout: Path
    """The worker's own clone (made on first use, fetched afterwards)."""
    branch: str | None = None
    """The branch the coordinator merges into (default: the remote's default branch)."""
    shared_workspace: Path | None = None
    """The workspace's path when this machine also sees it: the tasks that cannot travel by git run there."""


@dataclass(frozen=True)
class Checkout:
    """A worker's prepared clone."""

    root: Path
    branch: str
    """Its base branch: assignments start from the remote's head of it."""


def travels_by_git(task: CompiledTask, role: RoleDefinition) -> bool:
    """Whether a task's work reaches the workspace on a git branch (an assignment whose driver runs it in a
    worktree), so that a worker with a clone of its own can do it; steps, commands and the other drivers
    write into the workspace's files."""
    return driver_traits(driver_of(task, role)).worktree


def implicit_requires(git_remote: str | None, task: CompiledTask, role: RoleDefinition) -> tuple[str, ...]:
    """What a task needs beyond its ``requires:`` because of where its files go: :data:`WORKSPACE_FILES`
    when some workers work through git (``git_remote`` set) and this task's work cannot travel that way."""
    if git_remote is None or travels_by_git(task, role):
        return ()
    return (WORKSPACE_FILES,)


def open_checkout(layout: GitLayout) -> Checkout:
    """Clone the workspace repository into ``layout.checkout``, or fetch it when it is a clone already."""
    repo = clone_or_fetch(layout.url, layout.checkout, layout.branch)
    return Checkout(Path(str(repo.working_tree_dir)).resolve(), repo.active_branch.name)


def refresh(checkout: Checkout) -> str:
    """Put the clone's base branch at the remote's head before an assignment starts from it; the sha."""
    return sync_to_remote(open_repo(checkout.root), WORKER_REMOTE, checkout.branch)


def publish(checkout: Checkout, record: TaskRecord, host: str) -> TaskRecord:
    """Push the branch of a finished assignment and say so in its record (which the worker then stores).

    A branch the driver merged into the clone's base itself (no gate reviews the task) is pushed the
    same way and left for the coordinator to merge: the clone's base is reset before the next task.
    A failed assignment's branch is not pushed (it would not be merged either)."""
    metrics: dict[str, Any] = {**(record.get("metrics") or {}), "worker_host": host}
    branch = metrics.get("branch")
    if not branch or record.get("status") != "done":
        return cast(TaskRecord, {**record, "metrics": metrics})
    worktree = metrics.pop("worktree", None)
    if worktree:
        try:
            remove_worktree(checkout.root, checkout.root / str(worktree))
        except Exception as e:  # the branch is what counts; a leftover directory is replaced next time
            log.warning("could not remove worktree %s: %s", worktree, e)
    if metrics.get("merge") == "merged":  # merged into this clone only: the coordinator merges it
        metrics.pop("merge_commit", None)
    metrics["merge"] = PENDING_GATE
    try:
        metrics["pushed"] = push_branch(checkout.root, WORKER_REMOTE, str(branch))
    except CoordError as e:
        return cast(TaskRecord, {**record, "metrics": metrics, "status": "failed", "error": (
            f"the work is done on branch {branch} in the clone {checkout.root} on {host} but could not be "
            f"pushed: {e}; `coord resume` dispatches the task again")})
    notes = [*(record.get("notes") or []), f"branch {branch} pushed by the worker on {host}"]
    return cast(TaskRecord, {**record, "metrics": metrics, "notes": notes})


def take_pushed_branch(workspace: Path, remote: str, record: TaskRecord) -> TaskRecord:
    """The coordinator's side: fetch the branch a worker pushed into the workspace's repository, so gates and
    the merge after them find it there; a record whose branch cannot be fetched becomes a failed one."""
    metrics = record.get("metrics") or {}
    pushed, branch = metrics.get("pushed"), metrics.get("branch")
    if not pushed or not branch or record.get("status") != "done":
        return record
    host = metrics.get("worker_host", "a worker")
    try:
        found = fetch_branch(workspace, remote, str(branch))
    except CoordError as e:
        return cast(TaskRecord, {**record, "status": "failed", "error": (
            f"branch {branch}, pushed by the worker on {host}, could not be fetched from remote {remote!r} "
            f"of the workspace repository: {e}; `coord resume` dispatches the task again")})
    if found != pushed:
        return cast(TaskRecord, {**record, "status": "failed", "error": (
            f"remote {remote!r} has branch {branch} at {found[:12]}, not at {str(pushed)[:12]} as the worker on "
            f"{host} pushed it (pushed over since?); `coord resume` dispatches the task again")})
    return cast(TaskRecord, {**record, "metrics": {**metrics, "remote": remote}})
