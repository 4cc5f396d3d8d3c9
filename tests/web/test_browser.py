"""The dashboard in a real browser (Debian's headless Chromium through Selenium): the run page shows
each task's state, changes in place when a task finishes, and a gate approved from the page — with
a double click and a retried POST — is recorded once, with the person's identity.

Screenshots of the run page and the costs page go to the test's directory, and also to
``$COORD_SCREENSHOTS`` when that is set (to look at them)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from coordinator.core.workspace import Workspace
from coordinator.engine.run_view import run_status
from tests.web.browser import browser_paths, chromium
from tests.web.conftest import (
    PERSON,
    SLOW_PLAN,
    TOKEN,
    config,
    events,
    run_in_thread,
    seed_costs,
    start_server,
)

pytestmark = pytest.mark.slow


def _wait(what: str, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _screenshot(driver, path: Path) -> None:
    """The whole page: the window is made as tall as the page first."""
    page = "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
    for _ in range(2):  # the window's frame takes some of its height: measure again once resized
        inner = driver.execute_script("return window.innerHeight")
        outer = driver.get_window_size()["height"]
        driver.set_window_size(1360, min(driver.execute_script(page) + outer - inner, 8000))
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.2)
    driver.save_screenshot(str(path))
    driver.set_window_size(1360, 1000)
    assert path.stat().st_size > 10_000  # an image with something on it
    copy_to = os.environ.get("COORD_SCREENSHOTS")
    if copy_to:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(copy_to) / path.name)


def _status_of(driver, selector: str) -> str | None:
    return driver.execute_script(
        "var el = document.querySelector(arguments[0]); return el ? el.getAttribute('data-status') : null;", selector)


def test_run_page_live_in_a_browser_and_an_approval_recorded_once(ws: Workspace, serve, tmp_path):
    browser_paths()  # skip (or, in CI, fail) before starting anything when the browser is missing
    server = start_server(serve, config(ws, port=0, token=TOKEN, allow_decisions=True))
    thread, summaries = run_in_thread(ws, SLOW_PLAN)
    run_dir = _wait("the run", lambda: next((ws.state_dir / "runs").glob("*"), None)
                    if (ws.state_dir / "runs").is_dir() else None)
    run_id = run_dir.name
    _wait("slow to run", lambda: any(e.get("task") == "slow" for e in events(ws, "task_started")))
    base = f"http://127.0.0.1:{server.port}"

    with chromium(tmp_path / "profile") as driver:
        driver.get(f"{base}/runs/{run_id}?token={TOKEN}")  # the token becomes a cookie
        assert driver.current_url == f"{base}/runs/{run_id}"
        _wait("the live stream", lambda: driver.execute_script(
            "return document.getElementById('live').textContent.indexOf('live') >= 0"))
        # each task's state, as the engine has it, in the table and in the graph
        def shown() -> dict[str, tuple[str | None, str | None]]:
            return {tid: (_status_of(driver, f'tr[data-task="{tid}"]'), _status_of(driver, f'g[data-node="task:{tid}"]'))
                    for tid in ("make", "check", "ship", "side", "slow")}

        def engine() -> dict[str, tuple[str, str]]:
            st = run_status(ws, run_id)
            return {tid: (rec.get("status", "pending"),) * 2 for tid, rec in st["tasks"].items()}

        _wait("the page to show what `coord status` shows", lambda: shown() == engine())
        assert shown()["slow"] == ("running", "running") and shown()["ship"] == ("pending", "pending")
        assert _status_of(driver, '[data-gate="signoff"]') == "waiting"

        # a task finishes: the page changes in place (no reload: the marker set now survives)
        driver.execute_script("window.__sameDocument = 'yes';")
        (ws.root / "release").write_text("go")
        _wait("slow done on the page", lambda: _status_of(driver, 'tr[data-task="slow"]') == "done")
        _wait("the graph too", lambda: _status_of(driver, 'g[data-node="task:slow"]') == "done")
        assert driver.execute_script("return window.__sameDocument") == "yes"
        thread.join(30)
        assert summaries[0].phase == "waiting"
        _wait("the run to pause on the page", lambda: driver.execute_script(
            "return document.getElementById('phase').getAttribute('data-phase')") == "waiting")
        _screenshot(driver, tmp_path / "run_page.png")

        # approve with a double click, then retry the same form's POST as a browser might
        key = driver.execute_script("return document.querySelector('form.decide input[name=key]').value")
        csrf = driver.execute_script("return document.querySelector('form.decide input[name=csrf]').value")
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        button = driver.find_element(By.CSS_SELECTOR, 'form.decide button[value="approve"]')
        ActionChains(driver).double_click(button).perform()
        _wait("the gate approved on the page", lambda: _status_of(driver, '[data-gate="signoff"]') == "approved",
              timeout=60)
        _wait("ship done on the page", lambda: _status_of(driver, 'tr[data-task="ship"]') == "done", timeout=60)
        retried = driver.execute_async_script(
            "var done = arguments[arguments.length - 1];"
            "fetch(arguments[0], {method: 'POST', body: new URLSearchParams({key: arguments[1], csrf: arguments[2],"
            " action: 'approve'}), redirect: 'manual'}).then(function (r) { done(r.type + ':' + r.status); });",
            f"/runs/{run_id}/gates/signoff/decision", key, csrf)
        assert retried in ("opaqueredirect:0", "basic:303")  # accepted again, recorded nothing new
        assert f"approved by {PERSON}" in driver.find_element(By.CSS_SELECTOR, '[data-section="attention"]').text
        _screenshot(driver, tmp_path / "run_page_approved.png")

        seed_costs(ws, run_id)
        driver.get(f"{base}/runs/{run_id}/costs")
        assert len(driver.find_elements(By.CSS_SELECTOR, "[data-chart] svg")) == 2
        _screenshot(driver, tmp_path / "costs_page.png")

    queued = events(ws, "decision_queued")
    assert len(queued) == 1 and queued[0]["by"] == PERSON and queued[0]["action"] == "approve"
    assert len(events(ws, "gate_decision")) == 1
    final = run_status(ws, run_id)
    assert final["gates"]["signoff"]["decided_by"] == PERSON and final["phase"] == "finished"
    assert (ws.root / "out/side_effects.txt").read_text() == "shipped\n"
