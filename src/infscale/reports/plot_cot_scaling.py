"""Seed 004's two figures, from the per-model table `infscale.reports.cot_scaling.analyse` writes.

- CoT improvement against training FLOPs 6·N·D (log x), one line per family (the study's
  `cot_improvement_by_train_flops`), with the paired 95% CI over questions where the pipeline measured it;
- intersecting lines (the study's `granular_analysis.intersecting_lines`): total FLOPs (training + inference)
  against the number of requests R, for CoT on the model and for standard prompting on its train-equivalent
  model; the crossover R* marked and the two regimes shaded, one panel per model.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from infscale.reports.cot_scaling import total_cost
from infscale.reports.plots import distinct_palette, plt, save_figure, sns

REGIME_COLOURS = {"cot": "tab:green", "standard": "tab:orange"}
REGIME_LABELS = {"cot": "CoT on this model is cheaper", "standard": "standard on a train-equivalent model is cheaper"}


def plot_cot_improvement(models: pd.DataFrame, differences: pd.DataFrame | None, png_path: str | Path) -> None:
    """CoT − standard accuracy against 6·N·D, one line per family; error bars: the paired CI over all tasks."""
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    palette = distinct_palette(models["family"])
    ci = None
    if differences is not None:
        ci = differences[differences["task"] == "ALL"].set_index("model")[["diff_ci_low", "diff_ci_high"]]
    for family, rows in models.sort_values("train_flops").groupby("family", sort=False):
        colour = palette[family]
        ax.plot(rows["train_flops"], rows["cot_improvement"], marker="o", color=colour, label=family)
        for row in rows.itertuples():
            if ci is not None and row.model in ci.index:
                low, high = ci.loc[row.model]
                ax.errorbar(row.train_flops, row.cot_improvement, color=colour, capsize=3,
                            yerr=[[row.cot_improvement - low], [high - row.cot_improvement]])
            ax.annotate(row.model, (row.train_flops, row.cot_improvement), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs 6·N·D")
    ax.set_ylabel("CoT − standard accuracy" + (" (pp, 95% CI)" if ci is not None else ""))
    ax.set_title("Chain-of-thought improvement by training compute")
    ax.legend(title="family", fontsize=8)
    save_figure(fig, png_path)


def _cheaper_at(row: pd.Series, requests: float) -> str:
    costs = total_cost(row, np.array([requests]))
    return "cot" if costs["cot"][0] <= costs["standard"][0] else "standard"


def plot_intersecting_lines(models: pd.DataFrame, png_path: str | Path, max_requests: float = 1e15) -> None:
    """Total cost against requests R (log-log), CoT vs the train-equivalent standard model, one panel per model
    with train-equivalent FLOPs; R* marked (dashed) and each regime shaded by the strategy that is cheaper."""
    rows = models[np.isfinite(models["train_equivalent_flops"])]
    sns.set_theme(style="whitegrid")
    if rows.empty:
        # a run of one model (or of models with one training-FLOP value) has no fit to invert: say so in the figure
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no model has train-equivalent FLOPs:\nthe fit needs two distinct training-FLOP values",
                ha="center", va="center")
        save_figure(fig, png_path)
        return
    n_cols = min(3, len(rows))
    n_rows = math.ceil(len(rows) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(5.2 * n_cols, 4.0 * n_rows), squeeze=False)
    requests = np.logspace(0, math.log10(max_requests), 200)
    for ax, (_, row) in zip(axes.flat, rows.iterrows()):
        costs = total_cost(row, requests)
        ax.plot(requests, costs["cot"], label="chain of thought: 6ND + 2·R·N·tokens_cot", color="tab:blue")
        ax.plot(requests, costs["standard"], label="standard: train-equivalent + 2·R·N·tokens_std", color="tab:red")
        crossover = row["crossover_requests"]
        edges = [1.0, max_requests]
        if np.isfinite(crossover) and 1.0 < crossover < max_requests:
            edges = [1.0, crossover, max_requests]
            ax.axvline(crossover, color="black", linestyle="--", linewidth=1)
            ax.plot([crossover], total_cost(row, np.array([crossover]))["cot"], "ko")
            ax.annotate(f"R* = {crossover:.3g}", (crossover, ax.get_ylim()[0]), textcoords="offset points",
                        xytext=(4, 8), fontsize=8)
        for left, right in zip(edges[:-1], edges[1:]):
            regime = _cheaper_at(row, math.sqrt(left * right))
            ax.axvspan(left, right, color=REGIME_COLOURS[regime], alpha=0.12, linewidth=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(1.0, max_requests)
        title = f"{row['model']} ({row['fit']} fit)"
        if not np.isfinite(crossover):
            title += "\nno crossover at R > 0"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("inference requests R")
        ax.set_ylabel("total FLOPs (train + inference)")
    for ax in list(axes.flat)[len(rows):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    handles += [Patch(color=REGIME_COLOURS[k], alpha=0.3) for k in REGIME_COLOURS]
    labels += list(REGIME_LABELS.values())
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, 0.0))
    save_figure(fig, png_path)
