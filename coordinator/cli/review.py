"""`coord approve|reject|override GATE` and `coord reviews` / `coord review show GATE`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from coordinator.cli import console
from coordinator.cli._common import WorkspaceOpt, call, plain_columns
from coordinator.core.grading import format_score
from coordinator.core.workspace import Workspace

if TYPE_CHECKING:
    from coordinator.engine.decisions import Action, DecisionResult

GateArg = Annotated[str, typer.Argument(help="Gate id, e.g. data_quality.")]
RunOpt = Annotated[str | None, typer.Option("--run", help="Run id (default: the latest unfinished run with this gate).")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Who decides (default: git user.name, else $USER).")]


def _report(r: DecisionResult) -> None:
    what = {"approve": "approved", "reject": "rejected", "override": f"overridden with grade {r.grade}"}[r.action]
    console.success(f"gate {r.gate_id} {what} by {r.by} at {r.at}")
    if not r.applied and r.live:
        console.info(f"run {r.run_id} is running in another process; it applies the decision within a moment")
        return
    if not r.applied:
        console.warn(f"the decision is queued but run {r.run_id} did not take it ({r.phase}); "
                     f"`coord resume {r.run_id}` applies it")
        return
    console.info(f"gate status: {r.gate_status} · run {r.run_id}: {r.phase}")
    for p in r.problems:
        console.detail(p, problem=r.exit_code != 0)
    if r.phase == "waiting":
        for hint in r.hints:
            console.detail(hint, problem=True)


def _decide(workspace: Path, gate: str, action: Action, note: str | None, grade: str | None,
            by: str | None, run_id: str | None) -> None:
    # the engine loads only when a decision is made (fast --help)
    from coordinator.engine.decisions import record_decision

    ws = Workspace.at(workspace)
    result = call(lambda: record_decision(ws, gate, action, note=note, grade=grade, by=by, run_id=run_id))
    _report(result)
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Mount the commands."""

    @app.command()
    def approve(gate: GateArg, note: Annotated[str | None, typer.Option(help="Why (kept in the review record).")] = None,
                run: RunOpt = None, by: ByOpt = None, workspace: WorkspaceOpt = Path(".")) -> None:
        """Approve a gate that waits for a person, then continue the run."""
        _decide(workspace, gate, "approve", note, None, by, run)

    @app.command()
    def reject(gate: GateArg, note: Annotated[str, typer.Option(help="Why (required; handed to the agent on a retry).")],
               run: RunOpt = None, by: ByOpt = None, workspace: WorkspaceOpt = Path(".")) -> None:
        """Reject a waiting gate: its tasks are sent back (on_fail: retry) or blocked."""
        _decide(workspace, gate, "reject", note, None, by, run)

    @app.command()
    def override(gate: GateArg, grade: Annotated[str, typer.Option(help="The grade to give, e.g. B+.")],
                 note: Annotated[str, typer.Option(help="Why (required).")],
                 run: RunOpt = None, by: ByOpt = None, workspace: WorkspaceOpt = Path(".")) -> None:
        """Replace a gate's grade; it approves when the grade reaches the gate's pass score."""
        _decide(workspace, gate, "override", note, grade, by, run)

    @app.command()
    def reviews(run: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
                workspace: WorkspaceOpt = Path(".")) -> None:
        """List review records."""
        # start-up: the engine loads only when this command runs
        from coordinator.engine.runner import find_run
        from reviews.records import list_review_records

        ws = Workspace.at(workspace)
        rid = None if run is None else call(lambda: find_run(ws, run))["run_id"]
        records = list_review_records(ws, rid)
        if not records:
            console.info("no review records yet")
            return
        # plain columns, never truncated: run and gate ids must stay pasteable at any terminal width
        rows = [("run", "gate", "status", "verdict", "grade", "score", "decided by", "record")]
        rows += [(r["run"], r["gate"]["id"], str(r.get("status")), str(r.get("verdict")), str(r.get("grade")),
                  format_score(r['score']) if r.get("score") is not None else "",
                  str(r.get("decided_by") or ""), r["_md"]) for r in records]
        console.info(plain_columns(rows))

    review_app = typer.Typer(no_args_is_help=True, help="Review records.")

    @review_app.command("show")
    def show(gate: GateArg, run: Annotated[str | None, typer.Option("--run", help="Run id (default: newest).")] = None,
             as_json: Annotated[bool, typer.Option("--json", help="Print the JSON record.")] = False,
             workspace: WorkspaceOpt = Path(".")) -> None:
        """Print a gate's review record."""
        # start-up: the engine loads only when this command runs
        from coordinator.engine.runner import find_run
        from reviews.records import find_review_record

        ws = Workspace.at(workspace)
        rid = None if run is None else call(lambda: find_run(ws, run))["run_id"]
        md, rec = call(lambda: find_review_record(ws, gate, rid))
        if as_json:
            rec = {k: v for k, v in rec.items() if not k.startswith("_")}
            console.out.print_json(orjson.dumps(rec).decode())
        else:
            console.info(md.read_text(encoding="utf-8"))

    app.add_typer(review_app, name="review")
