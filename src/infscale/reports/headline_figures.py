"""Headline figures for a paper: each method at its headline selection (the headline table's rows), at most
`MAX_SERIES` methods per panel, one colour per method in every figure (`method_palette`), fixed paper width,
readable log axes, the compute-optimal frontier and the oracle (pass@N) marked. Every rule is in the
"all rules" figures (`plots.plot_accuracy_vs_cost`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from infscale.reports.efficiency_table import per_question_costs
from infscale.reports.headline_tables import KEYS, Selection
from infscale.reports.tables import read_table
from infscale.reports.plots import (Line2D, distinct_palette, pareto_frontier, plt, readable_log_axis, save_figure,
                                    sns)

MAX_SERIES = 6            # methods per panel; the rest are in the all-rules figures
TOP_RANKED = 10           # bars per ranking panel
PAPER_WIDTH = 7.0         # inches: a two-column paper's full text width
PANEL_HEIGHT = 2.6        # inches per dataset/model row
LEGEND_LABEL_CHARS_3_COLUMNS = 38  # longest legend label that three columns fit across PAPER_WIDTH at 7 pt
COSTS = {"tflops_per_question": "inference compute per question (TFLOPs)",
         "seconds_per_question": "wall time per question (s)"}


def method_palette(methods: Sequence[str]) -> dict:
    """One colour per method name, fixed by the config's method order so it is the same in every figure."""
    return distinct_palette(methods)


def _label(row) -> str:
    return f"{row['method']} ({row['selection']})"


def _panels(headline: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """(dataset, model) -> its best `MAX_SERIES` headline rows, by rank."""
    return [(key, group.sort_values("rank", kind="stable").head(MAX_SERIES))
            for key, group in headline.groupby(["dataset", "model"], sort=False)]


def _curve(accuracy: pd.DataFrame, row: pd.Series, rule: str | None = None) -> pd.DataFrame:
    """The accuracy rows of `row`'s method with its headline rule and weight (or `rule`, unweighted) up to its
    headline N, per question, sorted by N."""
    selection = Selection.parse(row["selection"])
    rule, weight = (rule, "") if rule else (selection.rule, selection.weight)
    mask = ((accuracy[KEYS] == row[KEYS].tolist()).all(axis=1) & (accuracy["rule"] == rule)
            & (accuracy["weight"] == weight) & (accuracy["n"] <= row["n"]))
    return per_question_costs(accuracy[mask]).sort_values("n")


def plot_headline(accuracy: pd.DataFrame, headline: pd.DataFrame, png_path: str | Path,
                  palette: Mapping[str, tuple]) -> None:
    """Accuracy against TFLOPs and against seconds per question, one row of panels per dataset/model: each
    method's headline rule through N = 1 … its headline N with a 95% CI band, the headline point enlarged, the
    oracle pass@N at the headline N as an open triangle, and the frontier over the headline curves in black."""
    if headline.empty:
        raise ValueError("plot_headline: empty headline table")
    panels = _panels(headline)
    labels = [_label(row) for _, rows in panels for _, row in rows.iterrows()]
    # legend columns that fit the paper width: a selection like `weighted_majority[prm-value-head:last]@16` is long
    n_columns = 3 if max(map(len, labels)) <= LEGEND_LABEL_CHARS_3_COLUMNS else 2
    legend_height = 0.15 + 0.17 * math.ceil((len(set(labels)) + 3) / n_columns)  # inches, below the panels
    height = PANEL_HEIGHT * len(panels) + legend_height
    sns.set_theme(style="whitegrid", font_scale=0.8)
    fig, axes = plt.subplots(len(panels), len(COSTS), figsize=(PAPER_WIDTH, height), squeeze=False, sharey="row")
    handles = {}
    for axes_row, ((dataset, model), rows) in zip(axes, panels):
        points = []
        for ax, (cost, cost_label) in zip(axes_row, COSTS.items()):
            for _, row in rows.iterrows():
                colour = palette[row["method"]]
                curve = _curve(accuracy, row)
                points.append(curve.assign(_ax=cost))
                line, = ax.plot(curve[cost], curve["accuracy"], color=colour, marker="o", markersize=3.5,
                                linewidth=1.4, label=_label(row))
                ax.fill_between(curve[cost], curve["ci_low"], curve["ci_high"], color=colour, alpha=0.15,
                                linewidth=0)
                ax.scatter([row[cost]], [row["accuracy"]], s=60, color=colour, edgecolors="black", zorder=7)
                if pd.notna(row["pass_accuracy"]):
                    ax.scatter([row[cost]], [row["pass_accuracy"]], s=40, marker="^", facecolors="none",
                               edgecolors=colour, linewidths=1.2, zorder=6)
                handles.setdefault(_label(row), line)
            drawn = pd.concat([p for p in points if p["_ax"].iloc[0] == cost])
            front = drawn[pareto_frontier(drawn, cost)].sort_values(cost)
            ax.step(front[cost], front["accuracy"], where="post", color="black", linewidth=1.0, zorder=5)
            ax.scatter(front[cost], front["accuracy"], s=110, facecolors="none", edgecolors="black", linewidths=1.0,
                       zorder=8)
            readable_log_axis(ax.xaxis, drawn[cost])
            ax.set_xlabel(cost_label + (" (log)" if ax.get_xscale() == "log" else ""))
            ax.set_title(f"{dataset} / {model}", fontsize=9)
        axes_row[0].set_ylabel("accuracy (%)")
    extra = [Line2D([], [], color="black", linewidth=1.0, marker="o", markerfacecolor="none", markersize=8,
                    label="compute-/time-optimal frontier"),
             Line2D([], [], marker="o", color="grey", markeredgecolor="black", linestyle="", markersize=7,
                    label="headline point (table row)"),
             Line2D([], [], marker="^", color="grey", markerfacecolor="none", linestyle="",
                    label="oracle pass@N (needs the answer)")]
    fig.legend(handles=[*handles.values(), *extra], loc="lower center", ncol=n_columns, fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, legend_height / height, 1, 1))
    save_figure(fig, png_path, fixed_size=True)


def plot_headline_ranking(headline: pd.DataFrame, png_path: str | Path, palette: Mapping[str, tuple]) -> None:
    """Efficiency Score of the headline rows, best on top, top `TOP_RANKED` per dataset/model, with the 95% CI
    (from the accuracy CI) as error bars; bars in each method's colour."""
    if headline.empty:
        raise ValueError("plot_headline_ranking: empty headline table")
    groups = [(key, group.sort_values("rank", kind="stable").head(TOP_RANKED))
              for key, group in headline.groupby(["dataset", "model"], sort=False)]
    heights = [len(g) for _, g in groups]
    sns.set_theme(style="whitegrid", font_scale=0.8)
    fig, axes = plt.subplots(len(groups), 1, figsize=(PAPER_WIDTH, 0.4 * sum(heights) + 0.9 * len(groups)),
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    for ax, ((dataset, model), rows) in zip(axes[:, 0], groups):
        labels = [f"#{int(r['rank'])} {r['method']}\n{r['selection']}" for _, r in rows.iterrows()]
        y = range(len(rows))
        errors = [(rows["efficiency"] - rows["efficiency_low"]).clip(lower=0),
                  (rows["efficiency_high"] - rows["efficiency"]).clip(lower=0)]
        ax.barh(list(y), rows["efficiency"], color=[palette[m] for m in rows["method"]], xerr=errors,
                error_kw={"elinewidth": 0.8, "capsize": 2})
        ax.set_yticks(list(y), labels)
        ax.invert_yaxis()
        values = pd.concat([rows["efficiency"], rows["efficiency_low"], rows["efficiency_high"]])
        readable_log_axis(ax.xaxis, values[values > 0])
        ax.set_xlabel("Efficiency Score per question\n(Acc/TFLOP × Acc/Second × 100"
                      + (", log axis)" if ax.get_xscale() == "log" else ")"))
        ax.set_title(f"{dataset} / {model}: headline rows, rank 1 on top", fontsize=9)
    fig.tight_layout()
    save_figure(fig, png_path, fixed_size=True)


def write_headline_figures(accuracy_csv: str | Path, headline_csv: str | Path, methods: Sequence[str],
                           curves_png: str | Path, ranking_png: str | Path) -> None:
    accuracy, headline = read_table(accuracy_csv), read_table(headline_csv)
    palette = method_palette(methods)
    plot_headline(accuracy, headline, curves_png, palette)
    plot_headline_ranking(headline, ranking_png, palette)
