"""infscale.grade: the grade stage, each response against its question's reference."""

from __future__ import annotations

import json

import pytest

from conftest import _write_lines

from infscale.grade import grade_responses, grade_summary
from infscale.io import read_jsonl, write_jsonl


def test_grade_summary_counts_and_percent():
    graded = [{"extracted": "1", "correct": True}, {"extracted": None, "correct": False}]
    assert grade_summary(graded) == {"n": 2, "n_extracted": 1, "n_correct": 1, "accuracy": 50.0}
    assert grade_summary([])["accuracy"] is None


def test_grade_mode_is_checked(tmp_path):
    write_jsonl(tmp_path / "q.jsonl", [{"id": "a", "answer": "1"}])
    write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "sample": 0, "completion": " 1"}])
    with pytest.raises(ValueError, match="mode"):
        grade_responses(tmp_path / "r.jsonl", tmp_path / "q.jsonl", tmp_path / "g.jsonl", mode="loose")
    assert grade_responses(tmp_path / "r.jsonl", tmp_path / "q.jsonl", tmp_path / "g.jsonl")["n_correct"] == 1
    assert read_jsonl(tmp_path / "g.jsonl")[0]["correct"] is True


def test_grade_responses_joins_questions_by_id(tmp_path, gsm8k_rows):
    questions = [{"id": "gsm8k-test-0000", "question": gsm8k_rows[0]["question"], "answer": "18"},
                 {"id": "gsm8k-test-0002", "question": gsm8k_rows[2]["question"], "answer": "70000"}]
    responses = [{"id": "gsm8k-test-0000", "sample": 0, "completion": " $18.00"},
                 {"id": "gsm8k-test-0000", "sample": 1, "completion": " 16"},
                 {"id": "gsm8k-test-0002", "sample": 0, "completion": " 70,000\nQ: next"}]
    q_path = _write_lines(tmp_path / "test.jsonl", [json.dumps(q) for q in questions])
    r_path = _write_lines(tmp_path / "samples.jsonl", [json.dumps(r) for r in responses])
    output = tmp_path / "graded" / "samples.jsonl"
    summary = grade_responses(r_path, q_path, output)
    assert summary == {"n": 3, "n_extracted": 3, "n_correct": 2, "accuracy": pytest.approx(200 / 3)}
    graded = read_jsonl(output)
    assert [(r["reference"], r["extracted"], r["correct"]) for r in graded] == [
        ("18", "18", True), ("18", "16", False), ("70000", "70000", True)]

    orphan = _write_lines(tmp_path / "orphan.jsonl", [json.dumps({"id": "nope", "sample": 0, "completion": "1"})])
    with pytest.raises(ValueError, match=r"orphan\.jsonl: record 1: id 'nope' is not a question"):
        grade_responses(orphan, q_path, tmp_path / "x.jsonl")
    no_answer = _write_lines(tmp_path / "bad_q.jsonl", [json.dumps({"id": "gsm8k-test-0000"})])
    with pytest.raises(ValueError, match=r"bad_q\.jsonl: record 1: question has no 'answer'"):
        grade_responses(r_path, no_answer, tmp_path / "x.jsonl")
