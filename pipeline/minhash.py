"""Near-duplicate detection: vectorized MinHash signatures and datasketch LSH.

Texts are compared as sets of word shingles (``shingle_size`` consecutive words
of the whitespace-normalized, lowercased text). Everything per shingle happens
in numpy, a batch of texts at a time:

1. **Shingles are hashed once.** The batch is joined into one byte buffer and a
   polynomial hash of every byte span is read off prefix sums
   (``hash(s, e) = B^(e-1) · (G[e] - G[s])`` with ``G[i] = Σ_{j<i} byte_j · B^-j``,
   all mod 2^64), so a shingle costs a few array operations, not a Python call.
   A 64-bit finalizer mixes the result, whose top 32 bits are the shingle hash ``x``.
2. **Permutations are universal hashes** ``(a·x + b) mod p`` with the Mersenne
   prime ``p = 2^61 - 1``, truncated to 32 bits — bit for bit the ``legacy``
   scheme of ``datasketch.MinHash`` (the product wraps mod 2^64 first, as there),
   but the modulo is done with shifts (``2^61 ≡ 1 mod p``) instead of a division.
   The signature is the per-text minimum of each permutation.
3. Signatures go to a disk-backed banded LSH (:mod:`pipeline.lsh`) with the bands and
   rows datasketch's ``MinHashLSH`` would pick; when the index is closed, texts sharing a
   band become candidate pairs (the same pairs ``MinHashLSH`` would return, which a test
   checks), kept only when the estimated Jaccard (share of equal signature slots)
   reaches the threshold. :func:`lean_minhash` turns a signature into a datasketch
   object for interop.

Batches (of 256 texts: the texts queued for signing are what memory holds) are signed on
two worker threads, each reusing its work arrays from one chunk of texts to the next; after
:data:`PROCESS_AFTER` batches the rest go to a child process (:mod:`pipeline._signer`), so a long
audit's Python work and the signing no longer take turns holding the interpreter lock. The
caller keeps feeding texts and storing finished batches in submission order, so results do not
depend on timing (or on where a batch was signed: the same function signs it). Memory does not grow with the number of texts:
signatures and band hashes live in temporary files (~600 bytes per text on disk),
pairing works on bounded partitions, and only verified pairs stay in memory.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline._signer import Signer
from pipeline.lsh import BandedLSH, fmix64, lsh_params

if TYPE_CHECKING:
    from datasketch import LeanMinHash

log = logging.getLogger(__name__)

MERSENNE_61 = (1 << 61) - 1
_P = np.uint64(MERSENNE_61)
_MASK32 = np.uint64(0xFFFFFFFF)
_S61 = np.uint64(61)
_ONE = np.uint64(1)
_BASE = 0x100000001B3  # odd, so it has an inverse mod 2^64
_BASE_INV = pow(_BASE, -1, 1 << 64)
_EMPTY = np.uint32(0xFFFFFFFF)
_LITTLE_ENDIAN = np.little_endian
# LSH banding tuned for recall (false negatives weigh 0.9): at threshold 0.85 and 128
# permutations this gives 11 bands of 11 rows, catching ~87 % of pairs right at the
# threshold and ~98 % at 0.9 (the balanced default catches 46 % and 81 %); the extra
# candidates are cheap to reject by the signature comparison.
LSH_WEIGHTS = (0.1, 0.9)
_WORKERS = 2  # signing threads; numpy releases the GIL, so they use both cores
PROCESS_AFTER = 16
"""Batches signed on threads before the rest go to a signing process (:mod:`pipeline._signer`): a
long audit's Python work and the signing then run side by side instead of taking turns holding
the interpreter lock; a short one never pays for starting the process. 0: threads only."""


def normalize_text(text: str) -> str:
    """Lowercase and collapse every whitespace run to one space (the form shingles are cut from)."""
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class NearPair:
    """Two indexed texts whose estimated Jaccard similarity reached the threshold."""

    a: int
    """Index of the earlier text (order of :meth:`NearDupIndex.add`)."""
    b: int
    """Index of the later text."""
    jaccard: float
    """Estimated Jaccard similarity (share of equal signature slots)."""


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` parameters of ``num_perm`` universal hashes, derived from ``seed``."""
    rng = np.random.Generator(np.random.PCG64(seed))
    a = rng.integers(1, MERSENNE_61, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, MERSENNE_61, size=num_perm, dtype=np.uint64)
    return a, b


def _powers(base: int, n: int) -> np.ndarray:
    """``base**i mod 2^64`` for ``i < n``, from a per-thread table grown as needed."""
    table: np.ndarray | None = getattr(_scratch, f"powers{base}", None)
    if table is None or len(table) < n:
        out = np.full(max(n, 1 << 17), base, dtype=np.uint64)
        out[0] = 1
        table = np.cumprod(out, dtype=np.uint64)  # wraps mod 2^64, as intended
        setattr(_scratch, f"powers{base}", table)
    return table[:n]


_scratch = threading.local()
"""Per signing thread: tables and work arrays kept from one chunk of texts to the next."""


def _work(name: str, n: int) -> np.ndarray:
    """A per-thread uint64 work array of ``n`` elements, reused by later calls.

    Allocating the largest arrays afresh for every chunk of texts made the allocator hand
    their pages back to the system and fault them in again each time (a fifth of the signing
    time, in system calls, with small batches); reused, they are faulted in once.
    """
    buf: np.ndarray | None = getattr(_scratch, name, None)
    if buf is None or len(buf) < n:
        buf = np.empty(max(n, 1 << 17), dtype=np.uint64)
        setattr(_scratch, name, buf)
    return buf[:n]


def shingle_hashes(texts: Sequence[str], shingle_size: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of the word shingles of each text, which must be normalized.

    Words are split on single spaces (see :func:`normalize_text`); a newline would
    end a text, so it must not occur inside one.

    Returns ``(hashes, counts)``: all shingle hashes as one uint64 array, text after
    text, and the number of shingles per text. A text with fewer words than
    ``shingle_size`` is one shingle; an empty text has none.
    """
    counts = np.zeros(len(texts), dtype=np.int64)
    if not texts:
        return np.zeros(0, dtype=np.uint64), counts
    data = np.frombuffer("\n".join(texts).encode("utf-8"), dtype=np.uint8)
    n = len(data)
    if n == 0:
        return np.zeros(0, dtype=np.uint64), counts
    is_sep = (data == 32) | (data == 10)
    word = ~is_sep
    edge = np.diff(np.concatenate(([False], word, [False])).astype(np.int8))
    starts = np.flatnonzero(edge == 1)
    ends = np.flatnonzero(edge == -1)  # exclusive
    doc_starts = np.concatenate(([0], np.flatnonzero(data == 10) + 1))
    doc_of_word = np.searchsorted(doc_starts, starts, side="right") - 1
    words_per_doc = np.bincount(doc_of_word, minlength=len(texts))
    first_word = np.concatenate(([0], np.cumsum(words_per_doc)[:-1]))
    last_word = first_word + words_per_doc - 1
    # a shingle starts at every word that has shingle_size - 1 more words in its text;
    # a short text contributes one shingle covering all of its words
    k = shingle_size - 1
    full = np.flatnonzero(np.arange(len(starts)) + k <= last_word[doc_of_word])
    short_docs = np.flatnonzero((words_per_doc > 0) & (words_per_doc <= k))
    sh_start = np.concatenate((starts[full], starts[first_word[short_docs]]))
    sh_end = np.concatenate((ends[full + k], ends[last_word[short_docs]]))
    sh_doc = np.concatenate((doc_of_word[full], short_docs))
    order = np.argsort(sh_doc, kind="stable")
    sh_start, sh_end, sh_doc = sh_start[order], sh_end[order], sh_doc[order]

    weighted = np.multiply(data, _powers(_BASE_INV, n), out=_work("weighted", n))
    g = _work("prefix", n + 1)
    g[0] = 0
    np.cumsum(weighted, dtype=np.uint64, out=g[1:])
    poly = _powers(_BASE, n)[sh_end - 1] * (g[sh_end] - g[sh_start])
    hashes = fmix64(poly) >> np.uint64(32)
    counts[:] = np.bincount(sh_doc, minlength=len(texts))
    return hashes, counts


def signatures(texts: Sequence[str], *, num_perm: int = 128, shingle_size: int = 5,
               seed: int = 1) -> np.ndarray:
    """MinHash signatures (texts normalized first), one uint32 row of ``num_perm`` values each.

    An empty text gets the all-``0xFFFFFFFF`` row (the empty set's signature).
    """
    a, b = permutations(num_perm, seed)
    return _signatures([normalize_text(t) for t in texts], a, b, shingle_size)


def _signatures(texts: Sequence[str], a: np.ndarray, b: np.ndarray, shingle_size: int,
                chunk_docs: int = 32, group: int = 4) -> np.ndarray:
    out = np.full((len(texts), len(a)), _EMPTY, dtype=np.uint32)
    # a few dozen texts at a time: the working arrays (~100 kB each) stay in the CPU's cache,
    # which makes each pass over them ~1.6× faster than with a few hundred texts; ``group``
    # permutations per pass (a 2-D array) cut the per-call overhead of numpy by as much again
    for d0 in range(0, len(texts), chunk_docs):
        x, counts = shingle_hashes(texts[d0:d0 + chunk_docs], shingle_size)
        docs = np.flatnonzero(counts)
        if len(docs) == 0:
            continue
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))[docs]
        rows = (d0 + docs)[:, None]
        y_all = _work("y", group * len(x)).reshape(group, len(x))
        t_all = _work("t", group * len(x)).reshape(group, len(x))
        for k0 in range(0, len(a), group):
            k1 = min(k0 + group, len(a))
            y, t = y_all[:k1 - k0], t_all[:k1 - k0]
            np.multiply(x, a[k0:k1, None], out=y)
            y += b[k0:k1, None]
            # y mod p without a division: 2^61 ≡ 1 (mod p), so s = (y & p) + (y >> 61) is
            # y mod p unless s ≥ p, where one more subtraction of p is due. That happens
            # with probability ~2^-58 per shingle: checked with one max() instead of being
            # corrected on every element, and then done exactly by _reduce_mod_p
            np.right_shift(y, _S61, out=t)
            y &= _P
            y += t
            if y.max() >= _P:
                _reduce_mod_p(y)
            # the minimum of the low 32 bits, read in place (little-endian: every other uint32)
            low = y.view(np.uint32)[:, 0::2] if _LITTLE_ENDIAN else (y & _MASK32)
            out[rows, np.arange(k0, k1)] = np.minimum.reduceat(low, offsets, axis=1).T
    return out


def _reduce_mod_p(s: np.ndarray) -> None:
    """Finish ``s mod p`` in place for values in ``[0, p + 7]`` (subtract p where s ≥ p)."""
    s -= np.where(s >= _P, _P, np.uint64(0))


def lean_minhash(signature: np.ndarray, seed: int = 1) -> LeanMinHash:
    """A datasketch ``LeanMinHash`` holding one of our signatures (legacy scheme)."""
    from datasketch import LeanMinHash  # datasketch pulls in scipy (0.7 s): only where it is used

    values = signature.astype(np.uint64)
    if "scheme" in inspect.signature(LeanMinHash.__init__).parameters:
        return LeanMinHash(seed=seed, hashvalues=values, scheme="legacy")
    return LeanMinHash(seed=seed, hashvalues=values)


class NearDupIndex:
    """Streaming near-duplicate finder over texts added one by one.

    Texts are buffered and signed in batches on worker threads; signed batches go to a
    disk-backed :class:`pipeline.lsh.BandedLSH` (in a temporary directory under
    ``tmp_dir``, default the system's), whose candidate pairs are verified against the
    threshold when the index is closed. Call :meth:`close` (or use ``with``) before
    reading results.
    """

    def __init__(self, *, threshold: float = 0.85, num_perm: int = 128, shingle_size: int = 5,
                 seed: int = 1, batch_size: int = 256, tmp_dir: Path | None = None) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self.seed = seed
        self.batch_size = batch_size
        self._a, self._b = permutations(num_perm, seed)
        self.bands, self.rows = lsh_params(threshold, num_perm, LSH_WEIGHTS)
        self._store = BandedLSH(num_perm, self.bands, self.rows, directory=tmp_dir)
        self._pending: list[str] = []
        self._inflight: deque[Future[np.ndarray]] = deque()
        self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="minhash")
        self._signer: Signer | None = None
        self._remote = False
        self._threads_only = False
        self._batches = 0
        empty = np.zeros(0, dtype=np.int64)
        self._pairs: tuple[np.ndarray, np.ndarray, np.ndarray] = (empty, empty, empty)
        self._min_equal = int(np.ceil(threshold * num_perm - 1e-9))
        self._closed = False
        self.added = 0

    def add(self, text: str) -> int:
        """Queue a text already passed through :func:`normalize_text`; returns its index."""
        self._pending.append(text)
        self.added += 1
        if len(self._pending) >= self.batch_size:
            self._submit()
        return self.added - 1

    def _submit(self) -> None:
        batch, self._pending = self._pending, []
        self._batches += 1
        if self._signer is None and PROCESS_AFTER and not self._threads_only and self._batches > PROCESS_AFTER // 2:
            self._start_signer()  # it starts (imports numpy) while the threads sign the next batches
        if self._signer is not None and self._batches > PROCESS_AFTER:
            if not self._remote:
                self._remote = True
                self._pool.shutdown(wait=False)  # the batches it holds finish; one thread talks to the process
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minhash-process")
            self._inflight.append(self._pool.submit(self._signer.sign, batch))
        else:
            self._inflight.append(self._pool.submit(_signatures, batch, self._a, self._b,
                                                    self.shingle_size))
        # store finished batches in submission order; at most _WORKERS stay queued
        while len(self._inflight) > _WORKERS:
            self._store.add(self._inflight.popleft().result())

    def _start_signer(self) -> None:
        try:
            self._signer = Signer(self.num_perm, self.seed, self.shingle_size)
        except OSError as e:  # no process to be had: the threads sign everything
            log.warning("MinHash signing stays on threads: could not start its process (%s)", e)
            self._threads_only = True

    def _stop(self, *, cancel: bool) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        if self._signer is not None:
            self._signer.close()
            self._signer = None

    def close(self) -> None:
        """Sign and store everything still queued, then find and verify the pairs."""
        if self._closed:
            return
        if self._pending:
            self._submit()
        try:
            while self._inflight:
                self._store.add(self._inflight.popleft().result())
        finally:
            self._stop(cancel=False)
        try:
            self._pairs = self._store.pairs(self._min_equal)
        finally:
            self._store.close()
            self._closed = True

    def discard(self) -> None:
        """Stop without indexing what is still queued (after an error)."""
        self._pending = []
        self._inflight.clear()
        self._stop(cancel=True)
        self._store.close()
        self._closed = True

    def __enter__(self) -> NearDupIndex:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def pair_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Verified pairs as arrays ``(a, b, equal slots)``, in the order of :meth:`pairs`."""
        return self._pairs

    def pairs(self) -> Iterator[NearPair]:
        """Verified pairs, ordered by the later text's index, then the earlier one's."""
        a, b, equal = self._pairs
        for i, j, eq in zip(a.tolist(), b.tolist(), equal.tolist(), strict=True):
            yield NearPair(i, j, eq / self.num_perm)

    def signature(self, index: int) -> np.ndarray:
        """The signature of a stored text (before :meth:`close`)."""
        if self._closed:
            raise IndexError("the index is closed; its signatures are gone")
        return self._store.signature(index)


def near_duplicate_pairs(texts: Sequence[str], *, threshold: float = 0.85, num_perm: int = 128,
                         shingle_size: int = 5, seed: int = 1) -> list[NearPair]:
    """All verified near-duplicate pairs among ``texts`` (normalized first)."""
    with NearDupIndex(threshold=threshold, num_perm=num_perm, shingle_size=shingle_size,
                      seed=seed) as index:
        for text in texts:
            index.add(normalize_text(text))
    return list(index.pairs())
