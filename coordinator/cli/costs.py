"""`coord costs` and `coord budget`: spend from the ledger; raise, set or approve past a budget."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import orjson
import typer
from rich.table import Table

from coordinator.cli import console
from coordinator.cli._common import WorkspaceOpt, call, handle_errors
from coordinator.core.errors import WorkspaceBusyError
from coordinator.core.llm import format_usd
from coordinator.core.workspace import Workspace

if TYPE_CHECKING:
    from coordinator.engine.budget import BudgetStatus

budget_app = typer.Typer(no_args_is_help=True, help="Show, raise or approve past a run's budget.")
By = Literal["role", "agent", "task", "provider", "model"]


def _print_budget(st: BudgetStatus) -> None:
    console.info(f"budget of the run: {st.run.describe()}")
    for name, r in st.roles.items():
        console.info(f"budget of role {name}: {r.describe()}")
    if st.alerts:
        console.info("alerts crossed: " + ", ".join(f"{100 * a:.0f}%" for a in st.alerts))
    if st.to_state()["exhausted"]:
        console.warn("budget exhausted: paid work is paused")


def _print_calls(ws: Workspace, run_id: str, as_json: bool) -> None:
    from coordinator.engine.budget_service import cost_calls  # start-up: loads with the command

    rows = call(lambda: cost_calls(ws, run_id))
    if as_json:
        console.out.print_json(orjson.dumps({"run_id": run_id, "calls": rows}).decode())
        return
    console.info(f"calls of run {run_id} (from .coord/ledger.sqlite)")
    table = Table("task", "agent", "kind", "model", "version", "in", "out", "cached", "cache write", "USD",
                  "seconds", "ended")
    for r in rows:
        d = r["detail"]
        usd = format_usd(r["usd"])
        source = d.get("cost_source")
        if r.get("pending"):
            usd = f"up to {usd}" if r["usd"] is not None else "unknown"
        elif source and source != "reported by the CLI" and r["usd"] is not None:
            usd += f" ({source})"
        ended = ("pending: never settled" if r.get("pending") else
                 "ok" if r["ok"] else "failed") + (f", exit {d['exit_code']}" if "exit_code" in d else "") + (
            f", {str(d['ended']).replace('_', ' ')}" if d.get("ended") else "") + (
            f", {d['retried_errors']} retried error(s)" if d.get("retried_errors") else "")
        table.add_row(r["task_id"] or "—", r["agent"] or "—", r["kind"], r["model"], str(d.get("cli_version", "")),
                      f"{r['tokens_in']:,}", f"{r['tokens_out']:,}", f"{r['tokens_cached']:,}",
                      f"{r['tokens_cache_write']:,}", usd, f"{r['duration_s']:.1f}", ended)
    console.out.print(table)


def register(app: typer.Typer) -> None:
    """Mount `coord costs` and the `coord budget` group."""

    @app.command()
    def costs(
        run_id: Annotated[str | None, typer.Argument(help="Run id (default: the latest run).")] = None,
        by: Annotated[list[str] | None, typer.Option("--by", help="role, agent, task, provider or model "
                                                     "(repeatable; default: role, agent, task).")] = None,
        all_runs: Annotated[bool, typer.Option("--all", help="Totals over every run.")] = False,
        each_call: Annotated[bool, typer.Option("--calls", help="Every call of the run, one row each: a CLI "
                                                "run's version, tokens, dollars, duration and exit code.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """Totals of every recorded LLM call, CLI run and fine-tuning job: per role, agent and task."""
        ws = Workspace.at(workspace)
        groups = by or ["role", "agent", "task"]
        bad = [g for g in groups if g not in ("role", "agent", "task", "provider", "model")]
        if bad:
            console.abort(f"--by must be role, agent, task, provider or model, got {', '.join(bad)}")
        # start-up: the engine loads only when this command runs
        from coordinator.engine.budget_service import cost_totals
        from coordinator.engine.runner import find_run

        rid = None if all_runs else call(lambda: find_run(ws, run_id))["run_id"]
        if each_call:
            if rid is None:
                console.abort("--calls lists one run's calls: name a run (or leave out --all)")
            _print_calls(ws, rid, as_json)
            return
        totals = call(lambda: cost_totals(ws, rid, [g for g in groups]))  # type: ignore[misc]
        if as_json:
            data = {"run_id": rid, **{g: [t.__dict__ for t in rows] for g, rows in totals.items()}}
            console.out.print_json(orjson.dumps(data).decode())
            return
        console.info(f"costs of {'every run' if rid is None else 'run ' + rid} (from .coord/ledger.sqlite)")
        if not any(totals.values()):
            console.info("no paid calls recorded: every role used the offline stand-in or a free backend")
            return
        first: list = next(iter(totals.values()), [])
        pending = sum(t.pending for t in first)
        for group, rows in totals.items():
            table = Table(group, "calls", "tokens in", "tokens out", "cached", "USD", "unknown cost",
                          *(["pending"] if pending else []))
            for t in rows:
                table.add_row(t.key, str(t.calls), f"{t.tokens_in:,}", f"{t.tokens_out:,}", f"{t.tokens_cached:,}",
                              format_usd(t.usd), str(t.unknown or "—"), *([str(t.pending or "—")] if pending else []))
            console.out.print(table)
        spent, unknown = sum(t.usd for t in first), sum(t.unknown for t in first)
        console.info(f"total: {format_usd(spent)}" + (f" plus {unknown} call(s) of unknown cost (never guessed)"
                                                      if unknown else ""))
        if unknown:  # why, as each call recorded it
            for reason in call(lambda: unknown_reasons(ws, rid))[:10]:
                console.detail(f"unknown because: {reason}", problem=False)
        if pending:
            console.warn(f"{pending} pending call(s): sent but never settled (in flight, or cut off by a kill), "
                         f"counted against the budget at up to {format_usd(sum(t.pending_usd for t in first))}; "
                         "see `coord costs --calls`")

    @budget_app.command("show")
    def show(run_id: Annotated[str | None, typer.Argument(help="Run id (default: the latest run).")] = None,
             workspace: WorkspaceOpt = Path(".")) -> None:
        """Spend against the run's and each role's limit."""
        ws = Workspace.at(workspace)
        # start-up: the engine loads only when this command runs
        from coordinator.engine.budget_service import open_run_budget
        from coordinator.engine.runner import find_run

        rid = call(lambda: find_run(ws, run_id))["run_id"]
        _print_budget(call(lambda: open_run_budget(ws, rid).status()))

    @budget_app.command("raise", context_settings={"ignore_unknown_options": True})
    def raise_(
        usd: Annotated[float, typer.Argument(help="USD to add to the limit (with --to: the new limit).")],
        run_id: Annotated[str | None, typer.Option("--run", help="Run id (default: the latest unfinished run).")] = None,
        role: Annotated[str | None, typer.Option(help="Raise this role's budget instead of the run's.")] = None,
        to: Annotated[bool, typer.Option("--to", help="Set the limit to USD instead of adding USD.")] = False,
        resume: Annotated[bool, typer.Option(help="Resume the run if it waits on its budget.")] = True,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """Raise a run's (or a role's) budget, then resume the run it was holding."""
        _change(Workspace.at(workspace), run_id, usd, role, approve=False, absolute=to, resume=resume)

    @budget_app.command("approve")
    def approve(
        run_id: Annotated[str | None, typer.Option("--run", help="Run id (default: the latest unfinished run).")] = None,
        role: Annotated[str | None, typer.Option(help="Approve past this role's budget only.")] = None,
        resume: Annotated[bool, typer.Option(help="Resume the run if it waits on its budget.")] = True,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """A person's approval to spend past the limit (until the next raise or set)."""
        _change(Workspace.at(workspace), run_id, None, role, approve=True, absolute=False, resume=resume)

    app.add_typer(budget_app, name="budget")


def _change(ws: Workspace, run_id: str | None, usd: float | None, role: str | None, *, approve: bool,
            absolute: bool, resume: bool) -> None:
    # the engine loads only when a command runs (fast --help)
    from coordinator.engine.budget_service import change_budget

    # start-up: the engine loads only when this command runs
    from coordinator.engine.runner import RunOptions, find_run, resume_run

    record = call(lambda: find_run(ws, run_id, unfinished=run_id is None))
    rid = record["run_id"]
    st = call(lambda: change_budget(ws, rid, usd=usd, role=role, approve=approve, absolute=absolute))
    console.success(f"budget of run {rid} updated")
    _print_budget(st)
    if record.get("phase") == "finished":
        console.info(f"run {rid} has finished: the limit applies if its work is reopened (untick a task)")
        return
    if not resume or record.get("phase") != "waiting":
        console.info("a running coord picks the change up at its next scheduling step; "
                     f"otherwise continue with `coord resume {rid}`")
        return
    with handle_errors():
        try:
            summary = resume_run(ws, rid, RunOptions(plan=""))
        except WorkspaceBusyError:  # only the lock: any other problem is reported as an error
            console.info("the run is live in another process; it picks the change up at its next step")
            return
    if summary.phase == "finished":
        console.success(f"run {rid} resumed and finished: every task done")
    elif summary.phase == "waiting":
        console.warn(f"run {rid} is waiting again")
    else:
        console.error(f"run {rid} resumed and ended with problems:")
    for p in summary.problems:
        console.detail(p, problem=summary.phase != "finished")
    raise typer.Exit(summary.exit_code)



def unknown_reasons(ws: Workspace, run_id: str | None) -> list[str]:
    """Why costs are unknown, as the calls recorded it: one run's, or every run's."""
    # start-up: the engine loads only when there are unknown costs to explain
    from coordinator.engine.run_view import list_runs
    from coordinator.engine.stores import open_ledger

    ledger = open_ledger(ws)
    runs = [run_id] if run_id else [str(r["run_id"]) for r in list_runs(ws)]
    return sorted({flag for r in runs for flag in ledger.flags(r)})
