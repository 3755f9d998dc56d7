"""infscale.stats: bootstrap CIs over questions, AUROC and its CI over problems."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infscale.stats import auroc, auroc_ci, bootstrap_ci


def test_auroc_matches_pairwise_count():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40).astype(float).tolist()     # many ties
    labels = (rng.random(40) < 0.4).tolist()
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    pairs = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert auroc(scores, labels) == pytest.approx(pairs)
    assert math.isnan(auroc([0.1, 0.2], [True, True]))


def test_auroc_ci_resamples_problems():
    # two problems: one perfectly separated, one with its only positive ranked last
    scores = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]
    labels = [[True, False], [True, False], [False, True]]
    low, high = auroc_ci(scores, labels, ["a", "a", "b"], n_boot=400, seed=1)
    point = auroc([v for s in scores for v in s], [v for s in labels for v in s])
    assert 0.0 <= low <= point <= high <= 1.0 and high == 1.0      # resampling "a" only separates perfectly
    assert auroc_ci(scores, labels, ["a", "a", "b"], n_boot=400, seed=1) == (low, high)   # seeded
    assert all(math.isnan(v) for v in auroc_ci([[0.1]], [[True]], ["a"], n_boot=10))       # one class only


def test_auroc_matches_hand_computed_pairs():
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: pairs won 1+1 (0.8) + 1 (0.35 > 0.1) + 0 (0.35 < 0.4) = 3 of 4
    assert auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    # a tie between a positive and a negative counts half: (1 + 0.5) / 2
    assert auroc([0.5, 0.5, 0.9], [False, True, True]) == pytest.approx(0.75)
    assert auroc([0.9, 0.1], [False, True]) == 0.0
    assert math.isnan(auroc([0.2, 0.3], [True, True]))


def test_bootstrap_ci():
    values = np.random.default_rng(0).normal(50, 10, 200)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * values.std() / math.sqrt(200), rel=0.2)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci([42.0]) == (42.0, 42.0)
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.5)
