"""The audit step and its near-duplicate engine, on small training sets built here."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from datasketch import MinHash

from coordinator.core.errors import InputError, ParameterError
from coordinator.core.step import StepContext
from pipeline.audit import audit, ends_with_punctuation
from pipeline.audit_report import MAX_REPORT_BYTES
from pipeline.minhash import (
    near_duplicate_pairs,
    normalize_text,
    permutations,
    shingle_hashes,
    signatures,
)

SYLLABLES = ("ka", "lo", "mi", "ru", "te", "sa", "no", "vi", "de", "po", "zu", "fe")


def words(seed: int, n: int) -> str:
    """``n`` pseudo-words (letters only, so they never look like PII), reproducibly."""
    rng = random.Random(seed)
    return " ".join("".join(rng.choice(SYLLABLES) for _ in range(3)) for _ in range(n))


def shingle_set(text: str, k: int = 5) -> set[str]:
    w = normalize_text(text).split()
    return {" ".join(w[i:i + k]) for i in range(max(1, len(w) - k + 1))}


def exact_jaccard(a: str, b: str) -> float:
    sa, sb = shingle_set(a), shingle_set(b)
    return len(sa & sb) / len(sa | sb)


# ---------------------------------------------------------------- MinHash engine


def test_vectorized_signatures_equal_datasketch_legacy_minhash() -> None:
    texts = [words(1, 120), words(2, 3), "one two three four five six"]
    a, b = permutations(128, seed=7)
    sigs = signatures(texts, num_perm=128, seed=7)
    hashes, counts = shingle_hashes([normalize_text(t) for t in texts])
    offsets = np.concatenate(([0], np.cumsum(counts)))
    for i in range(len(texts)):
        ref = MinHash(num_perm=128, scheme="legacy", permutations=np.array([a, b]),
                      hashfunc=lambda v: v)
        for h in hashes[offsets[i]:offsets[i + 1]].tolist():
            ref.update(h)
        assert np.array_equal(ref.hashvalues, sigs[i].astype(np.uint64))


def test_signature_depends_only_on_the_text() -> None:
    text = words(3, 80)
    alone = signatures([text])[0]
    among = signatures([words(4, 10), "", text, words(5, 300)])[2]
    assert np.array_equal(alone, among)
    assert np.array_equal(signatures(["A  b\tc d e f"])[0], signatures(["a b c d e f"])[0])


def test_shingle_counts_follow_word_counts() -> None:
    _, counts = shingle_hashes(["a b c d e f g", "a b", "", "a b c d e"], shingle_size=5)
    assert counts.tolist() == [3, 1, 0, 1]


def test_near_duplicates_are_found_and_unrelated_texts_are_not() -> None:
    texts = [words(100 + i, 200) for i in range(300)]
    edited = texts[17].split()
    edited[50] = "changed"
    texts.append(" ".join(edited))  # index 300
    texts.append(texts[42].upper() + "  ")  # same words, other case and spacing: 301
    pairs = near_duplicate_pairs(texts, threshold=0.85)
    assert {(p.a, p.b) for p in pairs} == {(17, 300), (42, 301)}
    by_pair = {(p.a, p.b): p.jaccard for p in pairs}
    assert by_pair[(42, 301)] == 1.0
    assert abs(by_pair[(17, 300)] - exact_jaccard(texts[17], texts[300])) < 0.1


def test_threshold_decides_what_counts_as_near() -> None:
    base = words(9, 300).split()
    variants = []
    for changes in (1, 8, 20):  # exact Jaccard ≈ 0.97, 0.76, 0.49
        w = list(base)
        for j in range(changes):
            w[5 + j * 12] = "changed"
        variants.append(" ".join(w))
    texts = [" ".join(base), *variants]
    strict = {p.b for p in near_duplicate_pairs(texts, threshold=0.9) if p.a == 0}
    loose = {p.b for p in near_duplicate_pairs(texts, threshold=0.4) if p.a == 0}
    assert strict == {1}
    assert loose == {1, 2, 3}


def test_empty_texts_are_never_near_duplicates() -> None:
    assert near_duplicate_pairs(["", "   ", words(1, 50)]) == []


# ---------------------------------------------------------------- audit fixture


def conversation(system: str, human: str, answer: str) -> list[dict[str, str]]:
    return [{"from": "system", "value": system}, {"from": "human", "value": human},
            {"from": "gpt", "value": answer}]


BASES: dict[str, tuple[str, str, str]] = {}  # base_id -> (difficulty, human, answer)
for _i in range(10):
    _d = "easy" if _i < 3 else "medium" if _i < 8 else "hard"
    BASES[f"qa-{_i:03d}"] = (_d, words(1000 + _i, 30) + "?", words(2000 + _i, 200) + ".")
_near = BASES["qa-001"][2].split()
_near[100] = "changed"
BASES["legal-000"] = ("easy", BASES["qa-000"][1], BASES["qa-000"][2])  # exact duplicate
BASES["legal-001"] = ("medium", BASES["qa-001"][1], " ".join(_near))  # near duplicate
BASES["legal-002"] = ("medium", words(3002, 30) + " Mail maria.keller@example.com please.",
                      words(4002, 200) + " Call +44 20 7946 0958.")
BASES["legal-003"] = ("hard", words(3003, 30) + "?", "Yes, fine.")
BASES["legal-004"] = ("hard", words(3004, 30) + "?", words(4004, 200))
WEIGHTS = {("qa", "qa"): 1.0, ("qa", "legal"): 0.5, ("legal", "legal"): 1.0, ("legal", "qa"): 0.5}


def system_prompt(target: str, variant: int) -> str:
    extra = " Escalate to ops@example.com." if (target, variant) == ("qa", 2) else ""
    return f"You are the {target} agent, prompt variant {variant}.{extra}"


def fixture_rows() -> dict[str, list[dict[str, Any]]]:
    files: dict[str, list[dict[str, Any]]] = {"qa": [], "legal": []}
    for target in files:
        for base_id, (difficulty, human, answer) in BASES.items():
            source = base_id.split("-")[0]
            for v in range(3):
                h = human + " please" if base_id == "qa-009" and v == 2 else human
                files[target].append({
                    "id": f"{target}<-{base_id}#{v}",
                    "conversations": conversation(system_prompt(target, v), h, answer),
                    "weight": WEIGHTS[(target, source)], "target_agent": target,
                    "source_agent": source, "base_id": base_id, "category": "c",
                    "difficulty": difficulty, "variant": v})
    extra = dict(files["qa"][0], id="qa<-qa-000#3", weight=1.5, variant=3)
    extra["conversations"] = conversation(system_prompt("qa", 3), *BASES["qa-000"][1:])
    missing = {k: v for k, v in files["qa"][3].items() if k != "weight"}
    files["qa"] += [extra, dict(missing, id="qa<-qa-001#4", variant=4)]
    return files


def write_sft(ws: Path, files: dict[str, list[dict[str, Any]]], *, extra_lines: bytes = b"",
              sub: str = "data/sft/unsloth") -> Path:
    root = ws / sub
    root.mkdir(parents=True, exist_ok=True)
    for agent, rows in files.items():
        data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
        (root / f"{agent}.jsonl").write_bytes(data + (extra_lines if agent == "qa" else b""))
    return root


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    write_sft(tmp_path, fixture_rows(),
              extra_lines=b'{"not json\n' + orjson.dumps({"id": "x", "conversations": []}) + b"\n")
    return tmp_path


def test_audit_measures_every_finding(ws: Path) -> None:
    result = audit(StepContext(ws))
    m = result.metrics
    rows = fixture_rows()
    all_rows = rows["qa"] + rows["legal"]
    assert m["rows"] == len(all_rows) == 92
    assert m["files"] == 2 and m["agents"] == 2
    assert m["rejects"] == 1 and m["schema_errors"] == 1
    # 15 bases; legal-000 repeats qa-000; qa-009's variant 2 is a second text of the same base
    assert m["unique_bases"] == 15 and m["unique_texts"] == 15
    assert (m["exact_dup_groups"], m["exact_dup_rows"]) == (1, 6)
    assert m["exact_dup_rate"] == pytest.approx(6 / 92)
    assert m["cross_agent_reuse_rows"] == 92 - 15 - 6
    assert (m["near_dup_pairs"], m["near_dup_texts"]) == (1, 2)  # qa-001 ~ legal-001 only
    assert m["near_dup_rate"] == pytest.approx(2 / 15)
    assert (m["weight_min"], m["weight_max"]) == (0.5, 1.5)
    assert (m["weight_out_of_range"], m["weight_missing"]) == (1, 1)
    weights = [r["weight"] for r in all_rows if "weight" in r]
    assert m["weight_mean"] == pytest.approx(sum(weights) / len(weights))
    lengths = sorted(len(r["conversations"][-1]["value"].split()) for r in all_rows)
    assert m["answer_words_mean"] == pytest.approx(sum(lengths) / len(lengths))
    # nearest-rank percentiles: 6 rows of 2 words, 80 of 200, 6 of 205 (the phone sentence)
    assert m["answer_words_p50"] == lengths[math.ceil(0.50 * 92) - 1] == 200
    assert m["answer_words_p95"] == lengths[math.ceil(0.95 * 92) - 1] == 205
    assert (m["too_short_rows"], m["no_end_punct_rows"]) == (6, 6)
    assert m["too_short_rate"] == pytest.approx(6 / 92)
    # legal-002 everywhere (email + phone); the qa variant-2 system prompt has an email
    assert (m["pii_email_rows"], m["pii_phone_rows"], m["pii_rows"]) == (20, 6, 20)
    assert m["pii_texts"] == 1 and m["pii_rate"] == pytest.approx(20 / 92)
    assert m["difficulty_easy"] == pytest.approx(4 / 15)
    assert m["difficulty_medium"] == pytest.approx(7 / 15)
    assert m["difficulty_hard"] == pytest.approx(4 / 15)
    assert m["difficulty_max_deviation"] == pytest.approx(0.30 - 4 / 15)


def test_audit_writes_metrics_report_and_rejects(ws: Path) -> None:
    audit(StepContext(ws), sample_size=2)
    out = ws / "reports/audit"
    data = orjson.loads((out / "audit_metrics.json").read_bytes())
    assert set(data["agents"]) == {"qa", "legal"}
    qa = data["agents"]["qa"]
    assert qa["rows"] == 47 and qa["weight_out_of_range"] == 1 and qa["weight_missing"] == 1
    assert data["difficulty"]["target"] == {"easy": 0.30, "medium": 0.45, "hard": 0.25}
    assert all(len(v) <= 2 for v in data["samples"].values())
    report = (out / "audit_report.md").read_text()
    assert "| exact_dup_rows | 6 |" in report and "| near_dup_pairs | 1 |" in report
    assert "maria.keller@example.com" not in report and "m***@e***.com" in report
    assert "7946 0958" not in report and "+•• •• •••• ••58" in report
    rejects = [orjson.loads(x) for x in (out / "qa.jsonl.rejects.jsonl").read_bytes().splitlines()]
    assert [r["line"] for r in rejects] == [48, 49]
    assert rejects[1]["field"] == "target_agent" and "missing" in rejects[1]["reason"]
    assert not (out / "legal.jsonl.rejects.jsonl").exists()


def test_audit_rerun_with_same_inputs_is_skipped(ws: Path) -> None:
    first = audit(StepContext(ws))
    again = audit(StepContext(ws))
    assert again.skipped and again.metrics == first.metrics
    changed = audit(StepContext(ws), near_dup_threshold=0.99)
    assert not changed.skipped and changed.metrics["near_dup_pairs"] == 0


@pytest.mark.slow
def test_audit_report_stays_bounded_on_large_noisy_input(tmp_path: Path) -> None:
    rows = []
    for i in range(20_000):
        agent = f"agent{i % 120:03d}"
        rows.append({"id": f"{'x' * 3000}{i}", "target_agent": agent, "source_agent": agent,
                     "base_id": f"b{i}", "category": "c", "difficulty": f"level{i % 40}",
                     "variant": 0, "weight": 5.0,
                     "conversations": conversation("sys", f"mail u{i}@example.com {words(i, 8)}",
                                                   f"{'y' * 800} short {i}")})
    write_sft(tmp_path, {"all": rows})
    m = audit(StepContext(tmp_path), sample_size=100).metrics
    assert m["rows"] == 20_000 and m["too_short_rows"] == 20_000 and m["pii_email_rows"] == 20_000
    report = (tmp_path / "reports/audit/audit_report.md").read_bytes()
    assert len(report) <= MAX_REPORT_BYTES
    assert len(report) < 200_000  # counts, ≤ 100 short samples per finding, ≤ 50 agent rows
    assert "more agents in audit_metrics.json" in report.decode()


@pytest.mark.parametrize(("answer", "ok"), [
    ("Done.", True), ("Really?", True), ("Stop!", True), ('He said "yes."', True),
    ("(see above.)", True), ("**Done.**", True), ("```python\nx = 1\n```", True),
    ("Done.  \n", True), ("Let me know if you want tickets", False), ("- item one", False),
    ("Total: 42", False), ("", False)])
def test_end_punctuation(answer: str, ok: bool) -> None:
    assert ends_with_punctuation(answer) is ok


def test_audit_rejects_bad_parameters_and_missing_input(ws: Path) -> None:
    ctx = StepContext(ws)
    with pytest.raises(ParameterError):
        audit(ctx, near_dup_threshold=1.5)
    with pytest.raises(ParameterError):
        audit(ctx, difficulty_target={"easy": 0.5, "hard": 0.2})
    with pytest.raises(ParameterError):
        audit(ctx, weight_range=[1.0, 0.0])
    with pytest.raises(InputError):
        audit(ctx, sft_dir="data/nothing-here")
