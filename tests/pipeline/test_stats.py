"""The statistics module agrees with statsmodels and handles the degenerate cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from pipeline.stats import (
    benjamini_hochberg,
    cohens_h,
    mcnemar_exact,
    mcnemar_paired,
    wilson_interval,
)


def test_mcnemar_matches_statsmodels_on_random_tables() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        a, b, c, d = (int(x) for x in rng.integers(0, 80, size=4))
        expected = mcnemar([[a, b], [c, d]], exact=True).pvalue
        assert mcnemar_exact(b, c) == pytest.approx(float(expected), rel=1e-12, abs=1e-15)


def test_mcnemar_without_discordant_pairs_is_one() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0


def test_mcnemar_hand_values() -> None:
    # b=0, c=5: 2 · (1/2)^5
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    # b=1, c=9: 2 · (1 + 10) / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)


def test_mcnemar_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=60))
@settings(max_examples=150, deadline=None)
def test_paired_counts_discordant_items(pairs: list[tuple[bool, bool]]) -> None:
    base = [p[0] for p in pairs]
    cand = [p[1] for p in pairs]
    res = mcnemar_paired(base, cand)
    assert res.b == sum(1 for x, y in pairs if x and not y)
    assert res.c == sum(1 for x, y in pairs if y and not x)
    table = [[sum(1 for x, y in pairs if x and y), res.b],
             [res.c, sum(1 for x, y in pairs if not x and not y)]]
    assert res.p_value == pytest.approx(float(mcnemar(table, exact=True).pvalue), abs=1e-12)


def test_paired_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError):
        mcnemar_paired([True, False], [True])


def test_wilson_matches_statsmodels() -> None:
    rng = np.random.default_rng(11)
    for _ in range(400):
        n = int(rng.integers(1, 500))
        x = int(rng.integers(0, n + 1))
        conf = float(rng.choice([0.8, 0.9, 0.95, 0.99]))
        lo, hi = proportion_confint(x, n, alpha=1 - conf, method="wilson")
        got = wilson_interval(x, n, conf)
        assert got[0] == pytest.approx(float(lo), abs=1e-12)
        assert got[1] == pytest.approx(float(hi), abs=1e-12)
        assert 0.0 <= got[0] <= x / n <= got[1] <= 1.0


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and 0 < hi < 0.35
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and 0.65 < lo < 1
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)


def test_cohens_h_values() -> None:
    assert cohens_h(0.75, 0.25) == pytest.approx(math.pi / 3)
    assert cohens_h(0.25, 0.75) == pytest.approx(-math.pi / 3)
    assert cohens_h(1.0, 0.0) == pytest.approx(math.pi)
    assert cohens_h(0.4, 0.4) == 0.0
    with pytest.raises(ValueError):
        cohens_h(1.2, 0.5)


def test_bh_matches_statsmodels_on_random_arrays() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        m = int(rng.integers(1, 30))
        # mix of tiny and uniform p-values so both outcomes occur
        p = np.where(rng.random(m) < 0.4, rng.random(m) * 0.01, rng.random(m))
        if rng.random() < 0.2:
            p[: m // 2] = p[0]  # ties
        alpha = float(rng.choice([0.01, 0.05, 0.1]))
        rej, adj, _, _ = multipletests(p, alpha=alpha, method="fdr_bh")
        got_rej, got_adj = benjamini_hochberg(p.tolist(), alpha)
        assert got_rej == [bool(r) for r in rej]
        assert got_adj == pytest.approx([float(a) for a in adj], abs=1e-12)


def test_bh_edges() -> None:
    assert benjamini_hochberg([]) == ([], [])
    assert benjamini_hochberg([0.0]) == ([True], [0.0])
    assert benjamini_hochberg([1.0, 1.0]) == ([False, False], [1.0, 1.0])
    # step-up: 0.04 alone fails 0.05/2 but passes at rank 2 of 2
    assert benjamini_hochberg([0.04, 0.03], 0.05)[0] == [True, True]
    with pytest.raises(ValueError):
        benjamini_hochberg([0.1, float("nan")])
