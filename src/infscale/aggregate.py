"""The aggregation stage: a graded response pool (+ optional weights) -> accuracy by selection rule and N,
with the compute and time each row costs (docs/file-formats.md, "Metrics")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from infscale.estimators import powers_of_two_up_to, selection_rows
from infscale.io import read_json, read_jsonl, write_json

UNWEIGHTED_RULES = ("mean", "majority", "pass")
WEIGHTED_RULES = ("best_of_n", "weighted_majority")
FLOP_COMPONENTS = ("prefill", "decode", "thought", "scorer")


def load_pool(graded_path: str | Path, weights: Mapping[str, str | Path] | None = None) -> pd.DataFrame:
    """Graded responses as a table, with one column per weight source joined on (id, sample).

    A weight file is a score file (docs/file-formats.md): its `score` (or `confidence`) becomes the column
    named after the source; its FLOPs and seconds are added to the responses' scorer cost.
    """
    pool = pd.DataFrame(read_jsonl(graded_path))
    if pool.empty:
        raise ValueError(f"{graded_path}: no graded responses")
    for component in FLOP_COMPONENTS:
        pool[f"flops_{component}"] = [f.get(component, 0.0) for f in pool["flops"]]
    pool["score_seconds"] = 0.0
    for name, path in (weights or {}).items():
        scores = pd.DataFrame(read_jsonl(path))
        value = "score" if "score" in scores.columns else "confidence"
        if value not in scores.columns:
            raise ValueError(f"{path}: score records need a `score` or `confidence` field")
        scores = scores.rename(columns={value: name, "flops": f"{name}_flops", "seconds": f"{name}_seconds"})
        merged = pool.merge(scores[["id", "sample", name, f"{name}_flops", f"{name}_seconds"]],
                            on=["id", "sample"], how="left", validate="one_to_one")
        missing = merged[name].isna()
        if missing.any():
            first = merged.loc[missing, ["id", "sample"]].iloc[0].tolist()
            raise ValueError(f"{path}: no {value} for {int(missing.sum())} response(s), e.g. {first}")
        merged["flops_scorer"] += merged.pop(f"{name}_flops")
        merged["score_seconds"] += merged.pop(f"{name}_seconds")
        pool = merged
    return pool


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
        "device": timing.get("device"),
    }


def aggregate(graded_path: str | Path, timing_path: str | Path, output: str | Path, *, dataset: str, model: str,
              method: str, weights: Mapping[str, str | Path] | None = None,
              rules: Sequence[str] = UNWEIGHTED_RULES, weighted_rules: Sequence[str] = WEIGHTED_RULES,
              seed: int = 0, exact_limit: int = 1000, n_monte_carlo: int = 1000, n_boot: int = 2000) -> dict:
    pool = load_pool(graded_path, weights)
    timing = read_json(timing_path)
    per_question = pool.groupby("id").size()
    m = int(per_question.min())
    if per_question.max() != m:
        raise ValueError(f"{graded_path}: questions have between {m} and {per_question.max()} responses; "
                         "the subset estimators need the same M for every question")
    n_values = powers_of_two_up_to(m)
    options = dict(exact_limit=exact_limit, n_monte_carlo=n_monte_carlo, seed=seed, n_boot=n_boot)
    rows = [dict(r, weight="") for r in selection_rows(pool, rules, n_values, **options)]
    for name in weights or {}:
        rows += [dict(r, weight=name) for r in selection_rows(pool, weighted_rules, n_values, name, **options)]
    costs = cost_summary(pool, timing)
    for row in rows:
        # a rule at N costs N of the M responses per question, in expectation over subsets...
        share = row["n"] / m
        # ...except the prompt, encoded once per question whatever N is (its KV cache is shared)
        prefill = costs["flops"]["prefill"]
        row["tflops"] = (prefill + (costs["flops"]["total"] - prefill) * share) / 1e12
        row["seconds"] = (costs["seconds"]["generate"] + costs["seconds"]["score"]) * share
        row["tokens"] = (costs["tokens"]["prefill"] + costs["tokens"]["completion"]
                         + costs["tokens"]["thought"]) * share
    metrics = {"dataset": dataset, "model": model, "method": method, "n_questions": int(len(per_question)),
               "n_samples": m, "rows": rows, **costs}
    write_json(output, metrics)
    return metrics
