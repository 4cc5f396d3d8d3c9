"""Offline stand-in for a fine-tuned LLM: a TF-IDF retrieval responder, and its judge.

This is NOT a language model. It is the smallest real model that learns from
the same training rows a fine-tune would see, so the benchmark can run offline
and every number in it comes from running something:

- :class:`RetrievalResponder` fits TF-IDF (word 1–2-grams, sublinear tf,
  smoothed idf, L2 norm) on the prompts of its own training rows and answers a
  new prompt with the answer of the training row whose prompt is most similar
  (cosine), each row's similarity multiplied by its training weight — so a
  cross-agent row of weight 0.3 must be much closer than an own row of weight
  1.0 to win.
- :class:`PromptTokenizer` counts n-grams once for every distinct text so that
  several responders can share the work. A responder keeps only the columns
  of terms that occur in its own rows and computes its idf from its own rows,
  which makes it exactly the model a scikit-learn ``TfidfVectorizer`` fitted on
  those rows alone would be (the TF-IDF is :mod:`pipeline._tfidf`, the same
  numbers without importing scikit-learn).
- :func:`answer_similarity` is the judge: the TF-IDF cosine between a response
  and the reference answer, with an encoder fitted on exactly the texts being
  compared, so neither model's training data shapes the ruler.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from pipeline._tfidf import EmptyVocabulary, Vocabulary, csr_matrix, idf, tfidf

if TYPE_CHECKING:
    from scipy import sparse

MODEL_NAME: Final = "offline-tfidf-retrieval"
"""Label carried by every metric and report produced with this responder."""


@dataclass(frozen=True)
class MemoryRow:
    """One distinct training example the responder can answer with."""

    key: str
    """``<base_id>#<variant>``: where the row came from (for reports)."""
    prompt: str
    """Conversation text before the final answer (system prompt excluded)."""
    answer: str
    """The final ``gpt`` turn."""
    weight: float
    """Training weight (own rows 1.0, cross-agent rows their compatibility)."""
    source_agent: str
    """Agent whose example this is."""


@dataclass(frozen=True)
class Retrieval:
    """What the responder said for one prompt and why."""

    answer: str
    """The retrieved answer; empty when no training prompt shares a term with the query."""
    key: str | None
    """Key of the training row answered with."""
    score: float
    """Cosine similarity of the prompts times the row's weight."""


class PromptTokenizer:
    """Word 1–2-gram counts over the vocabulary of the texts it was built from.

    ``text_counts[i]`` is the count vector of ``texts[i]``; every text is
    tokenized exactly once.
    """

    def __init__(self, texts: Sequence[str]) -> None:
        self._vocabulary: Vocabulary | None
        try:
            self._vocabulary, self.text_counts = Vocabulary.fit(texts)
        except EmptyVocabulary:
            # no text had a single term: every count vector is empty
            self._vocabulary = None
            self.text_counts = csr_matrix((len(texts), 0), dtype=np.float64)

    def counts(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Count matrix of new ``texts`` (terms outside the vocabulary are ignored)."""
        if self._vocabulary is None:
            return csr_matrix((len(texts), 0), dtype=np.float64)
        return self._vocabulary.counts(texts)


def seeded_order(rows: Sequence[MemoryRow], seed: int) -> list[int]:
    """Indices of ``rows`` sorted by ``sha256(seed:key)`` (text breaks exact ties): a stable, seeded shuffle."""
    return sorted(range(len(rows)), key=lambda i: (
        hashlib.sha256(f"{seed}:{rows[i].key}".encode()).digest(), rows[i].prompt, rows[i].answer))


class RetrievalResponder:
    """Nearest-neighbour responder over TF-IDF prompt vectors (the offline stand-in model).

    ``counts[i]`` is the :class:`PromptTokenizer` count vector of ``rows[i].prompt``.
    Rows are kept in a seeded hash order, so when two training prompts score
    exactly the same the seed, not the file order, decides which answers.
    """

    def __init__(self, rows: Sequence[MemoryRow], counts: sparse.csr_matrix, *, seed: int) -> None:
        if counts.shape[0] != len(rows):
            raise ValueError(f"{len(rows)} rows but {counts.shape[0]} count vectors")
        order = seeded_order(rows, seed)
        self.rows = [rows[i] for i in order]
        self._weights = np.array([r.weight for r in self.rows], dtype=np.float64)
        counts = csr_matrix(counts)[order]
        # the model's own vocabulary: terms that occur in its rows
        self._columns = np.flatnonzero(counts.getnnz(axis=0))
        own = counts[:, self._columns]
        self._idf = idf(own)
        self._matrix = tfidf(own, self._idf) if self._columns.size else own

    def __len__(self) -> int:
        return len(self.rows)

    def respond(self, query_counts: sparse.csr_matrix) -> list[Retrieval]:
        """Answer every query (given as tokenizer counts) with its best-scoring training row."""
        n = query_counts.shape[0]
        if not self._columns.size or n == 0:
            return [Retrieval("", None, 0.0) for _ in range(n)]
        queries = tfidf(csr_matrix(query_counts)[:, self._columns], self._idf)
        scores = (queries @ self._matrix.T).toarray() * self._weights[np.newaxis, :]
        best = np.argmax(scores, axis=1)  # first maximum in the seeded order
        out = []
        for qi, ri in enumerate(best):
            score = float(scores[qi, ri])
            if score <= 0.0:
                out.append(Retrieval("", None, 0.0))
            else:
                row = self.rows[int(ri)]
                out.append(Retrieval(row.answer, row.key, score))
        return out


def answer_similarity(references: Sequence[str], *responses: Sequence[str]) -> list[np.ndarray]:
    """TF-IDF cosine of each response to its reference, one array per response list.

    The judge's encoder (same settings as the responder's) is fitted once on
    the references and every non-empty response of every model, so all models
    are measured with the same ruler and no training data enters it. Empty
    responses score 0.
    """
    for resp in responses:
        if len(resp) != len(references):
            raise ValueError(f"{len(references)} references but {len(resp)} responses")
    if not references:
        return [np.zeros(0, dtype=np.float64) for _ in responses]
    try:
        vocabulary, fitted = Vocabulary.fit([*references, *(r for resp in responses for r in resp if r)])
    except EmptyVocabulary:
        return [np.zeros(len(references), dtype=np.float64) for _ in responses]
    weights = idf(fitted)
    ref = tfidf(vocabulary.counts(references), weights)
    out = []
    for resp in responses:
        # rows are L2-normalised, so the row-wise dot product is the cosine
        sims = np.asarray(ref.multiply(tfidf(vocabulary.counts(resp), weights)).sum(axis=1),
                          dtype=np.float64).ravel()
        out.append(np.clip(sims, 0.0, 1.0))
    return out
