"""Claimed test figures are parsed from free text and compared with measured counts."""

from __future__ import annotations

import pytest

from reviews.claims import Measured, compare, parse_claims


@pytest.mark.parametrize("text,expected", [
    ("Status: 21 tests, 18 passing.", "18/21 passed"),
    ("18/21 tests pass", "18/21 passed"),
    ("18 of 21 tests passed", "18/21 passed"),
    ("all 42 tests pass", "42/42 passed, 0 failed"),
    ("We have a 100% pass rate", "100% pass rate"),
    ("pass rate: 85.7%", "85.7% pass rate"),
    ("All tests are passing!", "100% pass rate"),
    ("pytest: 18 passed, 3 failed in 0.4s", "18/21 passed, 3 failed"),
])
def test_claim_forms(text, expected):
    claims = parse_claims(text)
    assert [c.describe() for c in claims] == [expected]


def test_claims_in_order_of_appearance_and_prose_without_figures_ignored():
    text = "Summary\n\nThe refactor is done. 100% pass rate; 21 tests, 18 passing.\nNo figures here."
    assert [c.text for c in parse_claims(text)] == ["100% pass rate", "21 tests, 18 passing"]
    assert parse_claims("We passed the review and tested the idea.") == []


def test_compare_flags_only_what_disagrees():
    measured = Measured(passed=18, failed=3, errors=None, exit_code=1)
    rows = compare(parse_claims("21 tests, 18 passing. all 21 tests pass. pass rate 85.7%"), measured)
    assert [r["matches"] for r in rows] == [True, False, True]
    assert rows[1]["measured"] == "18/21 passed, 3 failed (85.7% pass rate)"


def test_without_counts_only_the_exit_code_can_contradict_a_full_pass():
    failing = Measured(None, None, None, exit_code=2)
    assert [r["matches"] for r in compare(parse_claims("all tests pass. 3 of 4 tests pass"), failing)] == [False, True]
    assert compare(parse_claims("100% pass rate"), Measured(None, None, None, 0))[0]["matches"]
