"""The ``coord mcp`` server: tools and resources on the official MCP Python SDK (``MCPServer``).

Tools in three groups: read (``list_runs``, ``run_status``, ``my_tasks``, ``execute_now``,
``review_record``, ``costs``), act as an agent (``claim_task``, ``add_note``, ``report_result``,
``release_task``) and act as a person (``approve``, ``reject``, ``override``), which exist only
on a server started with ``--allow-decisions`` and an identity (``--as NAME``): a client that
was not given them cannot call them, or even see them. Each tool is a thin shell over
:class:`~coordinator.mcp.service.CoordService`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import Resource as MCPResource
from mcp.types import ToolAnnotations
from pydantic import AnyUrl, Field

from coordinator.core.version import VERSION
from coordinator.engine import task_claims
from coordinator.mcp import resources
from coordinator.mcp.service import Caller, CoordService, ToolFailure, masked

INSTRUCTIONS = """coord coordinates a team of AI agents through a checkpointed plan: tasks per role, accept checks,
review gates, markdown boards. Read with list_runs, run_status, my_tasks(role) and execute_now(role).
To do an assignment yourself: claim_task(role, task) (the run then waits for you instead of running
the task's driver), do the work in the workspace, report_result(task, summary, files). coord measures
the task's accept checks on what you report; a failing check comes back with what was measured, so
fix and report again. release_task gives it back. A claim lapses after a while without a report or
note. Boards, EXECUTE_NOW files and review records are also resources (coord://boards/...,
coord://reviews/...)."""

Run = Annotated[str | None, Field(description="Run id or a unique prefix (default: the latest run).")]
Gate = Annotated[str, Field(description="Gate id.")]


@dataclass
class ServerOptions:
    """How ``coord mcp`` was started."""

    workspace: Path
    allow_decisions: bool = False
    """Register approve / reject / override (needs ``identity``)."""
    identity: str | None = None
    """Who this server acts as (``--as``): the name claims are held under and decisions recorded by."""
    lease_s: float = task_claims.LEASE_S
    """How long a claim lasts without a sign of life from its session."""


class CoordMCP(MCPServer[Any]):
    """``MCPServer`` whose resource list is the workspace's served files as they are now."""

    def __init__(self, options: ServerOptions, service: CoordService) -> None:
        super().__init__("coord", instructions=INSTRUCTIONS, version=VERSION, log_level="WARNING")
        self.options, self.service = options, service
        self.sessions: dict[int, str] = {}
        """A short label per client connection (its session object), for the event log."""

    async def call_tool(self, name: str, arguments: dict[str, Any],
                        context: Context[Any, Any] | None = None) -> Any:
        """Call a tool; a call to a tool this server does not offer (a decision without ``--allow-decisions``)
        is refused by the SDK, and recorded in the event log here."""
        if context is not None and name not in {t.name for t in await self.list_tools()}:
            self.service.record_refused(caller(context, self), name, arguments,
                                        "no such tool on this server")
        return await super().call_tool(name, arguments, context)

    async def read_resource(self, uri: AnyUrl | str, context: Context[Any, Any] | None = None) -> Any:
        """Read a resource, and record the read (refused ones too: a name the SDK's path checks or
        coord's reject never reaches a file)."""
        started = time.monotonic()
        who = caller(context, self) if context is not None else None
        try:
            result = await super().read_resource(uri, context)
        except (ResourceError, MCPError) as e:
            if who is not None:
                self.service.record(who, "read_resource", {"uri": str(uri)}, None, error=str(e), started=started)
            raise
        if who is not None:
            self.service.record(who, "read_resource", {"uri": str(uri)}, None, error=None, started=started)
        return result

    async def list_resources(self) -> list[MCPResource]:
        """Boards, EXECUTE_NOW files and review records currently in the workspace."""
        return [MCPResource(uri=s.uri, name=s.name, description=s.description, mime_type=s.mime_type)
                for s in resources.served(self.service.ws)]


def caller(ctx: Context[Any, Any], server: CoordMCP) -> Caller:
    """Who is calling, from the client's ``initialize`` (its ``clientInfo`` name) and this connection."""
    identity = server.options.identity
    try:
        session = ctx.session
    except ValueError:  # called outside a request (tests calling the functions directly)
        return Caller("unknown client", "-", identity)
    params = session.client_params
    client = (params.client_info.name if params is not None and params.client_info.name else "") or "unknown client"
    label = server.sessions.setdefault(id(session), uuid.uuid4().hex[:8])
    return Caller(client, label, identity)


def build_server(options: ServerOptions) -> CoordMCP:
    """The server with its tools and resources for ``options.workspace``."""
    service = CoordService(options.workspace, lease_s=options.lease_s)
    server = CoordMCP(options, service)
    _read_tools(server)
    _agent_tools(server)
    if options.allow_decisions and options.identity:
        _person_tools(server)
    _resources(server, service)
    return server


def _run(server: CoordMCP, ctx: Context[Any, Any], tool: str, args: dict[str, Any],
         fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One tool call through the service; a refusal goes back to the client as a tool error."""
    try:
        return server.service.call(caller(ctx, server), tool, args, fn)
    except ToolFailure as e:
        raise ToolError(str(e)) from None


READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
ACT = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)


def _read_tools(server: CoordMCP) -> None:
    service = server.service

    @server.tool(annotations=READ)
    def list_runs(ctx: Context[Any, Any]) -> dict[str, Any]:
        """The workspace's runs, oldest first: id, plan, phase, the process driving it (if live), problems."""
        return _run(server, ctx, "list_runs", {}, service.list_runs)

    @server.tool(annotations=READ)
    def run_status(ctx: Context[Any, Any], run: Run = None) -> dict[str, Any]:
        """A run's tasks, gates (grade, score, verdict), deferred items, problems, budget and claims,
        from its checkpoint; nothing runs."""
        return _run(server, ctx, "run_status", {"run": run},
                    lambda: service.run_status(run))

    @server.tool(annotations=READ)
    def my_tasks(ctx: Context[Any, Any], role: Annotated[str, Field(description="lead, quality, execution, "
                                                                   "or a role the plan declares.")],
                 run: Run = None) -> dict[str, Any]:
        """The tasks of one role: status, kind (only assignments can be claimed), needs, accept checks,
        and who holds each."""
        return _run(server, ctx, "my_tasks", {"role": role, "run": run},
                    lambda: service.my_tasks(role, run))

    @server.tool(annotations=READ)
    def execute_now(ctx: Context[Any, Any], role: Annotated[str, Field(description="The role whose EXECUTE_NOW "
                                                                      "file to read.")],
                    run: Run = None) -> dict[str, Any]:
        """What the role's EXECUTE_NOW board file tells it to do now (as coord last rendered it)."""
        return _run(server, ctx, "execute_now", {"role": role, "run": run},
                    lambda: service.execute_now(role, run))

    @server.tool(annotations=READ)
    def review_record(ctx: Context[Any, Any], gate: Annotated[str, Field(description="Gate id.")],
                      run: Run = None) -> dict[str, Any]:
        """A gate's review record: every criterion measured against its threshold, score, grade, verdict,
        who decided."""
        return _run(server, ctx, "review_record", {"gate": gate, "run": run},
                    lambda: service.review_record(gate, run))

    @server.tool(annotations=READ)
    def costs(ctx: Context[Any, Any],
              by: Annotated[list[str], Field(description="Groups: role, agent, task, provider, model.")] = ["role"],  # noqa: B006
              run: Run = None,
              all_runs: Annotated[bool, Field(description="Totals over every run.")] = False) -> dict[str, Any]:
        """Spend from the cost ledger: calls, tokens and USD per group."""
        return _run(server, ctx, "costs", {"by": by, "run": run, "all_runs": all_runs},
                    lambda: service.costs(list(by), run, all_runs))


def _agent_tools(server: CoordMCP) -> None:
    service = server.service

    @server.tool(annotations=ACT)
    def claim_task(ctx: Context[Any, Any], role: Annotated[str, Field(description="Your role.")],
                   task: Annotated[str, Field(description="The assignment's task id.")],
                   run: Annotated[str | None, Field(description="Run id (default: the latest unfinished run).")]
                   = None) -> dict[str, Any]:
        """Take an assignment in hand for this session: the run waits for your result instead of running the
        task's driver. Returns the task's instructions and accept checks. Claiming again renews the lease."""
        return _run(server, ctx, "claim_task", {"role": role, "task": task, "run": run},
                    lambda: service.claim_task(caller(ctx, server), role, task, run))

    @server.tool(annotations=ACT)
    def add_note(ctx: Context[Any, Any], task: Annotated[str, Field(description="A task you hold.")],
                 text: Annotated[str, Field(description="The note (kept with your result).")],
                 run: Run = None) -> dict[str, Any]:
        """Keep a note on a task you hold (progress, a decision you made); it renews your claim."""
        return _run(server, ctx, "add_note", {"task": task, "text": text, "run": run},
                    lambda: service.add_note(caller(ctx, server), task, text, run))

    @server.tool(annotations=ACT)
    def report_result(ctx: Context[Any, Any], task: Annotated[str, Field(description="A task you hold.")],
                      summary: Annotated[str, Field(description="What you did (figures you claim are checked "
                                                                "against what coord measures).")],
                      files: Annotated[list[str], Field(description="Workspace-relative paths of the files you "
                                                                    "wrote or changed.")] = [],  # noqa: B006
                      run: Run = None,
                      attempt: Annotated[int | None, Field(description="This report's number, to make a retried "
                                                                       "call safe (default: the next).")] = None,
                      continue_run: Annotated[bool, Field(description="Continue a paused run (in the background) "
                                                                      "once the result passes (default true).")] = True,
                      ) -> dict[str, Any]:
        """Report your result on a task you hold. coord measures the files and runs the task's accept checks:
        a failure comes back with what was measured (fix and report again); a pass is handed to the run,
        which goes on to the task's gate."""
        args = {"task": task, "summary": summary, "files": files, "run": run, "attempt": attempt,
                "continue_run": continue_run}
        return _run(server, ctx, "report_result", args,
                    lambda: service.report_result(caller(ctx, server), task, summary, list(files), run, attempt,
                                                  continue_run))

    @server.tool(annotations=ACT)
    def release_task(ctx: Context[Any, Any], task: Annotated[str, Field(description="A task you hold.")],
                     run: Run = None) -> dict[str, Any]:
        """Give a task you hold back: its driver does it when the run gets to it."""
        return _run(server, ctx, "release_task", {"task": task, "run": run},
                    lambda: service.release_task(caller(ctx, server), task, run))


def _person_tools(server: CoordMCP) -> None:
    service = server.service

    @server.tool(annotations=ACT)
    def approve(ctx: Context[Any, Any], gate: Gate,
                note: Annotated[str | None, Field(description="Why (kept in the review record).")] = None,
                run: Run = None) -> dict[str, Any]:
        """Approve a gate that waits for a person (recorded under this server's identity); the run goes on."""
        return _run(server, ctx, "approve", {"gate": gate, "note": note, "run": run},
                    lambda: service.decide(caller(ctx, server), gate, "approve", note, None, run))

    @server.tool(annotations=ACT)
    def reject(ctx: Context[Any, Any], gate: Gate,
               note: Annotated[str, Field(description="Why (required; handed to the agent on a retry).")],
               run: Run = None) -> dict[str, Any]:
        """Reject a waiting gate: its tasks are sent back (on_fail: retry) or blocked."""
        return _run(server, ctx, "reject", {"gate": gate, "note": note, "run": run},
                    lambda: service.decide(caller(ctx, server), gate, "reject", note, None, run))

    @server.tool(annotations=ACT)
    def override(ctx: Context[Any, Any], gate: Gate,
                 grade: Annotated[str, Field(description="The grade to give, e.g. B+.")],
                 note: Annotated[str, Field(description="Why (required).")],
                 run: Run = None) -> dict[str, Any]:
        """Replace a gate's grade; it approves when the grade reaches the gate's pass score."""
        return _run(server, ctx, "override",
                    {"gate": gate, "grade": grade, "note": note, "run": run},
                    lambda: service.decide(caller(ctx, server), gate, "override", note, grade, run))


def _resources(server: CoordMCP, service: CoordService) -> None:
    def read(uri: str, find: Callable[[], Path]) -> str:
        try:
            return str(masked(find().read_text(encoding="utf-8")))
        except resources.Refused as e:
            raise ResourceNotFoundError(f"{uri}: refused ({e})") from None

    @server.resource("coord://boards/{name}", mime_type="text/markdown",
                     description="A board (<AGENT>_TASKS.md) or EXECUTE_NOW file under task_boards/.")
    def board(name: str) -> str:
        return read(f"coord://boards/{name}", lambda: resources.board_file(service.ws, name))

    @server.resource("coord://reviews/{run}/{name}", mime_type="text/markdown",
                     description="A review record under reviews/<run>/ (<gate>.md or <gate>.json).")
    def review(run: str, name: str) -> str:
        return read(f"coord://reviews/{run}/{name}", lambda: resources.review_file(service.ws, run, name))


__all__ = ["CoordMCP", "ServerOptions", "build_server"]
