"""Checks coord measures itself: commands with parsed counts, files with validators, claims."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from coordinator.core.plan import Check
from reviews.criteria import evaluate, evaluate_all, parse_counts

FAKE_SUITE = Path(__file__).resolve().parent / "fake_suite.py"


def _no_metrics(ref):
    return None, "no metrics"


def test_parse_counts_takes_the_summary_line():
    out = "collected 22 items\ntest_a.py ..F\n=== 3 failed, 18 passed, 1 error in 0.51s ==="
    assert parse_counts(out) == {"failed": 3, "passed": 18, "errors": 1}
    assert parse_counts("ok") == {}


def test_command_check_records_exit_code_and_counts(tmp_path):
    res = evaluate(Check(id="tests", command=f"{sys.executable} {FAKE_SUITE} 18 3"), _no_metrics, tmp_path)
    assert (res["passed"], res["measured"], res["counts"]) == (False, 1, {"failed": 3, "passed": 18})
    assert res["detail"] == "exit 1; 3 failed, 18 passed"


def test_file_checks_with_named_validators(tmp_path):
    good = {"schema_version": "1.5.0", "id": "t1", "details": {},
            "content": [{"class_": "text_observation", "source": "user", "content": "hi"},
                        {"class_": "message_action", "content": "hello"}]}
    (tmp_path / "adp.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({"id": "t2"}) + "\n")
    res = evaluate(Check(file="adp.jsonl", validator="adp"), _no_metrics, tmp_path)
    assert not res["passed"] and res["detail"].startswith("1 of 2 trajectories invalid; first: ")

    (tmp_path / "ok.jsonl").write_text(json.dumps(good) + "\n")
    assert evaluate(Check(file="ok.jsonl", validator="adp"), _no_metrics, tmp_path)["passed"]

    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    oai = tmp_path / "openai"
    oai.mkdir()
    (oai / "qa.jsonl").write_text((json.dumps(chat) + "\n") * 10)
    (oai / "legal.jsonl").write_text((json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n") * 10)
    res = evaluate(Check(file="openai", validator="openai"), _no_metrics, tmp_path)
    assert not res["passed"] and res["detail"].startswith("1 of 2 files fail: legal.jsonl:")

    (tmp_path / "broken.jsonl").write_text('{"a": 1}\n{oops\n')
    res = evaluate(Check(file="broken.jsonl", validator="jsonl"), _no_metrics, tmp_path)
    assert not res["passed"] and res["detail"].startswith("line 2:")
    assert evaluate(Check(file="absent.json"), _no_metrics, tmp_path)["detail"] == "missing"


def test_claims_check_against_a_file(tmp_path):
    (tmp_path / "STATUS.md").write_text("Done! 100% pass rate, all 21 tests pass.\n")
    checks = [Check(claims={"file": "STATUS.md", "against": "tests"}),
              Check(id="tests", command=f"{sys.executable} {FAKE_SUITE} 18 3")]
    claims, tests = evaluate_all(checks, _no_metrics, tmp_path)
    assert tests["kind"] == "command" and claims["kind"] == "claims"
    assert not claims["passed"] and claims["claimed"] == "100% pass rate"
    assert claims["measured"] == "18/21 passed, 3 failed (85.7% pass rate)"
    assert claims["detail"].startswith("2 of 2 claims disagree with the measurement")
