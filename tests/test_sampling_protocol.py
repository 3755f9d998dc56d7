"""Seed 000's sampling protocol as options: the stop rule on the whole text and the answer phase's input."""

from pathlib import Path

import pytest
import yaml

from infscale.methods import build_config
from infscale.methods.sampling import answer_prompt
from infscale.models.hf import SamplingParams, _find_stop

PROMPT = "Q: Tom has 3 apples.\nA: Let's think step by step."
REPO = Path(__file__).resolve().parents[1]


def test_completion_rule_stops_at_the_first_occurrence():
    assert _find_stop(" 3 + 2 = 5.\n\n\nSo 5.\n\n\n", ("\n\n\n",), PROMPT) == 11
    assert _find_stop(" 5. Q: next", ("Q:",), PROMPT) == 4
    assert _find_stop(" 5.", ("Q:", "\n\n\n"), PROMPT) == -1


def test_whole_text_rule_counts_the_prompt_as_base_py_does():
    # base.py: `decoded.count(end_str) > 1` on prompt + completion. "Q:" is in the prompt once, so its first
    # new occurrence stops; "\n\n\n" is not, so the completion may hold one and stops at the second
    rule = dict(prompt=PROMPT, stop_rule="whole_text")
    assert _find_stop(" 5. Q: next", ("Q:",), **rule) == 4
    assert _find_stop(" 3 + 2 = 5.\n\n\nSo 5.\n\n\nQ", ("\n\n\n",), **rule) == 19
    assert _find_stop(" 3 + 2 = 5.\n\n\nSo 5.", ("\n\n\n",), **rule) == -1
    assert _find_stop(" a\n\n\nb\n\n\nc Q:", ("Q:", "\n\n\n"), **rule) == 6   # the earliest stop wins
    with pytest.raises(ValueError, match="stop_rule: expected one of"):
        SamplingParams(stop_rule="twice")


def test_answer_prompt_strips_then_appends_the_suffix():
    suffix = "\nTherefore, the answer (arabic numerals) is"
    assert answer_prompt(PROMPT, " 3 + 2 = 5.\n\n", suffix) == PROMPT + " 3 + 2 = 5." + suffix


def test_answer_options_are_checked():
    cfg = build_config("b", {"kind": "sampling", "answer_suffix": " is", "answer_tokens": 12,
                             "stop_rule": "whole_text"})
    assert cfg.answer_params.max_new_tokens == 12 and cfg.answer_params.stop_rule == "whole_text"
    # their bounds are the schema's (answer_tokens >= 1, a non-empty answer_suffix), checked once, at start
    from infscale.config import ConfigError, validate_config

    for key, value in (("answer_tokens", 0), ("answer_suffix", "")):
        config = yaml.safe_load((REPO / "config.yaml").read_text())
        first = next(iter(m for m in config["methods"].values() if m["kind"] == "sampling"))
        first[key] = value
        with pytest.raises(ConfigError, match=key):
            validate_config(config, REPO / "workflow" / "schemas" / "config.schema.yaml")
