"""The efficiency table (DESIGN §5): accuracy per TFLOP, per second, and their product, ranked.

    Acc/TFLOP  = accuracy (%) / TFLOPs
    Acc/s      = accuracy (%) / seconds
    Efficiency = Acc/TFLOP × Acc/s × 100          rank 1 = most efficient, ties share the lowest rank

Seed 000 multiplied Acc/TFLOP and Acc/s after rounding each to 2 decimals (REBASE w=3: 4.66 × 1.29 × 100 =
601.14, where the unrounded product is 601.3); `seed_rounding=True` reproduces its digits, the default does not
round.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from infscale.io import atomic_open

REQUIRED_COLUMNS = ("method", "accuracy", "tflops", "seconds")
SEED_DECIMALS = 2  # the seed 000 table's precision


def _numeric(df: pd.DataFrame, column: str) -> pd.Series:
    """`df[column]` as floats; a value that is not a finite number raises, naming its method."""
    values = pd.to_numeric(df[column], errors="coerce").astype(float)
    for method, raw, value in zip(df["method"], df[column], values):
        if not math.isfinite(value):
            raise ValueError(f"method {method!r}: {column} is not a finite number ({raw!r})")
    return values


def efficiency_table(df: pd.DataFrame, seed_rounding: bool = False) -> pd.DataFrame:
    """Add `acc_per_tflop`, `acc_per_second`, `efficiency` and `rank` to a table of methods.

    Input columns: method, accuracy (%), tflops, seconds; others are kept, and so is the row order.
    With `seed_rounding`, Acc/TFLOP and Acc/s are rounded to 2 decimals before the product and the efficiency
    to 2 decimals after it, as in the seed 000 table.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"efficiency table: missing column(s) {', '.join(map(repr, missing))}; "
                         f"need {', '.join(REQUIRED_COLUMNS)}")
    out = df.copy()
    accuracy, tflops, seconds = (_numeric(df, c) for c in ("accuracy", "tflops", "seconds"))
    for column, values in (("tflops", tflops), ("seconds", seconds)):
        for method, value in zip(df["method"], values):
            if value <= 0:
                raise ValueError(f"method {method!r}: {column} must be > 0 to divide by, got {value}")

    per_tflop, per_second = accuracy / tflops, accuracy / seconds
    if seed_rounding:
        per_tflop, per_second = per_tflop.round(SEED_DECIMALS), per_second.round(SEED_DECIMALS)
    efficiency = per_tflop * per_second * 100
    if seed_rounding:
        efficiency = efficiency.round(SEED_DECIMALS)

    out["acc_per_tflop"] = per_tflop
    out["acc_per_second"] = per_second
    out["efficiency"] = efficiency
    out["rank"] = efficiency.rank(method="min", ascending=False).astype(int)
    return out


def to_markdown(df: pd.DataFrame, decimals: int = SEED_DECIMALS) -> str:
    """A Markdown table of `df` with floats shown to `decimals` places (the Markdown twin of a CSV table)."""
    return df.to_markdown(index=False, floatfmt=f".{decimals}f") + "\n"


def efficiency_file(input_csv: str | Path, output_csv: str | Path, seed_rounding: bool = False) -> pd.DataFrame:
    """Read a CSV of methods, write its efficiency table to `output_csv` and a Markdown twin beside it (`.md`).

    Both files are written atomically. Errors name the input file.
    """
    input_csv, output_csv = Path(input_csv), Path(output_csv)
    table = pd.read_csv(input_csv)
    try:
        result = efficiency_table(table, seed_rounding=seed_rounding)
    except ValueError as err:
        raise ValueError(f"{input_csv}: {err}") from None
    with atomic_open(output_csv) as handle:
        result.to_csv(handle, index=False)
    with atomic_open(output_csv.with_suffix(".md")) as handle:
        handle.write(to_markdown(result))
    return result
