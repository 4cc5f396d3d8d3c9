"""`coord mcp` end to end: the SDK's own client starts the server as a subprocess (stdio) or talks to it over
streamable HTTP, against a workspace whose run waits for a person."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import orjson
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import Implementation
from typer.testing import CliRunner

from coordinator.cli.app import app
from coordinator.core.events import read_events
from coordinator.core.workspace import Workspace
from coordinator.engine.runner import run_status
from tests.conftest import PLUGINS
from tests.mcp.conftest import PLAN, start

REPO = Path(__file__).resolve().parents[2]
SECRET = "plain-looking-secret-4711-xyz"
"""A value that looks like nothing: only the server's environment (a ``*_API_KEY`` name) makes it a secret."""
SECRET_ENV = "COORD_TEST_API_KEY"
READ_TOOLS = {"list_runs", "run_status", "my_tasks", "execute_now", "review_record", "costs"}
AGENT_TOOLS = {"claim_task", "add_note", "report_result", "release_task"}
PERSON_TOOLS = {"approve", "reject", "override"}
SECRET_PLAN = PLAN.replace("it must say DONE.", f"it must say DONE. The deploy key is {SECRET}")


def _server(root: Path, *args: str) -> StdioServerParameters:
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)]), SECRET_ENV: SECRET}
    return StdioServerParameters(command=sys.executable, args=["-m", "coordinator", "mcp", "-w", str(root), *args],
                                 env=env)


class Client:
    """A connected session that keeps every text it received (to look for secrets in)."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session
        self.seen: list[str] = []

    async def call(self, name: str, **args: Any) -> dict[str, Any]:
        res = await self.session.call_tool(name, args)
        text = "".join(getattr(c, "text", "") for c in res.content)
        self.seen.append(text)
        assert not res.is_error, text
        return orjson.loads(text)

    async def error(self, name: str, **args: Any) -> str:
        res = await self.session.call_tool(name, args)
        text = "".join(getattr(c, "text", "") for c in res.content)
        self.seen.append(text)
        assert res.is_error, text
        return text

    async def read(self, uri: str) -> str:
        res = await self.session.read_resource(uri)
        text = "".join(getattr(c, "text", "") for c in res.contents)
        self.seen.append(text)
        return text

    async def tools(self) -> set[str]:
        return {t.name for t in (await self.session.list_tools()).tools}


async def _until(c: Client, done: Callable[[dict[str, Any]], bool], timeout: float = 90.0) -> dict[str, Any]:
    """``run_status`` polled until ``done`` holds (a background ``coord resume`` drives the run)."""
    deadline = time.monotonic() + timeout
    while True:
        st = await c.call("run_status")
        if done(st):
            return st
        assert time.monotonic() < deadline, f"run never got there: phase {st['phase']}"
        await anyio.sleep(0.2)


def _connected(params: StdioServerParameters):
    async def run(body):
        async with stdio_client(params) as (r, w), \
                ClientSession(r, w, client_info=Implementation(name="pytest-agent", version="1.0")) as session:
            await session.initialize()
            client = Client(session)
            await body(client)
            return client
    return run


@pytest.mark.slow
def test_an_agent_claims_reports_until_measured_done_and_a_person_approves(ws):
    summary = start(ws, SECRET_PLAN)
    assert summary.phase == "waiting"
    link = ws.boards / "LEAK_TASKS.md"
    link.symlink_to(ws.root / "coord.yaml")  # a board that is a link out of task_boards/
    run_id = summary.run_id
    out: dict[str, Any] = {}

    async def as_agent(c: Client) -> None:
        assert await c.tools() == READ_TOOLS | AGENT_TOOLS  # no decision tools without --allow-decisions
        runs = await c.call("list_runs")
        assert [(r["run_id"], r["phase"]) for r in runs["runs"]] == [(run_id, "waiting")]
        now = await c.call("execute_now", role="execution")
        assert now["file"] == "task_boards/CURSOR_EXECUTE_NOW.md"
        assert "## write — Write the release notes" in now["text"]
        assert f"[REDACTED:{SECRET_ENV}]" in now["text"]  # the board on disk has it; the answer does not
        mine = await c.call("my_tasks", role="execution")
        assert [(t["id"], t["status"], t["kind"]) for t in mine["tasks"]] == [("write", "waiting", "assignment")]

        claimed = await c.call("claim_task", role="execution", task="write")
        assert claimed["reopened"] and claimed["claim"]["holder"] == "pytest-agent"
        assert claimed["accept"] == ["file notes/out.md exists", "the notes say DONE"]
        await c.call("add_note", task="write", text="starting with a draft")

        (ws.root / "notes").mkdir()
        (ws.root / "notes/out.md").write_text("a draft\n")
        failed = await c.call("report_result", task="write", summary="wrote a draft", files=["notes/out.md"])
        assert not failed["accepted"] and failed["handed_to"] == "nobody"
        assert failed["report"]["failures"] == ["the notes say DONE (measured 1; exit 1)"]
        assert "report again (attempt 2)" in failed["next"]

        (ws.root / "notes/out.md").write_text("DONE\n")
        passed = await c.call("report_result", task="write", summary=f"DONE; I did not use {SECRET}",
                              files=["notes/out.md"])
        assert passed["accepted"] and passed["report"]["attempt"] == 2
        assert passed["handed_to"] == "background run"  # answered at once: the run goes on in its own process
        assert "continues in the background" in passed["hints"][0]
        assert f"[REDACTED:{SECRET_ENV}]" in passed["report"]["summary"]

        st = await _until(c, lambda st: st["phase"] == "waiting" and st["tasks"]["write"]["status"] == "done")
        assert st["gates"]["review"]["status"] == "waiting" and st["tasks"]["write"]["status"] == "done"
        assert "Unknown tool" in await c.error("approve", gate="review")
        record = await c.call("review_record", gate="review")
        assert record["record"]["status"] == "waiting" and record["file"] == f"reviews/{run_id}/review.md"
        costs = await c.call("costs", by=["role", "task"])
        assert set(costs["totals"]) == {"role", "task"}

        listed = {str(r.uri) for r in (await c.session.list_resources()).resources}
        assert {"coord://boards/CURSOR_EXECUTE_NOW.md", f"coord://reviews/{run_id}/review.md"} <= listed
        assert "coord://boards/LEAK_TASKS.md" not in listed
        assert "# CURSOR_TASKS" in await c.read("coord://boards/CURSOR_TASKS.md")
        assert '"verdict"' in await c.read(f"coord://reviews/{run_id}/review.json")
        for uri in ("coord://boards/..%2Fcoord.yaml", "coord://boards/../coord.yaml", "coord://boards/LEAK_TASKS.md",
                    f"coord://reviews/{run_id}/..%2F..%2Fcoord.yaml", "coord://reviews/..%2F.coord/events.jsonl",
                    "coord://boards/%2Fetc%2Fpasswd", f"coord://reviews/{run_id}/review.json%00.md"):
            with pytest.raises(MCPError):
                await c.read(uri)
        out["agent"] = c

    async def as_person(c: Client) -> None:
        assert await c.tools() == READ_TOOLS | AGENT_TOOLS | PERSON_TOOLS
        decided = await c.call("approve", gate="review", note="read the notes")
        assert (decided["by"], decided["queued"]) == ("Ana Reviewer", True)
        assert "continues in the background" in decided["continuing"]
        st = await _until(c, lambda st: st["phase"] == "finished")
        assert st["gates"]["review"]["status"] == "approved"
        out["person"] = c

    anyio.run(_connected(_server(ws.root)), as_agent)
    anyio.run(_connected(_server(ws.root, "--allow-decisions", "--as", "Ana Reviewer")), as_person)

    st = run_status(ws, run_id)
    assert st["phase"] == "finished" and st["tasks"]["ship"]["status"] == "done"
    assert st["gates"]["review"]["decided_by"] == "Ana Reviewer"
    calls = [e for e in read_events(ws.events) if e["kind"] == "mcp_call"]
    assert {e["client"] for e in calls} == {"pytest-agent"}
    tools = [e["tool"] for e in calls]
    assert tools.count("report_result") == 2
    reads = [e for e in calls if e["tool"] == "read_resource"]
    assert [e["ok"] for e in reads] == [True, True] + [False] * 7  # refused reads are recorded too
    assert [(e["ok"], e["identity"], e["error"]) for e in calls if e["tool"] == "approve"] == \
        [(False, None, "no such tool on this server"), (True, "Ana Reviewer", None)]
    assert "LEAK_TASKS.md: refused (outside the served folder)" in reads[4]["error"]
    seen = out["agent"].seen + out["person"].seen
    assert seen and not any(SECRET in text for text in seen)
    assert not any(SECRET in str(e) for e in calls)


def test_decisions_need_an_identity(tmp_path):
    res = CliRunner().invoke(app, ["mcp", "--allow-decisions", "-w", str(tmp_path)])
    assert res.exit_code == 2 and "--allow-decisions needs --as NAME" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_server(root: Path, port: int, env_token: str | None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGINS)])}
    env.pop("COORD_MCP_TOKEN", None)
    if env_token:
        env["COORD_MCP_TOKEN"] = env_token
    proc = subprocess.Popen([sys.executable, "-m", "coordinator", "mcp", "--http", str(port), "-w", str(root)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the server never listened: {proc.stderr.read() if proc.stderr else ''}")


async def _over_http(url: str, token: str) -> tuple[set[str], str]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (r, w), \
            ClientSession(r, w, client_info=Implementation(name="http-agent", version="1")) as session:
        await session.initialize()
        tools = {t.name for t in (await session.list_tools()).tools}
        res = await session.call_tool("run_status", {})
        return tools, "".join(getattr(c, "text", "") for c in res.content)


@pytest.mark.slow
@pytest.mark.parametrize("given", [True, False], ids=["token from the environment", "generated token"])
def test_http_needs_the_bearer_token(ws, given):
    summary = start(ws)
    port = _free_port()
    token = "env-token-0123456789abcdef" if given else None
    proc = _http_server(ws.root, port, token)
    try:
        if token is None:  # printed to stderr when none was given
            line = proc.stderr.readline() if proc.stderr else ""
            assert line.startswith("bearer token for this server")
            token = line.rsplit(" ", 1)[1].strip()
        url = f"http://127.0.0.1:{port}/mcp"
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            res = httpx.post(url, json=body, headers={"Accept": "application/json, text/event-stream", **headers})
            assert res.status_code == 401 and res.json()["error"] == "unauthorized"
        tools, status = anyio.run(_over_http, url, token)
        assert tools == READ_TOOLS | AGENT_TOOLS
        assert orjson.loads(status)["run_id"] == summary.run_id and token not in status
    finally:
        proc.terminate()
        proc.wait(10)
    calls = [e for e in read_events(Workspace.at(ws.root).events) if e["kind"] == "mcp_call"]
    assert [(e["tool"], e["client"]) for e in calls] == [("run_status", "http-agent")]
