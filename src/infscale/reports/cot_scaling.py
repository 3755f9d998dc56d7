"""Seed 004: standard vs chain-of-thought prompting across model scales (docs/seed004.md).

The study's analysis (AkshayM21/obs-scaling-inference-opts, `analysis/train_equivalent.py` and
`analysis/granular_analysis.py`), on a per-model table:

- training FLOPs 6·N·D; CoT improvement = accuracy_cot − accuracy_standard;
- train-equivalent FLOPs: within a family, ordinary least squares of standard accuracy on ln(6·N·D), the CoT
  accuracy inverted through that line, exp((accuracy_cot − a) / b): the training compute a standard-prompted
  model of the family would need to match the CoT accuracy;
- intersecting lines: total cost against the number of requests R, CoT = 6ND + 2·R·N·tokens_cot and
  standard = train-equivalent FLOPs + 2·R·N·tokens_standard, crossing at
  R* = (C_equivalent − C_train) / (2·N·(tokens_cot − tokens_standard)) when that is positive.

The pipeline side (`cot_scaling_tables`) turns the graded greedy runs of the two prompt styles into the
per-(model, task, style) table, the paired CoT − standard differences with bootstrap CIs, the study's
`toks_generated.csv` and the per-model input of `analyse`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from infscale.stats import bootstrap_ci
from infscale.io import atomic_open, read_json, read_jsonl

INPUT_COLUMNS = ["model", "family", "params", "training_tokens", "accuracy_standard", "accuracy_cot",
                 "tokens_standard", "tokens_cot"]
NUMERIC_COLUMNS = INPUT_COLUMNS[2:]
OUTPUT_COLUMNS = ["train_flops", "cot_improvement", "train_equivalent_flops", "fit", "fit_intercept", "fit_slope",
                  "crossover_requests"]
POOLED = "pooled"   # `fit` of a family with fewer than two distinct training-FLOP values
STYLES = ("standard", "cot")


# --- the study's analysis on a per-model table ---


def check_input(table: pd.DataFrame, source: str = "input") -> pd.DataFrame:
    """The table with its numeric columns as floats; a clear error naming a missing column or a bad cell."""
    missing = [c for c in INPUT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing} (needed: {INPUT_COLUMNS})")
    table = table.copy()
    for column in NUMERIC_COLUMNS:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values)
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{source}: line {line + 2} ({table['model'].iloc[line]!r}): column {column!r} needs a "
                             f"finite number, got {table[column].iloc[line]!r}")
        table[column] = values.astype(float)
    for column in ("params", "training_tokens"):
        if (table[column] <= 0).any():
            line = int(np.flatnonzero((table[column] <= 0).to_numpy())[0])
            raise ValueError(f"{source}: line {line + 2}: column {column!r} must be positive")
    table["family"] = table["family"].astype(str).str.strip()
    return table


def _ols(log_flops: pd.Series, accuracy: pd.Series) -> tuple[float, float]:
    """(intercept a, slope b) of accuracy = a + b·ln(train FLOPs)."""
    slope, intercept = np.polyfit(log_flops.to_numpy(), accuracy.to_numpy(), deg=1)
    return float(intercept), float(slope)


def crossover_requests(train_flops: float, equivalent_flops: float, params: float, tokens_standard: float,
                       tokens_cot: float) -> float:
    """R* where CoT's total cost equals the train-equivalent standard model's; NaN when they do not cross at R > 0."""
    extra_per_request = 2.0 * params * (tokens_cot - tokens_standard)
    if extra_per_request == 0 or not np.isfinite(equivalent_flops):
        return float("nan")
    requests = (equivalent_flops - train_flops) / extra_per_request
    return float(requests) if requests > 0 else float("nan")


def analyse(table: pd.DataFrame, source: str = "input") -> pd.DataFrame:
    """The input plus train_flops, cot_improvement, train_equivalent_flops, fit (family | pooled | none),
    fit_intercept, fit_slope and crossover_requests (NaN when the lines do not cross at R > 0).

    A family with fewer than two distinct training-FLOP values cannot be fitted on its own: it uses the fit
    over all models (`pooled`); with fewer than two distinct values overall nothing is fitted (`none`). A flat
    fit (slope 0) cannot be inverted: its train-equivalent FLOPs are NaN.
    """
    out = check_input(table, source)
    out["train_flops"] = 6.0 * out["params"] * out["training_tokens"]
    out["cot_improvement"] = out["accuracy_cot"] - out["accuracy_standard"]
    log_flops = np.log(out["train_flops"])
    pooled = _ols(log_flops, out["accuracy_standard"]) if log_flops.nunique() >= 2 else None
    for column in ("train_equivalent_flops", "fit_intercept", "fit_slope"):
        out[column] = np.nan
    out["fit"] = "none"
    for family, rows in out.groupby("family", sort=False):
        if log_flops[rows.index].nunique() >= 2:
            fit, (a, b) = family, _ols(log_flops[rows.index], rows["accuracy_standard"])
        elif pooled is not None:
            fit, (a, b) = POOLED, pooled
        else:
            continue
        out.loc[rows.index, ["fit", "fit_intercept", "fit_slope"]] = [fit, a, b]
        if b != 0:  # a flat fit cannot be inverted: no train-equivalent FLOPs
            with np.errstate(over="ignore"):
                out.loc[rows.index, "train_equivalent_flops"] = np.exp((rows["accuracy_cot"] - a) / b)
    out["crossover_requests"] = [
        crossover_requests(r.train_flops, r.train_equivalent_flops, r.params, r.tokens_standard, r.tokens_cot)
        for r in out.itertuples()
    ]
    return out


def total_cost(row: Mapping[str, float], requests: np.ndarray) -> dict[str, np.ndarray]:
    """Training + inference FLOPs after `requests` requests, for CoT and for the train-equivalent standard model."""
    per_token = 2.0 * row["params"]
    return {"cot": row["train_flops"] + requests * per_token * row["tokens_cot"],
            "standard": row["train_equivalent_flops"] + requests * per_token * row["tokens_standard"]}


# --- the pipeline: graded greedy runs of both styles -> tables ---


def _correct_by_question(graded_path: str | Path) -> pd.Series:
    pool = pd.DataFrame(read_jsonl(graded_path))
    if pool.empty:
        raise ValueError(f"{graded_path}: no graded responses")
    if pool.groupby("id").size().max() != 1:
        raise ValueError(f"{graded_path}: seed 004 compares one greedy response per question (n_samples: 1)")
    return pool.set_index("id")["correct"].astype(float)


def style_row(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Accuracy (%) with its 95% CI, and per-question generated tokens, inference FLOPs and seconds of one run."""
    rows = [r for r in metrics["rows"] if r["rule"] == "mean" and not r.get("weight") and r["n"] == 1]
    if len(rows) != 1:
        raise ValueError(f"metrics of {metrics.get('dataset')}/{metrics.get('model')}/{metrics.get('method')}: "
                         f"expected one unweighted `mean` row at n=1, found {len(rows)}")
    (row,) = rows
    n = metrics["n_questions"]
    return {"accuracy": row["accuracy"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
            "tokens": metrics["tokens"]["completion"] / n, "flops": metrics["flops"]["total"] / n,
            "seconds": metrics["seconds"]["generate"] / n, "n_questions": n}


def paired_difference(correct_standard: pd.Series, correct_cot: pd.Series, n_boot: int, seed: int) -> dict[str, float]:
    """Mean CoT − standard difference in accuracy (percentage points) over the same questions, bootstrap 95% CI."""
    if set(correct_standard.index) != set(correct_cot.index):
        raise ValueError("the standard and CoT runs graded different questions")
    diff = (correct_cot - correct_standard.reindex(correct_cot.index)) * 100.0
    low, high = bootstrap_ci(diff.to_numpy(), n_boot=n_boot, seed=seed)
    return {"difference": float(diff.mean()), "diff_ci_low": low, "diff_ci_high": high, "n_questions": len(diff)}


def cot_scaling_tables(runs: Sequence[Mapping[str, Any]], models: Mapping[str, Mapping[str, Any]], n_boot: int = 2000,
                       seed: int = 0) -> dict[str, pd.DataFrame]:
    """`runs`: one per (dataset, model): {dataset, model, spec (model.json: n_params), standard/cot: {metrics,
    graded}}; `models`: the config's `models:` entries (training_tokens, family: the model's name when unset).

    Returns `styles` (model, task, style rows), `differences` (paired CoT − standard per task and over all
    tasks), `toks_generated` (the study's shape) and `models` (the per-model input of `analyse`: accuracy and
    tokens averaged over tasks, as the study's `Overall` is).
    """
    styles, differences, tokens = [], [], []
    correct: dict[str, dict[str, list[pd.Series]]] = {}
    specs: dict[str, Mapping[str, Any]] = {}
    for run in runs:
        model, task = run["model"], run["dataset"]
        specs[model] = run["spec"]
        per_style = {}
        for style in STYLES:
            metrics = read_json(run[style]["metrics"])
            per_style[style] = style_row(metrics)
            styles.append({"model": model, "task": task, "style": style, **per_style[style]})
        paired = {s: _correct_by_question(run[s]["graded"]) for s in STYLES}
        for s in STYLES:
            correct.setdefault(model, {}).setdefault(s, []).append(paired[s].rename(lambda q, t=task: f"{t}/{q}"))
        differences.append({"model": model, "task": task,
                            **paired_difference(paired["standard"], paired["cot"], n_boot, seed)})
        tokens.append({"model": model, "task": task, "reg_tokens": per_style["standard"]["tokens"],
                       "cot_tokens": per_style["cot"]["tokens"], "type": "per_model_eval"})
    for model, by_style in correct.items():
        differences.append({"model": model, "task": "ALL", **paired_difference(
            pd.concat(by_style["standard"]), pd.concat(by_style["cot"]), n_boot, seed)})
    tokens_table = pd.DataFrame(tokens)
    summaries = [
        tokens_table.groupby("model", sort=False)[["reg_tokens", "cot_tokens"]].mean().reset_index()
        .assign(task="ALL", type="per_model"),
        tokens_table.groupby("task", sort=False)[["reg_tokens", "cot_tokens"]].mean().reset_index()
        .assign(model="ALL", type="per_eval"),
        pd.DataFrame([{"model": "ALL", "task": "ALL", "type": "overall",
                       "reg_tokens": tokens_table["reg_tokens"].mean(), "cot_tokens": tokens_table["cot_tokens"].mean()}]),
    ]
    toks = pd.concat([tokens_table, *summaries], ignore_index=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        toks["token_ratio"] = toks["cot_tokens"] / toks["reg_tokens"]
    toks = toks[["model", "task", "reg_tokens", "cot_tokens", "token_ratio", "type"]]

    style_table = pd.DataFrame(styles)
    means = style_table.pivot_table(index="model", columns="style", values=["accuracy", "tokens"], aggfunc="mean",
                                    sort=False)
    per_model = pd.DataFrame([{
        "model": model, "family": models[model].get("family") or model, "params": specs[model]["n_params"],
        "training_tokens": models[model].get("training_tokens"),
        "accuracy_standard": means.loc[model, ("accuracy", "standard")],
        "accuracy_cot": means.loc[model, ("accuracy", "cot")],
        "tokens_standard": means.loc[model, ("tokens", "standard")],
        "tokens_cot": means.loc[model, ("tokens", "cot")],
    } for model in means.index])
    missing = per_model.loc[per_model["training_tokens"].isna(), "model"].tolist()
    if missing:
        raise ValueError(f"models.{missing[0]}.training_tokens: seed 004 needs the pre-training tokens D of every model")
    return {"styles": style_table, "differences": pd.DataFrame(differences), "toks_generated": toks,
            "models": per_model}


def write_cot_scaling(runs: Sequence[Mapping[str, Any]], models: Mapping[str, Mapping[str, Any]], outputs: Any,
                      n_boot: int = 2000, seed: int = 0) -> None:
    """The `cot_scaling` rule: `runs` and `models` as `cot_scaling_tables` takes them but with the model spec's
    path; `outputs` has styles(_md), differences(_md), tokens and models (docs/file-formats.md, "Seed 004")."""
    from infscale.reports.tables import write_table

    runs = [{**run, "spec": read_json(run["spec"])} for run in runs]
    tables = cot_scaling_tables(runs, models, n_boot=n_boot, seed=seed)
    write_table(tables["styles"], outputs.styles, outputs.styles_md,
                "Seed 004: accuracy (%, 95% CI) and per-question tokens, FLOPs and seconds by prompt style",
                floatfmt=".4g")
    write_table(tables["differences"], outputs.differences, outputs.differences_md,
                "Seed 004: CoT - standard accuracy (percentage points) on the same questions, 95% bootstrap CI",
                floatfmt=".4g")
    with atomic_open(outputs.tokens) as handle:
        tables["toks_generated"].to_csv(handle, index=False)
    with atomic_open(outputs.models) as handle:
        analyse(tables["models"], source="per-model table").to_csv(handle, index=False)
