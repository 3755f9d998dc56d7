"""The grade stage (rule grade): each generated response against its question's reference answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infscale.grading import MODES, check_option, grade_record
from infscale.io import iter_jsonl, write_jsonl


def grade_responses(samples_path: str | Path, questions_path: str | Path, output_path: str | Path,
                    mode: str = "flexible") -> dict[str, Any]:
    """The pipeline's grade stage: each generated response against its question's `answer` (by `id`)."""
    check_option("mode", mode, MODES)
    references = {}
    for number, question in enumerate(iter_jsonl(questions_path), start=1):
        missing = [key for key in ("id", "answer") if key not in question]
        if missing:
            raise ValueError(f"{questions_path}: record {number}: question has no {missing[0]!r}")
        references[question["id"]] = question["answer"]
    graded = []
    for number, response in enumerate(iter_jsonl(samples_path), start=1):
        where = f"{samples_path}: record {number}"
        if response.get("id") not in references:
            raise ValueError(f"{where}: id {response.get('id')!r} is not a question in {questions_path}")
        try:
            graded.append(grade_record({**response, "reference": references[response["id"]]}, mode))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    write_jsonl(output_path, graded)
    return grade_summary(graded)


def grade_summary(graded: list[dict[str, Any]]) -> dict[str, Any]:
    """{"n", "n_extracted", "n_correct", "accuracy"}: accuracy in percent, None for no records."""
    n = len(graded)
    n_correct = sum(r["correct"] for r in graded)
    return {"n": n, "n_extracted": sum(r["extracted"] is not None for r in graded), "n_correct": n_correct,
            "accuracy": 100.0 * n_correct / n if n else None}
