"""`coord status` and `coord runs`: read the checkpoint, run nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from coordinator.cli import console
from coordinator.cli._common import WorkspaceOpt, call, plain_columns
from coordinator.core.grading import format_score
from coordinator.core.loading import collector_paused
from coordinator.core.workspace import Workspace
from task_boards.store import board_problems

_STYLE = {"done": "green", "failed": "red", "running": "cyan", "blocked": "yellow", "skipped": "dim",
          "waiting": "magenta", "approved": "green", "rejected": "red", "changes_requested": "yellow"}


def _styled(value: str) -> str:
    style = _STYLE.get(value)
    return f"[{style}]{value}[/{style}]" if style else value


def _print_status(st: dict[str, Any]) -> None:
    console.info(f"run [bold]{st['run_id']}[/bold] · plan {escape(st['plan'])} (profile {st['profile']}) · "
                 f"phase {_styled(st['phase'])}"
                 + (f" (live: pid {st['live']['pid']} holds the workspace lock)" if st.get("live") else ""),
                 markup=True)
    table = Table("task", "role", "status", "time", "detail")
    for tid, t in st["tasks"].items():
        detail = t.get("error") or t.get("reason") or ""
        dur = f"{t['duration_s']:.1f}s" if t.get("duration_s") is not None else ""
        table.add_row(escape(tid), t["role"], _styled(t.get("status", "pending")), dur, escape(detail[:100]))
    console.out.print(table)
    if st["gates"]:
        gt = Table("gate", "status", "grade", "score")
        for gid, g in st["gates"].items():
            text = g.get("status_text") or g.get("status", "pending")
            style = _STYLE.get(g.get("status", "pending"))
            gt.add_row(gid, f"[{style}]{escape(text)}[/{style}]" if style else escape(text), g.get("grade") or "",
                       format_score(g['score']) if g.get("score") is not None else "")
        console.out.print(gt)
    budget = st.get("budget") or {}
    if budget:
        alerts = ", ".join(f"{100 * a:.0f}%" for a in budget.get("alerts") or [])
        console.info(f"budget: {budget['run']['text']}" + (f" · alerts: {alerts}" if alerts else "")
                     + (" · EXHAUSTED: paid work paused (coord budget raise USD)" if budget.get("exhausted") else ""))
        for name, r in (budget.get("roles") or {}).items():
            console.info(f"budget of role {name}: {r['text']}")
    open_items = [d for d in st["deferred"].values() if d["status"] == "open"]
    for d in open_items:
        console.info(f"deferred: {d['text']} ({d['detail']})")
    for p in st["problems"]:
        console.info(f"problem: {p}")
    for p in st.get("board_problems", []):
        console.info(f"board: {p}")
    for c in st.get("claims", []):
        lease = f", lease until {c['lease_until']}" if c.get("lease_until") else ""
        console.info(f"in hand: {escape(c['task'])} is {c['status']} by {escape(c['holder'])} in an interactive "
                     f"session (coord mcp){lease}")


def register(app: typer.Typer) -> None:
    """Mount the commands."""

    @app.command()
    def status(
        run_id: Annotated[str | None, typer.Argument(help="Run id (default: the latest run).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """Show a run's tasks, gates and deferred items from its checkpoint."""
        with collector_paused():  # start-up: reads the checkpoint without loading LangGraph
            from coordinator.engine.run_view import run_status

        ws = Workspace.at(workspace)
        st = call(lambda: run_status(ws, run_id))
        st["board_problems"] = board_problems(ws)
        _with_workers(ws, st)
        _with_claims(ws, st)
        if as_json:
            console.out.print_json(orjson.dumps(st, option=orjson.OPT_NON_STR_KEYS).decode())
        else:
            _print_status(st)

    @app.command()
    def runs(
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output: a JSON array.")] = False,
        workspace: WorkspaceOpt = Path("."),
    ) -> None:
        """List the runs of this workspace, oldest first, with their full ids."""
        # start-up: loads with the command
        from coordinator.engine.run_view import runs_overview

        ws = Workspace.at(workspace)
        records = runs_overview(ws)
        if as_json:
            rows = [{k: r.get(k) for k in RUN_FIELDS} for r in records]
            console.out.print_json(orjson.dumps(rows).decode())
            return
        if not records:
            console.info("no runs yet")
            return
        console.info(plain_columns([("run", "plan", "profile", "phase", "started", "finished")]
                              + [(r["run_id"], r["plan"], r.get("profile") or "", r.get("phase") or "?",
                                  r.get("created_at") or "", r.get("finished_at") or "") for r in records]))
        for r in records:
            if r["live_pid"]:
                console.info(f"run {r['run_id']} is live: pid {r['live_pid']} drives it")


def _with_claims(ws: Workspace, st: dict[str, Any]) -> None:
    """Tasks an interactive session holds (``coord mcp`` claims): ``claims`` in ``--json``."""
    if not (ws.run_dir(st["run_id"]) / "claims").is_dir():
        return
    import time

    from coordinator.engine import task_claims  # start-up: only when a session has claimed a task

    st["claims"] = [
        {"task": rec["task"], "holder": rec["holder"], "status": rec["status"],
         "lease_until": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(rec["lease_until"]))
         if rec["status"] == "held" else None}
        for rec in task_claims.list_claims(ws, st["run_id"]) if task_claims.in_hand(rec)]


def _with_workers(ws: Workspace, st: dict[str, Any]) -> None:
    """With workers configured: why each dispatched task is not done yet (queued, waiting for a worker that
    offers what it requires, or on which worker); ``worker`` in ``--json``."""
    if ws.database is None:  # workers need one; not loading their modules saves 70 ms (GitPython)
        return
    from coordinator.engine.workers.status import explain  # start-up: only with workers configured

    explain(ws, st)


RUN_FIELDS = ("run_id", "plan", "plan_ref", "profile", "phase", "live_pid", "created_at", "finished_at", "problems")
"""Keys of each object ``coord runs --json`` prints."""
