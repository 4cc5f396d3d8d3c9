"""The live web dashboard behind ``coord serve`` (and ``coord run PLAN --serve``).

A small ASGI application (Starlette, served by uvicorn): server-rendered HTML from Jinja2
templates, live updates over server-sent events, charts drawn by matplotlib as SVG on the
server. Every figure comes from the engine's own read functions (``run_view``, the ledger,
the review records); decisions go through :mod:`coordinator.engine.decisions` like the CLI's.

Lives here: configuration, security (token, CSRF, host and path checks, redaction), view
data, the DAG layout, charts, the event stream, decisions and the server.
May import: task_boards, coordinator.engine and every layer below; never the CLI or the MCP server.
"""
