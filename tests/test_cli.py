"""infscale.cli: the commands and their file-format adapters (grade, vote, efficiency, cot-scaling, check-config)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import RESPONSES, SEED000, STUDY_TABLE, _pool_frame, _seed_inputs, _write_lines, _write_votes
from infscale.cli import build_parser, efficiency_file, grade_file, main, vote_file
from infscale.estimators import selection_rows
from infscale.io import RecordError, read_jsonl
from infscale.reports.cot_scaling import INPUT_COLUMNS, OUTPUT_COLUMNS


def test_parser_lists_every_command():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {"grade", "vote", "efficiency", "check-config", "cot-scaling"}


def test_errors_exit_2_with_the_command_named(tmp_path, capsys):
    assert main(["grade", "--input", str(tmp_path / "absent.jsonl"), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert capsys.readouterr().err.startswith("infscale grade: error:")


def test_check_config_accepts_the_default_config(capsys):
    assert main(["check-config", str(Path(__file__).resolve().parents[1] / "config.yaml")]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")


@pytest.mark.parametrize("rule", ["majority", "weighted_majority", "best_conf", "pass"])
def test_vote_cli_matches_selection_rows(tmp_path, capsys, rule):
    pool = _pool_frame()
    path = tmp_path / "responses.jsonl"
    _write_votes(path, pool)
    assert main(["vote", "--input", str(path), "--n", "2", "--rule", rule]) == 0
    result = json.loads(capsys.readouterr().out)
    (row,) = selection_rows(pool, [rule], [2], weight_column="confidence")
    assert result == {"rule": rule, "n": 2, "n_questions": 3, "accuracy": pytest.approx(row["accuracy"]),
                      "ci_low": pytest.approx(row["ci_low"]), "ci_high": pytest.approx(row["ci_high"]),
                      "exact": True, "stderr": 0.0}
    assert vote_file(path, n=2, rule=rule)["accuracy"] == pytest.approx(row["accuracy"])


def test_vote_cli_monte_carlo_flags(tmp_path, capsys):
    pool = _pool_frame()
    path = tmp_path / "responses.jsonl"
    _write_votes(path, pool)
    args = ["vote", "--input", str(path), "--n", "2", "--rule", "weighted_majority", "--exact-limit", "1",
            "--monte-carlo", "300", "--seed", "4"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["exact"] is False and result["stderr"] > 0
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == result


def test_vote_cli_errors(tmp_path, capsys):
    pool = _pool_frame()
    path = tmp_path / "responses.jsonl"
    _write_votes(path, pool, drop_confidence_at=6)
    assert main(["vote", "--input", str(path), "--n", "2", "--rule", "best_conf"]) == 2
    err = capsys.readouterr().err
    assert "record 7 (question 'q2'): missing key 'confidence'" in err
    # majority does not need confidence, but N above the pool is an error naming the question
    assert main(["vote", "--input", str(path), "--n", "5", "--rule", "majority"]) == 2
    assert "question 'q1' has 4 responses, fewer than N=5" in capsys.readouterr().err
    path.write_text(json.dumps({"question_id": "q", "answer": 3, "correct": True}) + "\n")
    assert main(["vote", "--input", str(path), "--n", "1", "--rule", "majority"]) == 2
    assert "'answer' must be a string or null" in capsys.readouterr().err
    assert main(["vote", "--input", str(tmp_path / "absent.jsonl"), "--n", "1", "--rule", "majority"]) == 2


def test_grade_file_round_trip(tmp_path):
    source = _write_lines(tmp_path / "in.jsonl", [json.dumps(r) for r in RESPONSES])
    output = tmp_path / "out" / "graded.jsonl"
    summary = grade_file(source, output)
    assert summary == {"n": 4, "n_extracted": 3, "n_correct": 2, "accuracy": 50.0}
    graded = read_jsonl(output)
    assert [(r["id"], r["sample"], r["extracted"], r["correct"]) for r in graded] == [
        ("a", 0, "18", True), ("a", 1, "17", False), ("b", 0, "3/4", True), ("c", 0, None, False)]
    assert sorted(p.name for p in output.parent.iterdir()) == ["graded.jsonl"]  # no temp files left


def test_grade_file_strict_and_empty(tmp_path):
    source = _write_lines(tmp_path / "in.jsonl", [json.dumps(r) for r in RESPONSES])
    summary = grade_file(source, tmp_path / "strict.jsonl", mode="strict")
    assert (summary["n_extracted"], summary["n_correct"]) == (1, 0)  # only "The answer is 17." is marked
    empty = _write_lines(tmp_path / "empty.jsonl", [])
    assert grade_file(empty, tmp_path / "e.jsonl") == {"n": 0, "n_extracted": 0, "n_correct": 0,
                                                        "accuracy": None}


def test_grade_file_bad_json_names_the_line(tmp_path):
    source = _write_lines(tmp_path / "in.jsonl", [json.dumps(RESPONSES[0]), "{not json"])
    with pytest.raises(RecordError, match=r"in\.jsonl:2"):
        grade_file(source, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_grade_file_missing_field_names_the_record(tmp_path):
    source = _write_lines(tmp_path / "in.jsonl", [json.dumps(RESPONSES[0]), json.dumps({"id": "z", "answer": "1"})])
    with pytest.raises(ValueError, match=r"in\.jsonl: record 2: record 'z' has neither 'response'"):
        grade_file(source, tmp_path / "out.jsonl")


def test_cli_grade(tmp_path, capsys):
    source = _write_lines(tmp_path / "in.jsonl", [json.dumps(r) for r in RESPONSES])
    output = tmp_path / "graded.jsonl"
    assert main(["grade", "--input", str(source), "--output", str(output)]) == 0
    assert json.loads(capsys.readouterr().out) == {"n": 4, "n_extracted": 3, "n_correct": 2, "accuracy": 50.0}
    assert [r["correct"] for r in read_jsonl(output)] == [True, False, True, False]

    assert main(["grade", "--input", str(source), "--output", str(output), "--mode", "strict"]) == 0
    assert json.loads(capsys.readouterr().out)["n_extracted"] == 1


def test_cli_grade_bad_line(tmp_path, capsys):
    source = _write_lines(tmp_path / "in.jsonl", [json.dumps(RESPONSES[0]), json.dumps(RESPONSES[1]), "[1, 2"])
    assert main(["grade", "--input", str(source), "--output", str(tmp_path / "out.jsonl")]) == 2
    error = capsys.readouterr().err
    assert "infscale grade: error:" in error and f"{source}:3" in error
    assert not (tmp_path / "out.jsonl").exists()


def test_efficiency_file_writes_csv_and_markdown(tmp_path):
    source, target = tmp_path / "in.csv", tmp_path / "tables" / "out.csv"
    _seed_inputs().to_csv(source, index=False)
    result = efficiency_file(source, target, seed_rounding=True)
    written = pd.read_csv(target)
    assert written["efficiency"].round(2).tolist() == [row[6] for row in SEED000]
    assert written["rank"].tolist() == result["rank"].tolist()
    assert "601.14" in target.with_suffix(".md").read_text()
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.csv", "out.md"]  # no temp files left


def test_cli(tmp_path, capsys):
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    _seed_inputs().to_csv(source, index=False)
    assert main(["efficiency", "--input", str(source), "--output", str(target), "--seed-rounding"]) == 0
    assert pd.read_csv(target)["acc_per_tflop"].tolist() == [row[4] for row in SEED000]

    assert main(["efficiency", "--input", str(source), "--output", str(target)]) == 0
    assert pd.read_csv(target)["acc_per_tflop"].tolist() == pytest.approx([r[1] / r[2] for r in SEED000])

    _seed_inputs().drop(columns="tflops").to_csv(source, index=False)
    assert main(["efficiency", "--input", str(source), "--output", str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "in.csv" in err and "'tflops'" in err
    assert not (tmp_path / "bad.csv").exists()

    assert main(["efficiency", "--input", str(tmp_path / "absent.csv"), "--output", str(target)]) == 2
    assert "absent.csv" in capsys.readouterr().err


def test_cli_writes_input_plus_analysis_columns(tmp_path):
    out_path = tmp_path / "out.csv"
    assert main(["cot-scaling", "--input", str(STUDY_TABLE), "--output", str(out_path)]) == 0
    out = pd.read_csv(out_path)
    assert list(out.columns[: len(INPUT_COLUMNS)]) == INPUT_COLUMNS
    assert set(OUTPUT_COLUMNS) <= set(out.columns) and "study_train_equivalent_flops" in out.columns
    # no crossover at R > 0 -> an empty cell
    assert out.set_index("model").loc["OLMo-1B-0724-hf_step5000-tokens10B", "crossover_requests"] != \
        out.set_index("model").loc["OLMo-1B-0724-hf_step5000-tokens10B", "crossover_requests"]
    assert np.allclose(out["train_flops"], 6 * out["params"] * out["training_tokens"])
    assert np.allclose(out["cot_improvement"], out["accuracy_cot"] - out["accuracy_standard"])


def test_cli_names_the_bad_column_and_line(tmp_path, capsys):
    table = pd.read_csv(STUDY_TABLE).astype({"tokens_cot": object})
    table.loc[2, "tokens_cot"] = "many"
    bad = tmp_path / "bad.csv"
    table.to_csv(bad, index=False)
    assert main(["cot-scaling", "--input", str(bad), "--output", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "line 4" in err and "tokens_cot" in err
    table.drop(columns=["family"]).to_csv(bad, index=False)
    assert main(["cot-scaling", "--input", str(bad), "--output", str(tmp_path / "o.csv")]) == 2
    assert "family" in capsys.readouterr().err
