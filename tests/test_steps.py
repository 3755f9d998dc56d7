"""infscale.steps: where a step ends, solutions split into steps, step scores made one score."""

from __future__ import annotations

import math

import pytest

from infscale.steps import STEP_AGGREGATIONS, split_steps, step_end


def test_step_aggregations_are_seed_002s_options():
    scores = [0.5, 0.25, 1.0]
    assert {name: fn(scores) for name, fn in STEP_AGGREGATIONS.items()} == \
        {"last": 1.0, "mean": pytest.approx(1.75 / 3), "prod": 0.125, "min": 0.25}
    assert math.isclose(STEP_AGGREGATIONS["prod"]([0.9]), 0.9) and STEP_AGGREGATIONS["last"]([0.2]) == 0.2


def test_step_end_needs_a_separator():
    with pytest.raises(ValueError, match="non-empty"):
        step_end("a\nb", "")


def test_split_steps_keeps_separators_and_glues_blank_lines():
    text = " 4 - 1 = 3\n3 - 7 = -4\n\nThe answer is -4."
    steps = split_steps(text)
    assert steps == [" 4 - 1 = 3\n", "3 - 7 = -4\n", "\nThe answer is -4."]   # a blank line starts the next step
    assert "".join(steps) == text
    assert split_steps("\n a\n") == ["\n a\n"]
    assert split_steps("") == [""]
    assert split_steps("a. ки b. ки", " ки") == ["a. ки", " b. ки"]
    assert split_steps("a || b || c", " || ") == ["a || ", "b || ", "c"]
    assert split_steps("a\n \n\t\nb\n\n") == ["a\n", " \n\t\nb\n\n"]  # trailing blanks: the last step


@pytest.mark.parametrize(("text", "start", "end"), [
    ("a\nb", 0, 2), ("\n\na\nb", 0, 4), ("  \n", 0, -1), ("a\n\nb\n", 2, 5), ("ab", 0, -1),
])
def test_step_end_needs_content_before_the_separator(text, start, end):
    assert step_end(text, "\n", start) == end
