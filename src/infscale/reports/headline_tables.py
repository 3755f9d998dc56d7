"""Headline tables shaped like the seed studies' own, read from the run's aggregates (nothing recomputed).

- `headline` (seed 000): one row per method at its headline selection (`report.headline: {method: rule@N}`), per
  question: Accuracy (%) | FLOPs (T) | Time (s) | Acc/TFLOP | Acc/Second | Efficiency Score | rank, with 95% CIs in
  a second column set, and visible / thought tokens per question (thought > 0 only for Quiet-STaR-type methods);
- `headline_labelling` (seed 001): confidence-weighted rules × N, self- vs proxy-labelled, accuracy and cost;
- `headline_cot` (seed 004): chain-of-thought vs standard prompting per model, with tokens and FLOPs, joined
  from the CoT study's own tables (`cot_scaling.smk`).

The full tables (`accuracy.csv`, `efficiency.csv`) keep every rule. Accuracy CIs are the accuracy table's 95%
bootstrap intervals over questions; FLOPs and seconds are measured, not sampled, so the CIs of Acc/TFLOP,
Acc/Second and the Efficiency Score are the accuracy CI divided (multiplied) by those fixed costs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from infscale.io import atomic_open, read_json
from infscale.reports.efficiency_table import efficiency_table, per_question_costs
from infscale.reports.tables import read_table

SPEC_PATTERN = re.compile(r"^(?P<rule>[a-z_]+)(\[(?P<weight>[^\]]+)\])?(@(?P<n>[1-9][0-9]*))?$")
KEYS = ["dataset", "model", "method"]


@dataclass(frozen=True)
class Selection:
    """A headline selection: `rule`, optional `weight` (a weight column, e.g. `prm-value-head:last`), and `n`
    (None: the method's whole pool, its largest N)."""

    rule: str
    weight: str = ""
    n: int | None = None

    @classmethod
    def parse(cls, text: str, where: str = "report.headline") -> "Selection":
        match = SPEC_PATTERN.match(text.strip())
        if not match:
            raise ValueError(f"{where}: {text!r} is not `rule`, `rule@N` or `rule[weight]@N` "
                             "(e.g. majority@16, weighted_majority[prm-value-head:last])")
        n = match["n"]
        return cls(match["rule"], match["weight"] or "", int(n) if n else None)

    def __str__(self) -> str:
        weight = f"[{self.weight}]" if self.weight else ""
        return f"{self.rule}{weight}" + (f"@{self.n}" if self.n else "")


def default_selection(method_cfg: Mapping[str, Any], weights: Sequence[str], search: bool = False) -> Selection:
    """Sampling: majority vote over its whole pool (its vote count). Tree search (`search`: the aggregation's
    `metrics.search`): weighted majority by its own PRM's last-step score when the run scores its leaves with it,
    else majority over its leaves."""
    if search and method_cfg.get("scorer"):
        weight = f"prm-{method_cfg['scorer']}:last"
        if weight in weights:
            return Selection("weighted_majority", weight)
    return Selection("majority")


def configured_selections(methods: Mapping[str, Any], configured: Mapping[str, str] | None) -> dict[str, Selection]:
    """`report.headline` parsed; an unknown method or a malformed selection raises, naming its key."""
    selections = {}
    for name, text in (configured or {}).items():
        if name not in methods:
            raise ValueError(f"report.headline.{name}: no such method under `methods:` (known: {sorted(methods)})")
        selections[name] = Selection.parse(text, f"report.headline.{name}")
    return selections


def headline_selections(methods: Mapping[str, Mapping[str, Any]], configured: Mapping[str, str] | None,
                        accuracy: pd.DataFrame, searches: Collection[str] = ()) -> dict[str, Selection]:
    """Each method of the accuracy table -> its headline selection (configured, else `default_selection`).
    `searches`: the methods whose metrics say they are tree searches (`search_methods`)."""
    chosen = configured_selections(methods, configured)
    selections = {}
    for name in dict.fromkeys(accuracy["method"]):
        if name in chosen:
            selections[name] = chosen[name]
        else:
            weights = sorted(set(accuracy.loc[accuracy["method"] == name, "weight"]) - {""})
            selections[name] = default_selection(methods.get(name, {}), weights, search=name in searches)
    return selections


def _select(rows: pd.DataFrame, selection: Selection, label: str) -> pd.Series:
    match = rows[(rows["rule"] == selection.rule) & (rows["weight"] == selection.weight)]
    if match.empty:
        have = sorted({f"{r}[{w}]" if w else r for r, w in zip(rows["rule"], rows["weight"])})
        raise ValueError(f"report.headline.{label}: no rule {selection.rule!r} with weight {selection.weight!r} "
                         f"in the accuracy table (this method has: {', '.join(have)})")
    n = selection.n if selection.n is not None else match["n"].max()
    at_n = match[match["n"] == n]
    if at_n.empty:
        raise ValueError(f"report.headline.{label}: {selection} has no N={n} "
                         f"(available N: {sorted(match['n'].astype(int).tolist())})")
    return at_n.iloc[0]


def search_methods(metrics_paths: Sequence[str | Path]) -> set[str]:
    """The methods whose pools the aggregation found to be tree searches (`metrics.search`)."""
    return {m["method"] for m in map(read_json, metrics_paths) if m.get("search")}


def token_split(metrics_paths: Sequence[str | Path]) -> pd.DataFrame:
    """Visible (generated) and thought tokens per question of each run's whole pool, and its pool size M."""
    rows = []
    for path in metrics_paths:
        metrics = read_json(path)
        tokens, questions = metrics.get("tokens", {}), max(int(metrics["n_questions"]), 1)
        rows.append({"dataset": metrics["dataset"], "model": metrics["model"], "method": metrics["method"],
                     "pool_size": int(metrics["n_samples"]),
                     "visible_tokens_pool": tokens.get("completion", math.nan) / questions,
                     "thought_tokens_pool": tokens.get("thought", 0) / questions})
    return pd.DataFrame(rows, columns=[*KEYS, "pool_size", "visible_tokens_pool", "thought_tokens_pool"])


HEADLINE_COLUMNS = [
    *KEYS, "selection", "n", "n_questions", "accuracy", "tflops_per_question", "seconds_per_question",
    "acc_per_tflop", "acc_per_second", "efficiency", "rank",
    "ci_low", "ci_high", "acc_per_tflop_low", "acc_per_tflop_high", "acc_per_second_low", "acc_per_second_high",
    "efficiency_low", "efficiency_high", "visible_tokens_per_question", "thought_tokens_per_question",
    "pass_accuracy", "device",
]


def headline_table(accuracy: pd.DataFrame, selections: Mapping[str, Selection],
                   tokens: pd.DataFrame | None = None, seed_rounding: bool = False) -> pd.DataFrame:
    """One row per (dataset, model, method) at its headline selection, ranked by Efficiency Score within each
    dataset/model (rank 1 = most efficient), per-question costs, CI columns, and the oracle pass@N at the same
    N (`pass_accuracy`, an upper bound: it needs the reference answer)."""
    rows = []
    for (dataset, model, method), group in accuracy.groupby(KEYS, sort=False):
        chosen = _select(group, selections[method], method)
        passed = group[(group["rule"] == "pass") & (group["n"] == chosen["n"])]
        rows.append({**chosen.to_dict(), "selection": str(Selection(chosen["rule"], chosen["weight"],
                                                                     int(chosen["n"]))),
                     "pass_accuracy": passed["accuracy"].iloc[0] if len(passed) else math.nan})
    table = per_question_costs(pd.DataFrame(rows))
    ranked = []
    for _, group in table.groupby(["dataset", "model"], sort=False):
        scored = efficiency_table(group.assign(tflops=group["tflops_per_question"],
                                               seconds=group["seconds_per_question"]), seed_rounding)
        ranked.append(group.assign(**{c: scored[c] for c in ("acc_per_tflop", "acc_per_second", "efficiency",
                                                            "rank")}))
    table = pd.concat(ranked)
    for bound in ("low", "high"):
        accuracy_bound = table[f"ci_{bound}"]
        table[f"acc_per_tflop_{bound}"] = accuracy_bound / table["tflops_per_question"]
        table[f"acc_per_second_{bound}"] = accuracy_bound / table["seconds_per_question"]
        table[f"efficiency_{bound}"] = table[f"acc_per_tflop_{bound}"] * table[f"acc_per_second_{bound}"] * 100
    if tokens is not None and not tokens.empty:
        table = table.merge(tokens, on=KEYS, how="left")
        share = table["n"] / table["pool_size"]
        table["visible_tokens_per_question"] = table["visible_tokens_pool"] * share
        table["thought_tokens_per_question"] = table["thought_tokens_pool"] * share
    table = table.sort_values(["dataset", "model", "rank"], kind="stable").reset_index(drop=True)
    return table.reindex(columns=HEADLINE_COLUMNS)


def _ci(low: float, high: float, fmt: str) -> str:
    return "" if pd.isna(low) or pd.isna(high) else f"[{low:{fmt}}, {high:{fmt}}]"


def headline_display(table: pd.DataFrame) -> pd.DataFrame:
    """The headline table as a reader sees it: the seed 000 columns, then the CI column set. Thought tokens
    appear only when some method thinks (Quiet-STaR)."""
    shown = pd.DataFrame({
        "Dataset": table["dataset"], "Model": table["model"], "Method": table["method"],
        "Selection": table["selection"], "Accuracy (%)": table["accuracy"],
        "FLOPs (T)": table["tflops_per_question"], "Time (s)": table["seconds_per_question"],
        "Acc/TFLOP": table["acc_per_tflop"], "Acc/Second": table["acc_per_second"],
        "Efficiency Score": table["efficiency"], "Rank": table["rank"].astype("Int64"),
        "Accuracy 95% CI": [_ci(lo, hi, ".1f") for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "Acc/TFLOP 95% CI": [_ci(lo, hi, ".4g") for lo, hi in zip(table["acc_per_tflop_low"],
                                                                    table["acc_per_tflop_high"])],
        "Acc/Second 95% CI": [_ci(lo, hi, ".4g") for lo, hi in zip(table["acc_per_second_low"],
                                                                     table["acc_per_second_high"])],
        "Efficiency 95% CI": [_ci(lo, hi, ".4g") for lo, hi in zip(table["efficiency_low"],
                                                                     table["efficiency_high"])],
        "Tokens/q (visible)": table["visible_tokens_per_question"],
    })
    if (table["thought_tokens_per_question"].fillna(0) > 0).any():
        shown["Tokens/q (thought)"] = table["thought_tokens_per_question"]
    shown["Oracle pass@N (%)"] = table["pass_accuracy"]
    return shown


def display_formats(columns: Sequence[str]) -> list[str]:
    """Percentages to 1 decimal, costs and ratios (which span decades) to 4 significant digits."""
    fixed = {"Accuracy (%)", "Oracle pass@N (%)", "Tokens/q (visible)", "Tokens/q (thought)"}
    return [".1f" if c in fixed else ".4g" for c in columns]


# ---------------------------------------------------------------------------------------------- seed 001


LABELLING_COLUMNS = [*KEYS, "rule", "n", "labeller", "mode", "accuracy", "ci_low", "ci_high",
                     "tflops_per_question", "seconds_per_question"]


def labelling_table(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Confidence-weighted rules × N, one row per labeller (`mode` self when it is the sampling model, else
    proxy), with unweighted majority at the same N as the reference (`labeller` "", mode "none")."""
    weighted = accuracy[accuracy["weight"].str.startswith("conf-")]
    runs = weighted[KEYS].drop_duplicates()
    reference = accuracy.merge(runs, on=KEYS)
    reference = reference[(reference["rule"] == "majority") & (reference["weight"] == "")]
    rows = pd.concat([reference, weighted])
    labeller = rows["weight"].str.removeprefix("conf-")
    rows = per_question_costs(rows.assign(labeller=labeller, mode=[
        "none" if not name else ("self" if name == model else "proxy") for name, model in zip(labeller, rows["model"])]))
    order = {"none": 0, "self": 1, "proxy": 2}
    rows = rows.assign(_order=rows["mode"].map(order)).sort_values([*KEYS, "rule", "n", "_order", "labeller"])
    return rows.reindex(columns=LABELLING_COLUMNS).reset_index(drop=True)


def labelling_display(table: pd.DataFrame) -> pd.DataFrame:
    """Wide: one row per (run, labelled rule, N); unweighted majority at that N, then per labeller its
    accuracy [CI] and per-question cost."""
    if table.empty:
        return pd.DataFrame()
    wide = []
    for (dataset, model, method, n), at_n in table.groupby([*KEYS, "n"], sort=False):
        reference = at_n[at_n["mode"] == "none"]
        for rule, group in at_n[at_n["mode"] != "none"].groupby("rule", sort=False):
            row = {"Dataset": dataset, "Model": model, "Method": method, "Rule": rule, "N": int(n)}
            for item in [*reference.itertuples(), *group.itertuples()]:
                who = "majority, no labels" if item.mode == "none" else f"{item.mode}: {item.labeller}"
                row[f"{who}: acc (%)"] = f"{item.accuracy:.1f} {_ci(item.ci_low, item.ci_high, '.1f')}"
                row[f"{who}: TFLOPs/q"] = item.tflops_per_question
                row[f"{who}: s/q"] = item.seconds_per_question
            wide.append(row)
    return pd.DataFrame(wide).sort_values(["Dataset", "Model", "Method", "Rule", "N"], kind="stable")


# ---------------------------------------------------------------------------------------------- seed 004


COT_COLUMNS = ["model", "task", "accuracy_standard", "ci_low_standard", "ci_high_standard", "accuracy_cot",
               "ci_low_cot", "ci_high_cot", "difference", "diff_ci_low", "diff_ci_high", "tokens_standard",
               "tokens_cot", "tflops_standard", "tflops_cot", "train_flops", "train_equivalent_flops"]


def cot_table(styles: pd.DataFrame, differences: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Seed 004's comparison in one table, joined from the CoT study's own tables (`cot_scaling.smk`): per model
    and task, standard and CoT accuracy with 95% CIs, the paired CoT − standard difference (percentage points,
    bootstrap CI over the same questions; task ALL pools a model's tasks), generated tokens and inference TFLOPs
    per question, and the model's training FLOPs (6·N·D) and train-equivalent FLOPs."""
    wide = styles.pivot_table(index=["model", "task"], columns="style",
                              values=["accuracy", "ci_low", "ci_high", "tokens", "flops"], aggfunc="first")
    wide.columns = [f"{value}_{style}" for value, style in wide.columns]
    wide = wide.reset_index()
    for style in ("standard", "cot"):
        wide[f"tflops_{style}"] = wide[f"flops_{style}"] / 1e12
    table = differences.merge(wide, on=["model", "task"], how="left")
    table = table.merge(models[["model", "train_flops", "train_equivalent_flops"]], on="model", how="left")
    return table.reindex(columns=COT_COLUMNS)


def cot_display(table: pd.DataFrame) -> pd.DataFrame:
    def with_ci(prefix: str, style: str) -> list[str]:
        return [f"{a:.1f} {_ci(lo, hi, '.1f')}" if pd.notna(a) else "" for a, lo, hi in
                zip(table[f"{prefix}_{style}"], table[f"ci_low_{style}"], table[f"ci_high_{style}"])]

    return pd.DataFrame({
        "Model": table["model"], "Task": table["task"],
        "Standard acc (%)": with_ci("accuracy", "standard"), "CoT acc (%)": with_ci("accuracy", "cot"),
        "CoT − standard (pp)": [f"{d:+.1f} {_ci(lo, hi, '+.1f')}" for d, lo, hi in
                                zip(table["difference"], table["diff_ci_low"], table["diff_ci_high"])],
        "Tokens/q standard": table["tokens_standard"], "Tokens/q CoT": table["tokens_cot"],
        "FLOPs/q standard (T)": table["tflops_standard"], "FLOPs/q CoT (T)": table["tflops_cot"],
        "Train FLOPs (6ND)": table["train_flops"], "Train-equivalent FLOPs": table["train_equivalent_flops"],
    })


# ---------------------------------------------------------------------------------------------- files


def write_headline_tables(accuracy_csv: str | Path, metrics_paths: Sequence[str | Path],
                          methods: Mapping[str, Mapping[str, Any]], configured: Mapping[str, str] | None,
                          outputs: Mapping[str, str | Path], seed_rounding: bool = False,
                          cot_tables: Mapping[str, str | Path] | None = None) -> dict[str, pd.DataFrame]:
    """The pipeline step: write `headline.{csv,md}` and, when named in `outputs`, `labelling_{csv,md}` and
    `cot_{csv,md}` (from the CoT study's tables `cot_tables`: styles, differences, models). Errors name the
    config key or file."""
    accuracy = read_table(accuracy_csv)
    tokens = token_split(metrics_paths)
    selections = headline_selections(methods, configured, accuracy, search_methods(metrics_paths))
    table = headline_table(accuracy, selections, tokens, seed_rounding)
    shown = headline_display(table)
    _write_pair(table, shown, outputs["csv"], outputs["md"], HEADLINE_TITLE)
    written = {"headline": table}
    if "labelling_csv" in outputs:
        labelled = labelling_table(accuracy)
        _write_pair(labelled, labelling_display(labelled), outputs["labelling_csv"], outputs["labelling_md"],
                    LABELLING_TITLE)
        written["labelling"] = labelled
    if "cot_csv" in outputs:
        cot = cot_table(pd.read_csv(cot_tables["styles"]), pd.read_csv(cot_tables["differences"]),
                        pd.read_csv(cot_tables["models"]))
        _write_pair(cot, cot_display(cot), outputs["cot_csv"], outputs["cot_md"], COT_TITLE)
        written["cot"] = cot
    return written


HEADLINE_TITLE = ("Headline (seed 000 layout): each method at its headline selection, per question; rank by "
                  "Efficiency Score = Acc/TFLOP × Acc/Second × 100 within each dataset/model; 95% bootstrap CIs "
                  "over questions")
LABELLING_TITLE = ("Confidence labelling (seed 001 layout): labelled rules × N, self- vs proxy-labelled, accuracy "
                   "(95% bootstrap CI over questions) and cost per question (sampling + that labeller)")
COT_TITLE = ("CoT vs standard prompting (seed 004 layout): greedy accuracy (95% bootstrap CI over questions), the "
             "paired CoT − standard difference, tokens and FLOPs per question, training and train-equivalent FLOPs")


def _write_pair(table: pd.DataFrame, shown: pd.DataFrame, csv_path: str | Path, md_path: str | Path,
                title: str) -> None:
    """The CSV keeps the machine's columns; its Markdown twin shows the reader's (`*_display`)."""
    with atomic_open(csv_path) as handle:
        table.to_csv(handle, index=False)
    with atomic_open(md_path) as handle:
        body = shown.astype(object).where(shown.notna(), None).to_markdown(
            index=False, floatfmt=display_formats(list(shown.columns)), missingval="") if len(shown) else "(none)"
        handle.write(f"# {title}\n\n{body}\n")
