"""A growable Bloom filter over 128-bit key hashes, answering "definitely absent" in about a µs.

It sits in front of the spilled part of :class:`pipeline._spill.SpillMap`: a lookup whose key
the filter has never seen skips the SQLite SELECT. A Bloom filter has no false negatives, so
an answer from the map stays exact; a false positive only costs the SELECT it would have made
anyway.

Layout: one 64-bit word per key (a "blocked" filter with blocks of one word): the high 64
bits of the key's xxh3-128 pick the word (modulo the word count), seven 6-bit fields of its
low 64 bits pick seven bits in it. A lookup is one array read and one mask compare in
Python. At :data:`BITS_PER_KEY` = 20 the false-positive rate is ~0.17 % (a classic filter of
that size: ~0.07 %, at seven scattered reads). Each false positive costs a SELECT, which is
cheap on a quiet machine but is a blocking call that can wait milliseconds for the CPU on a
busy one, hence the low rate. When it holds more keys than its size is meant for, the filter
is rebuilt a quarter larger than needed from the hashes, which it appends to a file (16 bytes
per key, on disk): memory stays 2.5–3 bytes per key.
"""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np
import xxhash

BITS_PER_KEY = 20
"""Filter bits per key held, at least (the filter grows past that); the default of ``bits_per_key``."""
_MIN_WORDS = 1 << 12
_M6 = 63
_SHIFTS = (0, 6, 12, 18, 24, 30, 36)
_LOW = (1 << 64) - 1
_REBUILD_CHUNK = 1 << 15  # uint64 values (16,384 keys, 256 kB) read back per step


def key_hash(key: bytes | str | int) -> int:
    """128-bit xxh3 of a key: of its bytes, its UTF-8 form, or its two's-complement bytes."""
    if isinstance(key, str):
        key = key.encode("utf-8", "surrogatepass")
    elif isinstance(key, int):
        key = key.to_bytes(key.bit_length() // 8 + 1, "little", signed=True)
    return xxhash.xxh3_128_intdigest(key)


def _zeros(n: int) -> array[int]:
    """``n`` zeroed 64-bit words, allocated once (no temporary of the same size)."""
    return array("Q", [0]) * n


def _masks(low: np.ndarray) -> np.ndarray:
    one, m6 = np.uint64(1), np.uint64(_M6)
    m = np.zeros(len(low), dtype=np.uint64)
    bit = np.empty_like(m)
    for shift in _SHIFTS:
        np.right_shift(low, np.uint64(shift), out=bit)
        bit &= m6
        np.left_shift(one, bit, out=bit)
        m |= bit
    return m


class BloomFilter:
    """Set membership with false positives and no false negatives; see the module docstring."""

    def __init__(self, hash_log: Path, *, bits_per_key: int = BITS_PER_KEY) -> None:
        self._log_path = hash_log
        self._log = hash_log.open("ab")
        self.bits_per_key = bits_per_key
        self._words = _zeros(_MIN_WORDS)
        self._n = _MIN_WORDS
        self.count = 0

    def add_many(self, hashes: list[int]) -> None:
        """Add keys given by their :func:`key_hash` values."""
        pairs = np.array([(h >> 64, h & _LOW) for h in hashes], dtype=np.uint64).reshape(-1, 2)
        self._log.write(pairs.tobytes())
        self.count += len(pairs)
        if self.count * self.bits_per_key > 64 * len(self._words):
            self._grow()
        else:
            self._set(pairs)

    def might_contain(self, h: int) -> bool:
        """False when the key of hash ``h`` was definitely never added."""
        mask = (1 << (h & _M6)) | (1 << ((h >> 6) & _M6)) | (1 << ((h >> 12) & _M6)) \
            | (1 << ((h >> 18) & _M6)) | (1 << ((h >> 24) & _M6)) | (1 << ((h >> 30) & _M6)) \
            | (1 << ((h >> 36) & _M6))
        return self._words[(h >> 64) % self._n] & mask == mask

    def _set(self, pairs: np.ndarray) -> None:
        """Set the bits of ``(high, low)`` 64-bit halves of key hashes."""
        words = np.frombuffer(self._words, dtype=np.uint64)
        np.bitwise_or.at(words, (pairs[:, 0] % np.uint64(self._n)).astype(np.intp), _masks(pairs[:, 1]))

    def _grow(self) -> None:
        size = -(-self.count * self.bits_per_key * 5 // (4 * 64 * _MIN_WORDS)) * _MIN_WORDS
        # the old words go first (everything is rebuilt from the log): the peak is the new size
        # alone, not old + new (+ a zeroed bytes object the size of the new one)
        self._words = array("Q")
        self._words = _zeros(size)
        self._n = size
        self._log.flush()
        with self._log_path.open("rb") as fh:
            # in small chunks: the rebuild's temporaries must not outgrow the filter itself
            while len(chunk := np.fromfile(fh, dtype=np.uint64, count=_REBUILD_CHUNK)):
                self._set(chunk.reshape(-1, 2))

    def close(self) -> None:
        """Close the hash log (its directory belongs to the caller)."""
        self._log.close()
