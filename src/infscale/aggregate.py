"""The aggregation stage: a graded response pool (+ optional weights) -> accuracy by selection rule and N,
with the compute and time each row costs (docs/file-formats.md, "Metrics")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from infscale.compute import seed000_flops, seed000_rebase_flops
from infscale.estimators import powers_of_two_up_to, selection_rows
from infscale.io import read_json, read_jsonl, write_json

UNWEIGHTED_RULES = ("mean", "majority", "pass")
WEIGHTED_RULES = ("best_of_n", "weighted_majority")
FLOP_COMPONENTS = ("prefill", "decode", "thought", "scorer")


STEP_AGGREGATIONS = {
    # how a PRM's per-step scores become one score per response (seed 002's evaluate options)
    "last": lambda steps: steps[-1],
    "mean": lambda steps: sum(steps) / len(steps),
    "prod": lambda steps: float(np.prod(steps)),
    "min": min,
}


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


def cost_summary(pool: pd.DataFrame, timing: Mapping[str, Any]) -> dict[str, Any]:
    flops = {c: float(pool[f"flops_{c}"].sum()) for c in FLOP_COMPONENTS}
    flops["total"] = sum(flops.values())
    return {
        "tokens": {
            "prompt": int(pool["n_prompt_tokens"].sum()), "prefill": int(pool["n_prefill_tokens"].sum()),
            "completion": int(pool["n_completion_tokens"].sum()), "thought": int(pool["n_thought_tokens"].sum()),
        },
        "flops": flops,
        "seconds": {"generate": float(timing["generate_seconds"]), "score": float(pool["score_seconds"].sum()),
                    "load": float(timing["load_seconds"])},
        # where and how the seconds were measured (a sharded run lists every device its shards used)
        "device": "+".join(device) if isinstance(device := timing.get("device"), list) else device,
        "torch_threads": timing.get("torch_threads"),
    }


# a search's per-path token cap, by the names methods give it (tree search: `max_total_tokens`)
BUDGET_KEYS = ("max_total_tokens", "max_tokens", "max_new_tokens")


def budget_tokens(method_cfg: Mapping[str, Any]) -> int:
    """Tokens one path of a search may generate: its config's cap, else the method's default for it."""
    for key in BUDGET_KEYS:
        if method_cfg.get(key) is not None:
            return int(method_cfg[key])
    if "kind" in method_cfg:
        from infscale.methods import get_method  # lazy: only searches need it

        defaults = {f.name: f.default for f in fields(get_method(method_cfg["kind"]).config_class)}
        for key in BUDGET_KEYS:
            if isinstance(defaults.get(key), int):
                return defaults[key]
    raise ValueError(f"method config has `width` but no token cap ({' / '.join(BUDGET_KEYS)}), in it or as its "
                     "kind's default: seed 000 charges a search its width · max-tokens budget")


def seed000_run_flops(method_cfg: Mapping[str, Any], n_params: int, n_completion_tokens: int,
                      n_questions: int) -> float:
    """A whole run's FLOPs under seed 000's accounting (DESIGN §5), reported beside ours, never instead.

    A method whose config has a `width` (REBASE-type search) is charged its token budget, width · `budget_tokens`
    per question; any other method its visible generated tokens.
    """
    if method_cfg.get("width") is None:
        return seed000_flops(n_params, n_completion_tokens)
    return seed000_rebase_flops(n_params, int(method_cfg["width"]), budget_tokens(method_cfg), n_questions)


def aggregate(graded_path: str | Path, timing_path: str | Path, output: str | Path, *, dataset: str, model: str,
              method: str, n_params: int, method_cfg: Mapping[str, Any] | None = None,
              weights: Mapping[str, str | Path] | None = None, rules: Sequence[str] = UNWEIGHTED_RULES,
              weighted_rules: Sequence[str] = WEIGHTED_RULES,
              seed: int = 0, exact_limit: int = 1000, n_monte_carlo: int = 1000, n_boot: int = 2000,
              provenance: str | None = None) -> dict:
    """The metrics of one pool; `provenance`: the run's provenance file (docs/reproducibility.md), named in it."""
    pool, weight_names = load_pool(graded_path, weights)
    timing = read_json(timing_path)
    per_question = pool.groupby("id").size()
    m = int(per_question.min())
    # tree-search leaves (responses with `steps`) are not exchangeable samples and their number varies by
    # question: every rule is evaluated once, over each question's whole leaf set (row n = the largest M)
    search = "steps" in pool.columns and bool(pool["steps"].notna().all())
    if search:
        m = int(per_question.max())
        n_values: list[int | None] = [None]
    elif per_question.max() != m:
        raise ValueError(f"{graded_path}: questions have between {m} and {per_question.max()} responses; "
                         "the subset estimators need the same M for every question")
    else:
        n_values = powers_of_two_up_to(m)
    options = dict(exact_limit=exact_limit, n_monte_carlo=n_monte_carlo, seed=seed, n_boot=n_boot)
    rows = [dict(r, weight="") for r in selection_rows(pool, rules, n_values, **options)]
    for name in weight_names:
        rows += [dict(r, weight=name) for r in selection_rows(pool, weighted_rules, n_values, name, **options)]
    costs = cost_summary(pool, timing)
    costs["n_params"] = int(n_params)
    costs["flops_seed000"] = seed000_run_flops(method_cfg or {}, n_params, costs["tokens"]["completion"],
                                               int(len(per_question)))
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
        row["tokens"] = (costs["tokens"]["prefill"] + costs["tokens"]["completion"]
                         + costs["tokens"]["thought"]) * share
    metrics = {"dataset": dataset, "model": model, "method": method, "n_questions": int(len(per_question)),
               "n_samples": m, "n_samples_mean": float(per_question.mean()), "search": search, "rows": rows, **costs,
               "provenance": provenance}
    write_json(output, metrics)
    return metrics
