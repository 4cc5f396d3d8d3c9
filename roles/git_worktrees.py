"""Git worktrees for coding agents: one branch per assignment, merged only when allowed.

Each assignment runs in ``.coord/worktrees/<run>/<task>`` on branch
``coord/<run>/<task>``, created from the commit the workspace's branch points
at. coord commits what the agent left there, measures the diff, and merges
the branch back into the base branch only when its review allows it. A merge
that conflicts is aborted and reported; coord never forces one.

Files a fresh worktree lacks but the work needs (a task's inputs: what its
``needs`` wrote in the workspace, often under a git-ignored ``data/``) are
provided when the worktree is created — copied, or linked when large — and
never committed. A gate that reviews branches still waiting for it measures a
*merge candidate*: a temporary detached worktree at the base branch's head with
those branches merged (:func:`merge_candidate`).

Every operation that touches the shared repository (worktree add/remove,
branch delete, merge) holds a per-repository lock, because worker threads
and the graph's main thread both use it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from git import GitCommandError, InvalidGitRepositoryError, NoSuchPathError, Repo

from coordinator.core.errors import InternalError, UsageError

log = logging.getLogger(__name__)

WORKTREES_DIR = Path(".coord") / "worktrees"
COORD_EMAIL = "coord@localhost"
COPY_UP_TO_BYTES = 64 * 1024 * 1024
"""A provided input up to this size is copied into the worktree (the agent's edits stay there);
a larger one is a symbolic link to the workspace's file, so a big data set is not duplicated
per assignment."""
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
_REF_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]+")


class NotAGitRepository(UsageError):
    """The workspace is not inside a usable git repository (the cli driver needs one)."""


class GitOperationError(InternalError):
    """A git command coord relies on failed."""


@dataclass(frozen=True)
class Worktree:
    """Where one assignment runs."""

    path: Path
    """The worktree's root directory."""
    cwd: Path
    """The workspace's place inside the worktree (where the agent and checks run)."""
    branch: str
    """``coord/<run>/<task>``."""
    base_branch: str
    """The branch the workspace had checked out; the merge target."""
    base_commit: str
    """The commit the branch started from."""
    inputs: tuple[str, ...] = ()
    """Files coord provided from the workspace (paths relative to :attr:`path`); never committed."""


@dataclass(frozen=True)
class Candidate:
    """A temporary detached worktree: the base branch's head with some branches merged in."""

    path: Path
    cwd: Path
    """The workspace's place inside the candidate (where criteria are measured)."""
    base_branch: str
    base_commit: str
    merged: tuple[str, ...]
    """Branches merged in, in the order given."""
    left_out: dict[str, str] = field(default_factory=dict)
    """Branch → why it is not in the candidate (a conflict, a missing branch)."""
    provided: tuple[str, ...] = ()
    """Workspace files linked into the candidate (paths relative to :attr:`path`)."""


@dataclass(frozen=True)
class DiffStats:
    """What an agent changed, measured by git (never taken from the agent's word)."""

    files: list[str] = field(default_factory=list)
    insertions: int = 0
    deletions: int = 0
    added: int = 0
    deleted: int = 0

    @property
    def files_changed(self) -> int:
        """Number of paths that differ from the base."""
        return len(self.files)


@dataclass(frozen=True)
class MergeResult:
    """How a merge into the base branch went."""

    status: Literal["merged", "conflict", "refused"]
    commit: str | None = None
    conflicts: list[str] = field(default_factory=list)
    detail: str = ""


@contextmanager
def repo_lock(repo: Repo) -> Iterator[None]:
    """Serialize operations on one repository across threads."""
    key = str(Path(repo.common_dir).resolve())
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        yield


def open_repo(workspace: Path) -> Repo:
    """The git repository holding ``workspace``; a clear error when there is none or it is unusable."""
    try:
        repo = Repo(workspace, search_parent_directories=True)
    except (InvalidGitRepositoryError, NoSuchPathError):
        raise NotAGitRepository(
            f"workspace {workspace} is not a git repository, and the cli driver runs each assignment "
            "in its own git worktree; make it one with `coord init --git` (or `git init && git add -A "
            "&& git commit -m initial`)") from None
    if repo.bare or repo.working_tree_dir is None:
        raise NotAGitRepository(f"{repo.git_dir} is a bare repository; coord needs a working tree")
    if not repo.head.is_valid():
        raise NotAGitRepository(f"the git repository at {repo.working_tree_dir} has no commits yet; "
                                "commit once so coord has a base to branch from")
    if repo.head.is_detached:
        raise NotAGitRepository(f"HEAD of {repo.working_tree_dir} is detached; check out the branch "
                                "coord should merge finished work into")
    return repo


def ensure_git_repo(workspace: Path) -> str:
    """Make ``workspace`` a git repository with a first commit unless it is in one; say what happened."""
    try:
        repo = Repo(workspace, search_parent_directories=True)
    except (InvalidGitRepositoryError, NoSuchPathError):
        repo = Repo.init(workspace, initial_branch="main")
    if repo.head.is_valid():
        return f"{workspace} is already in the git repository at {repo.working_tree_dir}"
    # Only coord's configuration is committed: boards and the status block change on every run.
    paths = [p for p in ("coord.yaml", ".gitignore") if (workspace / p).exists()]
    with repo.git.custom_environment(**identity_env("coord")):
        if paths:
            repo.git.add("--", *paths)
        repo.git.commit("--allow-empty", "--no-verify", "--no-gpg-sign", "-m", "coord: initial commit")
    return f"initialised a git repository in {repo.working_tree_dir} on branch {repo.active_branch.name}"


def branch_name(run_id: str, task_id: str) -> str:
    """``coord/<run>/<task>`` with characters git refuses in ref names replaced."""
    return f"coord/{_REF_UNSAFE.sub('_', run_id)}/{_REF_UNSAFE.sub('_', task_id).strip('.')}"


def identity_env(name: str) -> dict[str, str]:
    """Author and committer settings, so commits work without the user's git identity."""
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": COORD_EMAIL,
            "GIT_COMMITTER_NAME": "coord", "GIT_COMMITTER_EMAIL": COORD_EMAIL}


def _exclude_state_dir(repo: Repo) -> None:
    # Worktrees live under .coord/; keep them (and coord's state) out of the user's `git status`
    # without editing a tracked file.
    exclude = Path(repo.common_dir) / "info" / "exclude"
    text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
    if ".coord/" not in text.splitlines():
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n") + ".coord/\n",
                           encoding="utf-8")


def _drop(repo: Repo, path: Path, branch: str | None) -> None:
    """Remove an earlier attempt's worktree and unmerged branch (a retry starts from the base again)."""
    if path.exists():
        try:
            repo.git.worktree("remove", "--force", str(path))
        except GitCommandError:
            log.warning("could not remove worktree %s cleanly; pruning", path)
            shutil.rmtree(path, ignore_errors=True)
    repo.git.worktree("prune")
    if branch is not None and branch in [h.name for h in repo.heads]:
        repo.git.branch("-D", branch)


def _safe_rel(rel: str) -> Path | None:
    """``rel`` as a relative path that stays where it is put, or None (absolute, ``..``, coord's state)."""
    path = Path(rel)
    if not rel or path.is_absolute() or ".." in path.parts or path.parts[:1] in ((".git",), (".coord",)):
        return None
    return path


def provide_files(workspace: Path, tree: Path, cwd: Path, paths: Iterable[str], *,
                  copy_up_to: int | None = None) -> tuple[str, ...]:
    """Put the workspace's files ``paths`` (workspace-relative) into a worktree that lacks them.

    A file up to ``copy_up_to`` bytes (default :data:`COPY_UP_TO_BYTES`) is copied, a larger
    one linked (``-1``: link every file). Paths the worktree already has (tracked at its commit), that the workspace does
    not have as a file, that are absolute, climb out with ``..`` or lie in ``.coord/`` or
    ``.git/`` are skipped. Returns what was provided, relative to ``tree``
    (the paths :func:`commit_all` leaves out).
    """
    src_root = workspace.resolve()
    limit = COPY_UP_TO_BYTES if copy_up_to is None else copy_up_to
    done: list[str] = []
    for rel in dict.fromkeys(paths):
        safe = _safe_rel(rel)
        if safe is None:
            continue
        src, dest = src_root / safe, cwd / safe
        try:
            if not src.is_file() or os.path.lexists(dest):
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.stat().st_size <= limit:
                shutil.copy2(src, dest)
            else:
                dest.symlink_to(src.resolve())
        except OSError as e:  # e.g. a file where the worktree has a directory: the agent does without
            log.warning("could not provide %s in %s: %s", rel, tree, e)
            continue
        done.append(dest.relative_to(tree).as_posix())
    return tuple(done)


def create_worktree(workspace: Path, run_id: str, task_id: str, inputs: Iterable[str] = ()) -> Worktree:
    """A fresh worktree on ``coord/<run>/<task>`` from the current commit of the workspace's branch.

    ``inputs`` (workspace-relative) are provided in it with :func:`provide_files` when the
    worktree lacks them; :func:`commit_all` never commits them.
    """
    repo = open_repo(workspace)
    root = Path(str(repo.working_tree_dir)).resolve()
    rel = workspace.resolve().relative_to(root)
    branch = branch_name(run_id, task_id)
    path = workspace.resolve() / WORKTREES_DIR / branch.split("/", 1)[1]
    with repo_lock(repo):
        _exclude_state_dir(repo)
        base_branch = repo.active_branch.name
        base_commit = repo.head.commit.hexsha
        _drop(repo, path, branch)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            repo.git.worktree("add", "-b", branch, str(path), base_commit)
        except GitCommandError as e:
            raise GitOperationError(f"git worktree add {path} failed: {e.stderr.strip()}") from e
    provided = provide_files(workspace, path, path / rel, inputs)
    return Worktree(path=path, cwd=path / rel, branch=branch, base_branch=base_branch,
                    base_commit=base_commit, inputs=provided)


def off_branch(wt: Worktree) -> str | None:
    """Why the worktree is no longer on its assignment's branch (the agent checked out another branch or
    a detached commit), or None. Its work would then be committed where coord does not merge from."""
    repo = Repo(wt.path)
    with repo_lock(repo):
        if repo.head.is_detached:
            return (f"the agent left the worktree on a detached commit ({repo.head.commit.hexsha[:12]}), not on "
                    f"branch {wt.branch}")
        name = repo.active_branch.name
    if name == wt.branch:
        return None
    return (f"the agent switched the worktree to branch {name!r} ({repo.head.commit.hexsha[:12]}), away from "
            f"{wt.branch}; its work is on {name!r}, which coord does not merge")


def commit_all(wt: Worktree, message: str, author: str) -> str:
    """Commit everything in the worktree but the provided inputs (an empty commit when nothing
    changed); return its sha.

    The inputs are left out however the agent treated them: taken out of the index after
    staging, also when the agent added or committed them itself, so the branch's head (and
    the merge) never carries them.
    """
    repo = Repo(wt.path)
    with repo_lock(repo), repo.git.custom_environment(**identity_env(author)):
        repo.git.add("-A")
        if wt.inputs:  # (an exclude pathspec in `add` fails on inputs that are git-ignored)
            repo.git.rm("-r", "--cached", "--quiet", "--ignore-unmatch", "--",
                        *(f":(literal){p}" for p in wt.inputs))
        # Hooks and signing are the user's interactive tooling; coord's checks run next anyway.
        repo.git.commit("--allow-empty", "--no-verify", "--no-gpg-sign", "-m", message)
    return repo.head.commit.hexsha


def diff_stats(wt: Worktree) -> DiffStats:
    """Files, insertions and deletions between the base commit and the branch head."""
    repo = Repo(wt.path)
    numstat = repo.git.diff("--numstat", "--no-renames", wt.base_commit, "HEAD")
    status = repo.git.diff("--name-status", "--no-renames", wt.base_commit, "HEAD")
    files, ins, dels = [], 0, 0
    for line in numstat.splitlines():
        a, d, name = line.split("\t", 2)
        files.append(name)
        ins += int(a) if a.isdigit() else 0  # binary files show "-"
        dels += int(d) if d.isdigit() else 0
    kinds = [line.split("\t", 1)[0] for line in status.splitlines()]
    return DiffStats(files=files, insertions=ins, deletions=dels, added=kinds.count("A"),
                     deleted=kinds.count("D"))


def is_merged(repo: Repo, branch: str, base: str) -> bool:
    """True when ``branch``'s head is already part of ``base``."""
    try:
        repo.git.merge_base("--is-ancestor", branch, base)
    except GitCommandError:
        return False
    return True


def merge_branch(workspace: Path, branch: str, base_branch: str, message: str) -> MergeResult:
    """Merge ``branch`` into ``base_branch`` in the workspace; abort and report on any conflict."""
    repo = open_repo(workspace)
    with repo_lock(repo):
        if branch not in [h.name for h in repo.heads]:
            return MergeResult("refused", detail=f"branch {branch} no longer exists")
        current = repo.active_branch.name
        if current != base_branch:
            return MergeResult("refused", detail=f"the workspace has branch {current!r} checked out, "
                               f"not {base_branch!r}; check it out and merge {branch} by hand")
        if is_merged(repo, branch, base_branch):
            return MergeResult("merged", commit=repo.head.commit.hexsha, detail="already merged")
        try:
            with repo.git.custom_environment(**identity_env("coord")):
                repo.git.merge("--no-ff", "--no-edit", "--no-verify", "--no-gpg-sign", "-m", message, branch)
        except GitCommandError as e:
            conflicts = [p for p in repo.git.diff("--name-only", "--diff-filter=U").splitlines() if p]
            if (Path(repo.git_dir) / "MERGE_HEAD").exists():
                repo.git.merge("--abort")
            if conflicts:
                return MergeResult("conflict", conflicts=conflicts,
                                   detail=f"merging {branch} into {base_branch} conflicts in "
                                   f"{', '.join(conflicts)}; the merge was aborted and {branch} kept "
                                   "for a person to merge")
            reason = (e.stderr or e.stdout or str(e)).strip().splitlines()
            return MergeResult("refused", detail=f"git refused to merge {branch} into {base_branch}: "
                               + " ".join(line.strip() for line in reason[-3:]))
        return MergeResult("merged", commit=repo.head.commit.hexsha)


def remove_worktree(workspace: Path, path: Path) -> None:
    """Delete a worktree directory (its branch stays, as the record of what the agent did)."""
    repo = open_repo(workspace)
    with repo_lock(repo):
        if path.exists():
            repo.git.worktree("remove", "--force", str(path))
        repo.git.worktree("prune")


def merge_candidate(workspace: Path, run_id: str, name: str, branches: Sequence[str], base_branch: str,
                    provide: Iterable[str] = ()) -> Candidate:
    """A temporary detached worktree at ``base_branch``'s head with ``branches`` merged in order.

    It holds what merging the branches would give, so a gate measures the work before it
    lands. A branch that conflicts (with the base or an earlier branch) is left out — the
    merge aborted, the reason in :attr:`Candidate.left_out` — and the others still go in.
    The workspace files ``provide`` (workspace-relative: data earlier steps wrote, often
    git-ignored) are linked in where the candidate lacks them. Remove it with
    :func:`remove_worktree`; creating it again replaces it.
    """
    repo = open_repo(workspace)
    root = Path(str(repo.working_tree_dir)).resolve()
    rel = workspace.resolve().relative_to(root)
    path = (workspace.resolve() / WORKTREES_DIR / _REF_UNSAFE.sub("_", run_id)
            / f".candidate-{_REF_UNSAFE.sub('_', name)}")  # a task's worktree never starts with a dot
    with repo_lock(repo):
        _exclude_state_dir(repo)
        heads = {h.name for h in repo.heads}
        if base_branch not in heads:
            raise GitOperationError(f"cannot build a merge candidate: branch {base_branch!r} no longer exists")
        base_commit = repo.heads[base_branch].commit.hexsha
        try:
            _drop(repo, path, None)
            path.parent.mkdir(parents=True, exist_ok=True)
            repo.git.worktree("add", "--detach", str(path), base_commit)
            merged, left_out = _merge_into(Repo(path), branches, heads)
        except GitCommandError as e:
            raise GitOperationError(f"cannot build a merge candidate in {path}: "
                                    f"{(e.stderr or str(e)).strip()}") from e
    provided = provide_files(workspace, path, path / rel, provide, copy_up_to=-1)
    return Candidate(path=path, cwd=path / rel, base_branch=base_branch, base_commit=base_commit,
                     merged=tuple(merged), left_out=left_out, provided=provided)


def _merge_into(cand: Repo, branches: Sequence[str], heads: set[str]) -> tuple[list[str], dict[str, str]]:
    """Merge each branch into the candidate's HEAD; abort and note the ones that do not merge."""
    merged: list[str] = []
    left_out: dict[str, str] = {}
    with cand.git.custom_environment(**identity_env("coord")):
        for branch in branches:
            if branch not in heads:
                left_out[branch] = "the branch no longer exists"
                continue
            try:
                cand.git.merge("--no-ff", "--no-edit", "--no-verify", "--no-gpg-sign",
                               "-m", f"coord: merge candidate with {branch}", branch)
            except GitCommandError as e:
                conflicts = [p for p in cand.git.diff("--name-only", "--diff-filter=U").splitlines() if p]
                if (Path(cand.git_dir) / "MERGE_HEAD").exists():
                    cand.git.merge("--abort")
                reason = (e.stderr or e.stdout or str(e)).strip().splitlines()
                left_out[branch] = (f"conflicts in {', '.join(conflicts)}" if conflicts else
                                    "git refused: " + " ".join(line.strip() for line in reason[-3:]))
                continue
            merged.append(branch)
    return merged, left_out


# Work that travels through git (``coord worker --git``): a worker's own clone, branches pushed to and
# fetched from the workspace repository's remote. Nothing below runs unless a workspace configures it.

def _git_failure(what: str, e: GitCommandError) -> GitOperationError:
    reason = (e.stderr or e.stdout or str(e)).strip().splitlines()
    return GitOperationError(f"{what} failed: " + " ".join(line.strip() for line in reason[-3:]))


def clone_or_fetch(url: str, checkout: Path, branch: str | None = None) -> Repo:
    """A clone of ``url`` at ``checkout`` on ``branch`` (default: the remote's), cloned the first time
    and fetched (``origin``) when it is already there; its branch reset to the remote's."""
    if (checkout / ".git").exists():
        repo = Repo(checkout)
        if repo.remotes and "origin" in [r.name for r in repo.remotes]:
            found = repo.remotes.origin.url
            if found != url:
                raise UsageError(f"{checkout} is a clone of {found!r}, not of {url!r}; give another --checkout")
        sync_to_remote(repo, "origin", branch or repo.active_branch.name)
        return repo
    if checkout.exists() and any(checkout.iterdir()):
        raise UsageError(f"--checkout {checkout} exists and is not a git clone; give an empty or new directory")
    try:
        options = ["--branch", branch] if branch else []
        repo = Repo.clone_from(url, checkout, multi_options=options)
    except GitCommandError as e:
        raise UsageError(str(_git_failure(f"git clone {url}", e))) from None
    _exclude_state_dir(repo)
    return repo


def sync_to_remote(repo: Repo, remote: str, branch: str) -> str:
    """Fetch ``remote`` and put the clone's ``branch`` (checked out) at the remote's head; its sha.

    Only for a clone coord owns (a worker's): work left on that branch is dropped, as it was
    pushed on a branch of its own or merged by the coordinator already."""
    with repo_lock(repo):
        try:
            repo.git.fetch("--prune", remote)
            if repo.head.is_detached or repo.active_branch.name != branch:
                repo.git.checkout("-B", branch, f"{remote}/{branch}")
            else:
                repo.git.reset("--hard", f"{remote}/{branch}")
        except GitCommandError as e:
            raise _git_failure(f"updating {repo.working_tree_dir} from {remote}/{branch}", e) from e
        return repo.head.commit.hexsha


def push_branch(repo_dir: Path, remote: str, branch: str) -> str:
    """Push ``branch`` (replacing what the remote had under that name: a retry starts it over); its sha."""
    repo = Repo(repo_dir, search_parent_directories=True)
    with repo_lock(repo):
        try:
            repo.git.push("--force", "--no-verify", remote, f"refs/heads/{branch}:refs/heads/{branch}")
        except GitCommandError as e:
            raise _git_failure(f"git push {remote} {branch}", e) from e
        return repo.heads[branch].commit.hexsha


def fetch_branch(workspace: Path, remote: str, branch: str) -> str:
    """Make the remote's ``branch`` a local branch of the workspace's repository (replacing a local one
    of that name); its sha. How a branch pushed by a worker reaches the coordinator's merge."""
    repo = open_repo(workspace)
    with repo_lock(repo):
        if repo.active_branch.name == branch:
            raise GitOperationError(f"the workspace has {branch} checked out; it cannot be fetched over")
        try:
            repo.git.fetch("--no-tags", remote, f"+refs/heads/{branch}:refs/heads/{branch}")
        except GitCommandError as e:
            raise _git_failure(f"git fetch {remote} {branch}", e) from e
        return repo.heads[branch].commit.hexsha
