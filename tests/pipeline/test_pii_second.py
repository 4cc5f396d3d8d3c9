"""The second detector: other methods, the same classes, silent on clean text."""

from __future__ import annotations

import pytest

from pipeline.pii import ALL_CLASSES, PLACEHOLDERS, find_pii, find_pii_second, scrub_text

FOUND_BY_BOTH = [
    ("email", "Send the NDA to maria.keller@example.com today.", "maria.keller@example.com"),
    ("email", "Kontakt: jürgen.müller@beispiel.de (Vertrieb).", "jürgen.müller@beispiel.de"),
    ("email", "Contact: mark [at] contoso [dot] com", "mark [at] contoso [dot] com"),
    ("phone", "London office +44 20 7946 0958.", "+44 20 7946 0958"),
    ("phone", "The hotline is 1-800-555-0199, open 24/7.", "1-800-555-0199"),
    ("phone", "UK callers: 020 7946 0958", "020 7946 0958"),
    ("card", "Charge 4111 1111 1111 1111 for the renewal.", "4111 1111 1111 1111"),
    ("iban", "Wire it to GB82 WEST 1234 5698 7654 32.", "GB82 WEST 1234 5698 7654 32"),
    ("national_id", "SSN on the W-9: 536-22-1234", "536-22-1234"),
    ("api_key", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("ip", "Failed logins from 203.0.113.42 overnight.", "203.0.113.42"),
]

CLEAN = [
    "We upgraded from 2.14.1 to 2.15.0rc1 on 2024-03-15T10:30:00Z for $1,299.00.",
    "Order ORD-2024-004512 shipped; order 415-555-0132 was cancelled; see ticket #4155550132.",
    "ISBN 978-3-16-148410-0, commit 3f786850e387550fdab836ed7e6dc881de23001b, uuid 123e4567-e89b-12d3-a456-426614174000",
    "git@github.com:acme-corp/data-pipeline.git and ssh://git@bitbucket.org/team/repo.git",
    "@pytest.mark.parametrize(\"n\", [1, 2])\ny = x@W.T + b; npm install lodash@4.17.21; pkg@1.2",
    "signup_date\n2024-01    1812\n2024-02    1744\n2024-03    1690",
    "2024-03-15 10:30:01 INFO request from host-7 GET /api/v2/orders 200 in 41 ms",
    " ".join(PLACEHOLDERS.values()),
]


@pytest.mark.parametrize(("kind", "text", "value"), FOUND_BY_BOTH)
def test_both_detectors_find_the_common_forms(kind: str, text: str, value: str) -> None:
    assert [(m.kind, m.text) for m in find_pii(text, ALL_CLASSES)] == [(kind, value)]
    assert [(m.kind, m.text) for m in find_pii_second(text, ALL_CLASSES)] == [(kind, value)]


@pytest.mark.parametrize("text", CLEAN)
def test_the_second_detector_finds_nothing_in_clean_text(text: str) -> None:
    assert find_pii_second(text) == []


@pytest.mark.parametrize(("text", "number"), [
    ("Reach Paul on 415 5550132 today.", "415 5550132"),
    ("fax 415/555/0132", "415/555/0132"),
    ("Mobil 01512 3456789", "01512 3456789"),
])
def test_it_sees_numbers_the_first_detector_misses(text: str, number: str) -> None:
    """Where the shape rules say no, libphonenumber's matcher and metadata can still say yes."""
    assert find_pii(text) == []
    assert [(m.kind, m.text) for m in find_pii_second(scrub_text(text)[0])] == [("phone", number)]


def test_only_the_classes_asked_for_are_reported() -> None:
    text = "ops@example.com, +44 20 7946 0958, 203.0.113.42"
    assert [m.kind for m in find_pii_second(text, ["phone"])] == ["phone"]
    assert [m.kind for m in find_pii_second(text)] == ["email", "phone"]
    with pytest.raises(ValueError, match="'passport'"):
        find_pii_second(text, ["passport"])
