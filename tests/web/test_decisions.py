"""Decisions from the dashboard go through the CLI's decision path, once per form, with the person's
identity — and only with the token, from the dashboard's own page, when decisions are allowed."""

from __future__ import annotations

import re
import threading
import time

from coordinator.core.workspace import Workspace
from coordinator.engine.run_view import run_status
from tests.web.conftest import PERSON, TOKEN, client, config, events

ORIGIN = "http://127.0.0.1:8765"


def _deciding_client(ws: Workspace, **kw: object):
    c = client(config(ws, token=TOKEN, allow_decisions=True, **kw))
    c.headers["Authorization"] = f"Bearer {TOKEN}"
    return c


def _form(c, run_id: str) -> dict[str, str]:
    """The hidden fields of the decision form on the run page."""
    page = c.get(f"/runs/{run_id}").text
    return {"key": re.search(r'name="key" value="([0-9a-f]{32})"', page).group(1),
            "csrf": re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)}


def _wait_idle(c, timeout: float = 30.0) -> None:
    desk = c.app.state.dashboard.desk
    deadline = time.monotonic() + timeout
    while desk.busy:
        assert time.monotonic() < deadline, "the decision was never applied"
        time.sleep(0.02)


def test_an_approval_submitted_many_times_is_recorded_once_with_the_identity(ws, waiting_run):
    c = _deciding_client(ws)
    run_id = waiting_run.run_id
    form = {**_form(c, run_id), "action": "approve", "note": "looks right"}
    url = f"/runs/{run_id}/gates/signoff/decision"
    answers = []

    def post() -> None:
        answers.append(c.post(url, data=form, headers={"Origin": ORIGIN}))

    threads = [threading.Thread(target=post) for _ in range(4)]  # a double click and retries, at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    post()  # and once more after the others
    assert [a.status_code for a in answers] == [303] * 5
    assert {a.headers["location"] for a in answers} == {f"/runs/{run_id}#gate-signoff"}
    _wait_idle(c)
    queued = events(ws, "decision_queued")
    assert len(queued) == 1 and queued[0]["by"] == PERSON and queued[0]["action"] == "approve"
    applied = events(ws, "gate_decision")
    assert len(applied) == 1 and applied[0]["decision"] == queued[0]["decision"]
    st = run_status(ws, run_id)
    gate = st["gates"]["signoff"]
    assert (gate["status"], gate["decided_by"], gate["decision"]["note"]) == ("approved", PERSON, "looks right")
    assert st["phase"] == "finished" and st["tasks"]["ship"]["status"] == "done"
    assert (ws.root / "out/side_effects.txt").read_text() == "shipped\n"  # ship ran once
    page = c.get(f"/runs/{run_id}").text
    assert f"gate signoff approved by {PERSON}" in page and "the run is finished" in page


def test_a_second_form_after_the_gate_was_decided_records_nothing(ws, waiting_run):
    c = _deciding_client(ws)
    run_id = waiting_run.run_id
    first, second = _form(c, run_id), _form(c, run_id)  # two tabs
    url = f"/runs/{run_id}/gates/signoff/decision"
    c.post(url, data={**first, "action": "approve"}, headers={"Origin": ORIGIN})
    _wait_idle(c)
    c.post(url, data={**second, "action": "reject", "note": "too late"}, headers={"Origin": ORIGIN})
    assert len(events(ws, "decision_queued")) == 1
    assert run_status(ws, run_id)["gates"]["signoff"]["status"] == "approved"
    page = c.get(f"/runs/{run_id}").text
    assert re.search(r"reject of gate signoff refused: gate &#39;signoff&#39; of run \S+ is not waiting", page)


def test_the_identity_defaults_to_the_git_user(ws, waiting_run):
    c = client(config(ws, token=TOKEN, allow_decisions=True, identity=None))
    c.headers["Authorization"] = f"Bearer {TOKEN}"
    form = _form(c, waiting_run.run_id)
    c.post(f"/runs/{waiting_run.run_id}/gates/signoff/decision", data={**form, "action": "approve"},
           headers={"Origin": ORIGIN})
    _wait_idle(c)
    assert run_status(ws, waiting_run.run_id)["gates"]["signoff"]["decided_by"] == "Ana Reviewer"


def test_a_reject_without_a_note_is_refused_with_the_cli_message(ws, waiting_run):
    c = _deciding_client(ws)
    form = _form(c, waiting_run.run_id)
    answer = c.post(f"/runs/{waiting_run.run_id}/gates/signoff/decision", data={**form, "action": "reject"},
                    headers={"Origin": ORIGIN})
    assert answer.status_code == 303
    assert "a decision to reject needs a note saying why" in c.get(f"/runs/{waiting_run.run_id}").text
    assert events(ws, "decision_queued") == []
    assert run_status(ws, waiting_run.run_id)["gates"]["signoff"]["status"] == "waiting"


def test_decisions_are_refused_without_token_permission_csrf_or_same_origin(ws, waiting_run):
    run_id = waiting_run.run_id
    url = f"/runs/{run_id}/gates/signoff/decision"
    c = _deciding_client(ws)
    good = {**_form(c, run_id), "action": "approve"}
    anonymous = client(config(ws, token=TOKEN, allow_decisions=True))
    assert anonymous.post(url, data=good, headers={"Origin": ORIGIN}).status_code == 401
    read_only = client(config(ws, token=TOKEN))
    read_only.headers["Authorization"] = f"Bearer {TOKEN}"
    assert read_only.post(url, data=good, headers={"Origin": ORIGIN}).status_code == 403
    assert c.post(url, data={**good, "csrf": "0" * 40}, headers={"Origin": ORIGIN}).status_code == 403
    assert c.post(url, data={k: v for k, v in good.items() if k != "csrf"}, headers={"Origin": ORIGIN}).status_code == 403
    assert c.post(url, data=good).status_code == 403  # neither Origin nor Referer
    assert c.post(url, data=good, headers={"Origin": "http://attacker.example"}).status_code == 403
    assert c.post(url, data=good, headers={"Origin": "null"}).status_code == 403
    assert c.post(url, data={**good, "key": "not-a-key"}, headers={"Origin": ORIGIN}).status_code == 400
    assert c.post(url, data={**good, "action": "delete"}, headers={"Origin": ORIGIN}).status_code == 400
    assert c.post(url, json=good, headers={"Origin": ORIGIN}).status_code == 415
    assert c.get(url).status_code == 405
    assert events(ws, "decision_queued") == []
    assert c.post(url, data=good, headers={"Referer": f"{ORIGIN}/runs/{run_id}"}).status_code == 303
    _wait_idle(c)
    assert len(events(ws, "decision_queued")) == 1
