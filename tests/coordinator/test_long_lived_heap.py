"""While a run goes, what existed before it stays out of the collector's full passes; afterwards it is back."""

from __future__ import annotations

import gc

import pytest

from coordinator.core.errors import CoordError
from coordinator.engine.runner import RunOptions, resume_run, run_plan
from tests.coordinator.steps_for_tests import write_plan

PLAN = """name: heap
tasks:
  - {id: a, title: A, role: lead, run: t_noop}
  - {id: b, title: B, role: lead, needs: [a], run: t_noop}
"""


def test_the_heap_is_frozen_during_a_run_and_thawed_after(ws):
    seen: list[int] = []
    assert gc.get_freeze_count() == 0
    summary = run_plan(ws, RunOptions(plan=str(write_plan(ws.root, PLAN)), render_interval=0),
                       listener=lambda event: seen.append(gc.get_freeze_count()))
    assert summary.phase == "finished"
    assert seen and min(seen) > 0  # every event of the run saw the earlier objects frozen
    assert gc.get_freeze_count() == 0  # thawed on return


def test_a_failing_run_thaws_the_heap_too(ws):
    with pytest.raises(CoordError, match="no-such-run"):
        resume_run(ws, "no-such-run", RunOptions(plan="x"))
    assert gc.get_freeze_count() == 0
