"""Word n-gram counts and TF-IDF weighting on numpy and scipy.sparse.

The offline responder and its judge (:mod:`pipeline.responder`) need the TF-IDF of
scikit-learn's ``CountVectorizer`` / ``TfidfTransformer`` with lowercasing, the default
token pattern, word 1–2-grams, sublinear tf, smoothed idf and L2 rows. This module
computes the same matrices without importing scikit-learn (1–1.5 s of start-up, more than
the benchmark's own work on week2's data), and bit for bit the same numbers, which
``tests/pipeline/test_tfidf.py`` checks against scikit-learn where it is installed:

- tokens are ``(?u)\\b\\w\\w+\\b`` matches of the lowercased text; the n-grams of a text
  are its unigrams, then its bigrams (``"a b"``), in text order;
- vocabulary indexes are the terms in sorted order;
- a fitted count matrix keeps each row's entries in the order in which the fit first met
  each term, and a transformed one keeps them by index, as scikit-learn leaves them.
  The order matters: a row's L2 norm is summed in it, and a different order can change
  the last bit of a norm and so of every cosine built on it;
- ``idf = ln((1 + n) / (1 + df)) + 1``; ``tf = 1 + ln(count)``; rows are divided by
  their L2 norm (rows without terms stay empty).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scipy import sparse

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def ngrams(text: str) -> list[str]:
    """The word unigrams, then bigrams, of ``text`` (lowercased), in text order."""
    tokens = _TOKEN.findall(text.lower())
    return tokens + [f"{a} {b}" for a, b in pairwise(tokens)]


class EmptyVocabulary(ValueError):
    """No text had a single term."""


def csr_matrix(*args: Any, **kwargs: Any) -> sparse.csr_matrix:
    """``scipy.sparse.csr_matrix``, imported on first use (scipy costs 0.1 s to import)."""
    from scipy import sparse  # only the benchmark computes with it: loading this stays cheap

    return sparse.csr_matrix(*args, **kwargs)


def _csr(lengths: list[int], columns: list[int], values: list[int], n_cols: int) -> sparse.csr_matrix:
    """CSR matrix of each row's ``(column, value)`` entries (``lengths[i]`` of them for row ``i``;
    a column of -1 is dropped), each row's entries ascending by column."""
    c = np.asarray(columns, dtype=np.int64)
    r = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    v = np.asarray(values, dtype=np.float64)
    known = c >= 0
    if not known.all():
        c, r, v = c[known], r[known], v[known]
    order = np.lexsort((c, r))
    indptr = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(np.bincount(r, minlength=len(lengths)), out=indptr[1:])
    return csr_matrix((v[order], c[order].astype(np.int32), indptr), shape=(len(lengths), n_cols))


def _entries(texts: Sequence[str], terms: dict[str, int],
             grow: bool) -> tuple[list[int], list[int], list[int]]:
    """Terms per text, and the term index (-1: unknown) and count of each; ``grow`` adds unknown terms."""
    lengths: list[int] = []
    columns: list[int] = []
    values: list[int] = []
    for text in texts:
        counts = Counter(ngrams(text))
        if grow:
            columns.extend([terms.setdefault(t, len(terms)) for t in counts])
        else:
            columns.extend([terms.get(t, -1) for t in counts])
        values.extend(counts.values())
        lengths.append(len(counts))
    return lengths, columns, values


class Vocabulary:
    """Term → column index, learnt from texts (see the module docstring for the order)."""

    def __init__(self, terms: dict[str, int]) -> None:
        self.terms = terms

    def __len__(self) -> int:
        return len(self.terms)

    @classmethod
    def fit(cls, texts: Sequence[str]) -> tuple[Vocabulary, sparse.csr_matrix]:
        """The vocabulary of ``texts`` and their count matrix; raises :class:`EmptyVocabulary`."""
        seen: dict[str, int] = {}  # term → index in order of first appearance
        lengths, first_seen, values = _entries(texts, seen, grow=True)
        if not seen:
            raise EmptyVocabulary("empty vocabulary: no text has a term")
        # entries ordered by first appearance, then given the index of the term's sorted place
        matrix = _csr(lengths, first_seen, values, len(seen))
        names = list(seen)
        by_name = sorted(range(len(names)), key=names.__getitem__)
        new_index = np.empty(len(names), dtype=np.int32)
        new_index[by_name] = np.arange(len(names), dtype=np.int32)
        matrix.indices = new_index[matrix.indices]
        matrix.has_sorted_indices = False
        return cls({names[old]: new for new, old in enumerate(by_name)}), matrix

    def counts(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Count matrix of ``texts`` over this vocabulary (unknown terms ignored), indexes ascending."""
        lengths, columns, values = _entries(texts, self.terms, grow=False)
        return _csr(lengths, columns, values, len(self.terms))


def idf(counts: sparse.csr_matrix) -> np.ndarray:
    """Smoothed inverse document frequency of each column: ``ln((1 + n) / (1 + df)) + 1``."""
    df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
    df += 1.0
    out = np.full_like(df, fill_value=counts.shape[0] + 1, dtype=np.float64)
    out /= df
    np.log(out, out=out)
    out += 1.0
    return out


def tfidf(counts: sparse.csr_matrix, weights: np.ndarray) -> sparse.csr_matrix:
    """Sublinear tf × ``weights`` (an :func:`idf`), each row divided by its L2 norm; a new matrix."""
    out = csr_matrix(counts, dtype=np.float64, copy=True)
    np.log(out.data, out=out.data)
    out.data += 1.0
    out.data *= weights[out.indices]
    # the squares summed one by one in each row's stored order (a sparse product with ones
    # is that loop), as scikit-learn does, not pairwise as numpy's sum would
    squares = csr_matrix((out.data * out.data, out.indices, out.indptr), shape=out.shape)
    norms = np.sqrt(squares @ np.ones(out.shape[1], dtype=np.float64))
    per_entry = np.repeat(norms, np.diff(out.indptr))
    nonzero = per_entry != 0.0
    out.data[nonzero] /= per_entry[nonzero]
    return out
