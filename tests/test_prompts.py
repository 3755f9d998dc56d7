import pytest

from infscale.prompts import PromptConfig, build_prompt

SHOTS = [{"question": "1+1?", "answer": "2", "meta": {"solution": "1 plus 1 is 2."}},
         {"question": "2+2?", "answer": "4", "meta": {}}]


def test_fewshot_and_cot_formats():
    assert build_prompt("3+3?", SHOTS, PromptConfig("fewshot", 2, "never")) == "Q: 1+1?\nA: 2\n\nQ: 2+2?\nA: 4\n\nQ: 3+3?\nA:"
    cot = build_prompt("3+3?", SHOTS, PromptConfig("fewshot_cot", 2, "never"))
    assert "A: 1 plus 1 is 2.\nThe answer is 2." in cot and "A: The answer is 4." in cot
    # lm-eval's gsm8k_cot_zeroshot prompt
    assert build_prompt("3+3?", [], PromptConfig("zeroshot_cot", 0, "never")) == "Q: 3+3?\nA: Let's think step by step."


def test_bad_prompt_options_are_named():
    with pytest.raises(ValueError, match="prompt.style"):
        PromptConfig("socratic")
    with pytest.raises(ValueError, match="prompt.n_shots=5"):
        build_prompt("q", SHOTS, PromptConfig("fewshot", 5, "never"))
