"""The disk-backed banded LSH finds exactly the candidates datasketch's MinHashLSH finds."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHashLSH

import pipeline.lsh as lsh
from pipeline.lsh import BandedLSH, lsh_params
from pipeline.minhash import LSH_WEIGHTS, NearDupIndex, lean_minhash, normalize_text, signatures

SYLLABLES = ("ka", "lo", "mi", "ru", "te", "sa", "no", "vi", "de", "po", "zu", "fe")


def corpus(n: int, seed: int = 3) -> list[str]:
    """``n`` short texts from a small vocabulary, with clusters of edited copies at many similarities."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice(SYLLABLES) for _ in range(2)) for _ in range(60)]
    texts: list[str] = []
    while len(texts) < n:
        base = [rng.choice(vocab) for _ in range(rng.randint(20, 60))]
        texts.append(" ".join(base))
        for _ in range(rng.randint(0, 3)):  # copies with 0..6 words changed
            w = list(base)
            for _ in range(rng.randint(0, 6)):
                w[rng.randrange(len(w))] = rng.choice(vocab)
            texts.append(" ".join(w))
    texts[5] = ""  # empty texts never pair
    texts[9] = ""
    return texts[:n]


def datasketch_candidates(sigs: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Query-then-insert every signature into datasketch's MinHashLSH, as the old index did."""
    index = MinHashLSH(threshold=threshold, num_perm=sigs.shape[1], weights=LSH_WEIGHTS)
    found: set[tuple[int, int]] = set()
    for i, sig in enumerate(sigs):
        if (sig == 0xFFFFFFFF).all():
            continue
        mh = lean_minhash(sig)
        found.update((j, i) for j in index.query(mh))
        index.insert(i, mh, check_duplication=False)
    return found


def banded_candidates(sigs: np.ndarray, threshold: float, tmp_path: Path) -> set[tuple[int, int]]:
    bands, rows = lsh_params(threshold, sigs.shape[1], LSH_WEIGHTS)
    store = BandedLSH(sigs.shape[1], bands, rows, directory=tmp_path)
    try:
        for c in range(0, len(sigs), 500):  # several batches
            store.add(sigs[c:c + 500])
        return {(a, b) for ca, cb in store.candidates() for a, b in zip(ca.tolist(), cb.tolist(), strict=True)}
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("partition_rows", [1 << 18, 700])
@pytest.mark.parametrize("threshold", [0.85, 0.5])
def test_candidates_equal_datasketch_minhashlsh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                threshold: float, partition_rows: int) -> None:
    # 700 rows per partition forces the scatter path used above 262,144 texts
    monkeypatch.setattr(lsh, "PART_ROWS", partition_rows)
    sigs = signatures(corpus(3000))
    expected = datasketch_candidates(sigs, threshold)
    assert len(expected) > 200  # the corpus really has buckets with several texts
    assert banded_candidates(sigs, threshold, tmp_path) == expected
    assert not list(tmp_path.iterdir())  # close() removed the files


def test_verified_pairs_match_the_signature_comparison(tmp_path: Path) -> None:
    texts = corpus(2000, seed=8)
    sigs = signatures(texts)
    with NearDupIndex(threshold=0.85, tmp_dir=tmp_path) as index:
        for t in texts:
            index.add(normalize_text(t))
    got = [(p.a, p.b, p.jaccard) for p in index.pairs()]
    want = sorted(((a, b, float((sigs[a] == sigs[b]).sum()) / 128)
                   for a, b in datasketch_candidates(sigs, 0.85)
                   if (sigs[a] == sigs[b]).sum() >= int(np.ceil(0.85 * 128))),
                  key=lambda t: (t[1], t[0]))
    assert got == want and got
    assert not list(tmp_path.iterdir())


def test_band_hashes_are_equal_exactly_when_bands_are() -> None:
    rng = np.random.default_rng(1)
    sigs = rng.integers(0, 1 << 32, size=(200, 128), dtype=np.uint64).astype(np.uint32)
    sigs[100:, :11] = sigs[:100, :11]  # band 0 copied, the rest differs
    h = lsh.band_hashes(sigs, 11, 11)
    assert (h[100:, 0] == h[:100, 0]).all()
    assert (h[100:, 1:] != h[:100, 1:]).all()
    assert len(np.unique(h[:, 1])) == 200


def test_an_index_dropped_without_close_removes_its_files(tmp_path: Path) -> None:
    index = NearDupIndex(tmp_dir=tmp_path)
    index.add("a b c d e f")
    index.discard()
    assert not list(tmp_path.iterdir())
    store = BandedLSH(128, 11, 11, directory=tmp_path)
    store.add(signatures(["a b c d e f"]))
    assert list(tmp_path.iterdir())
    del store
    assert not list(tmp_path.iterdir())


def test_the_rare_reduction_past_p_gives_the_exact_universal_hash() -> None:
    """``(a·x + b) mod 2^64`` can land in [p, p + 7] after the cheap fold: then one more p comes off."""
    from pipeline.minhash import MERSENNE_61, _signatures, shingle_hashes

    text = normalize_text("one two three four five six seven eight nine ten")
    x, _ = shingle_hashes([text])
    xs = [int(v) for v in x]
    # a = 1 and b chosen so that the first shingle hashes to exactly p, p + 3, p - 1 before the fold
    a = np.array([1, 1, 1], dtype=np.uint64)
    b = np.array([MERSENNE_61 - xs[0], MERSENNE_61 + 3 - xs[0], MERSENNE_61 - 1 - xs[0]], dtype=np.uint64)
    got = _signatures([text], a, b, 5)[0]
    mask = (1 << 64) - 1
    expected = [min((((int(ak) * v + int(bk)) & mask) % MERSENNE_61) & 0xFFFFFFFF for v in xs)
                for ak, bk in zip(a, b, strict=True)]
    assert got.tolist() == expected
    assert expected[0] == 0  # the first shingle's value p reduced to 0


@pytest.mark.parametrize("num_perm", [16, 64, 128])
def test_band_parameters_are_the_ones_datasketch_picks(num_perm: int) -> None:
    """The quadrature in lsh_params picks what datasketch's own integration picks, refusals included."""
    for threshold in (0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99):
        for weights in ((0.5, 0.5), (0.1, 0.9), (0.9, 0.1)):
            try:
                index = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
                want: tuple[int, int] | str = (index.b, index.r)
            except ValueError:
                want = "refused"
            try:
                got: tuple[int, int] | str = lsh_params(threshold, num_perm, weights)
            except ValueError:
                got = "refused"
            assert got == want, (threshold, num_perm, weights)


def test_choosing_band_parameters_does_not_import_datasketch() -> None:
    import subprocess
    import sys

    code = ("import sys; from pipeline.lsh import lsh_params; lsh_params(0.85, 128, (0.1, 0.9)); "
            "print('datasketch' in sys.modules, 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["False", "False"]


def test_signing_several_permutations_per_pass_changes_no_value() -> None:
    """Permutations signed 4 at a time (the last group short: 130 = 32·4 + 2) equal one at a time."""
    from pipeline.minhash import _signatures, permutations

    texts = [normalize_text(t) for t in corpus(300)]
    a, b = permutations(130, 7)
    one_by_one = _signatures(texts, a, b, 5, group=1)
    assert np.array_equal(_signatures(texts, a, b, 5), one_by_one)
    assert np.array_equal(_signatures(texts, a, b, 5, chunk_docs=7, group=3), one_by_one)


def test_work_arrays_reused_across_chunks_and_threads_change_no_signature() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.minhash import shingle_hashes

    short = [f"text {i} " + " ".join(f"w{j * i % 97}" for j in range(40)) for i in range(40)]
    long = [" ".join(f"v{(j * 31 + i) % 5003}" for j in range(30_000)) for i in range(3)]
    alone = [signatures([t])[0] for t in short + long]
    # one thread: short texts, then long ones (the work arrays grow), then short ones again
    mixed = np.concatenate([signatures(short), signatures(long), signatures(short)])
    assert (mixed == np.array(alone[:40] + alone[40:] + alone[:40])).all()
    with ThreadPoolExecutor(max_workers=2) as pool:  # each thread has its own work arrays
        both = list(pool.map(lambda ts: signatures(ts), [long, short, long, short]))
    assert all((b == signatures(t)).all() for b, t in zip(both, [long, short, long, short], strict=True))
    hashes, counts = shingle_hashes([normalize_text(long[0]), "a b"])
    assert counts.tolist() == [30_000 - 4, 1] and len(hashes) == 30_000 - 3
