"""Card numbers, IBANs, national ids, API keys and IP addresses; classes chosen per call."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.pii import (
    ALL_CLASSES,
    DEFAULT_CLASSES,
    PLACEHOLDERS,
    find_pii,
    pii_classes,
    scrub_text,
)

# fabricated in the providers' published shapes; none was ever a live credential
OPENAI_KEY = "sk-proj-Q7fTz2LmX9wKc4RbN1vHs8DjY3pGe6UaW0oIqZtB5nMxCkLr"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_J8rfRCwAra1jZiDpRsMBTooyj9snHvrph8qL"
SLACK_TOKEN = "xoxb-313538826038-5815095664594-eY6Oo5mNy2czuPUcLONnDFZu"

POSITIVES = [
    ("card", "Charge 4111 1111 1111 1111 for the renewal.", "4111 1111 1111 1111"),
    ("card", "Customer paid with 5555-5555-5555-4444, exp 12/27.", "5555-5555-5555-4444"),
    ("card", "Amex on file: 3782 822463 10005", "3782 822463 10005"),
    ("card", "card_number=4242424242424242&cvc=123", "4242424242424242"),
    ("iban", "Wire it to GB82 WEST 1234 5698 7654 32.", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "IBAN: DE89370400440532013000 (Commerzbank)", "DE89370400440532013000"),
    ("iban", "Virement: FR14 2004 1010 0505 0001 3M02 606", "FR14 2004 1010 0505 0001 3M02 606"),
    ("iban", "Konto NO93 8601 1117 947.", "NO93 8601 1117 947"),
    ("national_id", "SSN on the W-9: 536-22-1234", "536-22-1234"),
    ("national_id", "Applicant SSN 219456781, DOB 1986-04-02", "219456781"),
    ("national_id", "NI number AB 12 34 56 C is on the payslip.", "AB 12 34 56 C"),
    ("national_id", "DNI 12345678Z del titular", "12345678Z"),
    ("national_id", "NIE X1234567L", "X1234567L"),
    ("api_key", f"export OPENAI_API_KEY={OPENAI_KEY}", OPENAI_KEY),
    ("api_key", f"aws_access_key_id = {AWS_KEY_ID}", AWS_KEY_ID),
    ("api_key", f"git clone https://{GITHUB_TOKEN}@github.com/acme/infra.git", GITHUB_TOKEN),
    ("api_key", f"SLACK_BOT_TOKEN={SLACK_TOKEN}", SLACK_TOKEN),
    ("api_key", 'config = {"api_key": "a8F3kLm92QxZ7pT4vWn1", "timeout": 30}', "a8F3kLm92QxZ7pT4vWn1"),
]

NEGATIVES = [
    "4111 1111 1111 1112 fails the Luhn check",
    "Serial no. 5105105105105100 is printed on the device.",
    "Tracking number 9400 1000 0000 0000 0000 00",
    "epoch_ms=1710498600000",
    "GB00 TEST 0000 0000 0000 00 is the format example.",
    "SSN 000-12-3456 and 666-12-3456 are never issued; 078-05-1120 was voided.",
    "QQ 12 34 56 C is HMRC's example.",
    "api_key = os.environ[\"OPENAI_API_KEY\"]",
    "OPENAI_API_KEY=your-api-key-here",
    'token = "${GITHUB_TOKEN}"',
    "The sk-learn-compatible estimator wraps scikit-learn.",
    "max_tokens: 4096",
    "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "request_id=123e4567-e89b-12d3-a456-426614174000",
]


@pytest.mark.parametrize(("kind", "text", "value"), POSITIVES)
def test_each_class_is_found_with_its_exact_span(kind: str, text: str, value: str) -> None:
    assert [(m.kind, m.text) for m in find_pii(text)] == [(kind, value)]


@pytest.mark.parametrize("text", NEGATIVES)
def test_lookalikes_of_the_new_classes_are_not_pii(text: str) -> None:
    assert find_pii(text, ALL_CLASSES) == []


def test_ip_addresses_are_off_by_default_and_found_when_asked_for() -> None:
    text = "Failed logins from 203.0.113.42 and [2001:db8::8a2e:370:7334]:8443; firmware version 1.2.3.4."
    assert "ip" not in DEFAULT_CLASSES
    assert find_pii(text) == []
    assert [m.text for m in find_pii(text, [*DEFAULT_CLASSES, "ip"])] == [
        "203.0.113.42", "2001:db8::8a2e:370:7334"]


def test_classes_choose_what_is_looked_for() -> None:
    text = "Mail ops@example.com, call +44 20 7946 0958, card 4111 1111 1111 1111."
    assert [m.kind for m in find_pii(text, ["card"])] == ["card"]
    assert [m.kind for m in find_pii(text, ["email", "phone"])] == ["email", "phone"]
    assert scrub_text(text, ["email", "card"])[0] == "Mail <EMAIL>, call +44 20 7946 0958, card <CARD>."


def test_unknown_class_names_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'passport'"):
        find_pii("text", ["email", "passport"])
    assert pii_classes(["ip", "email"]) == ("email", "ip")


def test_a_card_or_iban_is_never_also_read_as_a_phone() -> None:
    text = "Pay DE89 3704 0044 0532 0130 00 or card 4000 0566 5566 5556, or call 020 7946 0958."
    assert [(m.kind, m.text) for m in find_pii(text)] == [
        ("iban", "DE89 3704 0044 0532 0130 00"), ("card", "4000 0566 5566 5556"),
        ("phone", "020 7946 0958")]


def test_only_the_value_of_an_assigned_secret_is_replaced() -> None:
    text = 'db:\n  password: "Xk82mQp1Lz93nVb4Rt"\n  user: app'
    assert scrub_text(text)[0] == 'db:\n  password: "<API_KEY>"\n  user: app'


_FRAGMENTS = st.sampled_from([value for _, _, value in POSITIVES] + NEGATIVES + [
    "203.0.113.42", "2001:db8::8a2e:370:7334", "jane dot doe at example dot com", "mark [at] acme [dot] io",
    "ops@example.com", "+44 20 7946 0958", "1-800-555-0199", *PLACEHOLDERS.values(),
    "SSN", "IBAN", "call", "at", "dot", "key=", "-", " ", "(", ")", "0", "4111", "GB82", "@"])
_SEPARATORS = st.sampled_from([" ", "", "\n", ", ", "-", ".", ": "])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_FRAGMENTS, _SEPARATORS), max_size=10))
def test_scrubbing_every_class_leaves_nothing_and_is_stable(parts: list[tuple[str, str]]) -> None:
    text = "".join(f + s for f, s in parts)
    once, _ = scrub_text(text, ALL_CLASSES)
    assert find_pii(once, ALL_CLASSES) == []
    assert scrub_text(once, ALL_CLASSES)[0] == once
