"""Figures (seaborn): written as PNG and PDF, axes labelled with units."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from infscale.figures import plt, save_figure
from infscale.reports.efficiency_table import ORACLE_RULES


def distinct_palette(names) -> dict:
    """One colour per name, never repeating: seaborn's default cycle has 10 colours, so more names get
    evenly spaced hues."""
    names = list(dict.fromkeys(names))
    colours = sns.color_palette(n_colors=len(names)) if len(names) <= 10 else sns.color_palette("husl", len(names))
    return dict(zip(names, colours))


def panel_axes(data: pd.DataFrame, width: float, height: float):
    """Side-by-side panels, one per distinct `data["panel"]` (in order of appearance), sharing the y-axis, and
    one colour per distinct `data["selection"]`. Returns (figure, [(axis, panel name)], palette)."""
    panels = list(dict.fromkeys(data["panel"]))
    palette = distinct_palette(data["selection"])
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), height), squeeze=False, sharey=True)
    return fig, list(zip(axes[0], panels)), palette


def readable_log_axis(axis, values: pd.Series) -> None:
    """Log scale when `values` span a decade, else a linear axis with at most 5 ticks. Log ticks at 1, 2 and 5 ×
    10^k over up to two decades (only 10^k beyond), labelled as plain numbers within 0.001-99999 and as powers of
    ten outside (the default minor labels overlap on short ranges)."""
    if not _spans_decades(values):
        axis.set_major_locator(MaxNLocator(5))
        return
    positive = values[values > 0]
    decades = math.log10(positive.max() / positive.min())
    axis.axes.set_xscale("log") if axis is axis.axes.xaxis else axis.axes.set_yscale("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2 else (1.0,)))
    axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(_plain_or_power))


def _plain_or_power(x: float, _position=None) -> str:
    if 1e-3 <= x < 1e5:
        return f"{x:g}"
    exponent = math.floor(math.log10(x))
    mantissa = x / 10 ** exponent
    return (f"{mantissa:g}×" if round(mantissa, 6) != 1 else "") + f"$10^{{{exponent}}}$"


def rule_label(row: pd.Series) -> str:
    return f"{row['rule']}[{row['weight']}]" if row.get("weight") else row["rule"]


def plot_accuracy_vs_n(table: pd.DataFrame, png_path: str | Path) -> None:
    """Accuracy against the number of samples N for every rule, one panel per dataset/model, CI bands."""
    data = table.assign(selection=table.apply(rule_label, axis=1), panel=table["dataset"] + " / " + table["model"])
    fig, panels, palette = panel_axes(data, 5.5, 4.2)
    for ax, panel in panels:
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


# ----------------------------------------------------------------------------------------------------------
# Accuracy against cost: the inference-scaling curves and their compute-optimal frontier

COSTS = {
    "tflops": "inference compute (TFLOPs, all questions)",
    "seconds": "wall time, generation + scoring (s, all questions)",
}
FRONTIER_NAMES = {"tflops": "compute", "seconds": "time"}
PANEL = ["dataset", "model"]


def pareto_frontier(points: pd.DataFrame, x: str = "tflops", y: str = "accuracy") -> pd.Series:
    """Mask of the upper-left Pareto frontier: points no other point beats on both axes (lower or equal `x`
    with higher `y`, or lower `x` with equal `y`). Of exact duplicates only the first is kept."""
    for column in (x, y):
        if column not in points.columns:
            raise ValueError(f"pareto_frontier: no column {column!r}")
        if points[column].isna().any():
            raise ValueError(f"pareto_frontier: column {column!r} has missing values")
    on_frontier = pd.Series(False, index=points.index)
    best = -float("inf")
    # cheapest first, and at equal cost the most accurate first: a point is on the frontier iff it is more
    # accurate than everything at most as expensive
    for index, value in points.sort_values([x, y], ascending=[True, False], kind="stable")[y].items():
        if value > best:
            on_frontier[index] = True
            best = value
    return on_frontier


def _spans_decades(values: pd.Series) -> bool:
    positive = values[values > 0]
    return len(positive) > 0 and positive.max() / positive.min() >= 10


def _labelled(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(selection=table.apply(rule_label, axis=1), panel=table["dataset"] + " / " + table["model"])


MARKERS = ("o", "X", "s", "^", "D", "v", "P", "*", "<", ">", "p", "h")


def plot_accuracy_vs_cost(table: pd.DataFrame, png_path: str | Path, x: str = "tflops",
                          oracle_rules: tuple[str, ...] = ORACLE_RULES) -> None:
    """Accuracy against `x` (a key of COSTS) for every method, rule and N of an accuracy table: one line per
    (method, rule[weight]) through its N values with a shaded 95% CI band, one panel per dataset/model, and the
    compute-optimal frontier (`pareto_frontier` over all points but the oracle rules') as a black step line.
    Colour = selection rule, marker = method, the same in every panel. Log x-axis when the costs span a decade."""
    if x not in COSTS:
        raise ValueError(f"plot_accuracy_vs_cost: x must be one of {', '.join(COSTS)}, got {x!r}")
    if table.empty:
        raise ValueError("plot_accuracy_vs_cost: empty table")
    data = _labelled(table).sort_values(x, kind="stable")
    methods = list(dict.fromkeys(data["method"]))
    markers = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(methods)}
    fig, panels, palette = panel_axes(data, 6.5, 4.8)
    for ax, panel in panels:
        sub = data[data["panel"] == panel]
        for (selection, method), group in sub.groupby(["selection", "method"], sort=False):
            ax.plot(group[x], group["accuracy"], color=palette[selection], marker=markers[method], markersize=6)
            ax.fill_between(group[x], group["ci_low"], group["ci_high"], alpha=0.12, color=palette[selection],
                            linewidth=0)
        runnable = sub[~sub["rule"].isin(oracle_rules)]
        if not runnable.empty:
            front = runnable[pareto_frontier(runnable, x)].sort_values(x)
            ax.step(front[x], front["accuracy"], where="post", color="black", linewidth=1.2, zorder=5)
            ax.scatter(front[x], front["accuracy"], s=90, facecolors="none", edgecolors="black", linewidths=1.2,
                       zorder=6)
        readable_log_axis(ax.xaxis, sub[x])
        ax.set_xlabel(COSTS[x] + (", log scale" if ax.get_xscale() == "log" else ""))
        ax.set_ylabel("accuracy (%)")
        ax.set_title(panel)
    # one legend for every panel, outside them (with many rules it would hide the curves)
    handles = [Line2D([], [], linestyle="", label="selection rule")]
    handles += [Line2D([], [], color=colour, linewidth=2, label=s) for s, colour in palette.items()]
    handles += [Line2D([], [], linestyle="", label="method")]
    handles += [Line2D([], [], color="gray", marker=markers[m], linestyle="", label=m) for m in methods]
    handles += [Line2D([], [], color="black", marker="o", markerfacecolor="none", markersize=9,
                       label=f"{FRONTIER_NAMES[x]}-optimal frontier\n(oracle rules excluded)")]
    panels[-1][0].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    save_figure(fig, png_path)


def plot_efficiency_ranking(efficiency: pd.DataFrame, png_path: str | Path) -> None:
    """Horizontal bars of Efficiency (Acc/TFLOP × Acc/s × 100) per method and rule, best on top, one panel per
    dataset/model (stacked); our FLOP accounting and seed 000's side by side. Log x-axis when efficiencies span
    a decade. Rows keep the efficiency table's order (rank, oracles last)."""
    if efficiency.empty:
        raise ValueError("plot_efficiency_ranking: empty table")
    data = _labelled(efficiency)
    oracle = data["oracle"].astype(str).str.lower().eq("true") if "oracle" in data.columns else False
    data = data.assign(entry=data["method"] + " " + data["selection"] + pd.Series("", index=data.index).where(
        ~oracle, " (oracle)"))
    long = pd.concat([
        data.assign(accounting="ours", value=data["efficiency"]),
        data.assign(accounting="seed 000 FLOPs", value=data["efficiency_seed000"]),
    ])
    panels = list(dict.fromkeys(data["panel"]))
    sizes = [int((data["panel"] == panel).sum()) for panel in panels]
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 0.55 * sum(sizes) + 1.6 * len(panels)), squeeze=False,
                             gridspec_kw={"height_ratios": sizes})
    for ax, panel in zip(axes[:, 0], panels):
        sub = long[long["panel"] == panel]
        sns.barplot(data=sub, y="entry", x="value", hue="accounting", orient="h", ax=ax,
                    order=list(dict.fromkeys(sub["entry"])))
        readable_log_axis(ax.xaxis, sub["value"])
        log = ax.get_xscale() == "log"
        ax.set_xlabel("Efficiency = Acc/TFLOP × Acc/s × 100 (%²/(TFLOP·s))" + (", log scale" if log else ""))
        ax.set_ylabel("")
        ax.set_title(f"{panel}: method and selection rule, rank 1 on top")
        if ax is axes[0, 0]:
            ax.legend(fontsize=8, title="FLOP accounting", title_fontsize=8, loc="upper left",
                      bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        else:
            ax.get_legend().remove()
    fig.tight_layout()
    save_figure(fig, png_path)


def write_plots(accuracy_csv: str | Path, efficiency_csv: str | Path, n_png: str | Path, tflops_png: str | Path,
                seconds_png: str | Path, ranking_png: str | Path) -> None:
    """The rule `plots`: accuracy vs N, vs TFLOPs and vs seconds from the accuracy table, and the efficiency
    ranking from the efficiency table (each a PNG with its PDF twin)."""
    from infscale.reports.tables import read_table

    plot_accuracy_vs_n(pd.read_csv(accuracy_csv, keep_default_na=False), n_png)
    accuracy = read_table(accuracy_csv)
    plot_accuracy_vs_cost(accuracy, tflops_png, x="tflops")
    plot_accuracy_vs_cost(accuracy, seconds_png, x="seconds")
    plot_efficiency_ranking(read_table(efficiency_csv), ranking_png)
