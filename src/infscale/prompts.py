"""Prompt styles: few-shot, chain-of-thought (zero- and few-shot), with or without the model's chat template.

Seed 004 compares standard vs CoT prompting; its zero-shot CoT prompt is lm-eval's gsm8k_cot_zeroshot
("Q: {question}\\nA: Let's think step by step."), and Quiet-STaR's eval prompt (DESIGN §4) has the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infscale.schema import defaults

STYLES = ("fewshot", "fewshot_cot", "zeroshot", "zeroshot_cot")
COT_TRIGGER = "Let's think step by step."


_DEFAULTS = defaults("prompt")   # the schema's `prompt` definition bounds and defaults these keys


@dataclass(frozen=True)
class PromptConfig:
    style: str = _DEFAULTS["style"]
    n_shots: int = _DEFAULTS["n_shots"]
    chat_template: str = _DEFAULTS["chat_template"]   # auto: the tokenizer's chat template when it has one | always | never
    question_prefix: str = _DEFAULTS["question_prefix"]  # before each question of the plain format (rebase.py: none)
    # start the text with the tokenizer's BOS token where its own encoding adds one (Mistral's does; seed 000
    # encodes its prompts with the tokenizer's defaults), since the samplers encode text without special tokens
    bos: bool = _DEFAULTS["bos"]


def _shot_answer(shot: dict[str, Any], cot: bool) -> str:
    if not cot:
        return shot["answer"]
    solution = shot.get("meta", {}).get("solution")
    if not solution:
        # generated tasks carry no worked solution; a one-line rationale keeps the format consistent
        return f"The answer is {shot['answer']}."
    return f"{solution}\nThe answer is {shot['answer']}."


def worked_example(record: dict[str, Any]) -> str:
    """A question with its worked solution, as a CoT exemplar reads ("Q: ...\nA: ...\nThe answer is ...")."""
    return f"Q: {record['question']}\nA: {_shot_answer(record, cot=True)}"


def _turns(question: str, shots: list[dict[str, Any]], cfg: PromptConfig) -> list[tuple[str, str | None]]:
    """(question, answer) pairs: the exemplars, then the target question with its answer prefix."""
    cot = cfg.style.endswith("cot")
    turns: list[tuple[str, str | None]] = []
    if cfg.style.startswith("fewshot"):
        if len(shots) < cfg.n_shots:
            raise ValueError(f"prompt.n_shots={cfg.n_shots} but only {len(shots)} train questions are available")
        turns = [(s["question"], _shot_answer(s, cot)) for s in shots[: cfg.n_shots]]
    turns.append((question, COT_TRIGGER if cfg.style == "zeroshot_cot" else None))
    return turns


def uses_chat_template(choice: str, tokenizer: Any, key: str = "prompt.chat_template") -> bool:
    """Whether to apply the tokenizer's chat template for a `chat_template: auto|always|never` setting;
    `key` names the setting in the error."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if choice == "always" and not has_template:
        raise ValueError(f"{key}: 'always' but the tokenizer has no chat template")
    return choice == "always" or (choice == "auto" and has_template)


def build_prompt(question: str, shots: list[dict[str, Any]], cfg: PromptConfig, tokenizer: Any = None) -> str:
    """The prompt text for one question. With a chat template the exemplars become earlier turns."""
    return (_bos(tokenizer) if cfg.bos else "") + _prompt_text(question, shots, cfg, tokenizer)


def _bos(tokenizer: Any) -> str:
    """The BOS token's text if `tokenizer` puts one before what it encodes, else ""."""
    if tokenizer is None:
        raise ValueError("prompt.bos: needs the model's tokenizer")
    bos_id = tokenizer.bos_token_id
    adds_bos = bos_id is not None and tokenizer("1")["input_ids"][:1] == [bos_id]
    return tokenizer.bos_token if adds_bos else ""


def _prompt_text(question: str, shots: list[dict[str, Any]], cfg: PromptConfig, tokenizer: Any = None) -> str:
    turns = _turns(question, shots, cfg)
    if tokenizer is not None and uses_chat_template(cfg.chat_template, tokenizer):
        messages: list[dict[str, str]] = []
        for q, a in turns[:-1]:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a or ""}]
        messages.append({"role": "user", "content": turns[-1][0]})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prefix = turns[-1][1]
        return text + (prefix if prefix else "")
    blocks = [f"{cfg.question_prefix}{q}\nA: {a}" for q, a in turns[:-1]]
    last_q, last_prefix = turns[-1]
    blocks.append(f"{cfg.question_prefix}{last_q}\nA:" + (f" {last_prefix}" if last_prefix else ""))
    return "\n\n".join(blocks)
