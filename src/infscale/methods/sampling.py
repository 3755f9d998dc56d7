"""Baseline: M independent samples per question from one shared prompt encoding (seed 000 baseline, seed 002
sampling). Every selection rule at N <= M (majority, best-of-N, weighted votes) is derived later from this pool."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from infscale.methods import MethodSpec, register
from infscale.models.hf import LoadedModel, SamplingParams, sample_continuations, stream_generator
from infscale.prompts import PromptConfig, build_prompt


@dataclass(frozen=True)
class SamplingConfig:
    n_samples: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 384
    stop: list[str] = field(default_factory=list)
    batch_size: int = 128          # sequences decoded together (questions per batch = batch_size // n_samples)
    shards: int = 1                # Snakemake jobs the questions are split into
    prompt: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_config(self) -> PromptConfig:
        return PromptConfig(**self.prompt)

    @property
    def params(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.max_new_tokens, tuple(self.stop))


def generate(questions: list[dict[str, Any]], shots: list[dict[str, Any]], lm: LoadedModel,
             cfg: SamplingConfig, seed: int) -> Iterator[list[dict[str, Any]]]:
    prompt_cfg = cfg.prompt_config
    per_batch = max(1, cfg.batch_size // cfg.n_samples)
    for start in range(0, len(questions), per_batch):
        batch = questions[start : start + per_batch]
        prompts = [build_prompt(q["question"], shots, prompt_cfg, lm.tokenizer) for q in batch]
        # a stream per (question, sample): samples do not depend on batch_size, shards or resuming
        streams = [stream_generator(seed, q["id"], s, device=lm.device) for q in batch for s in range(cfg.n_samples)]
        began = time.perf_counter()
        groups = sample_continuations(lm, prompts, cfg.n_samples, cfg.params, streams)
        if lm.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
        total_tokens = sum(len(c.token_ids) + c.n_prefill_tokens for g in groups for c in g) or 1
        records = []
        for question, prompt, group in zip(batch, prompts, groups):
            for sample, cont in enumerate(group):
                records.append({
                    "id": question["id"], "sample": sample, "prompt": prompt, "completion": cont.text,
                    "n_prompt_tokens": cont.n_prompt_tokens, "n_prefill_tokens": cont.n_prefill_tokens,
                    "n_completion_tokens": len(cont.token_ids), "n_thought_tokens": 0,
                    "finish_reason": cont.finish_reason,
                    # the batch's wall time, shared out by the tokens each response cost
                    "seconds": seconds * (len(cont.token_ids) + cont.n_prefill_tokens) / total_tokens,
                })
        yield records


SPEC = register(MethodSpec(kind="sampling", config_class=SamplingConfig, generate=generate))
