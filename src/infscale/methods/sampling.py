"""Baseline: M independent samples per question from one shared prompt encoding (seed 000 baseline, seed 002
sampling). Every selection rule at N <= M (majority, best-of-N, weighted votes) is derived later from this pool."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from infscale.methods import MethodSpec, register
from infscale.models.hf import Continuation, LoadedModel, SamplingParams, stream_generator
from infscale.prompts import PromptConfig, build_prompt
from infscale.schema import defaults

_DEFAULTS = defaults("sampling_options")   # the schema's bounds and defaults of the sampler's keys


@dataclass(frozen=True)
class SamplingConfig:
    n_samples: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 384
    stop: list[str] = field(default_factory=list)
    stop_rule: str = _DEFAULTS["stop_rule"]  # or whole_text (seed 000), see SamplingParams
    # seed 000's answer phase: once the reasoning stops, encode prompt + reasoning (right-stripped) + this
    # suffix afresh and decode up to `answer_tokens` more; the answer is read from those (grading)
    answer_suffix: str | None = None
    answer_tokens: int = _DEFAULTS["answer_tokens"]
    batch_size: int = 128          # sequences decoded together (questions per batch = batch_size // n_samples)
    shards: int = 1                # Snakemake jobs the questions are split into
    prompt: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_config(self) -> PromptConfig:
        return PromptConfig(**self.prompt)

    @property
    def params(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.max_new_tokens, tuple(self.stop), self.stop_rule)

    @property
    def answer_params(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.answer_tokens, tuple(self.stop), self.stop_rule)

    @property
    def questions_per_batch(self) -> int:
        return max(1, self.batch_size // self.n_samples)


def answer_prompt(prompt: str, reasoning: str, suffix: str) -> str:
    """The answer phase's input: the text so far, right-stripped, then the suffix (seed 000's base.py:
    `text.rstrip() + final_answer_text`)."""
    return (prompt + reasoning).rstrip() + suffix


def generate(questions: list[dict[str, Any]], shots: list[dict[str, Any]], lm: LoadedModel,
             cfg: SamplingConfig, seed: int) -> Iterator[list[dict[str, Any]]]:
    prompt_cfg = cfg.prompt_config
    per_batch = cfg.questions_per_batch
    for start in range(0, len(questions), per_batch):
        batch = questions[start : start + per_batch]
        prompts = [build_prompt(q["question"], shots, prompt_cfg, lm.tokenizer) for q in batch]
        # a stream per (question, sample): samples do not depend on batch_size, shards or resuming
        streams = [stream_generator(seed, q["id"], s, device=lm.device) for q in batch for s in range(cfg.n_samples)]
        began = time.perf_counter()
        # the backend (models.backend): hf draws from the streams, engines seed each question by its key
        groups = lm.sample(prompts, cfg.n_samples, cfg.params, streams, keys=[(seed, q["id"]) for q in batch])
        answers = _answer_phase(lm, prompts, groups, cfg, streams, [(seed, q["id"]) for q in batch])
        if lm.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        records = []
        for question, prompt, group, answer_group in zip(batch, prompts, groups, answers):
            for sample, (cont, answer) in enumerate(zip(group, answer_group)):
                record = {
                    "id": question["id"], "sample": sample, "prompt": prompt, "completion": cont.text,
                    "n_prompt_tokens": cont.n_prompt_tokens, "n_prefill_tokens": cont.n_prefill_tokens,
                    "n_completion_tokens": len(cont.token_ids), "n_thought_tokens": 0,
                    "finish_reason": cont.finish_reason, "n_sampled_tokens": cont.n_sampled_tokens,
                }
                if answer is not None:
                    record.update({
                        "answer_text": answer.text, "n_answer_prompt_tokens": answer.n_prompt_tokens,
                        "n_answer_prefill_tokens": answer.n_prefill_tokens, "n_answer_tokens": len(answer.token_ids),
                        "n_sampled_tokens": cont.n_sampled_tokens + answer.n_sampled_tokens,
                    })
                records.append(record)
        # the batch's wall time, shared out by the tokens each response cost
        cost = [r["n_prefill_tokens"] + r["n_completion_tokens"] + r.get("n_answer_prefill_tokens", 0)
                + r.get("n_answer_tokens", 0) for r in records]
        for record, tokens in zip(records, cost):
            record["seconds"] = seconds * tokens / (sum(cost) or 1)
        yield records


def _answer_phase(lm: LoadedModel, prompts: list[str], groups: list[list[Continuation]], cfg: SamplingConfig,
                  streams: list[torch.Generator], keys: list[tuple[Any, ...]]) -> list[list[Continuation | None]]:
    """Each response's answer after `cfg.answer_suffix` (None everywhere without a suffix), one batch; each
    response goes on drawing from its own stream."""
    if cfg.answer_suffix is None:
        return [[None] * len(group) for group in groups]
    inputs = [answer_prompt(prompt, cont.text, cfg.answer_suffix) for prompt, group in zip(prompts, groups)
              for cont in group]
    answer_keys = [(*key, s, "answer") for key in keys for s in range(cfg.n_samples)]
    flat = [g[0] for g in lm.sample(inputs, 1, cfg.answer_params, streams, keys=answer_keys)]
    return [flat[i * cfg.n_samples:(i + 1) * cfg.n_samples] for i in range(len(groups))]


SPEC = register(MethodSpec(kind="sampling", config_class=SamplingConfig, generate=generate))
