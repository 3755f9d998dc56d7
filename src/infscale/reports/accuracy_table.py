"""The accuracy table (rule accuracy_table): every metrics file of a run in one long table (CSV + Markdown)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from infscale.io import read_json
from infscale.reports.tables import write_table

ACCURACY_COLUMNS = ["dataset", "model", "method", "rule", "weight", "n", "accuracy", "ci_low", "ci_high",
                    "tflops", "seconds", "tokens", "n_questions", "exact", "stderr_mc", "tflops_seed000",
                    "load_seconds", "device", "torch_threads"]

def collect_metrics(paths: Sequence[str | Path]) -> pd.DataFrame:
    rows = []
    for path in paths:
        metrics = read_json(path)
        # run-level facts on every row: model loading (kept out of `seconds`) and where the seconds were measured
        run = {"dataset": metrics["dataset"], "model": metrics["model"], "method": metrics["method"],
               "load_seconds": metrics.get("seconds", {}).get("load"), "device": metrics.get("device"),
               "torch_threads": metrics.get("torch_threads")}
        for row in metrics["rows"]:
            rows.append({**run, **row})
    table = pd.DataFrame(rows, columns=ACCURACY_COLUMNS)
    return table.sort_values(["dataset", "model", "method", "weight", "rule", "n"], kind="stable").reset_index(drop=True)


def accuracy_table(metrics_paths: Sequence[str | Path], csv_path: str | Path, md_path: str | Path) -> pd.DataFrame:
    table = collect_metrics(metrics_paths)
    write_table(table, csv_path, md_path, "Accuracy (%) by selection rule and N, 95% CI over questions")
    return table
