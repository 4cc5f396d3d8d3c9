"""The dashboard refuses requests without its token, serves nothing outside the workspace's served
folders, answers only to its own host name, and never shows a secret from the environment."""

from __future__ import annotations

import os
import re

import orjson

from coordinator.core.workspace import Workspace
from tests.web.conftest import TOKEN, client, config, seed_costs, write_benchmark

PAGES = ("/", "/runs/{run}", "/runs/{run}/costs", "/runs/{run}/benchmark", "/runs/{run}/gates/signoff",
         "/runs/{run}/status.json", "/static/dashboard.js")


def test_every_request_without_the_token_is_refused(ws: Workspace, waiting_run):
    c = client(config(ws, token=TOKEN))
    for path in (*PAGES, "/file?path=task_boards/CURSOR_TASKS.md", "/runs/{run}/stream"):
        page = c.get(path.format(run=waiting_run.run_id))
        assert page.status_code == 401, path
        assert waiting_run.run_id not in page.text and "Token needed" in page.text
    for header in ("Bearer wrong-token", f"Basic {TOKEN}", "Bearer ", f"Bearer {TOKEN}x"):
        assert c.get("/", headers={"Authorization": header}).status_code == 401, header
    assert c.get("/?token=wrong").status_code == 401
    c.cookies.set("coord_token_9999", TOKEN)  # another port's cookie
    assert c.get("/").status_code == 401


def test_the_token_by_header_or_by_a_cookie_set_once_from_the_url(ws, waiting_run):
    c = client(config(ws, token=TOKEN))
    assert c.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    first = c.get(f"/runs/{waiting_run.run_id}?token={TOKEN}")
    assert first.status_code == 303
    assert first.headers["location"] == f"/runs/{waiting_run.run_id}"  # the token leaves the address bar
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"coord_token_8765={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    again = c.get(first.headers["location"])  # the client keeps the cookie
    assert again.status_code == 200 and f'data-run="{waiting_run.run_id}"' in again.text


def test_a_request_naming_another_host_is_refused(ws, waiting_run):
    c = client(config(ws))
    assert c.get("/", headers={"Host": "attacker.example:8765"}).status_code == 400
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765"):
        assert c.get("/", headers={"Host": host}).status_code == 200, host


TRAVERSALS = ("../outside.txt", "reports/../../outside.txt", "/etc/passwd", "reports/%2e%2e/%2e%2e/outside.txt",
              ".coord/state.sqlite", ".coord/events.jsonl", "coord.yaml", ".env", "reports/..%2f..%2foutside.txt",
              "reports\\..\\..\\outside.txt", "reports/./../../outside.txt", "reports/link/outside.txt",
              "data/.hidden", "reports/nul%00.txt", "")


def test_paths_outside_the_served_folders_are_refused(ws, waiting_run):
    (ws.root.parent / "outside.txt").write_text("OUTSIDE-CONTENT")
    (ws.reports).mkdir(exist_ok=True)
    (ws.reports / "link").symlink_to(ws.root.parent, target_is_directory=True)  # a link leading out
    (ws.root / "data").mkdir(exist_ok=True)
    (ws.root / "data" / ".hidden").write_text("HIDDEN-CONTENT")
    (ws.root / ".env").write_text("HIDDEN-CONTENT")
    c = client(config(ws))
    for raw in TRAVERSALS:
        for url in (f"/file?path={raw}", f"/runs/{waiting_run.run_id}/benchmark?path={raw}"):
            if raw == "" and "benchmark" in url:
                continue  # an empty ?path= means "the run's own report"
            page = c.get(url)
            assert page.status_code == 403, (url, page.status_code)
            assert "OUTSIDE-CONTENT" not in page.text and "HIDDEN-CONTENT" not in page.text
            assert "SQLite format" not in page.text
    (ws.reports / "x.md").write_text("INSIDE-CONTENT")  # the same route serves what it may
    assert "INSIDE-CONTENT" in c.get("/file?path=reports/x.md").text


def test_static_files_cannot_be_used_to_climb_out(ws, waiting_run):
    c = client(config(ws))
    assert c.get("/static/dashboard.css").status_code == 200
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/../../pyproject.toml"):
        page = c.get(path)
        assert page.status_code == 404, path
        assert "create_app" not in page.text and "[project]" not in page.text


SECRET = "s3cr3t-value-" + "Q7xK" * 6


def test_no_secret_from_the_environment_in_any_response(ws, waiting_run, monkeypatch):
    """A provider config names an unusual variable as its key; its value, planted wherever a page reads
    text (a review record, a board, the event log, the ledger, a benchmark report), is masked everywhere."""
    monkeypatch.setenv("TEAM_LLM_CREDENTIAL", SECRET)
    (ws.root / "coord.yaml").write_text("roles:\n  lead:\n    agent: claude\n    driver: llm\n"
                                        "    provider: anthropic\n    model: claude-sonnet-4-5\n"
                                        "    api_key_env: TEAM_LLM_CREDENTIAL\n")
    run = waiting_run.run_id
    seed_costs(ws, run)
    report = write_benchmark(ws)
    data = orjson.loads(report.read_bytes())
    data["model_description"] = f"trained with key {SECRET}"
    report.write_bytes(orjson.dumps(data))
    record = ws.reviews / run / "signoff.json"
    rec = orjson.loads(record.read_bytes())
    rec["findings"] = [f"the agent printed {SECRET}"]
    record.write_bytes(orjson.dumps(rec))
    with ws.events.open("ab") as fh:
        fh.write(orjson.dumps({"ts": "2026-01-01T00:00:00.000+00:00", "run": run, "kind": "task_failed",
                               "task": "side", "error": f"auth failed for {SECRET}"}) + b"\n")
    board = ws.boards / "CURSOR_TASKS.md"
    board.write_text(board.read_text() + f"\nkey: {SECRET}\n")
    assert SECRET in os.environ["TEAM_LLM_CREDENTIAL"]
    c = client(config(ws, token=TOKEN, allow_decisions=True))
    c.headers["Authorization"] = f"Bearer {TOKEN}"
    seen = []
    for path in (*PAGES, "/file?path=task_boards/CURSOR_TASKS.md", f"/file?path=reviews/{run}/signoff.json",
                 "/file?path=reports/benchmark/benchmark.json"):
        page = c.get(path.format(run=run))
        assert page.status_code == 200, path
        assert SECRET not in page.text, path
        assert TOKEN not in page.text, path  # the dashboard's own token is a secret too
        seen.append(page.text)
    masked = "\n".join(seen)
    assert masked.count("[REDACTED:") >= 5  # it was there to show, and shown masked
    assert re.search(r"the agent printed \[REDACTED:", masked)
