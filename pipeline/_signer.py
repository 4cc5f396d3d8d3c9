"""MinHash signing in a process of its own, so that it runs beside the audit's Python work.

Signing is numpy work in small calls, and the audit's own work (reading rows, PII detection,
duplicate keys) is pure Python: on threads they take turns holding the interpreter lock, and two
cores give little more than one. A child process signs instead: the parent's thread that talks
to it waits in a pipe read, holding nothing.

The protocol on the child's stdin/stdout, little-endian:

- once, at the start: ``num_perm``, ``seed`` and ``shingle_size`` (3 × uint32);
- a request: the number of texts (uint32), the byte length (uint64), then the texts (already
  normalized: no newline inside one) joined with newlines, UTF-8;
- its answer: ``count × num_perm`` uint32 values, the signatures row by row;
- a request of 0 texts ends the child.

The child computes with ``pipeline.minhash._signatures``, the very function the in-process
path calls, so the signatures are identical.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

_HEAD = struct.Struct("<3I")
_REQUEST = struct.Struct("<IQ")


def _read_exactly(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("the signing process ended early")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Signer:
    """A child process that signs batches of normalized texts; one request at a time."""

    def __init__(self, num_perm: int, seed: int, shingle_size: int) -> None:
        self.num_perm = num_perm
        root = str(Path(__file__).resolve().parents[1])
        code = (f"import sys; sys.path.insert(0, {root!r}); from pipeline import _signer, minhash; "
                "_signer.serve(minhash._signatures, minhash.permutations)")
        self._proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, bufsize=0)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in, self._out = self._proc.stdin.fileno(), self._proc.stdout.fileno()
        self._lock = threading.Lock()
        _write_all(self._in, _HEAD.pack(num_perm, seed, shingle_size))

    def sign(self, texts: Sequence[str]) -> np.ndarray:
        """The signatures of ``texts``: one uint32 row of ``num_perm`` values each."""
        if not texts:  # a request of 0 texts would end the child
            return np.zeros((0, self.num_perm), dtype=np.uint32)
        payload = "\n".join(texts).encode("utf-8")
        if payload.count(b"\n") != len(texts) - 1:
            raise ValueError("texts to sign must be normalized (normalize_text): one held a newline")
        with self._lock:
            try:
                _write_all(self._in, _REQUEST.pack(len(texts), len(payload)))
                _write_all(self._in, payload)
                raw = _read_exactly(self._out, len(texts) * self.num_perm * 4)
            except (OSError, EOFError) as e:
                code = self._proc.poll()
                raise RuntimeError(f"the MinHash signing process failed ({e}; exit code {code})") from None
        return np.frombuffer(raw, dtype=np.uint32).reshape(len(texts), self.num_perm).copy()

    def close(self) -> None:
        """End the child (it exits when asked, or when its stdin closes)."""
        with self._lock:
            with contextlib.suppress(OSError):
                _write_all(self._in, _REQUEST.pack(0, 0))
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def serve(signatures: Callable[..., np.ndarray], permutations: Callable[[int, int], tuple[np.ndarray, np.ndarray]]
          ) -> None:
    """The child's loop: answer requests until asked to stop or stdin closes (``signatures`` and
    ``permutations``: :mod:`pipeline.minhash`'s own)."""
    fin, fout = sys.stdin.buffer.fileno(), sys.stdout.buffer.fileno()
    try:
        num_perm, seed, shingle_size = _HEAD.unpack(_read_exactly(fin, _HEAD.size))
        a, b = permutations(num_perm, seed)
        while True:
            count, size = _REQUEST.unpack(_read_exactly(fin, _REQUEST.size))
            if count == 0:
                return
            texts = _read_exactly(fin, size).decode("utf-8").split("\n")
            _write_all(fout, signatures(texts, a, b, shingle_size).tobytes())
    except EOFError:
        return
