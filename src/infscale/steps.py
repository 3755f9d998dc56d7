"""Reasoning steps: where a step ends, a solution split into steps, and a path's step scores made one score.

The one place these rules live (torch-free): tree search ends a step where `step_end` says, PRM training and
PRM scoring split completions with `split_steps`, and the aggregation and the PRM reports turn step scores
into one score per response with `STEP_AGGREGATIONS` (seed 002's evaluate options). So a blank line is a step,
or not, in one place: whitespace before a separator does not end a step; it joins the step after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# how a PRM's per-step scores become one score per response (seed 002's evaluate options)
STEP_AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "last": lambda steps: steps[-1],
    "mean": lambda steps: sum(steps) / len(steps),
    "prod": lambda steps: float(np.prod(steps)),
    "min": min,
}


def step_end(text: str, separator: str, start: int = 0) -> int:
    """Where the first step of `text[start:]` ends (just past its separator), or -1 while it goes on.

    A step needs content: a separator with only whitespace before it (a blank line when steps end at "\\n")
    does not end a step, so blank lines join the step after them. The one rule for tree search (a step ends
    here), PRM training and PRM scoring (`split_steps`).
    """
    if not separator:
        raise ValueError("step separator must be non-empty")
    cut = text.find(separator, start)
    while cut >= 0 and not text[start:cut].strip():
        cut = text.find(separator, cut + len(separator))
    return cut + len(separator) if cut >= 0 else -1


def split_steps(text: str, separator: str = "\n") -> list[str]:
    """Steps of a solution, each keeping its trailing separator so that "".join(steps) == text.

    Steps end where `step_end` says, so whitespace-only pieces (blank lines) join the step after them, as
    they do in tree search; trailing whitespace joins the last step. A text with no content is one step.
    """
    steps, start = [], 0
    while True:
        end = step_end(text, separator, start)
        if end < 0:
            break
        steps.append(text[start:end])
        start = end
    rest = text[start:]
    if steps and not rest.strip():
        steps[-1] += rest
    elif rest or not steps:
        steps.append(rest)
    return steps
