"""The numpy/scipy TF-IDF gives scikit-learn's numbers bit for bit, without importing it."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import numpy as np
import pytest
from scipy import sparse

from pipeline._tfidf import EmptyVocabulary, Vocabulary, idf, ngrams, tfidf
from pipeline.responder import MemoryRow, PromptTokenizer, RetrievalResponder, answer_similarity

WORDS = ["refund", "policy", "late", "orders", "Contract", "clause", "liability", "chart", "revenue",
         "quarterly", "test", "plan", "login", "café", "naïve", "Straße", "données", "x", "a1", "42",
         "über", "ÉTAT", "tool_call", "run-code", "e-mail", "I", "ok"]


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randrange(0, 25))
        seps = rng.choices([" ", "  ", "\n", ", ", ". ", "-", "\t", "/"], k=len(words))
        out.append("".join(w + s for w, s in zip(words, seps, strict=True)))
    return out + ["", "!!! ?", "a b c", "same same same same"]


def _same(a: sparse.spmatrix, b: sparse.spmatrix) -> None:
    a, b = sparse.csr_matrix(a), sparse.csr_matrix(b)
    assert a.shape == b.shape
    assert np.array_equal(a.indptr, b.indptr)
    assert np.array_equal(a.indices, b.indices)  # the stored order too: norms are summed in it
    assert np.array_equal(a.data, b.data)  # bitwise, not approximately


def test_ngrams_are_unigrams_then_bigrams_of_two_letter_tokens() -> None:
    assert ngrams("The cat, a DOG; x y zz") == ["the", "cat", "dog", "zz", "the cat", "cat dog", "dog zz"]
    assert ngrams("") == [] and ngrams("a b") == []


def test_fit_without_terms_is_refused_and_tokenizer_stays_empty() -> None:
    with pytest.raises(EmptyVocabulary):
        Vocabulary.fit(["", "a b", "!!"])
    tok = PromptTokenizer(["", "a"])
    assert tok.text_counts.shape == (2, 0) and tok.counts(["hello world"]).shape == (1, 0)


def test_tfidf_rows_have_unit_norm_and_idf_is_smoothed() -> None:
    vocab, counts = Vocabulary.fit(["alpha beta", "alpha gamma gamma", "delta"])
    weights = idf(counts)
    # "alpha" is in 2 of 3 texts: ln(4 / 3) + 1
    assert weights[vocab.terms["alpha"]] == pytest.approx(math.log(4 / 3) + 1)
    m = tfidf(counts, weights)
    assert np.allclose(np.sqrt(m.multiply(m).sum(axis=1)).A.ravel(), 1.0)
    empty = tfidf(vocab.counts(["zeta"]), weights)
    assert empty.nnz == 0


def test_the_benchmark_modules_do_not_import_scikit_learn() -> None:
    code = "import sys, pipeline.benchmark; print(any(m.startswith('sklearn') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_idf_and_tfidf_equal_scikit_learn_bitwise(seed: int) -> None:
    text = pytest.importorskip("sklearn.feature_extraction.text")
    fit_texts, new_texts = _texts(120, seed), _texts(40, seed + 100)
    cv = text.CountVectorizer(ngram_range=(1, 2), dtype=np.float64)
    expected = cv.fit_transform(fit_texts)
    vocab, counts = Vocabulary.fit(fit_texts)
    assert vocab.terms == cv.vocabulary_
    _same(counts, expected)
    _same(vocab.counts(new_texts), cv.transform(new_texts))

    tt = text.TfidfTransformer(norm="l2", use_idf=True, smooth_idf=True, sublinear_tf=True)
    tt.fit(expected)
    weights = idf(counts)
    assert np.array_equal(weights, tt.idf_)
    _same(tfidf(counts, weights), tt.transform(expected))
    _same(tfidf(vocab.counts(new_texts), weights), tt.transform(cv.transform(new_texts)))


def _sklearn_similarity(text: object, references: list[str], responses: list[str]) -> np.ndarray:
    enc = text.TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True,  # type: ignore[attr-defined]
                               dtype=np.float64)
    enc.fit([*references, *(r for r in responses if r)])
    ref = sparse.csr_matrix(enc.transform(references))
    sims = np.asarray(ref.multiply(sparse.csr_matrix(enc.transform(responses))).sum(axis=1)).ravel()
    return np.clip(sims, 0.0, 1.0)


def test_judge_and_responder_equal_scikit_learn_bitwise() -> None:
    text = pytest.importorskip("sklearn.feature_extraction.text")
    refs, resp = _texts(60, 7), _texts(60, 8)
    resp[3] = ""
    (got,) = answer_similarity(refs, resp)
    assert np.array_equal(got, _sklearn_similarity(text, refs, resp))

    prompts, queries = _texts(80, 9), _texts(30, 10)
    rows = [MemoryRow(f"ex-{i}#0", p, f"answer {i}", 1.0 if i % 3 else 0.4, "qa") for i, p in enumerate(prompts)]
    tok = PromptTokenizer(prompts)
    got_answers = RetrievalResponder(rows, tok.text_counts, seed=3).respond(tok.counts(queries))
    # the same model on scikit-learn: counts, own columns, transformer fitted on the rows
    cv = text.CountVectorizer(ngram_range=(1, 2), dtype=np.float64)
    counts = sparse.csr_matrix(cv.fit_transform(prompts))
    from pipeline.responder import seeded_order

    order = seeded_order(rows, 3)
    counts = counts[order]
    columns = np.flatnonzero(counts.getnnz(axis=0))
    tt = text.TfidfTransformer(norm="l2", use_idf=True, smooth_idf=True, sublinear_tf=True)
    matrix = tt.fit_transform(counts[:, columns])
    q = tt.transform(sparse.csr_matrix(cv.transform(queries))[:, columns])
    weights = np.array([rows[i].weight for i in order])
    scores = (q @ matrix.T).toarray() * weights[np.newaxis, :]
    for qi, answer in enumerate(got_answers):
        best = int(np.argmax(scores[qi]))
        if scores[qi, best] <= 0:
            assert answer.key is None
        else:
            assert (answer.key, answer.score) == (rows[order[best]].key, float(scores[qi, best]))
