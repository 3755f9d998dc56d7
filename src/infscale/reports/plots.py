"""Figures (seaborn): written as PNG and PDF, axes labelled with units."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def save_figure(fig: plt.Figure, png_path: str | Path) -> None:
    """Save as PNG and as a PDF twin beside it (written to temp names, then renamed)."""
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    for path in (png_path, png_path.with_suffix(".pdf")):
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
        tmp.replace(path)
    plt.close(fig)


def rule_label(row: pd.Series) -> str:
    return f"{row['rule']}[{row['weight']}]" if row.get("weight") else row["rule"]


def plot_accuracy_vs_n(table: pd.DataFrame, png_path: str | Path) -> None:
    """Accuracy against the number of samples N for every rule, one panel per dataset/model, CI bands."""
    data = table.assign(selection=table.apply(rule_label, axis=1), panel=table["dataset"] + " / " + table["model"])
    panels = list(dict.fromkeys(data["panel"]))
    selections = list(dict.fromkeys(data["selection"]))
    palette = dict(zip(selections, sns.color_palette(n_colors=len(selections))))
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False, sharey=True)
    for ax, panel in zip(axes[0], panels):
        sub = data[data["panel"] == panel]
        sns.lineplot(data=sub, x="n", y="accuracy", hue="selection", style="method", markers=True, ax=ax,
                     palette=palette, errorbar=None)
        for (selection, _method), group in sub.groupby(["selection", "method"]):
            ax.fill_between(group["n"], group["ci_low"], group["ci_high"], alpha=0.15, color=palette[selection],
                            linewidth=0)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("samples per question N (log2)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(panel)
    save_figure(fig, png_path)
