"""Table files of the reports: a CSV with its Markdown twin (`write_table`), read back with empty text cells kept
as "" (`read_table`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from infscale.io import atomic_open

TEXT_COLUMNS = ("dataset", "model", "method", "rule", "weight", "device")


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
