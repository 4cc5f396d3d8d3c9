"""The ``cli`` driver: run Claude Code, the Codex CLI or Cursor's agent on one assignment.

Steps, in order: a fresh git worktree on ``coord/<run>/<task>``, with the
task's inputs (the files its ``needs`` wrote in the workspace, which a fresh
checkout lacks when they are untracked or git-ignored, e.g. under ``data/``)
provided in it and kept out of its commits; the task's EXECUTE_NOW text as
the prompt; the CLI in its own process group with stdin
closed, output logged with secrets redacted; a commit with ``Coord-*``
trailers; diff statistics; the task's accept checks run in the worktree; then
a merge into the base branch, unless a gate reviews the task, in which case
the branch waits for the gate (see :mod:`roles.drivers.cli._merge`).
"""

from __future__ import annotations

import hashlib
import math
import shutil
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from coordinator.core.errors import CoordError
from coordinator.core.llm import CallRecord, Cost, Usage
from coordinator.core.plan import CompiledPlan, CompiledTask
from coordinator.core.ports import DriverContext, DriverTraits, TaskOutcome, tail
from coordinator.core.roles import RoleDefinition
from coordinator.core.run_store import load_run_plan, read_status_tasks
from coordinator.core.workspace import Workspace
from reviews.criteria import evaluate, metric_lookup
from roles.drivers.cli._flavors import BAD_USAGE, FLAVORS, AgentReply, CliSettings, Flavor
from roles.drivers.cli._merge import PENDING, merge_reviewed, merge_task, trailers
from roles.drivers.cli._process import ProcessResult, kill_stale, run_in_group
from roles.drivers.cli._run_files import gates_reviewing
from roles.drivers.cli._version import CliVersion, cli_env, cli_version
from roles.git_worktrees import (
    WORKTREES_DIR,
    Worktree,
    commit_all,
    create_worktree,
    diff_stats,
    off_branch,
)
from roles.providers.pricing import cost_of, price_source
from roles.providers.redact import Redactor
from roles.task_view import execute_now_text

DEFAULT_TIMEOUT_S = 3600.0
"""An agent run without a task timeout is stopped after an hour rather than never."""
MAX_ARTIFACTS = 50
LOG_TAIL_LINES = 15
MAX_INPUTS = 500
"""Input files provided in one worktree (the prompt lists the first few of each need)."""


def input_paths(task: CompiledTask, given: Iterable[str], tasks_state: Mapping[str, Any]) -> list[str]:
    """The workspace files the task's ``needs`` produced (the engine's list, ``given``, and the
    artifacts of the needs in the status snapshot the prompt is rendered from): every input the
    prompt names, and the ones it leaves out for brevity."""
    paths = [*given, *(str(a["path"]) for need in task.needs
                       for a in ((tasks_state.get(need) or {}).get("artifacts") or []) if a.get("path"))]
    return list(dict.fromkeys(paths))[:MAX_INPUTS]


def settings_for(ctx: DriverContext, flavor: Flavor) -> CliSettings:
    """The role's CLI settings, the flavor's defaults filling the gaps."""
    role = ctx.role
    allowed = tuple(role.binding.allowed_tools) if role.binding is not None else ()
    return CliSettings(executable=role.executable or flavor.executable, model=role.model,
                       permissions=role.permissions or flavor.permissions, flags=tuple(role.flags),
                       allowed_tools=allowed)


def codex_default_model(env: Mapping[str, str]) -> str | None:
    """The ``model`` of Codex's own ``config.toml`` (``$CODEX_HOME`` or ``~/.codex``), if it names one."""
    home = Path(env.get("CODEX_HOME") or Path(env.get("HOME") or Path.home()) / ".codex")
    try:
        data = tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    model = data.get("model")
    return model if isinstance(model, str) and model else None


def reply_cost(flavor: Flavor, settings: CliSettings, reply: AgentReply, env: Mapping[str, str],
               role: str) -> tuple[str, Cost, str]:
    """The model the run is booked under, its cost, and where the cost came from.

    Claude reports dollars; Codex reports tokens, priced here from the price table; Cursor bills
    through its own subscription and reports neither, so its cost stays unknown, never guessed.
    """
    model = reply.model or settings.model or (codex_default_model(env) if flavor.name == "codex" else None)
    if reply.cost_usd is not None:
        if not math.isfinite(reply.cost_usd) or reply.cost_usd < 0:
            return model or "default", Cost(None, f"the {flavor.name} CLI reported an impossible cost "
                                                  f"({reply.cost_usd!r}); never booked"), "unknown"
        return model or "default", Cost(reply.cost_usd), "reported by the CLI"
    if BAD_USAGE in reply.usage:
        return model or "default", Cost(None, f"the {flavor.name} CLI reported token counts that are not counts "
                                              "(negative, text or not finite); never priced"), "unknown"
    if flavor.name != "codex":
        return model or "default", Cost(None, f"the {flavor.name} CLI reports no cost"), "unknown"
    if not reply.usage:
        return model or "default", Cost(None, "codex reported no token usage (no turn.completed was read: it "
                                              "failed, timed out or was stopped)"), "unknown"
    if model is None:
        return "default", Cost(None, "codex reports tokens, not dollars, and no model is known to price them: "
                               f"set roles.{role}.model (or `model` in ~/.codex/config.toml)"), "unknown"
    u = reply.usage
    usage = Usage(input_tokens=int(u.get("input_tokens", 0)), output_tokens=int(u.get("output_tokens", 0)),
                  cached_tokens=int(u.get("cached_input_tokens", 0)))
    cost = cost_of(model, usage, provider="openai")
    return model, cost, f"priced from tokens ({price_source(model, provider='openai')})" if cost.known else "unknown"


class CliDriver:
    """Runs an assignment through the agent CLI of the role's agent."""

    name = "cli"
    traits = DriverTraits(worktree=True, paid=True, agents=tuple(FLAVORS), stops_on_timeout=True)

    @classmethod
    def preflight(cls, roles: list[RoleDefinition]) -> list[str]:
        """Each role's agent CLI must be on PATH before anything starts."""
        problems = []
        for role in roles:
            flavor = FLAVORS.get(role.agent)
            if flavor is None:
                continue  # the plan checks name agents the cli driver cannot run
            exe = role.executable or flavor.executable
            if shutil.which(exe) is not None:
                # once per executable and run: a CLI too old for the formats coord reads is refused here
                found = cli_version(flavor, exe, role.name)
                if found.problem is not None:
                    problems.append(found.problem)
                continue
            problems.append(
                f"role {role.name!r} (agent {role.agent}, driver cli) runs {exe!r}, which is not on PATH: "
                f"install the {role.agent} CLI, set roles.{role.name}.executable in coord.yaml to its path, "
                f"or rebind the role in coord.yaml (e.g. `{role.name}: {{agent: {role.agent}, "
                "driver: offline}}`)")
        return problems

    @classmethod
    def after_gates(cls, workspace: Path, run_id: str, plan: CompiledPlan, tasks: Mapping[str, Any],
                    gates: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Merge the branches whose gates approved them (withhold those a gate turned down)."""
        return merge_reviewed(workspace, run_id, plan, tasks, gates)

    def run(self, task: CompiledTask, ctx: DriverContext) -> TaskOutcome:
        """Run the agent in a worktree, commit, check, and merge or hold for the gate."""
        flavor = FLAVORS.get(ctx.role.agent)
        if flavor is None:
            return TaskOutcome(status="failed", error=f"the cli driver cannot run agent {ctx.role.agent!r} "
                               f"(it runs {', '.join(FLAVORS)})")
        redactor = Redactor.from_env()
        stem = ctx.log_file.with_suffix("")
        pid_file = stem.with_name(stem.name + ".pgid")
        try:
            plan = load_run_plan(Workspace.at(ctx.workspace), ctx.run_id)
            # An agent a killed coord left running would keep editing the worktree we replace.
            if kill_stale(pid_file, ctx.workspace / WORKTREES_DIR):
                ctx.progress("stopped an agent left running by an interrupted run", None)
            status = read_status_tasks(Workspace.at(ctx.workspace), ctx.run_id)
            wt = create_worktree(ctx.workspace, ctx.run_id, task.id,
                                 inputs=input_paths(task, ctx.inputs, status.get("tasks") or {}))
        except CoordError as e:
            return TaskOutcome(status="failed", error=str(e))
        settings = settings_for(ctx, flavor)
        version = cli_version(flavor, settings.executable, ctx.role.name)
        if version.problem is not None:
            return TaskOutcome(status="failed", error=version.problem)
        prompt = execute_now_text(plan, ctx.role, status, task.id)
        prompt_file = stem.with_name(stem.name + ".prompt.md")
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        prompt_file.write_text(redactor(prompt), encoding="utf-8")
        last_message = stem.with_name(stem.name + ".last-message.md")
        last_message.unlink(missing_ok=True)
        argv = flavor.build(settings, prompt, last_message)
        shown = [f"<prompt: {len(prompt)} chars, {self._rel(ctx, prompt_file)}>" if a == prompt else a
                 for a in argv]
        env = {**cli_env(flavor), "COORD_RUN_ID": ctx.run_id, "COORD_TASK_ID": task.id,
               "COORD_ROLE": ctx.role.name}
        timeout = task.timeout or DEFAULT_TIMEOUT_S
        try:
            proc = run_in_group(argv, cwd=wt.cwd, env=env, log_path=ctx.log_file, redactor=redactor,
                                cancel=ctx.cancel, timeout=timeout, shown_argv=shown,
                                pid_file=pid_file, finished=flavor.finished)
        except (FileNotFoundError, PermissionError) as e:
            return TaskOutcome(status="failed", error=(
                f"cannot run {settings.executable!r} for role {ctx.role.name} ({e.strerror}); install the "
                f"{flavor.name} CLI or set roles.{ctx.role.name}.executable in coord.yaml"))
        reply = flavor.parse(proc.stdout, last_message)
        problem = self._problem(flavor, proc, reply, timeout)
        model, priced, cost_source = reply_cost(flavor, settings, reply, env, ctx.role.name)
        metrics: dict[str, Any] = {
            "exit_code": proc.exit_code, "agent_seconds": round(proc.duration_s, 2),
            "cli_version": version.shown, "cost_known": priced.known, "cost_source": cost_source,
            **reply.usage,
            **{k: v for k, v in reply.extra.items() if isinstance(v, int | float | str)},
            "branch": wt.branch, "base_branch": wt.base_branch,
            "worktree": wt.path.relative_to(ctx.workspace.resolve()).as_posix()}
        if reply.session_id:
            metrics["session_id"] = reply.session_id
        if proc.ended_after_result:
            metrics["ended_after_result"] = True
        cost = priced.usd or 0.0
        _record_run(ctx, flavor, model, priced, cost_source, version, reply, proc, problem,
                    redactor)  # costs hook: the ledger
        if problem is not None:
            log_text = ctx.log_file.read_text(encoding="utf-8", errors="replace")
            return TaskOutcome(status="failed", metrics=metrics, cost_usd=cost, accept_checked=True,
                               error=redactor(f"{problem}; log {self._rel(ctx, ctx.log_file)}, last lines:\n"
                                              + tail(log_text, LOG_TAIL_LINES)))
        return self._finish(task, ctx, gates_reviewing(plan, task.id), wt, reply, metrics, cost, redactor)

    def _finish(self, task: CompiledTask, ctx: DriverContext, gates: list[str], wt: Worktree,
                reply: AgentReply, metrics: dict[str, Any], cost: float, redactor: Redactor) -> TaskOutcome:
        summary = redactor(reply.text.strip())
        body = "\n".join(summary.splitlines()[:20])[:2000]
        message = (f"coord: {task.id} — {task.title}\n\n" + (f"{body}\n\n" if body else "")
                   + trailers(ctx.run_id, task.id, ctx.role.name, ctx.role.agent)
                   + f"\nCoord-Agent-Version: {metrics.get('cli_version', 'unknown')}")
        moved = off_branch(wt)
        if moved is not None:  # committing now would put the work where nothing merges it from
            return TaskOutcome(status="failed", metrics=metrics, cost_usd=cost, accept_checked=True,
                               error=f"{moved}: nothing was committed or merged; merge that branch by hand or run "
                                     "the task again")
        metrics["commit"] = commit_all(wt, message, f"{ctx.role.agent} (via coord)")
        stats = diff_stats(wt)
        metrics.update(files_changed=stats.files_changed, insertions=stats.insertions,
                       deletions=stats.deletions, files_added=stats.added, files_deleted=stats.deleted)
        notes = [f"{ctx.role.agent} changed {stats.files_changed} file(s) "
                 f"(+{stats.insertions} −{stats.deletions}) on branch {wt.branch}"]
        if wt.inputs:
            notes.append(f"coord provided {len(wt.inputs)} input file(s) from the workspace in the worktree "
                         "(not committed)")
        if summary:
            notes.append(f"{ctx.role.agent} said: {summary[:300]}")
        failures = self._accept(task, wt, metrics, notes)
        artifacts = self._artifacts(wt, stats.files)
        if failures:
            return TaskOutcome(status="failed", metrics=metrics, artifacts=artifacts, notes=notes, cost_usd=cost,
                               accept_checked=True, error="accept checks failed in the worktree: "
                               + "; ".join(failures) + f" (branch {wt.branch} not merged)")
        if gates:
            metrics["merge"] = PENDING
            notes.append(f"branch {wt.branch} waits for gate(s) {', '.join(gates)} before merging")
            return TaskOutcome(status="done", metrics=metrics, artifacts=artifacts, notes=notes,
                               cost_usd=cost, accept_checked=True)
        metrics, error = merge_task(ctx.workspace, ctx.run_id, task.id, ctx.role.name, ctx.role.agent, metrics)
        return TaskOutcome(status="failed" if error else "done", metrics=metrics, artifacts=artifacts,
                           notes=notes, cost_usd=cost, accept_checked=True, error=error)

    @staticmethod
    def _problem(flavor: Flavor, proc: ProcessResult, reply: AgentReply, timeout: float) -> str | None:
        if proc.interrupted:
            return f"{flavor.name} was stopped because coord was interrupted; the task runs again on resume"
        if proc.timed_out:
            return f"{flavor.name} timed out after {timeout:g}s; coord killed its process group"
        if proc.cancelled:
            return f"{flavor.name} was cancelled; coord killed its process group"
        if proc.ended_after_result:
            return reply.problem  # it printed a whole result and lingered: the result stands
        if proc.exit_code != 0:
            return f"{flavor.name} exited with code {proc.exit_code}" + (
                f" ({reply.problem})" if reply.problem and not reply.problem.endswith("(unparsable output)")
                else "")
        return reply.problem

    @staticmethod
    def _accept(task: CompiledTask, wt: Worktree, metrics: dict[str, Any], notes: list[str]) -> list[str]:
        lookup = metric_lookup({task.id: metrics, task.base_id: metrics}, {})
        failures = []
        for check in task.accept:
            res = evaluate(check, lookup, wt.cwd, deferrable=False)
            verdict = "passed" if res["passed"] else "FAILED"
            notes.append(f"check {res['label']} {verdict}" + (f": {res['detail']}" if res["detail"] else ""))
            if not res["passed"]:
                failures.append(f"{res['label']} (measured {res['measured']!r}"
                                + (f"; {res['detail']}" if res["detail"] else "") + ")")
        metrics.update(checks_run=len(task.accept), checks_passed=len(task.accept) - len(failures),
                       checks_failed=len(failures))
        return failures

    @staticmethod
    def _artifacts(wt: Worktree, files: list[str]) -> list[dict[str, Any]]:
        out = []
        for name in files[:MAX_ARTIFACTS]:
            path = wt.path / name
            if not path.is_file():
                continue  # deleted by the agent
            try:
                rel = path.relative_to(wt.cwd).as_posix()
            except ValueError:
                continue  # outside the workspace's part of the repository
            data = path.read_bytes()
            out.append({"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                        "rows": None})
        return out

    @staticmethod
    def _rel(ctx: DriverContext, path: Path) -> str:
        try:
            return path.relative_to(ctx.workspace).as_posix()
        except ValueError:
            return str(path)


def _record_run(ctx: DriverContext, flavor: Flavor, model: str, cost: Cost, cost_source: str,
                version: CliVersion, reply: AgentReply, proc: ProcessResult, problem: str | None,
                redactor: Redactor) -> None:
    """One ledger row per CLI run: the CLI's version, tokens, dollars (reported, priced from tokens or
    unknown), duration and how it ended."""
    if ctx.spend is None:
        return
    u = reply.usage
    usage = Usage(input_tokens=int(u.get("input_tokens", 0)), output_tokens=int(u.get("output_tokens", 0)),
                  cached_tokens=int(u.get("cached_input_tokens", 0)),
                  cache_write_tokens=int(u.get("cache_write_tokens", 0)))
    detail: dict[str, str | int | float | bool] = {"cli_version": version.shown, "cost_source": cost_source}
    if proc.exit_code is not None:
        detail["exit_code"] = proc.exit_code
    ending = ("timed_out" if proc.timed_out else "interrupted" if proc.interrupted else "cancelled" if proc.cancelled
              else "ended_after_result" if proc.ended_after_result else None)
    if ending:
        detail["ended"] = ending
    if reply.extra.get("retried_errors"):
        detail["retried_errors"] = int(reply.extra["retried_errors"])
    ctx.spend.record(CallRecord("cli", f"cli:{flavor.name}", model, usage=usage, cost=cost,
                                duration_s=proc.duration_s, ok=problem is None,
                                error=redactor(problem) if problem else None, detail=detail))
