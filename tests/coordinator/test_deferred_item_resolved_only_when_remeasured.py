"""A deferred item is resolved only when the criterion that opened it, measured again after its
resolving task, passes — a done resolving task alone resolves nothing."""

from __future__ import annotations

import json
import sys

import pytest

from coordinator.core.events import read_events
from coordinator.engine.runner import RunOptions, run_plan
from tests.coordinator.steps_for_tests import write_plan

PY = sys.executable
PLAN = f"""name: pii
tasks:
  - {{id: make, title: Make the data, role: execution, command: ["{PY}", tools/make.py]}}
  - {{id: scrub, title: Scrub PII, role: execution, needs: [make], command: ["{PY}", tools/scrub.py]}}
gates:
  - id: data_ok
    after: [make]
    criteria:
      - {{metric: make.emails, op: "==", value: 0, defer: "Scrub PII (metric)", resolved_by: [scrub]}}
      - {{command: "{PY} tools/has_email.py", id: no_email, defer: "Scrub PII (file)", resolved_by: [scrub]}}
      - {{file: data/train.txt, weight: 8}}
"""
TOOLS = {
    "make.py": "import json, os\nopen('data/train.txt', 'w').write('mail ana@example.com\\n')\n"
               "json.dump({'emails': 1}, open(os.environ['COORD_METRICS'], 'w'))\n",
    "scrub.py": "import json, os\ncfg = json.load(open('tools/scrub.json'))\n"
                "open('data/train.txt', 'w').write(cfg['writes'])\n"
                "json.dump(cfg['reports'], open(os.environ['COORD_METRICS'], 'w'))\n",
    "has_email.py": "import sys\nsys.exit('@' in open('data/train.txt').read())\n",
}


def _run(ws, writes: str, reports: dict):
    (ws.root / "data").mkdir(exist_ok=True)
    (ws.root / "tools").mkdir(exist_ok=True)
    for name, code in TOOLS.items():
        (ws.root / "tools" / name).write_text(code)
    (ws.root / "tools" / "scrub.json").write_text(json.dumps({"writes": writes, "reports": reports}))
    return run_plan(ws, RunOptions(plan=str(write_plan(ws.root, PLAN)), render_interval=0))


def _items(summary) -> dict[str, dict]:
    return {d["text"]: d for d in summary.state["deferred"].values()}


def test_a_done_scrub_that_left_the_emails_resolves_nothing(ws):
    summary = _run(ws, "mail ana@example.com\n", {"emails": 1})
    assert summary.phase == "finished"  # open items do not fail a run
    items = _items(summary)
    metric, command = items["Scrub PII (metric)"], items["Scrub PII (file)"]
    assert metric["status"] == command["status"] == "open"
    assert metric["remeasured"]["passed"] is False and metric["remeasured"]["after"] == "scrub"
    assert metric["remeasured"]["detail"] == "re-measured after scrub: make.emails = 1 (needs == 0)"
    assert command["remeasured"]["passed"] is False  # the command ran again on the data as it is now
    assert not any(e["kind"] == "deferred_resolved" for e in read_events(ws.events))
    board = (ws.boards / "CODEX_TASKS.md").read_text()
    assert "**still open**: re-measured after scrub: make.emails = 1 (needs == 0)" in board


def test_a_scrub_whose_result_measures_clean_resolves_both(ws):
    summary = _run(ws, "mail [EMAIL]\n", {"emails": 0})
    items = _items(summary)
    assert {d["status"] for d in items.values()} == {"resolved"}
    assert items["Scrub PII (metric)"]["resolved_in"] == "scrub"
    assert items["Scrub PII (metric)"]["remeasured"]["measured"] == 0
    resolved = [e for e in read_events(ws.events) if e["kind"] == "deferred_resolved"]
    assert len(resolved) == 2 and all("re-measured after scrub" in e["measured"] for e in resolved)


@pytest.mark.parametrize("reports", [{}, {"rows": 3}])
def test_a_resolving_task_that_measures_nothing_leaves_a_metric_item_open_and_says_why(ws, reports):
    summary = _run(ws, "mail [EMAIL]\n", reports)
    items = _items(summary)
    metric = items["Scrub PII (metric)"]
    assert metric["status"] == "open" and metric["remeasured"]["passed"] is None
    assert "nothing has measured make.emails since the gate did" in metric["remeasured"]["detail"]
    assert items["Scrub PII (file)"]["status"] == "resolved"  # the command measures the data itself
    assert metric["detail"] == "make.emails == 0: measured 1"
