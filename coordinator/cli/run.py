"""`coord run` and `coord resume`."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from coordinator.cli import console
from coordinator.cli._common import WorkspaceOpt, handle_errors
from coordinator.cli.serve import DEFAULT_PORT, start_dashboard
from coordinator.core.errors import UsageError
from coordinator.core.loading import collector_paused
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
    from task_boards.store import load_problems  # start-up: only once the run has ended

    unwritten = load_problems(ws)["conflicts"]
    if unwritten:  # a board whose markers were broken or whose text was not readable keeps its old content
        console.warn(f"{len(unwritten)} board(s) could not be written and show an earlier state:")
        for problem in unwritten:
            console.detail(problem, problem=True)
        console.detail("fix or delete those files, then `coord board sync` renders them again", problem=True)
    console.info(f"boards: {ws.boards.relative_to(ws.root)}/ · status: coord status · "
                 f"events: {ws.events.relative_to(ws.root)}")


def _execute(ws: Workspace, opts: RunOptions, run_id: str | None, resume: bool,
             problems: Sequence[UsageError] = ()) -> int:
    with collector_paused():  # start-up: the engine loads only when this command runs
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
        except KeyboardInterrupt as e:
            run_id = getattr(e, "run_id", None)
            how = f"`coord resume {run_id}`" if run_id else "`coord resume`"
            console.warn(f"interrupted; completed tasks are checkpointed and a task that was still running runs "
                         f"again — continue with {how}")
            return 130
        _report(summary, ws)
        return summary.exit_code


def _execute_serving(ws: Workspace, opts: RunOptions, problems: Sequence[UsageError], port: int | None,
                     allow_decisions: bool) -> int:
    """`coord run PLAN --serve [PORT]`: the dashboard on a background thread beside the run; it keeps
    serving after the run ends (a person may decide a waiting gate on it) until Ctrl-C."""
    dashboard = start_dashboard(ws, host="127.0.0.1", port=DEFAULT_PORT if port is None else port,
                                allow_decisions=allow_decisions, token=os.environ.get("COORD_SERVE_TOKEN"),
                                identity=None)
    with handle_errors():
        dashboard.start()
    try:
        code = _execute(ws, opts, None, resume=False, problems=problems)
        if code == 130:  # Ctrl-C during the run stops the dashboard too
            return code
        console.info(f"the dashboard keeps serving at {dashboard.url} — Ctrl-C to stop")
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            if dashboard.deciding:
                console.warn("a run resumed by a decision on the dashboard was interrupted; continue it with "
                             "`coord resume`")
        return code
    finally:
        dashboard.stop()


def register(app: typer.Typer) -> None:
    """Mount the commands."""

    @app.command()
    def run(
        plan: Annotated[str, typer.Argument(help="Built-in plan name, plans/<name>.yaml, or a YAML path.")],
        profile: Annotated[str | None, typer.Option(help="Plan profile, e.g. speed or thorough.")] = None,
        fresh: Annotated[bool, typer.Option("--fresh", help="Start a new run even if one is unfinished.")] = False,
        budget: Annotated[str | None, typer.Option(help="Budget in USD for this run (a positive number).",
                                                   show_default=False)] = None,
        concurrency: Annotated[int | None, typer.Option(
            min=1, max=256, help="Most tasks running at once (default 4; 64 dispatched when the workspace has "
                                 "workers).")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Override a plan parameter: key=value.")] = None,
        serve: Annotated[bool, typer.Option("--serve", help="Serve the live web dashboard beside the run "
                                            "(on PORT, default 8765) and keep serving once it ends.")] = False,
        port: Annotated[str | None, typer.Argument(show_default=False, metavar="PORT",
                                                   help="With --serve: the dashboard's port.")] = None,
        allow_decisions: Annotated[bool, typer.Option("--allow-decisions", help="With --serve: approve, reject "
                                                      "and override buttons (a token is printed).")] = False,
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
        ws = Workspace.at(workspace)
        if not serve:
            if port is not None:  # as the parser says it, with what was meant
                console.abort(f"Got unexpected extra argument(s) ({port}); a PORT goes only with --serve: "
                              "coord run PLAN --serve [PORT]")
            if allow_decisions:
                console.abort("--allow-decisions goes with --serve: coord run PLAN --serve [PORT] --allow-decisions")
            raise typer.Exit(_execute(ws, opts, None, resume=False, problems=problems))
        if port is not None and not (port.isdigit() and int(port) <= 65535):
            console.abort(f"invalid value {port!r} for PORT: a port number from 0 to 65535")
        raise typer.Exit(_execute_serving(ws, opts, problems, None if port is None else int(port),
                                          allow_decisions))

    @app.command()
    def resume(
        run_id: Annotated[str | None, typer.Argument(help="Run id (default: the latest unfinished run).")] = None,
        concurrency: Annotated[int | None, typer.Option(min=1, max=256)] = None,
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
