"""How informative the PRMs are: `results/tables/prm_quality.*` (each trained value head on its held-out
training problems) and `results/tables/prm_pool_quality.*` (every scored evaluation pool: do the step scores
of a response separate right from wrong final answers on the test questions?)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from infscale.steps import STEP_AGGREGATIONS
from infscale.stats import auroc, auroc_ci
from infscale.io import read_json, read_jsonl
from infscale.reports.tables import write_table

# the trained head's AUROCs, then the untrained policy's own step scores (mean / min token log-prob) on the
# same labels: the head earns credit only for what it adds to these
TRAINED_MEASURES = ("step_auroc", "reference_step_auroc", "final_auroc_last", "final_auroc_min",
                    "untrained_mean_step_auroc", "untrained_min_step_auroc",
                    "untrained_mean_reference_step_auroc", "untrained_min_reference_step_auroc")
# how a response's step scores become one number: three of the aggregation's weights
POOL_SCORES = ("last", "min", "mean")


def trained_quality(paths: Sequence[str | Path]) -> pd.DataFrame:
    """One row per trained value head (its `quality.json`, written by `train_value_head`)."""
    columns = ["scorer", "dataset", "model", "features", "l2", "selected_by", "n_fit_problems",
               "n_validation_problems", "n_heldout_problems", "n_heldout_steps", "heldout_solution_accuracy",
               "heldout_positive_steps"]
    for name in TRAINED_MEASURES:
        columns += [name, f"{name}_lo", f"{name}_hi"]
    columns.append("fit_step_auroc")
    return pd.DataFrame([read_json(p) for p in paths], columns=columns)


def pool_quality(runs: Sequence[Sequence[str]], graded_paths: Sequence[str | Path],
                 score_paths: Sequence[str | Path], seed: int = 0) -> pd.DataFrame:
    """One row per (dataset, model, method, scorer): final-answer AUROC of the last / min / mean step score
    against the graded answer over the pool's responses, with 95% bootstrap intervals over questions."""
    if not len(runs) == len(graded_paths) == len(score_paths):
        raise ValueError(f"{len(runs)} runs, {len(graded_paths)} graded files and {len(score_paths)} score files")
    rows = []
    for (dataset, model, method, scorer), graded_path, score_path in zip(runs, graded_paths, score_paths):
        graded = pd.DataFrame(read_jsonl(graded_path))[["id", "sample", "correct"]]
        scores = pd.DataFrame(read_jsonl(score_path))[["id", "sample", "step_scores"]]
        pool = graded.merge(scores, on=["id", "sample"], how="left", validate="one_to_one")
        missing = pool["step_scores"].isna()
        if missing.any():
            first = pool.loc[missing, ["id", "sample"]].iloc[0].tolist()
            raise ValueError(f"{score_path}: no step scores for {int(missing.sum())} response(s) of "
                             f"{graded_path}, e.g. {first}")
        correct = [[bool(c)] for c in pool["correct"]]
        row = {"dataset": dataset, "model": model, "method": method, "scorer": scorer,
               "n_questions": pool["id"].nunique(), "n_responses": len(pool),
               "accuracy": 100.0 * pool["correct"].mean()}
        for name in POOL_SCORES:
            values = [[float(STEP_AGGREGATIONS[name](s))] for s in pool["step_scores"]]
            row[f"auroc_{name}"] = auroc([v for [v] in values], [c for [c] in correct])
            row[f"auroc_{name}_lo"], row[f"auroc_{name}_hi"] = auroc_ci(values, correct, pool["id"].tolist(),
                                                                        seed=seed)
        rows.append(row)
    return pd.DataFrame(rows)


def write_prm_quality(trained_paths: Sequence[str | Path], runs: Sequence[Sequence[str]],
                      graded_paths: Sequence[str | Path], score_paths: Sequence[str | Path],
                      csv_path: str | Path, md_path: str | Path, pool_csv_path: str | Path,
                      pool_md_path: str | Path, seed: int = 0) -> None:
    write_table(trained_quality(trained_paths), csv_path, md_path,
                "Value-head PRMs on held-out training problems: step and final-answer AUROC, and the untrained "
                "policy's mean / min token log-prob on the same labels, 95% CI over problems",
                floatfmt=".3f")
    write_table(pool_quality(runs, graded_paths, score_paths, seed), pool_csv_path, pool_md_path,
                "PRM scores on the evaluation pools: final-answer AUROC, 95% CI over questions", floatfmt=".3f")
