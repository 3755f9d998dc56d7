"""Result tables: every metrics file of a run in one long table (CSV + Markdown)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from infscale.io import atomic_open, read_json

ACCURACY_COLUMNS = ["dataset", "model", "method", "rule", "weight", "n", "accuracy", "ci_low", "ci_high",
                    "tflops", "seconds", "tokens", "n_questions", "exact", "stderr_mc"]


def collect_metrics(paths: Sequence[str | Path]) -> pd.DataFrame:
    rows = []
    for path in paths:
        metrics = read_json(path)
        for row in metrics["rows"]:
            rows.append({"dataset": metrics["dataset"], "model": metrics["model"], "method": metrics["method"], **row})
    table = pd.DataFrame(rows, columns=ACCURACY_COLUMNS)
    return table.sort_values(["dataset", "model", "method", "weight", "rule", "n"], kind="stable").reset_index(drop=True)


def write_table(table: pd.DataFrame, csv_path: str | Path, md_path: str | Path, title: str, floatfmt: str = ".2f") -> None:
    with atomic_open(csv_path) as handle:
        table.to_csv(handle, index=False)
    with atomic_open(md_path) as handle:
        handle.write(f"# {title}\n\n" + table.to_markdown(index=False, floatfmt=floatfmt) + "\n")


def accuracy_table(metrics_paths: Sequence[str | Path], csv_path: str | Path, md_path: str | Path) -> pd.DataFrame:
    table = collect_metrics(metrics_paths)
    write_table(table, csv_path, md_path, "Accuracy (%) by selection rule and N, 95% CI over questions")
    return table
