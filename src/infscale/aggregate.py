"""The aggregation stage: a graded response pool (+ optional weights) -> accuracy by selection rule and N,
with the compute and time each row costs (docs/file-formats.md, "Metrics")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from infscale.estimators import powers_of_two_up_to, selection_rows
from infscale.io import read_json, read_jsonl, write_json
from infscale.schema import defaults
from infscale.steps import STEP_AGGREGATIONS

_DEFAULTS = defaults("aggregate")   # the schema's `aggregate:` section: its bounds and defaults

# the rules every pool is reported by, without weights and once per weight column (estimators.RULES lists
# every rule the estimators know; estimators.WEIGHTED_RULES those that need weights)
REPORTED_RULES = ("mean", "majority", "pass")
REPORTED_WEIGHTED_RULES = ("best_of_n", "weighted_majority")
FLOP_COMPONENTS = ("prefill", "decode", "thought", "scorer")


def is_search(pool: pd.DataFrame) -> bool:
    """Whether a pool is a tree search's leaves: generation recorded a tree (`meta.tree`, in each question's
    sample 0). The one place this is decided; the metrics carry it (`search`) to the reports."""
    return "meta" in pool.columns and any(isinstance(m, dict) and "tree" in m for m in pool["meta"])


def weight_columns(name: str, scores: pd.DataFrame, path: str | Path) -> dict[str, pd.Series]:
    """The weight column(s) a score file provides: one per step aggregation for step scores (`{name}:{agg}`),
    else its `score` or `confidence` (`{name}`)."""
    if "step_scores" in scores.columns:
        empty = scores["step_scores"].map(len) == 0
        if empty.any():
            raise ValueError(f"{path}: response {scores.loc[empty, ['id', 'sample']].iloc[0].tolist()} has no step scores")
        return {f"{name}:{agg}": scores["step_scores"].map(fn) for agg, fn in STEP_AGGREGATIONS.items()}
    for field in ("score", "confidence"):
        if field in scores.columns:
            return {name: scores[field]}
    raise ValueError(f"{path}: score records need `step_scores`, `score` or `confidence`")


def load_pool(graded_path: str | Path, weights: Mapping[str, str | Path] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Graded responses as a table, with weight columns from score files joined on (id, sample).

    Returns the table and the names of its weight columns. A score file's FLOPs and seconds are added to the
    responses' scorer cost (docs/file-formats.md, "Score").
    """
    pool = pd.DataFrame(read_jsonl(graded_path))
    if pool.empty:
        raise ValueError(f"{graded_path}: no graded responses")
    if "flops_seed000" not in pool.columns or pool["flops_seed000"].isna().any():
        raise ValueError(f"{graded_path}: responses without `flops_seed000` (generated before seed 000's FLOP "
                         "count was recorded per response? regenerate them)")
    for component in FLOP_COMPONENTS:
        pool[f"flops_{component}"] = [f.get(component, 0.0) for f in pool["flops"]]
    pool["score_seconds"] = 0.0
    columns: list[str] = []
    sources: dict[str, str] = {}
    for name, path in (weights or {}).items():
        scores = pd.DataFrame(read_jsonl(path))
        if scores.empty:
            raise ValueError(f"{path}: no score records")
        new = weight_columns(name, scores, path)
        table = pd.DataFrame({"id": scores["id"], "sample": scores["sample"], **new,
                              "_flops": scores.get("flops", 0.0), "_seconds": scores.get("seconds", 0.0)})
        merged = pool.merge(table, on=["id", "sample"], how="left", validate="one_to_one")
        missing = merged[next(iter(new))].isna()
        if missing.any():
            first = merged.loc[missing, ["id", "sample"]].iloc[0].tolist()
            raise ValueError(f"{path}: no score for {int(missing.sum())} response(s), e.g. {first}")
        # kept per source too: a row weighted by one source pays for that source only (`source_costs`)
        merged[f"source_flops:{name}"] = merged.pop("_flops")
        merged[f"source_seconds:{name}"] = merged.pop("_seconds")
        merged["flops_scorer"] += merged[f"source_flops:{name}"]
        merged["score_seconds"] += merged[f"source_seconds:{name}"]
        pool = merged
        sources.update({column: name for column in new})
        columns += list(new)
    pool.attrs["weight_source"] = sources   # weight column -> score file name
    return pool, columns


def source_costs(pool: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """(FLOPs, seconds) that each score file (weight source) added to the pool, by source name."""
    names = dict.fromkeys(pool.attrs.get("weight_source", {}).values())
    return {n: (float(pool[f"source_flops:{n}"].sum()), float(pool[f"source_seconds:{n}"].sum())) for n in names}


def _token_sum(pool: pd.DataFrame, column: str) -> int:
    """Sum of a token-count field; 0 where responses lack it (the answer-suffix fields are optional)."""
    return int(pool[column].fillna(0).sum()) if column in pool.columns else 0


def cost_summary(pool: pd.DataFrame, timing: Mapping[str, Any]) -> dict[str, Any]:
    flops = {c: float(pool[f"flops_{c}"].sum()) for c in FLOP_COMPONENTS}
    flops["total"] = sum(flops.values())
    return {
        "tokens": {
            "prompt": int(pool["n_prompt_tokens"].sum()), "prefill": int(pool["n_prefill_tokens"].sum()),
            "completion": int(pool["n_completion_tokens"].sum()), "thought": int(pool["n_thought_tokens"].sum()),
            # the answer phase (`answer_suffix`): its prompt tokens encoded, and the answer tokens
            "answer_prefill": _token_sum(pool, "n_answer_prefill_tokens"), "answer": _token_sum(pool, "n_answer_tokens"),
        },
        "flops": flops,
        "seconds": {"generate": float(timing["generate_seconds"]), "score": float(pool["score_seconds"].sum()),
                    "load": float(timing["load_seconds"])},
        # where and how the seconds were measured (a sharded run lists every device its shards used)
        "device": "+".join(device) if isinstance(device := timing.get("device"), list) else device,
        "torch_threads": timing.get("torch_threads"),
        "backend": (timing.get("backend") or {"backend": "hf"})["backend"],
    }


def n_grid(n_values: Sequence[int], m: int, where: str | Path) -> list[int]:
    """The configured N values that a pool of M responses per question supports (N <= M), sorted."""
    bad = [n for n in n_values if not isinstance(n, int) or isinstance(n, bool) or n < 1]
    if bad:
        raise ValueError(f"aggregate.n_values: N must be integers >= 1, got {bad}")
    grid = sorted({n for n in n_values if n <= m})
    if not grid:
        raise ValueError(f"{where}: aggregate.n_values {list(n_values)} has no N <= M = {m} responses per question")
    return grid


def aggregate(graded_path: str | Path, timing_path: str | Path, output: str | Path, *, dataset: str, model: str,
              method: str, n_params: int, weights: Mapping[str, str | Path] | None = None,
              rules: Sequence[str] = REPORTED_RULES, weighted_rules: Sequence[str] = REPORTED_WEIGHTED_RULES,
              seed: int = 0, exact_limit: int = _DEFAULTS["exact_limit"],
              n_monte_carlo: int = _DEFAULTS["n_monte_carlo"], n_boot: int = _DEFAULTS["n_boot"],
              n_values: Sequence[int] | None = None, provenance: str | None = None) -> dict:
    """Accuracy by selection rule at every N of the grid, with the share of the run's cost each row pays.

    `n_values`: the N grid of sampled pools (config `aggregate.n_values`, any N); those above a pool's M are
    left out. Default: the powers of two up to M. `provenance`: the run's provenance file
    (docs/reproducibility.md), named in the metrics.
    """
    pool, weight_names = load_pool(graded_path, weights)
    timing = read_json(timing_path)
    per_question = pool.groupby("id").size()
    m = int(per_question.min())
    # tree-search leaves are not exchangeable samples and their number varies by question: every rule is
    # evaluated once, over each question's whole leaf set (row n = the largest M)
    search = is_search(pool)
    if search:
        m = int(per_question.max())
        n_values: list[int | None] = [None]
    elif per_question.max() != m:
        raise ValueError(f"{graded_path}: questions have between {m} and {per_question.max()} responses; "
                         "the subset estimators need the same M for every question")
    elif n_values is None:
        n_values = powers_of_two_up_to(m)
    else:
        n_values = n_grid(n_values, m, graded_path)
    options = dict(exact_limit=exact_limit, n_monte_carlo=n_monte_carlo, seed=seed, n_boot=n_boot)
    rows = [dict(r, weight="") for r in selection_rows(pool, rules, n_values, **options)]
    for name in weight_names:
        rows += [dict(r, weight=name) for r in selection_rows(pool, weighted_rules, n_values, name, **options)]
    costs = cost_summary(pool, timing)
    costs["n_params"] = int(n_params)
    costs["flops_seed000"] = float(pool["flops_seed000"].sum())
    by_source = source_costs(pool)
    sources_flops = sum(f for f, _ in by_source.values())
    sources_seconds = sum(s for _, s in by_source.values())
    for row in rows:
        # a rule at N costs N of the M responses per question, in expectation over subsets...
        share = row["n"] / m
        # ...plus, for a weighted rule, labelling/scoring those N by its own weight source (not by the others)
        own_flops, own_seconds = by_source.get(pool.attrs.get("weight_source", {}).get(row["weight"]), (0.0, 0.0))
        # ...except the prompt, encoded once per question whatever N is (its KV cache is shared)
        prefill = costs["flops"]["prefill"]
        row["tflops"] = (prefill + (costs["flops"]["total"] - sources_flops + own_flops - prefill) * share) / 1e12
        row["tflops_seed000"] = costs["flops_seed000"] * share / 1e12  # no prompt term in seed 000's count
        row["seconds"] = (costs["seconds"]["generate"] + costs["seconds"]["score"] - sources_seconds
                          + own_seconds) * share
        row["tokens"] = (costs["tokens"]["prefill"] + costs["tokens"]["completion"] + costs["tokens"]["thought"]
                         + costs["tokens"]["answer_prefill"] + costs["tokens"]["answer"]) * share
    metrics = {"dataset": dataset, "model": model, "method": method, "n_questions": int(len(per_question)),
               "n_samples": m, "n_samples_mean": float(per_question.mean()), "search": search, "rows": rows, **costs,
               "provenance": provenance}
    write_json(output, metrics)
    return metrics
