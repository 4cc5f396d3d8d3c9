"""`coord board sync` and `coord watch`: follow the edits people make to the boards."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from coordinator.cli import console
from coordinator.cli._common import WorkspaceOpt, call
from coordinator.core.read_only import writable
from coordinator.core.workspace import Workspace

if TYPE_CHECKING:
    from task_boards.sync import SyncReport

board_app = typer.Typer(no_args_is_help=True, help="Markdown boards people edit.")


def _print(report: SyncReport, *, watching: bool = False, resuming: bool = False) -> None:
    """Say what a sync did; ``resuming``: the caller (``coord watch``) resumes a run that can continue."""
    if report.busy:
        if report.active_run:
            holder, when = f"run {report.active_run} is executing", "when it pauses or ends"
        else:
            holder, when = f"another coord process ({report.holder or 'unknown'}) is using the workspace", \
                "when it is done"
        later = (f"coord watch applies them {when}" if watching else
                 f"run `coord board sync` again {when} (`coord watch` does that by itself)")
        if report.waiting_edits:
            console.warn(f"{holder}: edits on {', '.join(report.waiting_edits)} are not applied yet; they stay "
                         f"on the board (the run's renders keep them) and {later}")
        else:
            console.info(f"{holder}; no board edits are waiting")
    for line in report.problems:
        console.error(line)
    if report.problems:
        console.err.print("no edit was applied; fix the lines above and sync again")
    for line in report.applied:
        console.success(line)
    for line in report.reverted:
        console.warn(line)
    for line in report.conflicts:
        console.warn(line)
    for line in report.refreshed:
        console.info(line)
    if not (report.busy or report.problems or report.applied or report.reverted or report.refreshed):
        console.info("boards are in sync: no edits to apply")
    if report.can_continue and report.run_id and not report.busy:
        if resuming and report.waiting:
            console.info(f"run {report.run_id} can continue: resuming it")
        else:
            console.info(f"run {report.run_id} can continue: coord resume {report.run_id}")


@board_app.command("sync")
def sync(
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: the latest run).")] = None,
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Apply the edits made to the boards since coord last rendered them, once."""
    # the engine loads only when a command runs (fast --help)
    from task_boards.sync import sync_boards

    report = call(lambda: sync_boards(Workspace.at(workspace), run_id))
    _print(report)
    if report.problems:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Mount `coord board …` and `coord watch`."""
    app.add_typer(board_app, name="board")

    @app.command()
    def watch(
        debounce: Annotated[float, typer.Option(min=0.0, help="Seconds of quiet before a sync.")] = 0.15,
        no_resume: Annotated[bool, typer.Option("--no-resume", help="Never resume a waiting run.")] = False,
        timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """Follow the boards continuously and apply edits as they are saved (Ctrl-C stops)."""
        # start-up: the engine loads only when this command runs
        from coordinator.engine.runner import find_run
        from task_boards.watch import BoardWatcher

        ws = Workspace.at(workspace)
        call(lambda: find_run(ws, None))  # no runs here (not a workspace): exit 2 before creating anything
        if not (writable(ws.state_dir) and writable(ws.boards)):
            console.abort(f"the workspace {ws.root} is read-only: coord watch could not apply an edit or render a "
                          "board (`coord status` and `coord runs` read it)", code=1)
        watcher = BoardWatcher(ws, debounce=debounce, resume=not no_resume, freeze_gc=True,
                               on_report=lambda report: _print(report, watching=True, resuming=not no_resume),
                               on_resumed=lambda run, phase: console.info(f"run {run} resumed: {phase}"),
                               on_error=console.error)
        console.info(f"watching {ws.boards} (Ctrl-C stops)")
        watcher.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        finally:
            watcher.stop()
