"""infscale.aggregate: a graded pool (+ weights) -> accuracy by rule and N, with what each row costs."""

from __future__ import annotations

import pandas as pd
import pytest

from infscale.aggregate import (REPORTED_RULES, REPORTED_WEIGHTED_RULES, aggregate, is_search, load_pool, n_grid,
                                weight_columns)
from infscale.estimators import WEIGHTED_RULES
from infscale.io import read_json, read_jsonl, write_json, write_jsonl

N_PARAMS = 134_515_008


def _graded_pool(tmp_path, completion_tokens=(3, 5), n_questions=3):
    records = []
    for q in range(n_questions):
        for sample, n_completion in enumerate(completion_tokens):
            records.append({"id": f"q{q}", "sample": sample, "extracted": str(sample), "correct": sample == 0,
                            "n_prompt_tokens": 10, "n_prefill_tokens": 10 if sample == 0 else 0,
                            "n_completion_tokens": n_completion, "n_thought_tokens": 2,
                            "flops": {"prefill": 1e9 if sample == 0 else 0.0, "decode": 2e9, "thought": 5e8},
                            "flops_seed000": 7e8 * (n_completion + 1)})
    graded, timing = tmp_path / "graded.jsonl", tmp_path / "timing.json"
    write_jsonl(graded, records)
    write_json(timing, {"load_seconds": 4.0, "generate_seconds": 6.0, "device": ["cpu", "cuda:0"],
                        "torch_threads": 2})
    return graded, timing


def test_reported_weighted_rules_are_rules_that_need_weights():
    assert set(REPORTED_WEIGHTED_RULES) <= set(WEIGHTED_RULES)
    assert not set(REPORTED_RULES) & set(WEIGHTED_RULES)


def test_a_search_is_a_pool_whose_generation_recorded_a_tree():
    sampled = pd.DataFrame({"id": ["a", "a"], "meta": [{}, {"thoughts": []}]})
    searched = pd.DataFrame({"id": ["a", "a"], "meta": [{"tree": {"width": 2}}, {"leaf": 3}]})
    assert not is_search(sampled) and is_search(searched)
    assert not is_search(pd.DataFrame({"id": ["a"]}))


def test_step_scores_give_one_weight_column_per_aggregation(tmp_path):
    scores = pd.DataFrame({"id": ["a", "b"], "sample": [0, 0], "step_scores": [[0.5, 0.25], [1.0]]})
    columns = weight_columns("prm-vh", scores, tmp_path / "s.jsonl")
    assert sorted(columns) == ["prm-vh:last", "prm-vh:mean", "prm-vh:min", "prm-vh:prod"]
    assert columns["prm-vh:prod"].tolist() == [0.125, 1.0] and columns["prm-vh:min"].tolist() == [0.25, 1.0]
    confidence = pd.DataFrame({"id": ["a"], "sample": [0], "confidence": [0.7]})
    assert list(weight_columns("conf-x", confidence, "c.jsonl")) == ["conf-x"]
    with pytest.raises(ValueError, match="no step scores"):
        weight_columns("prm-vh", pd.DataFrame({"id": ["a"], "sample": [0], "step_scores": [[]]}), "s.jsonl")


def test_n_grid_keeps_the_supported_n():
    assert n_grid([8, 1, 4, 2], 4, "pool") == [1, 2, 4]
    with pytest.raises(ValueError, match="no N <= M = 2"):
        n_grid([4], 2, "pool")


def test_aggregate_reports_seed000_flops_beside_ours(tmp_path):
    graded, timing = _graded_pool(tmp_path)
    metrics = aggregate(graded, timing, tmp_path / "m.json", dataset="d", model="m", method="s", n_params=N_PARAMS,
                        n_boot=100)
    assert read_json(tmp_path / "m.json") == metrics
    seed000 = 3 * 7e8 * (4 + 6)  # the responses' own `flops_seed000`, summed
    assert metrics["flops_seed000"] == pytest.approx(seed000)
    assert metrics["n_params"] == N_PARAMS
    assert (metrics["device"], metrics["torch_threads"], metrics["seconds"]["load"]) == ("cpu+cuda:0", 2, 4.0)
    for row in metrics["rows"]:
        assert row["tflops_seed000"] == pytest.approx(seed000 * row["n"] / 2 / 1e12)


def test_aggregate_needs_per_response_seed000_flops(tmp_path):
    graded, timing = _graded_pool(tmp_path)
    records = read_jsonl(graded)
    del records[2]["flops_seed000"]
    write_jsonl(graded, records)
    with pytest.raises(ValueError, match="graded.jsonl: responses without `flops_seed000`"):
        aggregate(graded, timing, tmp_path / "m.json", dataset="d", model="m", method="s", n_params=1, n_boot=100)


def test_aggregate_n_values_grid_takes_any_n(tmp_path):
    graded, timing = _graded_pool(tmp_path, completion_tokens=(3, 5, 4, 4, 6, 2))
    common = dict(dataset="d", model="m", method="s", n_params=1, n_boot=100)
    metrics = aggregate(graded, timing, tmp_path / "m.json", n_values=[6, 1, 2, 4, 8], **common)
    assert sorted({r["n"] for r in metrics["rows"]}) == [1, 2, 4, 6]   # seed 000's votes; 8 > M = 6 left out
    assert sorted({r["n"] for r in aggregate(graded, timing, tmp_path / "d.json", **common)["rows"]}) == [1, 2, 4]
    majority6 = next(r for r in metrics["rows"] if r["rule"] == "majority" and r["n"] == 6)
    assert majority6["tflops_seed000"] == pytest.approx(metrics["flops_seed000"] / 1e12)  # N = M: the whole pool
    with pytest.raises(ValueError, match=r"aggregate.n_values \[8\] has no N <= M = 6"):
        aggregate(graded, timing, tmp_path / "x.json", n_values=[8], **common)
    with pytest.raises(ValueError, match="N must be integers >= 1"):
        aggregate(graded, timing, tmp_path / "x.json", n_values=[0, 2], **common)


def test_a_search_pool_is_judged_once_over_each_questions_leaves(tmp_path):
    graded, timing = _graded_pool(tmp_path, completion_tokens=(3, 5, 4))
    records = [r for r in read_jsonl(graded) if not (r["id"] == "q1" and r["sample"] == 2)]  # leaves vary
    for r in records:
        r["meta"] = {"tree": {"width": 3}} if r["sample"] == 0 else {}
    write_jsonl(graded, records)
    metrics = aggregate(graded, timing, tmp_path / "m.json", dataset="d", model="m", method="r", n_params=1,
                        n_boot=100, n_values=[1, 2])
    assert metrics["search"] is True and metrics["n_samples"] == 3
    assert {r["n"] for r in metrics["rows"]} == {3} and {r["rule"] for r in metrics["rows"]} == set(REPORTED_RULES)


def test_load_pool_adds_each_score_files_costs(tmp_path):
    graded, _ = _graded_pool(tmp_path, n_questions=1)
    scores = tmp_path / "prm.jsonl"
    write_jsonl(scores, [{"id": "q0", "sample": s, "step_scores": [0.5], "flops": 1e6, "seconds": 0.5} for s in (0, 1)])
    pool, columns = load_pool(graded, {"prm-vh": scores})
    assert "prm-vh:last" in columns and pool["flops_scorer"].tolist() == [1e6, 1e6]
    assert pool["score_seconds"].sum() == 1.0 and pool.attrs["weight_source"]["prm-vh:min"] == "prm-vh"
