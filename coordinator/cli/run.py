"""`coord run` and `coord resume`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from coordinator.cli import console
from coordinator.cli._common import WorkspaceOpt, handle_errors
from coordinator.core.errors import UsageError
from coordinator.core.workspace import Workspace
from coordinator.engine.plan_loader import parse_override

if TYPE_CHECKING:
    from coordinator.engine.runner import RunOptions, RunSummary


def _finished_counts(summary: RunSummary) -> str:
    """"every task done", or the done and skipped counts when a profile or a person skipped some."""
    tasks = summary.state.get("tasks", {})
    skipped = [tid for tid, rec in tasks.items() if rec.get("status") == "skipped"]
    if not skipped:
        return "every task done"
    done = sum(rec.get("status") == "done" for rec in tasks.values())
    return f"every task done or skipped: {done} done, {len(skipped)} skipped ({', '.join(skipped)})"


def _report(summary: RunSummary, ws: Workspace) -> None:
    verb = "resumed and " if summary.resumed else ""
    if summary.phase == "finished":
        console.success(f"run {summary.run_id} {verb}finished: {_finished_counts(summary)}")
    elif summary.phase == "waiting":
        console.warn(f"run {summary.run_id} is waiting for a person")
    else:
        console.error(f"run {summary.run_id} {verb}ended with problems:")
    for p in summary.problems:  # under the heading, on its stream
        console.detail(p, problem=summary.phase != "finished")
    if summary.phase == "waiting":
        # start-up: the engine loads only when this command runs
        from coordinator.engine.decisions import continue_hints

        for hint in continue_hints(ws, summary.run_id, summary.state):  # what continues it, by name
            console.detail(hint, problem=True)
    for d in summary.state.get("deferred", {}).values():
        again = d.get("remeasured")
        if d["status"] == "open" and again is not None:
            console.detail(f"deferred item still open: {d['text']} — {again['detail']}", problem=False)
    console.info(f"boards: {ws.boards.relative_to(ws.root)}/ · status: coord status · "
                 f"events: {ws.events.relative_to(ws.root)}")


def _execute(ws: Workspace, opts: RunOptions, run_id: str | None, resume: bool,
             problems: Sequence[UsageError] = ()) -> int:
    # start-up: the engine loads only when this command runs
    from coordinator.cli.progress import Progress
    from coordinator.core.run_store import load_run_plan
    from coordinator.engine.runner import check_run, find_run, resume_run, run_plan

    with handle_errors():
        live = console.is_tty()
        if resume:
            run_id = find_run(ws, run_id, unfinished=True)["run_id"]
            plan = load_run_plan(ws, run_id)
        else:
            plan = check_run(ws, opts, problems)
        progress = Progress(plan, live=live)
        try:
            with progress:
                if resume:
                    summary = resume_run(ws, run_id, opts, progress.on_event, progress.on_progress)
                else:
                    summary = run_plan(ws, opts, progress.on_event, progress.on_progress)
        except KeyboardInterrupt:
            console.warn("interrupted; completed tasks are checkpointed and a task that was still running runs "
                         "again — run the same command to resume")
            return 130
        _report(summary, ws)
        return summary.exit_code


def register(app: typer.Typer) -> None:
    """Mount the commands."""

    @app.command()
    def run(
        plan: Annotated[str, typer.Argument(help="Built-in plan name, plans/<name>.yaml, or a YAML path.")],
        profile: Annotated[str | None, typer.Option(help="Plan profile, e.g. speed or thorough.")] = None,
        fresh: Annotated[bool, typer.Option("--fresh", help="Start a new run even if one is unfinished.")] = False,
        budget: Annotated[str | None, typer.Option(help="Budget in USD for this run (a positive number).",
                                                   show_default=False)] = None,
        concurrency: Annotated[int, typer.Option(min=1, max=64, help="Most tasks running at once.")] = 4,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Override a plan parameter: key=value.")] = None,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """Run a plan (resuming its unfinished run unless --fresh)."""
        # the engine loads only when a command runs (fast --help)
        from coordinator.engine.runner import RunOptions, parse_budget

        overrides: dict[str, object] = {}
        problems: list[UsageError] = []  # reported with the plan's own, all at once
        for raw in set_ or []:
            try:
                key, value = parse_override(raw)
                overrides[key] = value
            except UsageError as e:
                problems.append(e)
        budget_usd = None
        try:
            budget_usd = parse_budget(budget)
        except UsageError as e:
            problems.append(e)
        opts = RunOptions(plan=plan, profile=profile, fresh=fresh, budget_usd=budget_usd,
                          concurrency=concurrency, overrides=overrides)
        raise typer.Exit(_execute(Workspace.at(workspace), opts, None, resume=False, problems=problems))

    @app.command()
    def resume(
        run_id: Annotated[str | None, typer.Argument(help="Run id (default: the latest unfinished run).")] = None,
        concurrency: Annotated[int, typer.Option(min=1, max=64)] = 4,
        budget: Annotated[str | None, typer.Option(help="Set the run's budget to this many USD (a positive "
                                                   "number) before continuing.", show_default=False)] = None,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """Continue a run from its last checkpoint."""
        # start-up: the engine loads only when this command runs
        from coordinator.engine.runner import RunOptions, parse_budget

        with handle_errors():
            budget_usd = parse_budget(budget)
        opts = RunOptions(plan="", concurrency=concurrency, budget_usd=budget_usd)
        raise typer.Exit(_execute(Workspace.at(workspace), opts, run_id, resume=True))
