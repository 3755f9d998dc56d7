"""Statistics helpers shared by the stages and reports: percentile-bootstrap CIs of a mean over questions,
and AUROC (with a bootstrap CI over problems)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def bootstrap_ci(values: Sequence[float], level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean over questions (resampling questions with replacement).

    One value (or all equal) gives the degenerate interval (v, v); an empty sequence is an error.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError("bootstrap_ci needs a non-empty 1-d sequence of values")
    if not np.all(np.isfinite(x)):
        raise ValueError("bootstrap_ci values must be finite")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, 4_000_000 // len(x))  # bound memory for large question sets
    means = np.concatenate([
        x[rng.integers(0, len(x), size=(min(rows_per_chunk, n_boot - start), len(x)))].mean(axis=1)
        for start in range(0, n_boot, rows_per_chunk)
    ])
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of `scores` separating True from False labels (Mann-Whitney U with tied scores
    counted half); NaN when only one class is present."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores ({scores.shape}) and labels ({labels.shape}) differ in shape")
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, unique_index, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[unique_index]    # 1-based; ties share their mean rank
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auroc_ci(scores: list[list[float]], labels: list[list[bool]], groups: list[Any], level: float = 0.95,
             n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of `auroc` over groups (problems): scores/labels are lists per path, `groups`
    the problem of each path; resamples problems with replacement (steps of a problem are not independent).
    Resamples with one class absent are skipped; (nan, nan) when fewer than half remain."""
    by_group: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    keys = list(by_group)
    if not keys:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        paths = [i for k in rng.integers(0, len(keys), len(keys)) for i in by_group[keys[k]]]
        value = auroc([v for i in paths for v in scores[i]], [v for i in paths for v in labels[i]])
        if not np.isnan(value):
            values.append(value)
    if len(values) < n_boot / 2:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
