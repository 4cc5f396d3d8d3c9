"""The offline retrieval responder answers from its own training rows, and the judge scores answers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.responder import (
    MemoryRow,
    PromptTokenizer,
    RetrievalResponder,
    answer_similarity,
)


def _rows(prompts: list[str], weights: list[float] | None = None) -> list[MemoryRow]:
    weights = weights or [1.0] * len(prompts)
    return [MemoryRow(f"ex-{i}#0", p, f"answer {i}", w, "qa") for i, (p, w) in enumerate(zip(prompts, weights, strict=True))]


def _responder(rows: list[MemoryRow], extra_texts: tuple[str, ...] = (), seed: int = 0) -> tuple[RetrievalResponder, PromptTokenizer]:
    texts = [r.prompt for r in rows] + list(extra_texts)
    tok = PromptTokenizer(texts)
    return RetrievalResponder(rows, tok.text_counts[: len(rows)], seed=seed), tok


def test_shared_tokenizer_gives_the_model_fitted_on_its_own_rows() -> None:
    text = pytest.importorskip("sklearn.feature_extraction.text")  # the reference model
    rng = random.Random(5)
    vocab = [f"t{i}" for i in range(60)]
    prompts = [" ".join(rng.choices(vocab, k=12)) for _ in range(40)]
    others = [" ".join(rng.choices([f"o{i}" for i in range(30)] + vocab, k=12)) for _ in range(40)]
    queries = [" ".join(rng.choices([*vocab, "o1", "o2"], k=10)) for _ in range(25)]
    rows = _rows(prompts)
    # the tokenizer also saw other models' texts; the responder must ignore their terms
    resp, tok = _responder(rows, tuple(others))
    got = resp.respond(tok.counts(queries))

    alone = text.TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(prompts)
    scores = (alone.transform(queries) @ alone.transform(prompts).T).toarray()
    for q, g in enumerate(got):
        best = float(scores[q].max())
        assert g.key is not None
        i = int(g.key.removeprefix("ex-").removesuffix("#0"))
        assert g.answer == f"answer {i}"
        assert g.score == pytest.approx(best, abs=1e-12)
        assert scores[q, i] == pytest.approx(best, abs=1e-12)


def test_weight_lowers_a_cross_agent_row() -> None:
    rows = [MemoryRow("own#0", "refund policy for late orders", "own answer", 1.0, "support"),
            MemoryRow("cross#0", "refund policy for late orders today", "cross answer", 0.3, "legal")]
    resp, tok = _responder(rows)
    (ans,) = resp.respond(tok.counts(["refund policy for late orders today"]))
    assert ans.answer == "own answer"


def test_ties_are_decided_by_the_seed_not_the_input_order() -> None:
    rows = [MemoryRow(f"ex-{i}#0", "same prompt text", f"answer {i}", 1.0, "qa") for i in range(8)]
    picks = set()
    for seed in range(12):
        a, tok = _responder(rows, seed=seed)
        b, _ = _responder(list(reversed(rows)), seed=seed)
        q = tok.counts(["same prompt text"])
        assert a.respond(q) == b.respond(q)
        picks.add(a.respond(q)[0].key)
    assert len(picks) > 1


def test_no_memory_or_no_shared_term_gives_an_empty_answer() -> None:
    tok = PromptTokenizer(["alpha beta"])
    empty = RetrievalResponder([], tok.text_counts[:0], seed=1)
    assert [r.answer for r in empty.respond(tok.counts(["alpha"]))] == [""]
    resp, tok = _responder(_rows(["alpha beta"]))
    (ans,) = resp.respond(tok.counts(["gamma delta"]))
    assert (ans.answer, ans.key, ans.score) == ("", None, 0.0)


def test_judge_scores_identical_disjoint_and_empty_answers() -> None:
    refs = ["the test plan covers login", "contract clause on liability", "quarterly revenue chart"]
    same, other = answer_similarity(refs, refs, ["", "ship it now", "quarterly revenue table"])
    assert same == pytest.approx([1.0, 1.0, 1.0])
    assert other[0] == 0.0 and other[1] == 0.0
    assert 0.0 < other[2] < 1.0
    assert isinstance(other, np.ndarray)
    with pytest.raises(ValueError):
        answer_similarity(refs, refs[:2])
