"""Banded LSH over MinHash signatures, kept on disk so memory does not grow with the corpus.

The candidate rule is exactly datasketch's ``MinHashLSH``: the signature's first
``bands · rows`` slots are cut into ``bands`` bands of ``rows`` slots, and two texts
are candidates when any band is equal in both. The band parameters follow datasketch's
rule (:func:`lsh_params`, checked against the library in the tests), so the same
threshold and weights give the same bands and rows.

Instead of datasketch's in-memory dicts (~2.5 kB per text, growing with N), every
added batch is appended to files in a private temporary directory:

- ``signatures.u32``: the signatures, row after row (4 · num_perm bytes per text), read
  back with ``pread`` only for the pairs being verified;
- ``band<k>.u64``: one 64-bit hash per text of band ``k`` (equal bands → equal hashes;
  unequal bands collide with probability ~2^-64, as datasketch's 8-byte band digests);
- ``valid.u8``: 0 for empty texts (the all-``0xFFFFFFFF`` signature), which never pair.

Candidate pairs are found one band at a time by sorting band hashes: runs of equal
hashes are the buckets. Above :data:`PART_ROWS` texts a band is first scattered into
partitions by hash (equal hashes land in the same partition) and each partition is
sorted alone, so the working set stays ~5 MB whatever N. Candidates are verified in
chunks by the share of equal signature slots; only verified pairs are kept (16 bytes
each). Disk use: ~(4 · num_perm + 8 · bands + 1) bytes per text (~600 MB per million
at 128 permutations), removed by :meth:`BandedLSH.close`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

EMPTY = np.uint32(0xFFFFFFFF)
PART_ROWS = 1 << 17
"""Texts per partition when pairing one band (bounds the sort's memory)."""
_CHUNK = 1 << 16  # texts read per step when scattering a band (~2 MB of temporaries)
_VERIFY_CHUNK = 1 << 12  # candidate pairs compared per read (≤ 8k rows, 4 MB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_ENTRY = np.dtype([("h", "<u8"), ("i", "<i8")])


def fmix64(h: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finalizer, a bijection on uint64, applied in place."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def lsh_params(threshold: float, num_perm: int, weights: tuple[float, float]) -> tuple[int, int]:
    """``(bands, rows)`` that datasketch's ``MinHashLSH`` picks for these settings.

    Its rule: over every ``bands · rows ≤ num_perm``, minimize ``w_fp · ∫₀ᵗ P + w_fn · ∫ₜ¹ (1 − P)``
    with ``P(s) = 1 − (1 − sʳ)ᵇ``, the first minimum in ``(bands, rows)`` order winning. ``P`` is
    a polynomial of degree ``b · r ≤ num_perm``, so Gauss–Legendre quadrature with
    ``num_perm // 2 + 1`` nodes integrates it exactly (up to rounding) in a millisecond, where
    importing datasketch (and the scipy it integrates with) takes ~0.7 s. When the best two
    candidates are within rounding of each other the tie is settled by datasketch itself.
    """
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    errors = _weighted_errors(threshold, num_perm, weights, pairs)
    best = int(np.argmin(errors))
    runner_up = np.partition(errors, 1)[1] if len(errors) > 1 else np.inf
    if runner_up - errors[best] > _TIE * max(abs(errors[best]), 1e-300):
        if pairs[best][0] < 2:  # as datasketch: one band would make every candidate a full match
            raise ValueError(f"threshold {threshold} with {num_perm} permutations leaves fewer than 2 bands")
        return pairs[best]
    from datasketch import MinHashLSH  # a near-tie: the library's own integration decides (rare)

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    return int(lsh.b), int(lsh.r)


_TIE = 1e-9
"""Relative gap under which two candidates' errors count as tied (quadrature rounding is ~1e-15)."""


def _weighted_errors(threshold: float, num_perm: int, weights: tuple[float, float],
                     pairs: list[tuple[int, int]]) -> np.ndarray:
    nodes, node_weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    b = np.array([p[0] for p in pairs], dtype=np.float64)[:, None]
    r = np.array([p[1] for p in pairs], dtype=np.float64)[:, None]

    def area(lo: float, hi: float, false_negative: bool) -> np.ndarray:
        s = (hi - lo) / 2 * nodes + (hi + lo) / 2
        p = 1.0 - (1.0 - s[None, :] ** r) ** b
        values = 1.0 - p if false_negative else p
        return (hi - lo) / 2 * (values @ node_weights)

    fp = area(0.0, threshold, False)
    fn = area(threshold, 1.0, True)
    return np.asarray(fp * weights[0] + fn * weights[1])


def band_hashes(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """``(len(sigs), bands)`` uint64: a hash of each band's ``rows`` uint32 values."""
    n = len(sigs)
    s = sigs[:, :bands * rows].astype(np.uint64).reshape(n, bands, rows)
    h = np.full((n, bands), np.uint64(rows), dtype=np.uint64)
    for j in range(0, rows, 2):
        # two 32-bit slots make one 64-bit word (injective), folded in through the mixer
        w = s[:, :, j] << np.uint64(32)
        if j + 1 < rows:
            w |= s[:, :, j + 1]
        h ^= w
        h += _GOLDEN
        fmix64(h)
    return h


def _bucket_pairs(h: np.ndarray, ids: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(a, b)`` with ``a < b`` for every two ids whose hashes are equal (ids ascending)."""
    if len(h) < 2:
        return
    order = np.argsort(h, kind="stable")
    hs, ids = h[order], ids[order]
    starts = np.flatnonzero(np.concatenate(([True], hs[1:] != hs[:-1])))
    lengths = np.diff(np.append(starts, len(hs)))
    multi = lengths >= 2
    if not multi.any():
        return
    s0, lens = starts[multi], lengths[multi]
    offs = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
    pos = np.repeat(s0, lens) + offs
    run_len = np.repeat(lens, lens)
    for d in range(1, int(lens.max())):
        sel = offs + d < run_len
        if not sel.any():
            break
        first = pos[sel]
        yield ids[first], ids[first + d]


class BandedLSH:
    """Append-only banded LSH store; :meth:`pairs` verifies the candidates once at the end."""

    def __init__(self, num_perm: int, bands: int, rows: int, *, directory: Path | None = None) -> None:
        if bands * rows > num_perm:
            raise ValueError(f"{bands} bands × {rows} rows exceed {num_perm} permutations")
        self.num_perm, self.bands, self.rows = num_perm, bands, rows
        self.count = 0
        self.dir = Path(tempfile.mkdtemp(prefix="coord-lsh-", dir=directory))
        self._sig: BinaryIO = (self.dir / "signatures.u32").open("wb")
        self._band = [(self.dir / f"band{k}.u64").open("wb") for k in range(bands)]
        self._valid: BinaryIO = (self.dir / "valid.u8").open("wb")
        # an index dropped without close() (an abandoned accumulator) still removes its files
        self._cleanup = weakref.finalize(self, _remove, [self._sig, self._valid, *self._band], self.dir)

    def add(self, sigs: np.ndarray) -> None:
        """Append a batch of signatures (uint32 rows of ``num_perm``), indexed from :attr:`count`."""
        sigs = np.ascontiguousarray(sigs, dtype=np.uint32)
        if self.count + len(sigs) >= 1 << 32:
            raise ValueError("more than 2^32 texts in one index")
        self._sig.write(sigs.tobytes())
        hashes = band_hashes(sigs, self.bands, self.rows)
        for k, fh in enumerate(self._band):
            fh.write(np.ascontiguousarray(hashes[:, k]).tobytes())
        self._valid.write((~(sigs == EMPTY).all(axis=1)).astype(np.uint8).tobytes())
        self.count += len(sigs)

    def _flush(self) -> None:
        for fh in (self._sig, self._valid, *self._band):
            fh.flush()

    def signature(self, index: int) -> np.ndarray:
        """A copy of one stored signature."""
        if not 0 <= index < self.count:
            raise IndexError(f"text {index} is not in the index")
        self._flush()
        with (self.dir / "signatures.u32").open("rb") as fh:
            fh.seek(index * 4 * self.num_perm)
            return np.fromfile(fh, dtype=np.uint32, count=self.num_perm)

    def candidates(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Candidate pairs ``(a, b)``, ``a < b``, band by band (a pair may recur in several bands)."""
        self._flush()
        parts = max(1, -(-self.count // PART_ROWS))
        valid = self.dir / "valid.u8"
        for k in range(self.bands):
            band = self.dir / f"band{k}.u64"
            if parts == 1:
                ok = np.fromfile(valid, dtype=np.uint8).astype(bool)
                ids = np.flatnonzero(ok)
                yield from _bucket_pairs(np.fromfile(band, dtype=np.uint64)[ids], ids)
                continue
            for part in self._scatter(band, valid, parts):
                entries = np.fromfile(part, dtype=_ENTRY)
                part.unlink()
                yield from _bucket_pairs(entries["h"], entries["i"])

    def _scatter(self, band: Path, valid: Path, parts: int) -> list[Path]:
        """Split one band's valid entries into partition files by hash."""
        paths = [self.dir / f"part{p}.bin" for p in range(parts)]
        handles = [p.open("wb") for p in paths]
        try:
            with band.open("rb") as bf, valid.open("rb") as vf:
                start = 0
                while len(h := np.fromfile(bf, dtype=np.uint64, count=_CHUNK)):
                    ok = np.fromfile(vf, dtype=np.uint8, count=len(h)).astype(bool)
                    entries = np.empty(int(ok.sum()), dtype=_ENTRY)
                    entries["h"] = h[ok]
                    entries["i"] = np.flatnonzero(ok) + start
                    start += len(h)
                    which = entries["h"] % np.uint64(parts)
                    order = np.argsort(which, kind="stable")  # keeps ids ascending per partition
                    bounds = np.searchsorted(which[order], np.arange(parts + 1))
                    for p, fh in enumerate(handles):
                        fh.write(entries[order[bounds[p]:bounds[p + 1]]].tobytes())
        finally:
            for fh in handles:
                fh.close()
        return paths

    def _equal_slots(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Equal signature slots of each pair ``(a[i], b[i])``."""
        out = np.empty(len(a), dtype=np.int64)
        size = 4 * self.num_perm
        # rows are read with pread, not through a memory map: the kernel maps the cached
        # neighbours of every faulted page too, so a map touched at random rows becomes
        # resident up to the whole file (4·num_perm·N bytes) — the RSS growth this avoids
        fd = os.open(self.dir / "signatures.u32", os.O_RDONLY)
        try:
            for c in range(0, len(a), _VERIFY_CHUNK):
                ca, cb = a[c:c + _VERIFY_CHUNK], b[c:c + _VERIFY_CHUNK]
                rows, inverse = np.unique(np.concatenate((ca, cb)), return_inverse=True)
                data = b"".join(os.pread(fd, size, r * size) for r in rows.tolist())
                sigs = np.frombuffer(data, dtype=np.uint32).reshape(len(rows), self.num_perm)
                out[c:c + len(ca)] = (sigs[inverse[:len(ca)]] == sigs[inverse[len(ca):]]).sum(axis=1)
        finally:
            os.close(fd)
        return out

    def pairs(self, min_equal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Verified pairs ``(a, b, equal_slots)`` with ``equal_slots ≥ min_equal``, sorted by (b, a)."""
        keys: list[np.ndarray] = []
        for a, b in self.candidates():
            keep = self._equal_slots(a, b) >= min_equal
            if keep.any():
                # (b, a) in one uint64: np.unique then drops pairs found in several bands
                # and sorts by b, then a; the counts are recomputed for the pairs kept
                keys.append((b[keep].astype(np.uint64) << np.uint64(32)) | a[keep].astype(np.uint64))
        if not keys:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        key = np.unique(np.concatenate(keys))
        b_idx = (key >> np.uint64(32)).astype(np.int64)
        a_idx = (key & np.uint64(0xFFFFFFFF)).astype(np.int64)
        return a_idx, b_idx, self._equal_slots(a_idx, b_idx)

    def close(self) -> None:
        """Close and delete the files."""
        self._cleanup()


def _remove(handles: list[BinaryIO], directory: Path) -> None:
    for fh in handles:
        fh.close()
    shutil.rmtree(directory, ignore_errors=True)
