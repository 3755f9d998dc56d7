"""Result tables: every metrics file of a run in one long table (CSV + Markdown)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from infscale.io import atomic_open, read_json

ACCURACY_COLUMNS = ["dataset", "model", "method", "rule", "weight", "n", "accuracy", "ci_low", "ci_high",
                    "tflops", "seconds", "tokens", "n_questions", "exact", "stderr_mc", "tflops_seed000",
                    "load_seconds", "device", "torch_threads"]
TEXT_COLUMNS = ("dataset", "model", "method", "rule", "weight", "device")


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


def read_table(csv_path: str | Path, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    """A table written by `write_table`, with empty text cells (e.g. an unweighted rule's `weight`, and any of
    `text_columns`) as "" not NaN."""
    columns = (*TEXT_COLUMNS, *text_columns)
    table = pd.read_csv(csv_path, dtype={column: str for column in columns})
    for column in columns:
        if column in table.columns:
            table[column] = table[column].fillna("")
    return table


def write_table(table: pd.DataFrame, csv_path: str | Path, md_path: str | Path, title: str,
                floatfmt: str | Sequence[str] = ".2f") -> None:
    """CSV + Markdown twin; `floatfmt` is one format, or one per column."""
    with atomic_open(csv_path) as handle:
        table.to_csv(handle, index=False)
    with atomic_open(md_path) as handle:
        # missing values (NaN, <NA>) as empty cells
        shown = table.astype(object).where(table.notna(), None)
        handle.write(f"# {title}\n\n" + shown.to_markdown(index=False, floatfmt=floatfmt, missingval="") + "\n")


def accuracy_table(metrics_paths: Sequence[str | Path], csv_path: str | Path, md_path: str | Path) -> pd.DataFrame:
    table = collect_metrics(metrics_paths)
    write_table(table, csv_path, md_path, "Accuracy (%) by selection rule and N, 95% CI over questions")
    return table
