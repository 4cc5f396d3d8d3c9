"""The labelled PII set (bench/data/pii_labelled.jsonl): targets that must not silently regress."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.pii import ALL_CLASSES, DEFAULT_CLASSES, find_pii, find_pii_second
from pipeline.pii.evaluate import LabelledSetError, LabelledText, evaluate, load_labelled

DATA = Path(__file__).resolve().parents[2] / "bench" / "data" / "pii_labelled.jsonl"


@pytest.fixture(scope="module")
def records() -> list[LabelledText]:
    return load_labelled(DATA)


def test_the_set_covers_every_class_and_hard_negatives(records: list[LabelledText]) -> None:
    assert len(records) >= 200
    per_class = {kind: sum(s.kind == kind for r in records for s in r.spans) for kind in ALL_CLASSES}
    assert per_class["email"] >= 40 and per_class["phone"] >= 40
    assert all(n >= 5 for n in per_class.values()), per_class
    assert sum(1 for r in records if not r.spans) >= 60


def test_emails_and_phones_meet_the_targets(records: list[LabelledText]) -> None:
    scores = evaluate(records, find_pii, DEFAULT_CLASSES).scores
    for kind in ("email", "phone"):
        assert scores[kind].precision >= 0.98, (kind, scores[kind])
        assert scores[kind].recall >= 0.95, (kind, scores[kind])


def test_the_other_classes_hold_their_ground(records: list[LabelledText]) -> None:
    result = evaluate(records, find_pii, ALL_CLASSES)
    for kind in ("card", "iban", "national_id", "api_key", "ip"):
        assert result.scores[kind].precision >= 0.95, (kind, result.scores[kind])
        assert result.scores[kind].recall >= 0.9, (kind, result.scores[kind])


def test_ip_addresses_are_not_flagged_when_the_class_is_off(records: list[LabelledText]) -> None:
    ip_texts = [r for r in records if any(s.kind == "ip" for s in r.spans)]
    assert ip_texts
    for record in ip_texts:
        ips = [(s.start, s.end) for s in record.spans if s.kind == "ip"]
        found = [(m.start, m.end) for m in find_pii(record.text)]
        assert not any(a < e and s < b for a, b in ips for s, e in found), record.id


def test_the_second_detector_is_precise_enough_to_gate_on(records: list[LabelledText]) -> None:
    scores = evaluate(records, find_pii_second, DEFAULT_CLASSES).scores
    assert all(s.precision >= 0.95 for s in scores.values()), scores
    assert scores["email"].recall >= 0.9 and scores["phone"].recall >= 0.8, scores


def test_a_span_that_does_not_match_its_text_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "set.jsonl"
    bad.write_text('{"id": "a", "text": "mail a@b.io", "pii": []}\n'
                   '{"id": "b", "text": "mail a@b.io", "pii": [{"class": "email", "start": 0, "end": 4, '
                   '"text": "a@b.io"}]}\n', encoding="utf-8")
    with pytest.raises(LabelledSetError, match=r"set.jsonl:2: span 0:4 is 'mail'"):
        load_labelled(bad)
    bad.write_text('{"id": "a", "text": "x", "pii": [{"class": "passport", "start": 0, "end": 1, '
                   '"text": "x"}]}\n', encoding="utf-8")
    with pytest.raises(LabelledSetError, match=r"set.jsonl:1: .*'passport'"):
        load_labelled(bad)
