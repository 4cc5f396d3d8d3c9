"""Email and phone detection: what is PII, what only looks like it, and idempotent scrubbing.

The other classes (cards, IBANs, national ids, API keys, IPs) are in test_pii_classes.py,
the second detector in test_pii_second.py, the labelled benchmark in test_pii_benchmark.py.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.pii import ALL_CLASSES, PLACEHOLDERS, find_pii, scrub_text

PHONES = [
    "+44 20 7946 0958",
    "+1 (415) 555-0132",
    "+49 30 1234567",
    "020 7946 0958",
    "(415) 555-0132",
    "415-555-0132",
    "415.555.0132",
    "415 555 0132",
    "(415)555-0132",
    "+33 1 23 45 67 89",
    "+44 (0)20 7946 0958",
    "0044 20 7946 0958",
    "+14155550132",
    "+81 3-1234-5678",
    "+61 2 9876 5432",
    "030 1234567",
    "+1-415-555-0132",
    "+1.415.555.0132",
    "1-800-555-0199",
    "1-415-555-0132",
    "1.800.555.0199",
    "1 (800) 555-0199",
    "(02) 9876 5432",
    "03-1234-5678",
    "01 42 68 53 00",
]

EMAILS = [
    "john.smith@example.com",
    "a@b.io",
    "first.last+tag@mail.example.net",
    "ops_team-2@sub.domain.co.uk",
    "MARIA.KELLER@Example.ORG",
    "support@northwind.example",
    "x_y%z@corp.internal",
    "help@northwind.xyz",
    "noreply@flights.travel",
    "billing@acme.museum",
    "jürgen.müller@beispiel.de",
    "пример@почта.рф",
    "o'brien@lawfirm.com",
    "4155550132@txt.example.net",
]

NOT_PII = [
    "2.14.1",
    "v10.2.3",
    "version 2.14.10 of the SDK",
    "2024-03-15",
    "15/03/2024",
    "03/15/2024 10:30",
    "2024-03-15T10:30:00Z",
    "10:30:45",
    "192.168.1.100",
    "10.0.0.1",
    "172.16.254.3 and 192.168.100.200",
    "$1,299.00",
    "€ 1 299,00",
    "1,234,567,890 users",
    "ORD-2024-004512",
    "order 415-555-0132",
    "invoice #20240315001",
    "ISBN 978-3-16-148410-0",
    "978-0-306-40615-7",
    "0-306-40615-2",
    "12345678901234",
    "id 4155550132",
    "4111 1111 1111 1112",
    "2019 2020 2021 2022",
    "1 234 567 890",
    "sha 3f786850e387550fdab836ed7e6dc881de23001b",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "@pytest.mark.parametrize",
    "x = a@self.weights",
    "numpy@1.26.4",
    "git@github",
    "git@github.com:org/repo.git",
    "ssh://git@gitlab.com/group/project.git",
    "user@localhost",
    "name@domain.tld",
    "pkg@1.2",
    "y = x@W.T + b",
    "@app.route('/health')",
    "5 + 3 = 8",
    "+1 vote",
    "port 8080 and 443",
    "ratio 1:2:3",
    "Table 3 shows 120 rows",
    "between 9 and 17 hours",
    "a file of 10 240 000 bytes",
]


@pytest.mark.parametrize("phone", PHONES)
def test_phone_numbers_in_international_and_national_formats_are_found(phone: str) -> None:
    text = f"Please call me on {phone} tomorrow."
    matches = find_pii(text)
    assert [(m.kind, m.text) for m in matches] == [("phone", phone)]
    assert text[matches[0].start:matches[0].end] == phone


@pytest.mark.parametrize("phone", PHONES)
def test_phone_at_text_edges_and_before_punctuation(phone: str) -> None:
    for text in (phone, f"{phone}.", f"({phone})" if not phone.startswith("(") else phone,
                 f"Tel: {phone}, thanks"):
        assert [m.text for m in find_pii(text)] == [phone], text


@pytest.mark.parametrize("email", EMAILS)
def test_email_addresses_are_found(email: str) -> None:
    text = f"Write to <{email}> or cc {email}."
    assert [(m.kind, m.text) for m in find_pii(text)] == [("email", email)] * 2


@pytest.mark.parametrize("decoy", NOT_PII)
def test_lookalikes_are_not_pii(decoy: str) -> None:
    assert find_pii(f"See {decoy} for details.") == []
    assert find_pii(decoy) == []


def test_bare_digits_count_as_a_phone_only_after_a_phone_word() -> None:
    assert [m.text for m in find_pii("Call 4155550132 now")] == ["4155550132"]
    assert [m.text for m in find_pii("mobile: 02079460958")] == ["02079460958"]
    assert [m.text for m in find_pii("call me at 4155550132")] == ["4155550132"]
    assert [m.text for m in find_pii("my number is 6175550187.")] == ["6175550187"]
    assert find_pii("Reference 4155550132 now") == []


def test_national_formats_without_a_trunk_prefix_need_a_phone_word() -> None:
    """phonenumbers judges them, for a few countries, only right after a phone word."""
    assert [m.text for m in find_pii("Tel.: (11) 91234-5678")] == ["(11) 91234-5678"]
    assert [m.text for m in find_pii("Llame al 912 345 678 hoy")] == ["912 345 678"]
    assert find_pii("Room 912 345 678 is booked") == []
    # on its own, phonenumbers reads the tail of an order id as a US number
    assert find_pii("call ORD-2024-004512 now") == []


@pytest.mark.parametrize(("text", "address"), [
    ("write to jane dot doe at example dot com today", "jane dot doe at example dot com"),
    ("Contact: mark [at] contoso [dot] com", "mark [at] contoso [dot] com"),
    ("E-Mail: kontakt(at)firma(dot)de", "kontakt(at)firma(dot)de"),
    ("questions -> sam AT acme DOT org", "sam AT acme DOT org"),
    ("my email is tom.berg at gmail.com, text me", "tom.berg at gmail.com"),
    ("email Jane at example.org", "Jane at example.org"),
])
def test_spelled_out_addresses_are_found_whole(text: str, address: str) -> None:
    assert [(m.kind, m.text) for m in find_pii(text)] == [("email", address)]


@pytest.mark.parametrize("prose", [
    "Look at the dot com era for a cautionary tale.",
    "Find us at example.com or on the docs site at docs.python.org.",
    "The docs are at README.md and the config at settings.py.",
    "We meet at 5 pm at the office at 10 Downing Street.",
])
def test_at_and_dot_in_prose_are_not_addresses(prose: str) -> None:
    assert find_pii(prose) == []


def test_an_apostrophe_is_inside_an_address_but_quotes_are_not() -> None:
    text = "The reviewer was o'brien@lawfirm.com; she wrote 'kim@example.org'."
    assert [m.text for m in find_pii(text)] == ["o'brien@lawfirm.com", "kim@example.org"]


def test_a_phone_next_to_other_numbers_is_still_found() -> None:
    text = "In 2024 call 415-555-0132 2 times, or 020 7946 0958 12 times."
    assert [m.text for m in find_pii(text)] == ["415-555-0132", "020 7946 0958"]


def test_escaped_newline_in_json_text_does_not_make_an_email() -> None:
    code = '{"code": "import pytest\\n\\n\\n@pytest.mark.parametrize(\\"q\\", [1])"}'
    assert find_pii(code) == []


def test_matches_are_ordered_and_do_not_overlap() -> None:
    text = "mail 4155550132@example.com or ring +44 20 7946 0958; cc ops@example.org"
    matches = find_pii(text)
    assert [m.kind for m in matches] == ["email", "phone", "email"]
    assert all(a.end <= b.start for a, b in pairwise(matches))


def test_scrub_replaces_with_typed_placeholders_and_counts() -> None:
    text = "Reach maria.keller@example.com or +1 (415) 555-0132 / 020 7946 0958 (v2.14.1)."
    scrubbed, counts = scrub_text(text)
    assert scrubbed == "Reach <EMAIL> or <PHONE> / <PHONE> (v2.14.1)."
    assert counts == {"email": 1, "phone": 2, "card": 0, "iban": 0, "national_id": 0, "api_key": 0}
    assert scrub_text(text, ["phone"]) == ("Reach maria.keller@example.com or <PHONE> / <PHONE> (v2.14.1).",
                                           {"phone": 2})


def test_scrub_is_idempotent_and_placeholders_are_not_pii() -> None:
    text = "a@b.io, +49 30 1234567 and <EMAIL> <PHONE> already scrubbed"
    once, _ = scrub_text(text)
    twice, counts = scrub_text(once)
    assert twice == once
    assert set(counts.values()) == {0}
    assert find_pii(" ".join(PLACEHOLDERS.values()), ALL_CLASSES) == []


def test_text_without_pii_is_returned_unchanged() -> None:
    text = "Released 2.14.1 on 2024-03-15 for $1,299.00 (ORD-2024-004512) from 10.0.0.1."
    scrubbed, counts = scrub_text(text)
    assert scrubbed is text
    assert set(counts.values()) == {0}


_FRAGMENTS = st.sampled_from([*PHONES, *EMAILS, *NOT_PII, "<PHONE>", "<EMAIL>", "call", "the",
                              "mail:", "tel", "-", ".", "(", ")", "+", "0", "12", "415", "@"])
_SEPARATORS = st.sampled_from([" ", "", "\n", ", ", "-", "."])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_FRAGMENTS, _SEPARATORS), max_size=12))
def test_scrubbing_any_mix_leaves_no_pii_and_is_stable(parts: list[tuple[str, str]]) -> None:
    text = "".join(f + s for f, s in parts)
    once, _ = scrub_text(text)
    assert find_pii(once) == []
    assert scrub_text(once)[0] == once
