"""Compute & time accounting into the reports: seed 000 FLOPs in the metrics, the efficiency table, the
inference-scaling figures with their compute-optimal frontier, and the Snakemake HTML report."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import copy_workflow
from infscale.compute import ModelDims, seed000_flops_per_token
from infscale.io import read_json, read_jsonl, write_json
from infscale.reports.efficiency_table import (EFFICIENCY_COLUMNS, efficiency_report, efficiency_report_file,
                                         full_pool_rows)
from infscale.reports.plots import pareto_frontier, plot_accuracy_vs_cost, plot_efficiency_ranking
from infscale.reports.accuracy_table import ACCURACY_COLUMNS, accuracy_table, collect_metrics
from infscale.reports.tables import read_table


# --------------------------------------------------------------------------------------------------------
# the compute-optimal frontier


def test_frontier_on_hand_made_points():
    points = pd.DataFrame(
        [(1.0, 10.0), (2.0, 20.0), (2.0, 15.0), (3.0, 18.0), (4.0, 30.0), (4.0, 30.0), (0.5, 5.0), (5.0, 30.0),
         (0.5, 4.0)],
        columns=["tflops", "accuracy"], index=list("abcdefghi"))
    # b beats c (same cost, more accurate) and d (cheaper, more accurate); e beats its duplicate f and h
    # (same accuracy, cheaper); g beats i
    assert list(points.index[pareto_frontier(points)]) == ["a", "b", "e", "g"]


def test_frontier_on_another_axis_and_single_point():
    points = pd.DataFrame({"seconds": [3.0, 1.0, 2.0], "accuracy": [50.0, 50.0, 60.0]})
    assert pareto_frontier(points, x="seconds").tolist() == [False, True, True]
    assert pareto_frontier(points.iloc[:1], x="seconds").tolist() == [True]


def test_frontier_bad_input_is_named():
    with pytest.raises(ValueError, match="no column 'tflops'"):
        pareto_frontier(pd.DataFrame({"accuracy": [1.0]}))
    with pytest.raises(ValueError, match="'accuracy' has missing values"):
        pareto_frontier(pd.DataFrame({"tflops": [1.0], "accuracy": [float("nan")]}))


# --------------------------------------------------------------------------------------------------------
# hand-made metrics -> tables


def _row(rule, n, accuracy, m, tflops_full, seconds_full, seed_full, weight=""):
    share = n / m
    return {"rule": rule, "n": n, "accuracy": accuracy, "ci_low": accuracy - 10, "ci_high": accuracy + 10,
            "stderr_mc": 0.0, "exact": True, "n_questions": 10, "weight": weight, "tflops": tflops_full * share,
            "tflops_seed000": seed_full * share, "seconds": seconds_full * share, "tokens": 100.0 * share}


def _metrics(tmp_path, dataset, model, method, rows, load=3.0, device="cpu", threads=2):
    path = tmp_path / f"{dataset}-{model}-{method}.json"
    write_json(path, {"dataset": dataset, "model": model, "method": method, "n_questions": 10,
                      "n_samples": max(r["n"] for r in rows), "rows": rows,
                      "seconds": {"generate": 1.0, "score": 0.0, "load": load}, "device": device,
                      "torch_threads": threads})
    return path


@pytest.fixture
def metrics_paths(tmp_path):
    sample4 = [_row(rule, n, acc, 4, 2.0, 8.0, 0.5) for rule, n, acc in
               [("mean", 1, 30.0), ("mean", 2, 30.0), ("mean", 4, 30.0), ("majority", 1, 30.0),
                ("majority", 2, 35.0), ("majority", 4, 40.0), ("pass", 1, 30.0), ("pass", 4, 70.0)]]
    sample4 += [_row("best_of_n", n, acc, 4, 2.0, 8.0, 0.5, weight="prm:last") for n, acc in [(1, 30.0), (4, 45.0)]]
    greedy = [_row(rule, 1, 35.0, 1, 0.6, 2.0, 0.1) for rule in ("mean", "majority", "pass")]
    other_model = [_row("majority", n, acc, 2, 4.0, 20.0, 1.0) for n, acc in [(1, 50.0), (2, 55.0)]]
    return [_metrics(tmp_path, "products", "small", "sample4", sample4, device="cuda:0 (H100)", threads=1),
            _metrics(tmp_path, "products", "small", "greedy", greedy, load=1.5),
            _metrics(tmp_path, "products", "big", "sample2", other_model)]


def test_accuracy_table_carries_run_facts(metrics_paths, tmp_path):
    table = accuracy_table(metrics_paths, tmp_path / "a.csv", tmp_path / "a.md")
    assert list(table.columns) == ACCURACY_COLUMNS
    sample4 = table[table["method"] == "sample4"]
    assert set(sample4["device"]) == {"cuda:0 (H100)"} and set(sample4["torch_threads"]) == {1}
    assert set(sample4["load_seconds"]) == {3.0}
    assert set(table.loc[table["method"] == "greedy", "load_seconds"]) == {1.5}
    back = read_table(tmp_path / "a.csv")
    assert set(back.loc[back["rule"] == "mean", "weight"]) == {""}  # not NaN
    assert "nan" not in (tmp_path / "a.md").read_text()


def test_full_pool_rows_take_each_rule_at_its_largest_n(metrics_paths):
    rows = full_pool_rows(collect_metrics(metrics_paths))
    got = {(r.model, r.method, r.rule, r.weight): r.n for r in rows.itertuples()}
    assert got == {("small", "sample4", "mean", ""): 4, ("small", "sample4", "majority", ""): 4,
                   ("small", "sample4", "pass", ""): 4, ("small", "sample4", "best_of_n", "prm:last"): 4,
                   ("small", "greedy", "mean", ""): 1, ("small", "greedy", "majority", ""): 1,
                   ("small", "greedy", "pass", ""): 1, ("big", "sample2", "majority", ""): 2}


def test_efficiency_report_values_and_ranks(metrics_paths):
    table = efficiency_report(collect_metrics(metrics_paths))
    assert list(table.columns) == EFFICIENCY_COLUMNS
    table = table.set_index(["model", "method", "rule", "weight"])
    bon = table.loc[("small", "sample4", "best_of_n", "prm:last")]
    assert (bon.accuracy, bon.tflops, bon.seconds, bon.tflops_seed000) == (45.0, 2.0, 8.0, 0.5)
    # the ratios divide by per-question costs: run totals / the 10 questions
    assert (bon.tflops_per_question, bon.seconds_per_question) == pytest.approx((0.2, 0.8))
    assert bon.tflops_seed000_per_question == pytest.approx(0.05)
    assert bon.acc_per_tflop == pytest.approx(45.0 / 0.2) and bon.acc_per_second == pytest.approx(45.0 / 0.8)
    assert bon.efficiency == pytest.approx(45.0 / 0.2 * 45.0 / 0.8 * 100)
    assert bon.acc_per_tflop_seed000 == pytest.approx(45.0 / 0.05)
    assert bon.efficiency_seed000 == pytest.approx(45.0 / 0.05 * 45.0 / 0.8 * 100)
    assert (bon.device, bon.torch_threads, bon.load_seconds) == ("cuda:0 (H100)", 1, 3.0)
    # ranks within products/small: greedy's rules (35 % at 0.6 TFLOPs, 2 s) beat sample4's; oracles unranked
    small = table.loc["small"]
    ranked = small[~small["oracle"]].sort_values("rank")
    assert ranked["rank"].tolist() == [1, 1, 3, 4, 5]
    assert ranked.index[:2].get_level_values("method").tolist() == ["greedy", "greedy"]
    assert ranked.index[2:].get_level_values("rule").tolist() == ["best_of_n", "majority", "mean"]
    assert small.loc[small["oracle"], "rank"].isna().all() and small.loc[small["oracle"], "rank_seed000"].isna().all()
    assert set(small.index[small["oracle"]].get_level_values("rule")) == {"pass"}
    assert table.loc[("big", "sample2", "majority", ""), "rank"] == 1  # ranks restart per dataset/model


def test_efficiency_report_seed_rounding(metrics_paths):
    table = efficiency_report(collect_metrics(metrics_paths), seed_rounding=True)
    row = table[(table["method"] == "sample4") & (table["rule"] == "majority")].iloc[0]
    assert (row.acc_per_tflop, row.acc_per_second) == (200.0, 50.0)
    assert row.efficiency == 1_000_000.0
    mean = table[(table["method"] == "sample4") & (table["rule"] == "mean")].iloc[0]
    assert mean.acc_per_second == 37.5 and mean.efficiency == round(150.0 * 37.5 * 100, 2)


# seed 000's published table (Results/*_metrics.txt of MarwanWalid2/Reasoning-vs-InfernceScaling, 128 GSM8K
# questions): correct questions, "Average FLOPs per Question", "Total Time", then the README's Efficiency
SEED000_RUNS = [
    ("baseline", 13, 11_222_341_345_280, 6716.01, 17.29),
    ("quietstar", 41, 12_728_208_896_000, 70995.86, 15.12),
    ("quietstar_rebase", 12, 4_253_295_820_800, 18389.05, 15.47),
    ("rebase_w3", 14, 2_346_843_832_320, 1083.85, 601.14),
    ("rebase_w6", 13, 4_957_635_870_720, 2281.18, 116.85),
    ("rebase_w16", 16, 13_570_380_595_200, 6003.07, 24.84),
]


def test_efficiency_report_reproduces_seed000_table_from_run_totals(tmp_path):
    """A run shaped like the seed's (128 questions, run totals = its per-question averages x 128) gives the
    seed's Efficiency column: the table divides by per-question costs, not by run totals."""
    paths = []
    for method, correct, flops_per_question, total_seconds, _ in SEED000_RUNS:
        tflops = flops_per_question * 128 / 1e12
        row = dict(_row("majority", 6, 100 * correct / 128, 6, tflops, total_seconds, tflops), n_questions=128)
        paths.append(_metrics(tmp_path, "gsm8k", "mistral-7b", method, [row]))
    table = efficiency_report(collect_metrics(paths), seed_rounding=True).set_index("method")
    for method, *_, efficiency in SEED000_RUNS:
        assert table.loc[method, "efficiency"] == efficiency
        assert table.loc[method, "efficiency_seed000"] == efficiency  # here both count the same FLOPs
    assert table.loc["rebase_w3", "tflops_per_question"] == pytest.approx(2.35, abs=0.005)
    assert table.loc["baseline", "seconds_per_question"] == pytest.approx(52.47, abs=0.005)
    assert table["rank"].to_dict() == {"rebase_w3": 1, "rebase_w6": 2, "rebase_w16": 3, "baseline": 4,
                                       "quietstar_rebase": 5, "quietstar": 6}


def test_efficiency_report_file_and_errors(metrics_paths, tmp_path):
    accuracy_table(metrics_paths, tmp_path / "a.csv", tmp_path / "a.md")
    written = efficiency_report_file(tmp_path / "a.csv", tmp_path / "e.csv", tmp_path / "e.md")
    back = read_table(tmp_path / "e.csv")
    assert len(back) == len(written) == 8 and list(back.columns) == EFFICIENCY_COLUMNS
    markdown = (tmp_path / "e.md").read_text()
    assert "| best_of_n " in markdown and "<NA>" not in markdown and "nan" not in markdown

    table = read_table(tmp_path / "a.csv")
    table.loc[table["method"] == "greedy", "seconds"] = 0.0
    table.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"bad.csv: method 'greedy (mean|majority)': seconds must be > 0"):
        efficiency_report_file(tmp_path / "bad.csv", tmp_path / "x.csv", tmp_path / "x.md")
    with pytest.raises(ValueError, match="missing column 'tflops_seed000'"):
        efficiency_report(table.drop(columns="tflops_seed000"))


# --------------------------------------------------------------------------------------------------------
# figures


def test_figures_write_png_and_pdf(metrics_paths, tmp_path):
    accuracy = collect_metrics(metrics_paths)
    outputs = [tmp_path / "tflops.png", tmp_path / "seconds.png", tmp_path / "ranking.png"]
    plot_accuracy_vs_cost(accuracy, outputs[0], x="tflops")
    plot_accuracy_vs_cost(accuracy, outputs[1], x="seconds")
    plot_efficiency_ranking(efficiency_report(accuracy), outputs[2])
    for png in outputs:
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 10_000
        assert png.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match="x must be one of tflops, seconds"):
        plot_accuracy_vs_cost(accuracy, tmp_path / "x.png", x="tokens")


# --------------------------------------------------------------------------------------------------------
# the tiny pipeline run


@pytest.mark.slow
def test_tiny_run_efficiency_table_and_figures(tiny_run):
    accuracy = read_table(tiny_run.path("results/tables/accuracy.csv"))
    efficiency = read_table(tiny_run.path("results/tables/efficiency.csv"))
    assert list(efficiency.columns) == EFFICIENCY_COLUMNS
    assert tiny_run.path("results/tables/efficiency.md").read_text().startswith("# Efficiency")
    methods = tiny_run.config["methods"]
    expected = {(method, rule) for method in methods for rule in ("mean", "majority", "pass")}
    assert {(r.method, r.rule) for r in efficiency.itertuples()} == expected
    largest = accuracy.groupby("method")["n"].max()
    for row in efficiency.itertuples():
        assert row.n == largest[row.method] == methods[row.method]["n_samples"]
        source = accuracy[(accuracy["method"] == row.method) & (accuracy["rule"] == row.rule)
                          & (accuracy["n"] == row.n)].iloc[0]
        for column in ("accuracy", "tflops", "seconds", "tokens", "tflops_seed000", "load_seconds"):
            assert getattr(row, column) == pytest.approx(source[column])
        assert row.acc_per_tflop == pytest.approx(row.accuracy / (row.tflops / row.n_questions))
        assert row.acc_per_second == pytest.approx(row.accuracy / (row.seconds / row.n_questions))
        assert row.efficiency == pytest.approx(row.acc_per_tflop * row.acc_per_second * 100)
        assert row.efficiency_seed000 == pytest.approx(
            row.accuracy / row.tflops_seed000_per_question * row.acc_per_second * 100)
        assert row.device == "cpu" and row.torch_threads == tiny_run.config["threads"] and row.load_seconds > 0
        assert row.tflops_seed000 < row.tflops
    ranked = efficiency[~efficiency["oracle"]]
    assert ranked["rank"].min() == 1 and ranked["rank"].tolist() == sorted(ranked["rank"])

    spec = read_json(tiny_run.path("resources/models/smollm2-135m/model.json"))
    metrics = read_json(tiny_run.path("results/metrics/products/smollm2-135m/sample4.json"))
    samples = read_jsonl(tiny_run.path("results/gen/products/smollm2-135m/sample4/samples.jsonl"))
    per_token = seed000_flops_per_token(ModelDims.from_config(spec["config"]))
    # C per sampled token (EOS included), nothing for prompts: >= visible tokens, <= one more per response
    steps = metrics["flops_seed000"] / per_token
    assert metrics["tokens"]["completion"] <= steps <= metrics["tokens"]["completion"] + len(samples)
    assert metrics["flops_seed000"] == pytest.approx(sum(r["flops_seed000"] for r in samples))
    for name in ("accuracy_vs_tflops", "accuracy_vs_seconds", "efficiency_ranking"):
        for suffix in (".png", ".pdf"):
            assert tiny_run.path(f"figures/{name}{suffix}").stat().st_size > 5_000


@pytest.mark.slow
def test_snakemake_report_builds_html(tiny_run, tmp_path):
    workflow = copy_workflow(tiny_run, tmp_path / "copy")
    workflow.run("--report", "results/report.html", timeout=300)
    html = workflow.path("results/report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    for name in ("accuracy_vs_tflops.png", "accuracy_vs_seconds.png", "efficiency_ranking.png", "efficiency.csv"):
        assert name in html
    assert "compute-optimal frontier" in html and "measures how the accuracy" in html
    # the first page: the headline table and both headline figures, inlined, before the description (issue 17)
    front = html.index("infscale-front")
    assert front < html.index("measures how the accuracy")
    assert "Efficiency Score" in html and "rank 1 of" in html and "per question" in html
    for name in ("headline.csv", "headline_accuracy_vs_cost.png", "headline_ranking.png"):
        assert name in html
