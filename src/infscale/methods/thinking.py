"""Quiet-STaR as evaluation methods: `quietstar` (M sampled answers per question, votes later, as seed 000's
QuietSTaR row) and `quietstar_rebase` (REBASE whose policy is the Quiet-STaR model, seed 000's REBASE+QuietSTaR
row). Both run the unchanged sampler / tree search (methods/sampling.py, methods/tree.py) on a `LoadedModel`
whose model is a `QuietStarDecoder`: every token those loops feed gets one thought (start, T tokens, end) on
its KV cache before the next token is drawn from the mixed logits.

Thought costs: `n_thought_tokens` counts the positions fed for thoughts (T + 2 per thought); generate.py turns
them into `flops.thought` (compute.thought_flops). For `quietstar` each response's thoughts are exactly its own
(the decoder follows the sampler's batch rows through its cache, see `ThoughtStats`); the thought after the
shared prompt is charged to the response that is charged the prompt's prefill (sample 0), like the prefill. For
`quietstar_rebase` the tree's thoughts are shared out over its leaves by their share of the tree's tokens, as
the tree's time is. Thoughts are readable in `meta.thoughts` (quietstar: each response's, in order; rebase:
sample 0 carries the tree's first thoughts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from infscale.methods import MethodSpec, Resources, register
from infscale.methods.quietstar import QuietStarDecoder
from infscale.methods.rebase import RebaseConfig
from infscale.methods.sampling import SamplingConfig
from infscale.methods.sampling import generate as generate_samples
from infscale.compute import ModelDims, thought_flops
from infscale.methods.tree import generate_tree, load_tree_scorer, round_preserving_sum
from infscale.models.hf import LoadedModel

TREE_THOUGHTS_KEPT = 32     # thoughts of a tree stored (decoded) in its sample 0


@dataclass(frozen=True)
class QuietStarConfig(SamplingConfig):
    thinker: str = ""       # a name under `thinkers:` (its entry and weights: `load_thinking`)


@dataclass(frozen=True)
class QuietStarRebaseConfig(RebaseConfig):
    thinker: str = ""


def thinking_model(lm: LoadedModel, name: str, thinker: dict[str, Any],
                   weights: str | Path | None) -> tuple[LoadedModel, QuietStarDecoder]:
    """`lm` with its model wrapped for thinking generation (the `thinkers:` entry `name`, its trained `weights`
    loaded), and the decoder."""
    from infscale.methods.quietstar import ThinkerConfig, wrap

    qs = wrap(lm.model, lm.tokenizer, ThinkerConfig.from_config(name, thinker), weights).eval()
    decoder = QuietStarDecoder(qs)
    return dataclasses.replace(lm, model=decoder), decoder


def load_thinking(lm: LoadedModel, cfg: QuietStarConfig | QuietStarRebaseConfig,
                  resources: Resources) -> dict[str, Any]:
    """The methods' `load`: the Quiet-STaR wrapper with its trained weights (timed as load time)."""
    if resources.thinker is None:
        raise ValueError(f"Quiet-STaR: the entry of its thinker {cfg.thinker!r} was not given")
    thinking, decoder = thinking_model(lm, cfg.thinker, resources.thinker, resources.thinker_weights)
    return {"thinking": thinking, "decoder": decoder}


def load_thinking_search(lm: LoadedModel, cfg: QuietStarRebaseConfig, resources: Resources) -> dict[str, Any]:
    return {**load_tree_scorer(lm, cfg, resources), **load_thinking(lm, cfg, resources)}


def _seed(seed: int, question: dict[str, Any]) -> int:
    # thoughts get their own stream, seeded like the sampler's per batch (a resumed run draws the same)
    return (seed * 1_000_003 + question["meta"]["index"]) ^ 0x5EED


def generate(questions: list[dict[str, Any]], shots: list[dict[str, Any]], lm: LoadedModel, cfg: QuietStarConfig,
             seed: int, thinking: LoadedModel, decoder: QuietStarDecoder) -> Iterator[list[dict[str, Any]]]:
    size = decoder.qs.n_thought_tokens + 2
    decode = lm.tokenizer.decode
    per_batch = cfg.questions_per_batch
    for start in range(0, len(questions), per_batch):
        batch = questions[start : start + per_batch]
        decoder.reset_stats()
        decoder.generator = torch.Generator(device=lm.device).manual_seed(_seed(seed, batch[0]))
        for records in generate_samples(batch, shots, thinking, cfg, seed):
            per_response = decoder.stats.responses(len(records))
            for record, (thoughts, charged) in zip(records, per_response):
                record["n_thought_tokens"] = charged * size
                record["meta"] = {**record.get("meta", {}), "thought_tokens_each": size,
                                  "thoughts": [decode(t) for t in thoughts]}
            yield records


def generate_rebase(questions: list[dict[str, Any]], shots: list[dict[str, Any]], lm: LoadedModel,
                    cfg: QuietStarRebaseConfig, seed: int, scorer: Any, thinking: LoadedModel,
                    decoder: QuietStarDecoder) -> Iterator[list[dict[str, Any]]]:
    dims = ModelDims.from_config(lm.spec["config"])
    decode = lm.tokenizer.decode
    for question in questions:
        decoder.reset_stats()
        decoder.generator = torch.Generator(device=lm.device).manual_seed(_seed(seed, question))
        for records in generate_tree([question], shots, thinking, cfg, seed, scorer=scorer):
            stats = decoder.stats
            tokens = [r["n_completion_tokens"] for r in records]
            total = sum(tokens) or 1
            shares = round_preserving_sum([stats.n_thought_tokens * t / total for t in tokens], stats.n_thought_tokens)
            for record, share in zip(records, shares):
                record["n_thought_tokens"] = share
                # the tree measures its own decode FLOPs (so generate.py keeps its flops); thoughts added here
                record["flops"]["thought"] = thought_flops(dims, record["n_prompt_tokens"],
                                                           record["n_completion_tokens"], share)
            records[0]["meta"]["thoughts"] = [decode(t) for t in stats.thoughts[:TREE_THOUGHTS_KEPT]]
            records[0]["meta"]["tree_thought_tokens"] = stats.n_thought_tokens
            yield records


SPEC = register(MethodSpec(kind="quietstar", config_class=QuietStarConfig, generate=generate, load=load_thinking))
REBASE_SPEC = register(MethodSpec(kind="quietstar_rebase", config_class=QuietStarRebaseConfig,
                                  generate=generate_rebase, load=load_thinking_search))
