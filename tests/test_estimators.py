"""Selection-rule estimators against brute-force enumeration of every N-subset."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import POOL_SPEC, _pool_frame
from infscale.estimators import (
    expected_best_of_n,
    expected_majority,
    expected_weighted_majority,
    pass_at_n,
    powers_of_two_up_to,
    selection_rows,
)

# ------------------------------------------------------------------ brute-force references (exact rationals)


def _tie_share(scores: dict, answer_correct: dict) -> Fraction:
    if not scores:
        return Fraction(0)
    top = max(scores.values())
    tied = [a for a, s in scores.items() if s == top]
    return Fraction(sum(answer_correct[a] for a in tied), len(tied))


def brute_weighted_majority(answers, correct, weights, n) -> Fraction:
    answer_correct = {a: c for a, c in zip(answers, correct) if a is not None}
    # weights are decimal labels: exact decimal sums, so 0.1 + 0.2 ties with 0.3
    exact = [Fraction(str(w)) for w in weights]
    total, count = Fraction(0), 0
    for subset in itertools.combinations(range(len(answers)), n):
        scores: dict = {}
        for i in subset:
            if answers[i] is not None:
                scores[answers[i]] = scores.get(answers[i], 0) + exact[i]
        total += _tie_share(scores, answer_correct)
        count += 1
    return total / count


def brute_majority(answers, correct, n) -> Fraction:
    return brute_weighted_majority(answers, correct, [1] * len(answers), n)


def brute_best_of_n(correct, weights, n) -> Fraction:
    total, count = Fraction(0), 0
    for subset in itertools.combinations(range(len(correct)), n):
        top = max(weights[i] for i in subset)
        tied = [i for i in subset if weights[i] == top]
        total += Fraction(sum(correct[i] for i in tied), len(tied))
        count += 1
    return total / count


def brute_pass(correct, n) -> Fraction:
    subsets = list(itertools.combinations(range(len(correct)), n))
    return Fraction(sum(any(correct[i] for i in s) for s in subsets), len(subsets))


# --------------------------------------------------------------------------------- random small pools

ANSWERS = ["a", "b", "c", None]
WEIGHTS = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]


@st.composite
def pools(draw, max_m=8):
    m = draw(st.integers(1, max_m))
    answers = draw(st.lists(st.sampled_from(ANSWERS), min_size=m, max_size=m))
    right = draw(st.sets(st.sampled_from(["a", "b", "c"])))  # empty = all wrong, all three = all right
    correct = [a is not None and a in right for a in answers]
    weights = draw(st.lists(st.sampled_from(WEIGHTS), min_size=m, max_size=m))
    n = draw(st.integers(1, m))
    return answers, correct, weights, n


@settings(max_examples=300, deadline=None)
@given(pools())
def test_majority_matches_brute_force(pool):
    answers, correct, _, n = pool
    assert expected_majority(answers, correct, n) == pytest.approx(float(brute_majority(answers, correct, n)), abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(pools())
def test_weighted_majority_exact_matches_brute_force(pool):
    answers, correct, weights, n = pool
    value, stderr = expected_weighted_majority(answers, correct, weights, n)
    assert stderr == 0.0
    assert value == pytest.approx(float(brute_weighted_majority(answers, correct, weights, n)), abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(pools())
def test_best_of_n_matches_brute_force(pool):
    answers, correct, weights, n = pool
    assert expected_best_of_n(correct, weights, n) == pytest.approx(float(brute_best_of_n(correct, weights, n)), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(pools())
def test_pass_at_n_matches_brute_force(pool):
    _, correct, _, n = pool
    assert pass_at_n(len(correct), sum(correct), n) == pytest.approx(float(brute_pass(correct, n)), abs=1e-12)


def _hypergeometric_majority(sizes, class_correct, n_missing, n) -> Fraction:
    """Independent exact reference for larger pools: enumerate count vectors, not subsets."""
    m = sum(sizes) + n_missing
    total = Fraction(0)
    for counts in itertools.product(*(range(min(s, n) + 1) for s in sizes)):
        rest = n - sum(counts)
        if not 0 <= rest <= n_missing:
            continue
        ways = math.comb(n_missing, rest) * math.prod(math.comb(s, x) for s, x in zip(sizes, counts))
        scores = {k: x for k, x in enumerate(counts) if x > 0}
        total += ways * _tie_share(scores, dict(enumerate(class_correct)))
    return total / math.comb(m, n)


@pytest.mark.parametrize(("sizes", "class_correct", "n_missing", "n"), [
    ([5, 5, 4, 3], [True, False, False, True], 3, 10),
    ([7, 6, 6], [False, True, False], 1, 9),
    ([3, 3, 3, 3, 3], [True, False, False, False, False], 5, 8),
    ([12, 1, 1], [False, True, True], 6, 20),
])
def test_majority_matches_hypergeometric_enumeration_on_larger_pools(sizes, class_correct, n_missing, n):
    answers = [f"x{k}" for k, s in enumerate(sizes) for _ in range(s)] + [None] * n_missing
    correct = [class_correct[int(a[1:])] if a else False for a in answers]
    expected = float(_hypergeometric_majority(sizes, class_correct, n_missing, n))
    assert expected_majority(answers, correct, n) == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------------------------ known values


def test_hand_computed_values():
    answers, correct = ["1", "2", None, "1", "3"], [True, False, False, True, False]
    # N=2: 10 subsets; {1,1} -> 1; {1,2},{1,3} ties -> 1/2 each (4 subsets); {1,None} -> 1 (2 subsets)
    assert expected_majority(answers, correct, 2) == pytest.approx((1 + 4 * 0.5 + 2) / 10)
    assert expected_majority(answers, correct, 1) == pytest.approx(2 / 5)  # mean accuracy
    assert expected_majority([None, None], [False, False], 1) == 0.0
    assert expected_majority(["7"] * 4, [True] * 4, 3) == 1.0
    assert pass_at_n(16, 1, 16) == 1.0
    assert pass_at_n(16, 0, 4) == 0.0
    assert pass_at_n(4, 1, 2) == pytest.approx(0.5)
    # best-of-N: without ties, response i is chosen with probability C(#lower, N-1) / C(M, N)
    assert expected_best_of_n([True, False, False, False], [0.9, 0.1, 0.2, 0.3], 2) == pytest.approx(3 / 6)
    # a response without answer can be picked; it is wrong
    assert expected_best_of_n([False, True], [1.0, 0.5], 1) == pytest.approx(0.5)
    assert expected_best_of_n([False, True], [1.0, 0.5], 2) == 0.0


def test_weighted_majority_splits_float_ties_of_decimal_labels():
    # 0.1 + 0.2 != 0.3 in floats, but the labels are tenths: a tie, worth half
    value, _ = expected_weighted_majority(["x", "x", "y"], [True, True, False], [0.1, 0.2, 0.3], 3)
    assert value == pytest.approx(0.5)


def test_unit_weights_reduce_weighted_majority_to_majority():
    rng = np.random.default_rng(3)
    answers = [str(v) if v < 4 else None for v in rng.integers(0, 5, 12)]
    correct = [a == "0" for a in answers]
    value, stderr = expected_weighted_majority(answers, correct, [1.0] * 12, 6)  # C(12, 6) = 924 <= 1000
    assert stderr == 0.0
    assert value == pytest.approx(expected_majority(answers, correct, 6), abs=1e-12)


def test_monte_carlo_is_close_to_exact_and_seeded():
    rng = np.random.default_rng(7)
    answers = [str(v) if v < 3 else None for v in rng.integers(0, 4, 14)]
    correct = [a == "1" for a in answers]
    weights = rng.random(14).round(1).tolist()
    exact, exact_se = expected_weighted_majority(answers, correct, weights, 7, exact_limit=5000)  # 3432 subsets
    mc, se = expected_weighted_majority(answers, correct, weights, 7, n_monte_carlo=4000, rng=11)
    assert exact_se == 0.0 and se > 0
    assert abs(mc - exact) <= 4 * se
    assert expected_weighted_majority(answers, correct, weights, 7, n_monte_carlo=4000, rng=11) == (mc, se)


def test_majority_agrees_with_monte_carlo_at_m64_n32():
    rng = np.random.default_rng(0)
    structures = [
        [str(v) if v < 8 else None for v in rng.integers(0, 10, 64)],
        [str(v) for v in rng.integers(0, 3, 64)],
        [str(i % 16) for i in range(64)],
    ]
    for answers in structures:
        correct = [a == "0" for a in answers]
        value = expected_majority(answers, correct, 32)
        mc, se = expected_weighted_majority(answers, correct, [1.0] * 64, 32, n_monte_carlo=4000, rng=1)
        assert abs(value - mc) <= 4 * se + 1e-9


# ---------------------------------------------------------------------------------------- utilities


def test_powers_of_two():
    assert powers_of_two_up_to(1) == [1]
    assert powers_of_two_up_to(16) == [1, 2, 4, 8, 16]
    assert powers_of_two_up_to(20) == [1, 2, 4, 8, 16]
    with pytest.raises(ValueError):
        powers_of_two_up_to(0)


# ---------------------------------------------------------------------------------- tables and CLI


def test_selection_rows_average_per_question_estimates():
    pool = _pool_frame()
    rules = ["mean", "pass", "majority", "weighted_majority", "best_conf"]
    rows = selection_rows(pool, rules, [1, 2, 4], weight_column="confidence")
    assert len(rows) == 15
    by_key = {(r["rule"], r["n"]): r for r in rows}
    per_q = [(answers, [a == reference for a in answers], conf) for answers, conf, reference in POOL_SPEC.values()]
    for n in (1, 2, 4):
        expected = {
            "mean": np.mean([np.mean(c) for _, c, _ in per_q]),
            "pass": np.mean([float(brute_pass(c, n)) for _, c, _ in per_q]),
            "majority": np.mean([float(brute_majority(a, c, n)) for a, c, _ in per_q]),
            "weighted_majority": np.mean([float(brute_weighted_majority(a, c, w, n)) for a, c, w in per_q]),
            "best_conf": np.mean([float(brute_best_of_n(c, w, n)) for _, c, w in per_q]),
        }
        for rule, value in expected.items():
            row = by_key[(rule, n)]
            assert row["accuracy"] == pytest.approx(100 * value)
            assert row["ci_low"] <= row["accuracy"] + 1e-9 and row["accuracy"] <= row["ci_high"] + 1e-9
            assert row["stderr_mc"] == 0.0 and row["exact"] and row["n_questions"] == 3


def test_selection_rows_monte_carlo_rows_report_stderr():
    rng = np.random.default_rng(5)
    rows = [{"id": f"q{q}", "sample": s, "extracted": str(rng.integers(0, 3)), "correct": False,
             "w": float(rng.random())} for q in range(3) for s in range(16)]
    pool = pd.DataFrame(rows)
    pool["correct"] = pool.extracted == "0"
    (row,) = selection_rows(pool, ["weighted_majority"], [8], weight_column="w", exact_limit=100, n_monte_carlo=500)
    assert not row["exact"] and row["stderr_mc"] > 0
    (exact,) = selection_rows(pool, ["weighted_majority"], [8], weight_column="w", exact_limit=20000)
    assert exact["exact"] and abs(row["accuracy"] - exact["accuracy"]) <= 4 * row["stderr_mc"]


def test_selection_rows_errors():
    pool = _pool_frame()
    with pytest.raises(ValueError, match=r"question 'q1' has 4 responses, fewer than N=8"):
        selection_rows(pool, ["majority"], [8])
    with pytest.raises(ValueError, match="unknown selection rule"):
        selection_rows(pool, ["median"], [1])
    with pytest.raises(ValueError, match="need a weight column"):
        selection_rows(pool, ["best_conf"], [1])
    with pytest.raises(ValueError, match="missing column"):
        selection_rows(pool.drop(columns="extracted"), ["majority"], [1])
    broken = pool.copy()
    broken.loc[5, "confidence"] = np.nan
    with pytest.raises(ValueError, match=r"question 'q2': missing or non-numeric 'confidence' for sample\(s\) \[1\]"):
        selection_rows(broken, ["weighted_majority"], [2], weight_column="confidence")
    inconsistent = pool.copy()
    inconsistent.loc[1, "correct"] = False  # q1's second "4" graded wrong
    with pytest.raises(ValueError, match=r"question 'q1'.*'4' is graded both correct and incorrect"):
        selection_rows(inconsistent, ["majority"], [2])


def test_estimator_argument_errors():
    with pytest.raises(ValueError, match="exceeds the pool size"):
        expected_majority(["a"], [True], 2)
    with pytest.raises(ValueError, match="positive integer"):
        pass_at_n(4, 1, 0)
    with pytest.raises(ValueError, match="finite"):
        expected_best_of_n([True, False], [0.5, float("nan")], 1)
    with pytest.raises(ValueError, match="n_monte_carlo"):
        expected_weighted_majority(["a"] * 10, [True] * 10, [1.0] * 10, 5, exact_limit=1, n_monte_carlo=1)
    assert Counter(powers_of_two_up_to(64)) == Counter([1, 2, 4, 8, 16, 32, 64])
