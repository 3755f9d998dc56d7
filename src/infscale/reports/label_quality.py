"""Confidence labels (seed 001): label quality (AUROC, ECE, reliability diagram) and the labelled selection
rules' accuracy against N, wall time and FLOPs, self- vs proxy-labelled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from infscale.stats import auroc
from infscale.io import read_json, read_jsonl
from infscale.reports.plots import distinct_palette, panel_axes, plt, readable_log_axis, save_figure, sns
from infscale.reports.tables import write_table

# The four rules of the study's accuracy-vs-N figure; best_of_n weighted by a confidence label is BestConf.
RULE_NAMES = {"majority": "majority", "weighted_majority": "weighted majority", "best_of_n": "best conf",
              "best_conf": "best conf", "pass": "pass@N"}


def calibration_bins(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> pd.DataFrame:
    """Equal-width confidence bins on [0, 1] (the last one closed): count, mean confidence, accuracy per bin."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=float)
    if conf.shape != ok.shape:
        raise ValueError(f"confidence ({conf.shape}) and correct ({ok.shape}) differ in shape")
    if conf.size and (conf.min() < 0 or conf.max() > 1):
        raise ValueError("confidence values must lie in [0, 1]")
    index = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = index == b
        count = int(inside.sum())
        rows.append({"bin": b, "lower": b / n_bins, "upper": (b + 1) / n_bins, "count": count,
                     "mean_confidence": float(conf[inside].mean()) if count else float("nan"),
                     "accuracy": float(ok[inside].mean()) if count else float("nan")})
    return pd.DataFrame(rows)


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """ECE = Σ_bins (n_b / n) · |accuracy_b − mean confidence_b| over equal-width bins."""
    bins = calibration_bins(confidence, correct, n_bins)
    used = bins[bins["count"] > 0]
    total = used["count"].sum()
    if total == 0:
        return float("nan")
    return float((used["count"] / total * (used["accuracy"] - used["mean_confidence"]).abs()).sum())


def labelled_pool(graded_path: str | Path, labels_path: str | Path) -> pd.DataFrame:
    """Graded responses joined with their confidence labels on (id, sample); every response must have one."""
    graded = pd.DataFrame(read_jsonl(graded_path))[["id", "sample", "correct"]]
    labels = pd.DataFrame(read_jsonl(labels_path))
    if labels.empty or "confidence" not in labels.columns:
        raise ValueError(f"{labels_path}: no confidence labels")
    merged = graded.merge(labels, on=["id", "sample"], how="left", validate="one_to_one")
    missing = merged["confidence"].isna()
    if missing.any():
        first = merged.loc[missing, ["id", "sample"]].iloc[0].tolist()
        raise ValueError(f"{labels_path}: no label for {int(missing.sum())} response(s) of {graded_path}, e.g. {first}")
    return merged


def label_quality(runs: Sequence[Sequence[str]], graded_paths: Sequence[str | Path],
                  label_paths: Sequence[str | Path], n_bins: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per (dataset, model, method, labeller): how well the labels separate and calibrate correctness.

    Returns (the quality table, the reliability bins of every labeller run). `mode` is "self" when the labeller is
    the sampling model, else "proxy".
    """
    if not len(runs) == len(graded_paths) == len(label_paths):
        raise ValueError(f"{len(runs)} runs, {len(graded_paths)} graded files and {len(label_paths)} label files")
    rows, bins = [], []
    for (dataset, model, method, labeller), graded, labels in zip(runs, graded_paths, label_paths):
        pool = labelled_pool(graded, labels)
        key = {"dataset": dataset, "model": model, "method": method, "labeller": labeller,
               "mode": "self" if labeller == model else "proxy"}
        conf, ok = pool["confidence"].to_numpy(float), pool["correct"].to_numpy(bool)
        rows.append({**key, "n_responses": len(pool), "accuracy": 100 * ok.mean(),
                     "mean_confidence": conf.mean(), "auroc": auroc(conf, ok),
                     "ece": expected_calibration_error(conf, ok, n_bins),
                     "brier": float(np.mean((conf - ok) ** 2)),
                     "digit_mass": float(pool["digit_mass"].mean()) if "digit_mass" in pool else float("nan"),
                     "label_tflops": float(pool["flops"].sum()) / 1e12, "label_seconds": float(pool["seconds"].sum())})
        bins.append(calibration_bins(conf, ok, n_bins).assign(**key))
    return pd.DataFrame(rows), pd.concat(bins, ignore_index=True) if bins else pd.DataFrame()


def plot_reliability(bins: pd.DataFrame, png_path: str | Path, quality: pd.DataFrame | None = None) -> None:
    """Reliability diagram: accuracy against mean confidence per bin, one line per labelled run, the diagonal
    for perfect calibration; marker size grows with the bin's response count."""
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for key, group in bins[bins["count"] > 0].groupby(["dataset", "model", "method", "labeller"], sort=False):
        label = f"{key[0]} / {key[1]} / {key[2]} ← {key[3]}"
        if quality is not None:
            q = quality[(quality[["dataset", "model", "method", "labeller"]] == list(key)).all(axis=1)]
            if len(q):
                label += f" (AUROC {q['auroc'].iloc[0]:.2f}, ECE {q['ece'].iloc[0]:.2f})"
        ax.plot(group["mean_confidence"], group["accuracy"], marker="o", label=label)
        ax.scatter(group["mean_confidence"], group["accuracy"], s=10 + 200 * group["count"] / group["count"].sum(),
                   alpha=0.3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean confidence label in bin")
    ax.set_ylabel("share of responses correct in bin")
    ax.set_title("Reliability of confidence labels")
    ax.legend(fontsize=7, loc="upper left")
    save_figure(fig, png_path)


def write_label_quality(runs: Sequence[Sequence[str]], graded_paths: Sequence[str | Path],
                        label_paths: Sequence[str | Path], csv_path: str | Path, md_path: str | Path,
                        png_path: str | Path, n_bins: int = 10) -> pd.DataFrame:
    table, bins = label_quality(runs, graded_paths, label_paths, n_bins)
    write_table(table, csv_path, md_path, f"Confidence label quality (AUROC vs correctness, ECE over {n_bins} bins)",
                floatfmt=".3f")
    plot_reliability(bins, png_path, table)
    return table


# ---------------------------------------------------------------------------------------------- rules & cost


def labelled_rows(metrics_paths: Sequence[str | Path]) -> pd.DataFrame:
    """Metrics rows for the confidence figures: unweighted majority / pass rows and every `conf-*` weighted row,
    with `labeller` ("" when unweighted), `mode` (self | proxy | none) and a readable `selection`."""
    rows = []
    for path in metrics_paths:
        metrics = read_json(path)
        for row in metrics["rows"]:
            weight = row.get("weight") or ""
            if weight and not weight.startswith("conf-"):
                continue
            if not weight and row["rule"] not in ("majority", "pass"):
                continue
            labeller = weight.removeprefix("conf-")
            mode = "none" if not labeller else ("self" if labeller == metrics["model"] else "proxy")
            selection = RULE_NAMES.get(row["rule"], row["rule"]) + (f" ← {labeller}" if labeller else "")
            rows.append({"dataset": metrics["dataset"], "model": metrics["model"], "method": metrics["method"],
                         **row, "labeller": labeller, "mode": mode, "selection": selection})
    if not rows:
        raise ValueError("no majority, pass or confidence-weighted rows in the metrics files")
    return pd.DataFrame(rows)


def plot_rules_vs_n(table: pd.DataFrame, png_path: str | Path) -> None:
    """Accuracy against N for majority, weighted majority, best conf and pass@N, one panel per sampled run,
    with 95% CI bands."""
    table = table.assign(panel=table["dataset"] + " / " + table["model"] + " / " + table["method"])
    fig, panels, palette = panel_axes(table, 6, 4.5)
    for ax, panel in panels:
        sub = table[table["panel"] == panel]
        for selection, group in sub.groupby("selection", sort=False):
            group = group.sort_values("n")
            dashed = group["rule"].iloc[0] == "pass"
            ax.plot(group["n"], group["accuracy"], marker="o", color=palette[selection], label=selection,
                    linestyle="--" if dashed else "-")
            ax.fill_between(group["n"], group["ci_low"], group["ci_high"], alpha=0.12, color=palette[selection],
                            linewidth=0)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("samples per question N (log2)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(panel, fontsize=9)
        ax.legend(fontsize=7)
    save_figure(fig, png_path)


def plot_cost(table: pd.DataFrame, png_path: str | Path) -> None:
    """Accuracy against wall time and against TFLOPs (sampling + labelling at each N) for the labelled rules,
    self- vs proxy-labelled, with plain majority voting as the unlabelled reference."""
    data = table[table["rule"] != "pass"].copy()
    data["curve"] = data["model"] + " / " + data["method"] + ": " + data["selection"]
    curves = list(dict.fromkeys(data["curve"]))
    palette = distinct_palette(curves)
    styles = {"none": ":", "self": "-", "proxy": "--"}
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, (column, label) in zip(axes, (("seconds", "wall time (s, sampling + labelling)"),
                                          ("tflops", "TFLOPs (sampling + labelling)"))):
        for curve, group in data.groupby("curve", sort=False):
            group = group.sort_values("n")
            ax.plot(group[column], group["accuracy"], marker="o", markersize=4, color=palette[curve],
                    linestyle=styles[group["mode"].iloc[0]], label=f"{curve} [{group['mode'].iloc[0]}]")
        readable_log_axis(ax.xaxis, data[column])
        ax.set_xlabel(label + (" (log)" if ax.get_xscale() == "log" else ""))
        ax.set_ylabel("accuracy (%)")
    axes[0].set_title("accuracy vs time: self- (solid) vs proxy-labelled (dashed)", fontsize=9)
    axes[1].set_title("accuracy vs compute", fontsize=9)
    axes[1].legend(fontsize=6, loc="lower right")
    save_figure(fig, png_path)


def plot_confidence(metrics_paths: Sequence[str | Path], rules_png: str | Path, cost_png: str | Path) -> pd.DataFrame:
    table = labelled_rows(metrics_paths)
    plot_rules_vs_n(table, rules_png)
    plot_cost(table, cost_png)
    return table
