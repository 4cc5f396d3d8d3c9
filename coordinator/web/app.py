"""The dashboard's ASGI application: routes, pages and the one place responses are made.

Every page is rendered from a context gathered by :mod:`coordinator.web.views`, scrubbed of
secrets (the data before it is escaped, the HTML again after), and sent with headers that keep
it out of caches and frames and let it run only its own script.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, cast
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from coordinator.core.errors import CoordError, InputError
from coordinator.core.workspace import Workspace
from coordinator.engine.run_view import find_run
from coordinator.web import chart_pages, views
from coordinator.web.config import ServeConfig
from coordinator.web.decide import KEY_PATTERN, Action, DecisionDesk
from coordinator.web.redaction import Scrubber
from coordinator.web.render import render_page, render_sections
from coordinator.web.security import Guard, PathRefused, csrf_value, same_origin
from coordinator.web.stream import run_events
from coordinator.web.views import NotFound
from reviews.gitinfo import person

log = logging.getLogger(__name__)

HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
}
"""Sent with every page. Inline styles are allowed for the SVG charts' style attributes; scripts are not."""
MAX_FORM_BYTES = 64 * 1024


class Dashboard:
    """The pages of one workspace, with what they share: the scrubber, the decision desk, the identity."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.ws: Workspace = config.ws
        self.scrub = Scrubber(self.ws, extra=[config.token] if config.token else [])
        self.identity = config.identity or person(self.ws.root)
        self.desk = DecisionDesk(self.ws, self.identity)
        self.csrf = csrf_value(config.token) if config.token else ""

    # -- responses ---------------------------------------------------------------------------------

    def _server(self) -> dict[str, Any]:
        return {"workspace": str(self.ws.root), "decisions": self.config.allow_decisions,
                "identity": self.identity, "csrf": self.csrf}

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A rendered page: its data scrubbed before rendering, the HTML scrubbed after."""
        html = render_page(name, server=self._server(), **self.scrub.deep(context))
        return HTMLResponse(self.scrub.text(html), status_code=status, headers=HEADERS)

    def error(self, status: int, heading: str, message: str) -> HTMLResponse:
        """An error page (the message scrubbed like any other text)."""
        return self.page("error.html.j2", status, heading=heading, message=message)

    def guarded(self, fn: Callable[..., Response]) -> Callable[[Request], Response]:
        """A page handler whose coord errors become error pages: an unknown run or gate 404, a refused
        path 403, anything else coord raises (a broken report, a broken coord.yaml) 500 with its message —
        never a traceback."""
        def handler(request: Request) -> Response:
            try:
                return fn(request, **request.path_params)
            except PathRefused as e:
                return self.error(403, "Refused", str(e))
            except NotFound as e:
                return self.error(404, "Not found", str(e))
            except CoordError as e:
                return self.error(500, "Error", str(e))
        return handler

    # -- pages -------------------------------------------------------------------------------------

    def runs(self, request: Request) -> Response:
        """``/``: every run of the workspace."""
        return self.page("runs.html.j2", **views.runs_context(self.ws))

    def run_context(self, run_id: str) -> dict[str, Any]:
        """The run page's context, with the outcomes of decisions made through this server."""
        context = views.run_context(self.ws, run_id)
        context["outcomes"] = [asdict(o) for o in self.desk.outcomes(context["run"]["run_id"])]
        return context

    def run(self, request: Request, run_id: str) -> Response:
        """``/runs/{run}``: the live run page."""
        context = self.run_context(run_id)
        return self.page("run.html.j2", run_nav=context["run"]["run_id"], **context)

    def status_json(self, request: Request, run_id: str) -> Response:
        """``/runs/{run}/status.json``: phase and the status of each task and gate."""
        context = self.run_context(run_id)
        data = self.scrub.deep({"run_id": context["run"]["run_id"], "phase": context["run"]["phase"],
                                **context["statuses"]})
        return JSONResponse(data, headers=HEADERS)

    def gate(self, request: Request, run_id: str, gate_id: str) -> Response:
        """``/runs/{run}/gates/{gate}``: the gate's review record."""
        context = views.gate_context(self.ws, run_id, gate_id)
        return self.page("gate.html.j2", run_nav=context["run"]["run_id"], **context)

    def costs(self, request: Request, run_id: str) -> Response:
        """``/runs/{run}/costs``: spend over time, budget, alerts, totals and calls."""
        context = chart_pages.costs_context(self.ws, run_id)
        return self.page("costs.html.j2", run_nav=context["run"]["run_id"], **context)

    def benchmark(self, request: Request, run_id: str) -> Response:
        """``/runs/{run}/benchmark``: accuracy per agent with Wilson intervals (``?path=`` another report)."""
        requested = request.query_params.get("path")
        try:
            context = chart_pages.benchmark_context(self.ws, run_id, requested)
        except InputError as e:
            if requested is None:
                raise  # the run's own report is broken: the server's data, not the request
            return self.error(400, "Not a benchmark report", str(e))  # the file the request named is not one
        return self.page("benchmark.html.j2", run_nav=context["run"]["run_id"], **context)

    def file(self, request: Request) -> Response:
        """``/file?path=…``: a workspace file's text (data, reports, reviews, boards only)."""
        context = views.file_context(self.ws, request.query_params.get("path", ""))
        return self.page("file.html.j2", file=context)

    # -- live updates ------------------------------------------------------------------------------

    def _payload(self, run_id: str) -> dict[str, Any]:
        context = self.scrub.deep(self.run_context(run_id))
        sections = {k: self.scrub.text(v) for k, v in render_sections({**context, "server": self._server()}).items()}
        return {"phase": context["run"]["phase"], "statuses": context["statuses"], "sections": sections}

    async def stream(self, request: Request) -> Response:
        """``/runs/{run}/stream``: server-sent events with the run page's changed sections."""
        try:
            run_id = str((await run_in_threadpool(find_run, self.ws, request.path_params["run_id"]))["run_id"])
        except CoordError as e:
            return self.error(404, "Not found", str(e))
        events = run_events(self.ws, run_id, lambda: self._payload(run_id), lambda: self.desk.version,
                            poll_s=self.config.poll_s, stream_s=self.config.stream_s)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={**HEADERS, "X-Accel-Buffering": "no"})

    # -- decisions ---------------------------------------------------------------------------------

    async def decide(self, request: Request) -> Response:
        """``POST /runs/{run}/gates/{gate}/decision``: approve, reject or override from the page."""
        if not self.config.allow_decisions:
            return self.error(403, "Read-only", "This dashboard was started without --allow-decisions.")
        if not same_origin(request.scope):
            return self.error(403, "Refused", "A decision must be sent from the dashboard's own page "
                                              "(its Origin did not match).")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return self.error(415, "Refused", "Send the decision form as application/x-www-form-urlencoded.")
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
            return self.error(413, "Refused", "The form is too large.")
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return self.error(413, "Refused", "The form is too large.")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True).items()}
        if not hmac.compare_digest(form.get("csrf", "").encode(), self.csrf.encode()):
            return self.error(403, "Refused", "The form's CSRF value is missing or wrong: reload the page.")
        key, action = form.get("key", ""), form.get("action", "")
        if not KEY_PATTERN.fullmatch(key):
            return self.error(400, "Refused", "The form has no valid idempotency key: reload the page.")
        if action not in ("approve", "reject", "override"):
            return self.error(400, "Refused", f"unknown decision {action[:40]!r} (approve, reject or override)")
        run_id, gate_id = request.path_params["run_id"], request.path_params["gate_id"]
        note = form.get("note", "").strip() or None
        grade = (form.get("grade", "").strip() or None) if action == "override" else None
        await run_in_threadpool(self.desk.decide, run_id, gate_id, cast(Action, action), note=note, grade=grade,
                                key=key)
        return RedirectResponse(f"/runs/{quote(run_id)}#gate-{quote(gate_id)}", status_code=303,
                                headers={"Cache-Control": "no-store"})


def create_app(config: ServeConfig) -> Starlette:
    """The dashboard application for ``config`` (wrapped in the host and token guard)."""
    d = Dashboard(config)
    routes = [
        Route("/", d.guarded(d.runs)),
        Route("/file", d.guarded(d.file)),
        Route("/runs/{run_id}", d.guarded(d.run)),
        Route("/runs/{run_id}/status.json", d.guarded(d.status_json)),
        Route("/runs/{run_id}/stream", d.stream),
        Route("/runs/{run_id}/costs", d.guarded(d.costs)),
        Route("/runs/{run_id}/benchmark", d.guarded(d.benchmark)),
        Route("/runs/{run_id}/gates/{gate_id}", d.guarded(d.gate)),
        Route("/runs/{run_id}/gates/{gate_id}/decision", d.decide, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("coordinator.web", "static")]), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Guard, config=config)])
    app.state.dashboard = d
    return app
