"""Headline tables and figures (issue 17): one row per method at its headline selection, seed 001's labelling
table, seed 004's CoT table, and the paper-sized figures."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from PIL import Image

from infscale.io import write_json
from infscale.reports.headline_tables import (Selection, cot_display, cot_table, default_selection, headline_display,
                                       headline_selections, headline_table, labelling_table, search_methods, token_split,
                                       write_headline_tables)
from infscale.reports.headline_figures import MAX_SERIES, PAPER_WIDTH, method_palette, write_headline_figures
from infscale.reports.accuracy_table import accuracy_table
from infscale.reports.tables import read_table

QUESTIONS = 10


def _row(rule, n, accuracy, m, tflops_full, seconds_full, weight=""):
    share = n / m
    return {"rule": rule, "n": n, "accuracy": accuracy, "ci_low": accuracy - 10, "ci_high": accuracy + 10,
            "stderr_mc": 0.0, "exact": True, "n_questions": QUESTIONS, "weight": weight,
            "tflops": tflops_full * share, "tflops_seed000": tflops_full * share / 2,
            "seconds": seconds_full * share, "tokens": 100.0 * share}


def _metrics(tmp_path, method, rows, model="small", dataset="products", completion=400, thought=0, search=False):
    path = tmp_path / f"{dataset}-{model}-{method}.json"
    write_json(path, {"dataset": dataset, "model": model, "method": method, "n_questions": QUESTIONS,
                      "n_samples": max(r["n"] for r in rows), "rows": rows, "search": search,
                      "n_params": 135_000_000, "tokens": {"prompt": 50, "prefill": 50, "completion": completion, "thought": thought},
                      "seconds": {"generate": 1.0, "score": 0.0, "load": 1.0}, "device": "cpu", "torch_threads": 2})
    return path


@pytest.fixture
def run(tmp_path):
    """sample4 (majority and two confidence labellers), a REBASE search with PRM weights, a thinking method."""
    sample4 = [_row(rule, n, acc, 4, 2.0, 8.0) for rule, n, acc in
               [("mean", 1, 30.0), ("mean", 4, 30.0), ("majority", 1, 30.0), ("majority", 2, 35.0),
                ("majority", 4, 40.0), ("pass", 1, 30.0), ("pass", 2, 50.0), ("pass", 4, 70.0)]]
    for labeller, acc in (("small", 45.0), ("big", 42.0)):
        sample4 += [_row("weighted_majority", n, acc - 4 + n, 4, 2.5, 9.0, weight=f"conf-{labeller}")
                    for n in (1, 2, 4)]
    rebase = [_row(rule, 6, acc, 6, 1.0, 2.0) for rule, acc in (("majority", 50.0), ("pass", 80.0))]
    rebase += [_row("weighted_majority", 6, 55.0, 6, 1.0, 2.0, weight=f"prm-vh:{agg}") for agg in ("last", "min")]
    quiet = [_row(rule, 1, acc, 1, 4.0, 4.0) for rule, acc in (("mean", 20.0), ("majority", 20.0), ("pass", 20.0))]
    paths = [_metrics(tmp_path, "sample4", sample4), _metrics(tmp_path, "rebase_w6", rebase, completion=300, search=True),
             _metrics(tmp_path, "quiet", quiet, completion=100, thought=800)]
    accuracy_table(paths, tmp_path / "accuracy.csv", tmp_path / "accuracy.md")
    return tmp_path, paths


METHODS = {"sample4": {"kind": "sampling", "n_samples": 4, "prompt": {"style": "fewshot"}},
           "rebase_w6": {"kind": "rebase", "width": 6, "scorer": "vh", "prompt": {"style": "fewshot_cot"}},
           "quiet": {"kind": "sampling", "n_samples": 1, "prompt": {"style": "fewshot_cot"}}}


def test_selection_parse_and_errors():
    assert Selection.parse("majority@16") == Selection("majority", "", 16)
    assert Selection.parse("weighted_majority[prm-vh:last]") == Selection("weighted_majority", "prm-vh:last")
    assert str(Selection("best_of_n", "conf-x", 4)) == "best_of_n[conf-x]@4"
    with pytest.raises(ValueError, match=r"report.headline.m: 'majority@0' is not"):
        Selection.parse("majority@0", "report.headline.m")


def test_default_selections():
    assert default_selection(METHODS["sample4"], []) == Selection("majority")
    assert default_selection(METHODS["rebase_w6"], ["prm-vh:last"], search=True) == \
        Selection("weighted_majority", "prm-vh:last")
    assert default_selection(METHODS["rebase_w6"], [], search=True) == Selection("majority")  # leaves not scored
    # whether a pool is a search is the aggregation's word (metrics.search), not the method's kind
    assert default_selection(METHODS["rebase_w6"], ["prm-vh:last"]) == Selection("majority")


def test_search_methods_read_the_metrics(run):
    _, paths = run
    assert search_methods(paths) == {"rebase_w6"}


def test_headline_one_row_per_method_ranked_per_question(run):
    root, paths = run
    accuracy = read_table(root / "accuracy.csv")
    table = headline_table(accuracy, headline_selections(METHODS, {}, accuracy, search_methods(paths)), token_split(paths))
    assert len(table) == 3 and list(table["method"]) == ["rebase_w6", "sample4", "quiet"]
    rebase = table.iloc[0]
    assert rebase["selection"] == "weighted_majority[prm-vh:last]@6" and rebase["rank"] == 1
    # per question: 1 TFLOP and 2 s over 10 questions
    assert rebase["tflops_per_question"] == pytest.approx(0.1) and rebase["seconds_per_question"] == pytest.approx(0.2)
    assert rebase["acc_per_tflop"] == pytest.approx(550.0) and rebase["acc_per_second"] == pytest.approx(275.0)
    assert rebase["efficiency"] == pytest.approx(550.0 * 275.0 * 100)
    assert rebase["efficiency_low"] == pytest.approx(450.0 * 225.0 * 100)
    assert rebase["pass_accuracy"] == 80.0
    sample = table.iloc[1]
    assert sample["selection"] == "majority@4" and sample["accuracy"] == 40.0 and sample["pass_accuracy"] == 70.0
    quiet = table.iloc[2]
    assert quiet["thought_tokens_per_question"] == pytest.approx(80.0)
    assert quiet["visible_tokens_per_question"] == pytest.approx(10.0)
    shown = headline_display(table)
    assert {"Accuracy (%)", "FLOPs (T)", "Time (s)", "Acc/TFLOP", "Acc/Second", "Efficiency Score", "Rank",
            "Accuracy 95% CI", "Tokens/q (thought)"} <= set(shown.columns)
    assert shown["Accuracy 95% CI"].iloc[0] == "[45.0, 65.0]"


def test_configured_headline_at_smaller_n_scales_cost(run):
    root, paths = run
    accuracy = read_table(root / "accuracy.csv")
    chosen = headline_selections(METHODS, {"sample4": "majority@2"}, accuracy)
    table = headline_table(accuracy, chosen, token_split(paths)).set_index("method")
    assert table.loc["sample4", "accuracy"] == 35.0
    assert table.loc["sample4", "tflops_per_question"] == pytest.approx(2.0 / 2 / QUESTIONS)
    assert table.loc["sample4", "pass_accuracy"] == 50.0
    assert table.loc["sample4", "visible_tokens_per_question"] == pytest.approx(20.0)


def test_headline_bad_config_is_named(run):
    root, _ = run
    accuracy = read_table(root / "accuracy.csv")
    with pytest.raises(ValueError, match=r"report.headline.nope: no such method"):
        headline_selections(METHODS, {"nope": "majority"}, accuracy)
    with pytest.raises(ValueError, match=r"report.headline.sample4: majority@3 has no N=3 \(available N: \[1, 2, 4\]"):
        headline_table(accuracy, headline_selections(METHODS, {"sample4": "majority@3"}, accuracy))
    with pytest.raises(ValueError, match=r"report.headline.sample4: no rule 'best_of_n'"):
        headline_table(accuracy, headline_selections(METHODS, {"sample4": "best_of_n[conf-x]"}, accuracy))


def test_labelling_table_self_vs_proxy(run):
    root, _ = run
    table = labelling_table(read_table(root / "accuracy.csv"))
    at4 = table[table["n"] == 4]
    assert list(zip(at4["rule"], at4["mode"], at4["labeller"])) == [
        ("majority", "none", ""), ("weighted_majority", "self", "small"), ("weighted_majority", "proxy", "big")]
    assert list(at4["accuracy"]) == [40.0, 45.0, 42.0]
    assert at4["tflops_per_question"].iloc[1] == pytest.approx(0.25)


def test_cot_table_joins_the_cot_studys_tables():
    styles = pd.DataFrame([
        {"model": "small", "task": "gsm8k", "style": "standard", "accuracy": 20.0, "ci_low": 10.0, "ci_high": 30.0,
         "tokens": 5.0, "flops": 2e12, "seconds": 1.0, "n_questions": 30},
        {"model": "small", "task": "gsm8k", "style": "cot", "accuracy": 30.0, "ci_low": 15.0, "ci_high": 45.0,
         "tokens": 50.0, "flops": 9e12, "seconds": 4.0, "n_questions": 30}])
    differences = pd.DataFrame([
        {"model": "small", "task": "gsm8k", "difference": 10.0, "diff_ci_low": -3.3, "diff_ci_high": 23.3,
         "n_questions": 30},
        {"model": "small", "task": "ALL", "difference": 10.0, "diff_ci_low": -3.3, "diff_ci_high": 23.3,
         "n_questions": 30}])
    models = pd.DataFrame([{"model": "small", "train_flops": 1.6e21, "train_equivalent_flops": 3.2e21}])
    table = cot_table(styles, differences, models)
    assert list(table["task"]) == ["gsm8k", "ALL"]
    first = table.iloc[0]
    assert (first["accuracy_standard"], first["accuracy_cot"], first["tflops_cot"]) == (20.0, 30.0, 9.0)
    assert table["train_equivalent_flops"].tolist() == [3.2e21, 3.2e21]
    assert pd.isna(table.iloc[1]["accuracy_cot"])          # ALL pools tasks: a difference, no single accuracy
    shown = cot_display(table)
    assert shown["CoT − standard (pp)"].tolist() == ["+10.0 [-3.3, +23.3]"] * 2
    assert shown["CoT acc (%)"].tolist() == ["30.0 [15.0, 45.0]", ""]


def test_headline_files_and_figures(run):
    root, paths = run
    outputs = {"csv": root / "h.csv", "md": root / "h.md", "labelling_csv": root / "l.csv",
               "labelling_md": root / "l.md"}
    write_headline_tables(root / "accuracy.csv", paths, METHODS, {}, outputs)
    md = (root / "h.md").read_text()
    assert "Efficiency Score |" in md and "[45.0, 65.0]" in md and "nan" not in md
    assert "self: small: acc (%)" in (root / "l.md").read_text()
    write_headline_figures(root / "accuracy.csv", root / "h.csv", list(METHODS), root / "c.png", root / "r.png")
    for name in ("c", "r"):
        with Image.open(root / f"{name}.png") as image:
            assert image.size[0] == int(PAPER_WIDTH * 200)  # fixed paper width at 200 dpi
        assert (root / f"{name}.pdf").stat().st_size > 3_000


def test_method_palette_is_stable_and_distinct():
    names = [f"m{i}" for i in range(12)]
    palette = method_palette(names)
    assert len(set(palette.values())) == 12
    assert method_palette(names)["m3"] == palette["m3"]
    assert MAX_SERIES <= 6 and not math.isnan(palette["m0"][0])


def test_front_page_answers_first_and_inlines_figures(run):
    from infscale.reports.front_page import front_page

    root, paths = run
    outputs = {"csv": root / "h.csv", "md": root / "h.md", "labelling_csv": root / "l.csv",
               "labelling_md": root / "l.md"}
    write_headline_tables(root / "accuracy.csv", paths, METHODS, {}, outputs)
    write_headline_figures(root / "accuracy.csv", root / "h.csv", list(METHODS), root / "c.png", root / "r.png")
    page = front_page(root / "h.csv", root / "c.png", root / "r.png", root / "front.html", n_boot=2000,
                      labelling_csv=root / "l.csv")
    assert page == (root / "front.html").read_text()
    # the first thing a reader sees: which method ranked first, accuracy with its CI, cost per question
    answer = page[page.index('class="answer"'):page.index("Table 1.")]
    assert "rank 1 of 3 is <b>rebase_w6</b>" in answer and "55.0% accuracy (95% CI 45.0–65.0)" in answer
    assert "0.1 TFLOPs and 0.2 s per question" in answer
    assert page.count('src="data:image/png;base64,') == 2
    for caption in ("per question", "percentile-bootstrap intervals over questions (2000 resamples",
                    "analytic forward-pass FLOPs", "oracle", "self", "proxy"):
        assert caption in page
    assert "Table 2. Confidence-labelled selection" in page and "Chain-of-thought" not in page
