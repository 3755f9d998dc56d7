"""The efficiency table (infscale.reports.efficiency_table) and `infscale efficiency`."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import SEED000, _seed_inputs
from infscale.reports.efficiency_table import efficiency_table, to_markdown

# DESIGN.md §5, seed 000 (Mistral-7B, 128 GSM8K questions): inputs, then the published Acc/TFLOP, Acc/s, Efficiency


def test_seed_rounding_reproduces_seed000_table():
    table = efficiency_table(_seed_inputs(), seed_rounding=True)
    for (method, *_, per_tflop, per_second, efficiency), row in zip(SEED000, table.itertuples()):
        assert row.method == method
        assert (row.acc_per_tflop, row.acc_per_second, round(row.efficiency, 2)) == (per_tflop, per_second,
                                                                                   efficiency)
    assert table["rank"].tolist() == [4, 6, 5, 1, 2, 3]


def test_default_is_unrounded():
    inputs = _seed_inputs()
    table = efficiency_table(inputs)
    expected = [a / f * (a / s) * 100 for a, f, s in zip(inputs.accuracy, inputs.tflops, inputs.seconds)]
    assert table["efficiency"].tolist() == pytest.approx(expected, rel=1e-12)
    rebase3 = table.set_index("method").loc["REBASE w=3"]
    assert rebase3.acc_per_tflop == pytest.approx(10.94 / 2.35)
    assert round(rebase3.efficiency, 2) != 601.14  # the seed's digits come from rounding before the product
    # without rounding, REBASE+QuietSTaR and QuietSTaR swap places (14.41 vs 14.53)
    assert table["rank"].tolist() == [4, 5, 6, 1, 2, 3]


def test_extra_columns_and_row_order_kept():
    inputs = _seed_inputs().assign(model="mistral-7b")
    table = efficiency_table(inputs)
    assert table["model"].tolist() == ["mistral-7b"] * 6
    assert table["method"].tolist() == inputs["method"].tolist()
    assert list(inputs.columns) == ["method", "accuracy", "tflops", "seconds", "model"]  # input not modified


def test_ties_share_the_lowest_rank():
    inputs = pd.DataFrame({"method": ["a", "b", "c", "d"], "accuracy": [50, 50, 80, 10],
                           "tflops": [1, 1, 1, 1], "seconds": [2, 2, 1, 1]})
    assert efficiency_table(inputs)["rank"].tolist() == [2, 2, 1, 4]


@pytest.mark.parametrize("column, value, message", [
    ("tflops", 0.0, "method 'REBASE w=6': tflops must be > 0"),
    ("seconds", -1.5, "method 'REBASE w=6': seconds must be > 0"),
    ("accuracy", float("nan"), "method 'REBASE w=6': accuracy is not a finite number"),
    ("seconds", "fast", "method 'REBASE w=6': seconds is not a finite number"),
])
def test_bad_values_name_the_method(column, value, message):
    inputs = _seed_inputs().astype({column: object})
    inputs.loc[4, column] = value
    with pytest.raises(ValueError, match=message):
        efficiency_table(inputs)


def test_seed_rounding_refuses_costs_that_round_to_zero():
    inputs = _seed_inputs()
    inputs.loc[0, "tflops"] = 0.004
    with pytest.raises(ValueError, match="method 'Baseline': tflops 0.004 rounds to 0.*seed_rounding off"):
        efficiency_table(inputs, seed_rounding=True)
    assert efficiency_table(inputs)["acc_per_tflop"][0] == pytest.approx(10.16 / 0.004)


def test_missing_column_is_named():
    with pytest.raises(ValueError, match="missing column.*'seconds'"):
        efficiency_table(_seed_inputs().drop(columns="seconds"))


def test_to_markdown_shows_two_decimals():
    text = to_markdown(efficiency_table(_seed_inputs(), seed_rounding=True))
    lines = text.splitlines()
    assert lines[0].split("|")[1].strip() == "method" and len(lines) == 2 + len(SEED000)
    assert "| REBASE w=3 " in text and "601.14" in text and "17.29" in text


def test_a_pool_without_generated_tokens_has_no_seed000_efficiency():
    """Seed 000 counts generated tokens only; a greedy run that emitted nothing costs 0 of its FLOPs (measured:
    SmolLM2's standard prompt on the seed 004 multiple-choice task). Ours still ranks it; seed 000's is empty."""
    from infscale.reports.efficiency_table import efficiency_report

    rows = [{"dataset": "d", "model": "m", "method": method, "rule": "mean", "weight": "", "n": 1,
             "n_questions": 30, "accuracy": acc, "ci_low": 0.0, "ci_high": 50.0, "tflops": 0.36, "seconds": 2.0,
             "tokens": 1663.0, "tflops_seed000": seed000} for method, acc, seed000 in
            (("standard", 0.0, 0.0), ("cot", 20.0, 0.6))]
    table = efficiency_report(pd.DataFrame(rows)).set_index("method")
    assert table.loc["cot", "rank"] == 1 and table.loc["standard", "rank"] == 2
    assert table[["acc_per_tflop_seed000", "efficiency_seed000"]].isna().all().all()
    assert table["rank_seed000"].isna().all()
