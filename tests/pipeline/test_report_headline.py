"""The week summary's launch headline names what a decision was made with: open deferred items, skipped fixes."""

from __future__ import annotations

from pipeline.report import _launch_caveats
from templates import render

PLAN = {"order": ["audit", "scrub_pii", "finetune[qa]", "finetune[legal]", "benchmark", "report"],
        "tasks": {"audit": {"needs": []}, "scrub_pii": {"needs": ["audit"]},
                  "finetune[qa]": {"base_id": "finetune", "needs": ["scrub_pii"]},
                  "finetune[legal]": {"base_id": "finetune", "needs": ["scrub_pii"]},
                  "benchmark": {"needs": ["finetune[qa]", "finetune[legal]"]},
                  "report": {"needs": ["benchmark"], "run": "report"}}}


def _status(scrub: str, item: str) -> dict:
    tasks = {t: {"status": "done", "role": "execution"} for t in PLAN["order"]}
    tasks["scrub_pii"]["status"] = scrub
    return {"plan": "p", "run_id": "r", "profile": "speed", "updated_at": "now", "tasks": tasks,
            "gates": {"launch": {"status": "approved", "grade": "A", "score": 10.0, "criteria": []}},
            "deferred": {"data_quality:pii": {"text": "Scrub PII from training sets", "status": item,
                                              "resolved_by": ["scrub_pii"], "gate": "data_quality",
                                              "detail": "measured 330"}}}


def _headline(status: dict) -> str:
    text = render("week_summary.md.j2", status=status, cards=[], launch="go", launch_gate="launch",
                  caveats=_launch_caveats(status, PLAN), highlights=[], deferred=[], finetune=[],
                  total_cost=0.0, running=[], provenance=[], benchmark_line=None, est_finetune_cost=None,
                  unknown_cost=False, stand_in=False)
    return next(line for line in text.splitlines() if line.startswith("**Launch decision"))


def test_go_with_a_skipped_fix_says_so_next_to_the_decision():
    assert _headline(_status("skipped", "open")) == (
        "**Launch decision (launch gate): GO — with 1 open deferred item: Scrub PII from training sets "
        "(scrub_pii skipped: finetune, benchmark used files without this fix)**")


def test_an_open_item_whose_fix_did_not_run_yet_is_still_named():
    assert _headline(_status("pending", "open")).endswith(
        "GO — with 1 open deferred item: Scrub PII from training sets**")


def test_resolved_items_leave_the_plain_go():
    assert _headline(_status("done", "resolved")) == "**Launch decision (launch gate): GO**"
