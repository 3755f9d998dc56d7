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
    from pathlib import Path

    import yaml

    from infscale.config import ConfigError, validate_config

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config.yaml").read_text())
    name, method = next(iter(config["methods"].items()))
    method["prompt"] = {**method.get("prompt", {}), "style": "socratic"}
    with pytest.raises(ConfigError, match=f"methods.{name}.prompt.style"):    # the schema's check, once
        validate_config(config, repo / "workflow" / "schemas" / "config.schema.yaml")
    with pytest.raises(ValueError, match="prompt.n_shots=5"):
        build_prompt("q", SHOTS, PromptConfig("fewshot", 5, "never"))


class _Tokenizer:
    """Stands in for a tokenizer whose own encoding does (Mistral) or does not (SmolLM2) start with BOS."""

    chat_template = None
    bos_token, bos_token_id = "<s>", 1

    def __init__(self, adds_bos: bool):
        self.adds_bos = adds_bos

    def __call__(self, text):
        return {"input_ids": [1] * self.adds_bos + [5]}


def test_seed000_zero_shot_prompt_with_the_tokenizers_bos():
    cfg = PromptConfig("zeroshot_cot", 0, "never", bos=True)
    question = "Darrell and Allen's ages are in the ratio of 7:11."
    # base.py: f"Q: {question}" + "\nA: Let's think step by step.", encoded with the tokenizer's BOS
    assert build_prompt(question, [], cfg, _Tokenizer(adds_bos=True)) == f"<s>Q: {question}\nA: Let's think step by step."
    assert build_prompt(question, [], cfg, _Tokenizer(adds_bos=False)) == f"Q: {question}\nA: Let's think step by step."
    assert build_prompt(question, [], PromptConfig("zeroshot_cot", 0, "never"), _Tokenizer(True)).startswith("Q:")
    with pytest.raises(ValueError, match="prompt.bos: needs the model's tokenizer"):
        build_prompt(question, [], cfg)
