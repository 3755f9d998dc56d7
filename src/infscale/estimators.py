"""Exact expected accuracy of selection rules over all N-subsets of one pool of M graded responses.

A question is sampled once (M responses); for every N <= M each rule's accuracy is its *expected*
correctness over all C(M, N) subsets of the pool, not over the first N responses, so no rule is
judged on one arbitrary draw and nothing is regenerated.

Rules (all per question; callers average over questions):
- ``mean``: single-sample accuracy c / M (the expectation of any one response, for every N).
- ``pass``: unbiased pass@N = 1 - C(M-c, N) / C(M, N).
- ``majority``: plurality vote over extracted answers, exact by dynamic programming over how many
  members of each answer class the subset holds (multivariate hypergeometric weights).
- ``weighted_majority``: votes weighted per response (confidence label, PRM score); exact
  enumeration while C(M, N) <= exact_limit, else seeded Monte-Carlo with a standard error.
- ``best_conf`` (alias ``best_of_n``): the single highest-weight response, in closed form from ranks.

Shared conventions:
- A response without an extracted answer (None) does not vote; a subset in which nobody votes
  scores 0. For best-of-N such a response can still be the one picked, and is then simply wrong
  (the study's BestConf picks among responses, not among answers).
- Ties are split fractionally: a tie among the top candidates earns the share of them that is
  correct (`_split_credit`, the one place this rule lives).

Means over questions carry a percentile-bootstrap CI (`infscale.stats`); the `infscale vote` command's file
format is read by `infscale.cli.vote_file`.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from infscale.stats import bootstrap_ci

RULES = ("mean", "pass", "majority", "weighted_majority", "best_conf", "best_of_n")
WEIGHTED_RULES = ("weighted_majority", "best_conf", "best_of_n")

# Weighted votes are sums of floats: 0.1 + 0.2 and 0.3 are the same vote total to the study (confidence
# labels are tenths), so totals within this relative distance of the top count as tied.
VOTE_TIE_RTOL = 1e-9

_SUBSET_CHUNK = 65_536  # subsets scored per vectorised batch in enumeration / Monte-Carlo


# --------------------------------------------------------------------------------------------- helpers

def _split_credit(n_correct_tied, n_tied):
    """Fractional tie credit: share of the tied top candidates that is correct; 0 when nobody competes."""
    n_correct_tied = np.asarray(n_correct_tied, dtype=float)
    n_tied = np.asarray(n_tied, dtype=float)
    out = np.zeros(np.broadcast(n_correct_tied, n_tied).shape)
    np.divide(n_correct_tied, n_tied, out=out, where=n_tied > 0)
    return out


def _check_n(m: int, n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"subset size N must be a positive integer, got {n!r}")
    if n > m:
        raise ValueError(f"subset size N={n} exceeds the pool size M={m}")


def _answer_classes(answers: Sequence[str | None], correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Map answers to class ids (-1 for None) and return (class id per response, correctness per class).

    The same answer must be graded the same way every time; otherwise "the winning answer is correct"
    has no meaning, so that is an error rather than a silent average.
    """
    if len(answers) != len(correct):
        raise ValueError(f"answers ({len(answers)}) and correct ({len(correct)}) differ in length")
    ids: dict[str, int] = {}
    class_correct: list[bool] = []
    class_of = np.full(len(answers), -1, dtype=np.int64)
    for i, (answer, ok) in enumerate(zip(answers, correct)):
        if answer is None:
            continue
        k = ids.setdefault(answer, len(ids))
        if k == len(class_correct):
            class_correct.append(bool(ok))
        elif class_correct[k] != bool(ok):
            raise ValueError(f"answer {answer!r} is graded both correct and incorrect")
        class_of[i] = k
    return class_of, np.array(class_correct, dtype=bool)


def _binomial_pmf(size: int, q: float) -> np.ndarray:
    """P(Binomial(size, q) = x) for x = 0..size, computed in log space so that large pools never overflow."""
    if q >= 1.0:
        pmf = np.zeros(size + 1)
        pmf[size] = 1.0
        return pmf
    x = np.arange(size + 1)
    log_comb = np.array([math.lgamma(size + 1) - math.lgamma(k + 1) - math.lgamma(size - k + 1) for k in x])
    return np.exp(log_comb + x * math.log(q) + (size - x) * math.log1p(-q))


def _as_weights(weights: Sequence[float], m: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.shape != (m,):
        raise ValueError(f"weights have shape {w.shape}, expected ({m},)")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be finite numbers, got {w[~np.isfinite(w)][:3].tolist()}")
    return w


# ----------------------------------------------------------------------------------------------- rules

def pass_at_n(m: int, c: int, n: int) -> float:
    """Unbiased pass@N from c correct among M: 1 - C(M-c, N) / C(M, N) (exact integers, one rounding)."""
    _check_n(m, n)
    if not 0 <= c <= m:
        raise ValueError(f"correct count c={c} must lie in [0, M={m}]")
    return float(1 - Fraction(math.comb(m - c, n), math.comb(m, n)))


def expected_majority(answers: Sequence[str | None], correct: Sequence[bool], n: int) -> float:
    """E[majority@N] over all N-subsets, exactly.

    Poissonisation keeps the weights in [0, 1]: choosing each response independently with probability
    q = N/M and conditioning on N chosen gives the uniform N-subset, and the joint law of the counts
    x_k drawn from each answer class factorises into Binomial(s_k, q) terms. For each possible top count
    t, a DP over classes (each x_k <= t) tracks (responses drawn, classes reaching exactly t), separately
    for correct and incorrect answers; configurations with b correct and w incorrect classes at t earn
    b / (b + w). The result is divided by P(Binomial(M, q) = N). Cost ~ N * (M + K) small array updates.
    """
    class_of, class_correct = _answer_classes(answers, correct)
    m = len(class_of)
    _check_n(m, n)
    sizes = np.bincount(class_of[class_of >= 0], minlength=len(class_correct))
    n_missing = int(np.sum(class_of < 0))
    if len(sizes) == 0 or not class_correct.any():
        return 0.0
    if class_correct.all() and n_missing == 0:
        return 1.0

    q = n / m
    pmfs = {int(s): _binomial_pmf(int(s), q) for s in set(sizes.tolist()) | {n_missing}}
    correct_sizes = sizes[class_correct].tolist()
    wrong_sizes = sizes[~class_correct].tolist()
    missing_pmf = np.zeros(n + 1)
    missing_pmf[: min(n, n_missing) + 1] = pmfs[n_missing][: n + 1]

    b_idx = np.arange(len(correct_sizes) + 1)[:, None]
    w_idx = np.arange(len(wrong_sizes) + 1)[None, :]
    credit = _split_credit(b_idx, b_idx + w_idx)  # [b, w] -> b / (b + w), 0 at (0, 0)

    def classes_at_top(class_sizes: list[int], t: int) -> np.ndarray:
        # table[j, a]: weight of drawing j responses from these classes, none more than t each,
        # with exactly a classes drawn t times.
        table = np.zeros((n + 1, len(class_sizes) + 1))
        table[0, 0] = 1.0
        for s in class_sizes:
            pmf = pmfs[s]
            new = np.zeros_like(table)
            for x in range(min(s, t, n) + 1):
                if x == t:
                    new[x:, 1:] += pmf[x] * table[: n + 1 - x, :-1]
                else:
                    new[x:, :] += pmf[x] * table[: n + 1 - x, :]
            table = new
        return table

    total = 0.0
    for t in range(1, min(n, int(sizes.max())) + 1):
        top_correct = classes_at_top(correct_sizes, t)  # [j1, b]
        top_wrong = classes_at_top(wrong_sizes, t)  # [j2, w]
        # fold the non-voting responses into the wrong side's draw count: [j2 + j0, w]
        with_missing = np.stack([np.convolve(top_wrong[:, w], missing_pmf)[: n + 1]
                                 for w in range(top_wrong.shape[1])], axis=1)
        joint = top_correct.T @ with_missing[::-1]  # [b, w], draw counts summing to N
        total += float(np.sum(joint * credit))
    return total / float(_binomial_pmf(m, q)[n])


def _weighted_vote_credits(class_rows: np.ndarray, weight_rows: np.ndarray, class_correct: np.ndarray) -> np.ndarray:
    """Credit of each subset (one per row) under a weighted plurality vote; class -1 does not vote."""
    n_rows, n_classes = class_rows.shape[0], len(class_correct)
    if n_classes == 0:
        return np.zeros(n_rows)
    votes = class_rows >= 0
    flat = (np.arange(n_rows)[:, None] * n_classes + class_rows)[votes]
    totals = np.bincount(flat, weights=weight_rows[votes], minlength=n_rows * n_classes).reshape(n_rows, n_classes)
    present = np.bincount(flat, minlength=n_rows * n_classes).reshape(n_rows, n_classes) > 0
    top = np.where(present, totals, -np.inf).max(axis=1, keepdims=True)
    tol = VOTE_TIE_RTOL * np.maximum(1.0, np.abs(np.where(np.isfinite(top), top, 0.0)))
    tied = present & (totals >= top - tol)
    return _split_credit((tied & class_correct[None, :]).sum(axis=1), tied.sum(axis=1))


def expected_weighted_majority(
    answers: Sequence[str | None],
    correct: Sequence[bool],
    weights: Sequence[float],
    n: int,
    *,
    exact_limit: int = 1000,
    n_monte_carlo: int = 1000,
    rng: np.random.Generator | int | None = None,
) -> tuple[float, float]:
    """E[weighted-majority@N] and its standard error (0.0 when exact).

    Each response votes for its answer with its weight; the answer with the largest total wins.
    All C(M, N) subsets are enumerated when that is at most `exact_limit`, as in the study; otherwise
    `n_monte_carlo` uniform random subsets are drawn from `rng` (a Generator, a seed, or None for seed 0,
    so results are reproducible by default).
    """
    class_of, class_correct = _answer_classes(answers, correct)
    m = len(class_of)
    _check_n(m, n)
    w = _as_weights(weights, m)
    if exact_limit < 0:
        raise ValueError(f"exact_limit must be >= 0, got {exact_limit}")

    if math.comb(m, n) <= exact_limit:
        credits = []
        subsets = itertools.combinations(range(m), n)
        while chunk := list(itertools.islice(subsets, _SUBSET_CHUNK)):
            idx = np.array(chunk, dtype=np.int64)
            credits.append(_weighted_vote_credits(class_of[idx], w[idx], class_correct))
        return float(np.concatenate(credits).mean()), 0.0

    if n_monte_carlo < 2:
        raise ValueError(f"n_monte_carlo must be >= 2 to estimate a standard error, got {n_monte_carlo}")
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)
    credits = []
    for start in range(0, n_monte_carlo, _SUBSET_CHUNK):
        rows = min(_SUBSET_CHUNK, n_monte_carlo - start)
        idx = np.argsort(generator.random((rows, m)), axis=1)[:, :n]  # uniform N-subsets
        credits.append(_weighted_vote_credits(class_of[idx], w[idx], class_correct))
    values = np.concatenate(credits)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def expected_best_of_n(correct: Sequence[bool], weights: Sequence[float], n: int) -> float:
    """E[best-of-N]: the response with the highest weight in the subset, weight ties split fractionally.

    Group responses by equal weight; group g (size s_g, c_g correct, L_g responses of lower weight)
    holds the subset's top weight with probability (C(s_g + L_g, N) - C(L_g, N)) / C(M, N), and given
    that, the drawn members of g are a uniform sample of it, so the expected tie credit is c_g / s_g.
    Without ties this is C(L, N-1) / C(M, N) per response. Pass correct=False for responses without an
    answer: they can be picked and are then wrong.
    """
    ok = np.asarray(correct, dtype=bool)
    m = len(ok)
    _check_n(m, n)
    w = _as_weights(weights, m)
    order = np.argsort(w, kind="stable")
    _, lower, sizes = np.unique(w[order], return_index=True, return_counts=True)  # ascending weight groups
    group_correct = np.add.reduceat(ok[order].astype(np.int64), lower)
    subsets = math.comb(m, n)
    # exact integer counts, one rounding each
    p_top = np.array([(math.comb(lo + s, n) - math.comb(lo, n)) / subsets
                      for lo, s in zip(lower.tolist(), sizes.tolist())])
    return float(np.sum(p_top * _split_credit(group_correct, sizes)))


# ------------------------------------------------------------------------------------ over questions

def powers_of_two_up_to(m: int) -> list[int]:
    """1, 2, 4, ... up to and including the largest power of two <= m (the N grid of the studies)."""
    if m < 1:
        raise ValueError(f"pool size must be >= 1, got {m}")
    return [1 << k for k in range(int(m).bit_length())]


@dataclass(frozen=True)
class QuestionPool:
    """One question's M graded responses, in sample order. `weights` is None when no weight column is used."""

    id: str
    answers: list[str | None]
    correct: np.ndarray
    weights: np.ndarray | None


@dataclass(frozen=True)
class EstimatorConfig:
    """Knobs of the subset estimators shared by every question of a table."""

    exact_limit: int = 1000
    n_monte_carlo: int = 1000
    seed: int = 0


def _question_rng(seed: int, question_id: str) -> np.random.Generator:
    # seeded by question id, so a question's Monte-Carlo draw does not depend on which others are present
    return np.random.default_rng([seed, zlib.crc32(question_id.encode("utf-8"))])


def _mean_rule(q: QuestionPool, n: int, cfg: EstimatorConfig) -> tuple[float, float, bool]:
    _check_n(len(q.correct), n)
    return float(np.mean(q.correct)), 0.0, True


def _pass_rule(q: QuestionPool, n: int, cfg: EstimatorConfig) -> tuple[float, float, bool]:
    return pass_at_n(len(q.correct), int(np.sum(q.correct)), n), 0.0, True


def _majority_rule(q: QuestionPool, n: int, cfg: EstimatorConfig) -> tuple[float, float, bool]:
    return expected_majority(q.answers, q.correct, n), 0.0, True


def _weighted_majority_rule(q: QuestionPool, n: int, cfg: EstimatorConfig) -> tuple[float, float, bool]:
    value, stderr = expected_weighted_majority(q.answers, q.correct, q.weights, n, exact_limit=cfg.exact_limit,
                                               n_monte_carlo=cfg.n_monte_carlo, rng=_question_rng(cfg.seed, q.id))
    return value, stderr, math.comb(len(q.correct), n) <= cfg.exact_limit


def _best_of_n_rule(q: QuestionPool, n: int, cfg: EstimatorConfig) -> tuple[float, float, bool]:
    return expected_best_of_n(q.correct, q.weights, n), 0.0, True


_RULE_FUNCTIONS: dict[str, Callable[[QuestionPool, int, EstimatorConfig], tuple[float, float, bool]]] = {
    "mean": _mean_rule,
    "pass": _pass_rule,
    "majority": _majority_rule,
    "weighted_majority": _weighted_majority_rule,
    "best_conf": _best_of_n_rule,
    "best_of_n": _best_of_n_rule,
}


def question_pools(pool: Any, weight_column: str | None = None) -> list[QuestionPool]:
    """Split a pool table (columns id, sample, extracted, correct[, weight_column]) into questions.

    A missing `extracted` (None or NaN) means no answer; such a response counts as wrong whatever its
    `correct` says, since there is nothing to be right about.
    """
    import pandas as pd

    required = ["id", "sample", "extracted", "correct"] + ([weight_column] if weight_column else [])
    missing = [c for c in required if c not in pool.columns]
    if missing:
        raise ValueError(f"pool is missing column(s) {missing}; it has {list(pool.columns)}")
    if len(pool) == 0:
        raise ValueError("pool has no responses")
    questions = []
    for qid, rows in pool.sort_values(["id", "sample"], kind="stable").groupby("id", sort=False):
        qid = str(qid)
        if rows["sample"].duplicated().any():
            raise ValueError(f"question {qid!r}: duplicate sample ids {sorted(rows['sample'][rows['sample'].duplicated()].tolist())}")
        has_answer = rows["extracted"].notna().to_numpy()
        answers = [str(a) if ok else None for a, ok in zip(rows["extracted"].tolist(), has_answer)]
        bad = [s for s, c in zip(rows["sample"].tolist(), rows["correct"].tolist())
               if not isinstance(c, (bool, np.bool_))]
        if bad:
            raise ValueError(f"question {qid!r}: `correct` must be true/false (sample(s) {bad[:5]})")
        correct = rows["correct"].to_numpy(dtype=bool) & has_answer
        weights = None
        if weight_column:
            raw = pd.to_numeric(rows[weight_column], errors="coerce").to_numpy(dtype=float)
            bad = rows["sample"][~np.isfinite(raw)].tolist()
            if bad:
                raise ValueError(f"question {qid!r}: missing or non-numeric {weight_column!r} for sample(s) {bad[:5]}")
            weights = raw
        questions.append(QuestionPool(qid, answers, correct, weights))
    return questions


def selection_rows(
    pool: Any,
    rules: Sequence[str],
    n_values: Sequence[int],
    weight_column: str | None = None,
    *,
    exact_limit: int = 1000,
    n_monte_carlo: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    n_boot: int = 2000,
) -> list[dict[str, Any]]:
    """Accuracy (percent) of each rule at each N, averaged over questions, with a bootstrap CI over questions.

    `pool` is a pandas DataFrame with columns id, sample, extracted, correct (and `weight_column` for
    weighted_majority / best_conf / best_of_n). Each row: rule, n, accuracy, ci_low, ci_high, stderr_mc
    (Monte-Carlo standard error of `accuracy`, 0.0 where exact), exact, n_questions.
    """
    unknown = [r for r in rules if r not in _RULE_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown selection rule(s) {unknown}; known: {list(RULES)}")
    needs_weights = [r for r in rules if r in WEIGHTED_RULES]
    if needs_weights and not weight_column:
        raise ValueError(f"rule(s) {needs_weights} need a weight column (weight_column=...)")
    cfg = EstimatorConfig(exact_limit=exact_limit, n_monte_carlo=n_monte_carlo, seed=seed)
    questions = question_pools(pool, weight_column if needs_weights else None)

    rows = []
    for rule in rules:
        for n in n_values:
            for q in questions:
                if n is not None and len(q.correct) < n:
                    raise ValueError(f"question {q.id!r} has {len(q.correct)} responses, fewer than N={n}")
            results = []
            for q in questions:
                try:
                    results.append(_RULE_FUNCTIONS[rule](q, len(q.correct) if n is None else n, cfg))
                except ValueError as err:
                    raise ValueError(f"question {q.id!r}, rule {rule}, N={n}: {err}") from err
            values = 100.0 * np.array([r[0] for r in results])
            stderrs = 100.0 * np.array([r[1] for r in results])
            low, high = bootstrap_ci(values, level=level, n_boot=n_boot, seed=seed)
            rows.append({
                "rule": rule,
                "n": int(n) if n is not None else max(len(q.correct) for q in questions),
                "accuracy": float(values.mean()),
                "ci_low": low,
                "ci_high": high,
                "stderr_mc": float(math.sqrt(np.sum(stderrs**2)) / len(values)),
                "exact": all(r[2] for r in results),
                "n_questions": len(values),
            })
    return rows
