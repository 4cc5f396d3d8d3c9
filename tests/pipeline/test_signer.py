"""MinHash signing in a child process gives the in-process signatures, pairs and failures."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline import minhash
from pipeline._signer import Signer
from pipeline.minhash import NearDupIndex, _signatures, normalize_text, permutations

pytestmark = pytest.mark.slow  # each test starts signing processes


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "naïve", "日本語", "x", "42", "émigré", "zeta"]
    out = [normalize_text(" ".join(rng.choice(words) for _ in range(rng.randrange(0, 40)))) for _ in range(n)]
    return [*out, "", "one", "two words"]


def test_the_process_signs_what_the_threads_sign():
    texts = _texts(300, 1)
    a, b = permutations(128, 1)
    signer = Signer(128, 1, 5)
    try:
        remote = signer.sign(texts)
        again = signer.sign(texts[:7])  # one child serves many requests
    finally:
        signer.close()
    assert remote.dtype == np.uint32 and remote.shape == (len(texts), 128)
    assert np.array_equal(remote, _signatures(texts, a, b, 5))
    assert np.array_equal(again, remote[:7])


def test_an_index_that_moves_to_the_process_finds_the_same_pairs(tmp_path, monkeypatch):
    rng = random.Random(2)
    base = _texts(200, 3)
    texts = base + [t + " extra" if t and rng.random() < 0.5 else t for t in base]  # near copies

    def pairs(process_after: int) -> list[tuple[int, int, float]]:
        monkeypatch.setattr(minhash, "PROCESS_AFTER", process_after)
        with NearDupIndex(batch_size=32, tmp_dir=tmp_path) as index:
            for t in texts:
                index.add(t)
            moved = index._remote
        assert moved == bool(process_after)
        return [(p.a, p.b, p.jaccard) for p in index.pairs()]

    threads_only = pairs(0)
    assert threads_only and pairs(2) == threads_only


def test_a_text_with_a_newline_is_refused_and_a_dead_child_is_named():
    signer = Signer(16, 1, 5)
    try:
        with pytest.raises(ValueError, match="normalized"):
            signer.sign(["two\nlines"])
        signer._proc.kill()
        signer._proc.wait()
        with pytest.raises(RuntimeError, match="signing process failed"):
            signer.sign(["a b c d e f"])
    finally:
        signer.close()
