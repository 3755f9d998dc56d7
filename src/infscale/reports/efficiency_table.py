"""The efficiency table (DESIGN §5): accuracy per TFLOP, per second, and their product, ranked.

    Acc/TFLOP  = accuracy (%) / TFLOPs
    Acc/s      = accuracy (%) / seconds
    Efficiency = Acc/TFLOP × Acc/s × 100          rank 1 = most efficient, ties share the lowest rank

Seed 000 computed its ratios from the table's displayed values, accuracy, TFLOPs and seconds each to 2 decimals
(REBASE+QuietSTaR: 9.38 / 4.25 = 2.21, where 12/128 = 9.375 % over 4.2533 TFLOPs gives 2.20), and multiplied
Acc/TFLOP and Acc/s after rounding each to 2 decimals (REBASE w=3: 4.66 × 1.29 × 100 = 601.14, where the
unrounded product is 601.3); `seed_rounding=True` reproduces its digits, the default does not round.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from infscale.reports.tables import read_table, write_table

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
    With `seed_rounding`, accuracy, TFLOPs and seconds are rounded to 2 decimals before dividing, Acc/TFLOP and
    Acc/s to 2 decimals before the product and the efficiency to 2 decimals after it, as in the seed 000 table.
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
            if seed_rounding and round(value, SEED_DECIMALS) == 0:
                raise ValueError(f"method {method!r}: {column} {value:.3g} rounds to 0 at the seed table's "
                                 f"{SEED_DECIMALS} decimals; turn report.seed_rounding off for runs this small")
    if seed_rounding:
        accuracy, tflops, seconds = (v.round(SEED_DECIMALS) for v in (accuracy, tflops, seconds))

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


# ----------------------------------------------------------------------------------------------------------
# The pipeline's efficiency table: every selection rule of a run at its full pool, ranked per dataset/model

GROUP = ["dataset", "model"]
RULE_KEYS = ["dataset", "model", "method", "rule", "weight"]
SEED000_COLUMNS = ["tflops_seed000", "tflops_seed000_per_question", "acc_per_tflop_seed000", "efficiency_seed000",
                   "rank_seed000"]
ORACLE_RULES = ("pass",)
EFFICIENCY_COLUMNS = [*RULE_KEYS, "oracle", "n", "n_questions", "accuracy", "ci_low", "ci_high", "tflops", "seconds",
                      "tokens", "tflops_per_question", "seconds_per_question", "load_seconds", "device",
                      "torch_threads", "acc_per_tflop", "acc_per_second", "efficiency", "rank", *SEED000_COLUMNS]
# run totals -> the per-question averages the ratios divide by (seed 000's "Average FLOPs/Time per Question")
PER_QUESTION = {"tflops": "tflops_per_question", "seconds": "seconds_per_question",
                "tflops_seed000": "tflops_seed000_per_question"}


def per_question_costs(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` of an accuracy table with the `PER_QUESTION` columns: each run total / the row's `n_questions`."""
    for column in ("tflops_seed000", "n_questions"):
        if column not in rows.columns:
            raise ValueError(f"accuracy table: missing column {column!r} (written before this column existed?)")
    n_questions = _numeric(rows.assign(method=rows.apply(_row_label, axis=1)), "n_questions")
    if (n_questions < 1).any():
        raise ValueError(f"accuracy table: row {_row_label(rows[n_questions < 1].iloc[0])!r} has n_questions < 1")
    return rows.assign(**{per_question: pd.to_numeric(rows[total], errors="coerce") / n_questions
                          for total, per_question in PER_QUESTION.items()})


def full_pool_rows(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Each (dataset, model, method, rule, weight) of an accuracy table at its largest N.

    The largest N uses the whole pool of M responses a method generated, so its cost is the run's real cost
    (`mean` there is the accuracy of one response averaged over the pool, charged for all M).
    """
    missing = [c for c in [*RULE_KEYS, "n"] if c not in accuracy.columns]
    if missing:
        raise ValueError(f"accuracy table: missing column(s) {', '.join(map(repr, missing))}")
    if accuracy.empty:
        raise ValueError("accuracy table: no rows")
    largest = accuracy.groupby(RULE_KEYS, sort=False)["n"].transform("max")
    return accuracy[accuracy["n"] == largest].reset_index(drop=True)


def efficiency_report(accuracy: pd.DataFrame, seed_rounding: bool = False,
                      oracle_rules: tuple[str, ...] = ORACLE_RULES) -> pd.DataFrame:
    """The efficiency table of a run: `full_pool_rows` with `efficiency_table`'s columns ranked within each
    dataset/model, and beside them the same efficiency under seed 000's FLOP accounting (`*_seed000`).

    Acc/TFLOP and Acc/s divide by the *per-question* TFLOPs and seconds (a row's run totals / `n_questions`),
    as seed 000's table did (its FLOPs (T) and Time (s) are averages per question, all votes or leaves of a
    question included), so the ratios do not shrink with the number of questions a run evaluates.

    Oracle rules (pass@N needs the reference answer: an upper bound, not a method) keep their efficiency but no
    rank (`oracle` column True). Rows are sorted by dataset, model, oracle and rank.
    """
    rows = per_question_costs(full_pool_rows(accuracy))
    rows["oracle"] = rows["rule"].isin(oracle_rules)
    tables = []
    for (*_, oracle), group in rows.groupby([*GROUP, "oracle"], sort=False):
        labelled = group["accuracy"].to_frame().assign(method=group.apply(_row_label, axis=1))
        ours = efficiency_table(labelled.assign(tflops=group["tflops_per_question"],
                                                seconds=group["seconds_per_question"]), seed_rounding)
        if (group["tflops_seed000_per_question"] > 0).all():
            theirs = efficiency_table(labelled.assign(tflops=group["tflops_seed000_per_question"],
                                                      seconds=group["seconds_per_question"]), seed_rounding)
        else:  # seed 000 counts generated tokens only: a pool that generated none costs 0, so no seed-000 ranking
            theirs = pd.DataFrame({c: float("nan") for c in ("acc_per_tflop", "efficiency", "rank")}, index=ours.index)
        ours = group.assign(**{c: ours[c] for c in ("acc_per_tflop", "acc_per_second", "efficiency", "rank")})
        for column in ("acc_per_tflop", "efficiency", "rank"):
            ours[f"{column}_seed000"] = theirs[column]
        if oracle:
            ours[["rank", "rank_seed000"]] = pd.NA
        tables.append(ours)
    table = pd.concat(tables)
    table[["rank", "rank_seed000"]] = table[["rank", "rank_seed000"]].astype("Int64")
    table = table.sort_values([*GROUP, "oracle", "rank"], kind="stable").reset_index(drop=True)
    return table[[c for c in EFFICIENCY_COLUMNS if c in table.columns]]


def _row_label(row: pd.Series) -> str:
    """`method rule[weight]`: names a row in error messages."""
    weight = f"[{row['weight']}]" if row["weight"] else ""
    return f"{row['method']} {row['rule']}{weight}"


def markdown_formats(columns: list[str]) -> list[str]:
    """Accuracy-like columns to 2 decimals; compute, time and ratios, which span decades, to 4 significant digits."""
    fixed = {"accuracy", "ci_low", "ci_high"}
    return [".2f" if c in fixed else ".4g" for c in columns]


def efficiency_report_file(accuracy_csv: str | Path, output_csv: str | Path, output_md: str | Path,
                           seed_rounding: bool = False) -> pd.DataFrame:
    """The pipeline step: `results/tables/accuracy.csv` -> the efficiency table as CSV and Markdown."""
    try:
        table = efficiency_report(read_table(accuracy_csv), seed_rounding=seed_rounding)
    except ValueError as err:
        raise ValueError(f"{accuracy_csv}: {err}") from None
    title = ("Efficiency: every selection rule at its full pool, ranked per dataset/model "
             "(Acc/TFLOP, Acc/s per question: run totals / n_questions; Efficiency = Acc/TFLOP × Acc/s × 100; "
             "`*_seed000`: with seed 000's FLOP count)")
    write_table(table, output_csv, output_md, title, floatfmt=markdown_formats(list(table.columns)))
    return table
