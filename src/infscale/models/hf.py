"""Decoding with a Hugging Face causal LM: our KV-sharing sampler, the `hf` backend (loading: `models.loading`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from infscale.models.kv_cache import compaction_order, reserve


def eos_ids(generation_eos: int | list[int] | None, tokenizer: Any) -> set[int]:
    """The tokens that end a sample: the generation config's EOS id(s) and the tokenizer's."""
    ids = generation_eos if isinstance(generation_eos, list) else [generation_eos]
    ids = {i for i in ids if i is not None}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def eos_token_ids(tokenizer: Any, checkpoint: str | Path) -> set[int]:
    """EOS ids as `LoadedModel.eos_token_ids` reads them: the generation config's and the tokenizer's."""
    from transformers import GenerationConfig

    try:
        ids = GenerationConfig.from_pretrained(str(checkpoint)).eos_token_id
    except OSError:
        ids = None
    return eos_ids(ids, tokenizer)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: torch.device
    spec: dict[str, Any]
    load_seconds: float
    device_name: str = field(default="")

    @property
    def eos_token_ids(self) -> set[int]:
        return eos_ids(self.model.generation_config.eos_token_id, self.tokenizer)

    # the backend interface (infscale.models.backend.Backend): this is the `hf` backend, the reference
    backend = "hf"

    def sample(self, prompts: list[str], n: int, params: Any, generator: Any = None,
               keys: list[tuple[Any, ...]] | None = None) -> list[list[Any]]:
        """`n` continuations of every prompt by `sample_continuations` (`keys` unused: the
        torch streams in `generator` carry the seeds)."""
        return sample_continuations(self, prompts, n, params, generator)

    def describe(self) -> dict[str, Any]:
        import transformers

        return {"backend": "hf", "engine_version": f"transformers {transformers.__version__}",
                "dtype": str(self.model.dtype).removeprefix("torch."), "device": self.device_name}


STOP_RULES = ("completion", "whole_text")


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 384
    stop: tuple[str, ...] = ()
    # completion: a stop string ends the text at its first occurrence in the completion;
    # whole_text: once it occurs twice in prompt + completion, at that occurrence (seed 000's base.py tests
    # `decoded.count(end_str) > 1` on the whole decoded text, so "Q:" stops at its first new occurrence and
    # "\n\n\n", absent from the prompt, at its second)
    stop_rule: str = "completion"

    def __post_init__(self) -> None:
        if self.stop_rule not in STOP_RULES:
            raise ValueError(f"stop_rule: expected one of {list(STOP_RULES)}, got {self.stop_rule!r}")


@dataclass
class Continuation:
    text: str
    token_ids: list[int]
    finish_reason: str              # stop | length
    n_prompt_tokens: int
    n_prefill_tokens: int           # prompt tokens encoded for this continuation (0 when its KV cache was shared)
    eos: bool = False               # ended by sampling EOS (a sampled token not in `token_ids`)

    @property
    def n_sampled_tokens(self) -> int:
        """Tokens sampled, one decoding step each: `token_ids` plus the EOS that ended it, if one did."""
        return len(self.token_ids) + self.eos


def stream_generator(seed: int, *key: Any, device: torch.device | str = "cpu") -> torch.Generator:
    """A random stream of its own for `key` (e.g. question id, sample index) under `seed`.

    Seeded from a hash of (seed, *key), so a response's draws depend on nothing else: not on the batch it
    shares, the shard it lands in or the work done before it (docs/reproducibility.md).
    """
    digest = hashlib.sha256(repr((seed, *key)).encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def sample_next(logits: torch.Tensor, params: SamplingParams,
                generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
    """One token per row: greedy at temperature 0, else temperature + nucleus (top-p) sampling.

    `generator` is one stream for the batch, or a list with one stream per row (each row then draws only
    from its own stream, whatever rows share the batch).
    """
    if params.temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always survives)
        drop = sorted_probs.cumsum(-1) - sorted_probs >= params.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return draw(probs, generator)


def draw(probs: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
    """One index per row of `probs` (rows need not sum to 1), by inverting the row's CDF at one uniform draw.

    One random number per row: `torch.multinomial` draws one exponential per vocabulary entry (49k for
    SmolLM2), which was 11% of CPU decoding time. A zero-probability entry is never drawn.
    """
    if isinstance(generator, list):
        if len(generator) != len(probs):
            raise ValueError(f"{len(probs)} rows but {len(generator)} random streams")
        uniform = torch.cat([torch.rand(1, generator=g, device=probs.device) for g in generator])
    else:
        uniform = torch.rand(len(probs), generator=generator, device=probs.device)
    cdf = probs.cumsum(-1)
    point = (uniform * cdf[:, -1])[:, None]
    return torch.searchsorted(cdf, point, right=True)[:, 0].clamp_(max=probs.shape[-1] - 1)


def _find_stop(text: str, stops: tuple[str, ...], prompt: str = "", stop_rule: str = "completion") -> int:
    """Where the earliest stop string ends `text` (a completion of `prompt`) under `stop_rule`, else -1."""
    hits = []
    for stop in stops:
        if not stop:
            continue
        # whole_text: the occurrence that makes two in prompt + completion (non-overlapping, as str.count)
        nth = max(1, 2 - prompt.count(stop)) if stop_rule == "whole_text" else 1
        position, start = -1, 0
        for _ in range(nth):
            position = text.find(stop, start)
            if position < 0:
                break
            start = position + len(stop)
        if position >= 0:
            hits.append(position)
    return min(hits) if hits else -1


def decode_step(model: Any, cache: Any, mask: torch.Tensor, positions: torch.Tensor, tokens: torch.Tensor,
                keep: list[int], output_hidden: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Feed one token per batch row from a KV cache (updated in place), after dropping every row not in `keep`
    (the kept rows in `keep`'s order).

    Returns, for the kept rows: the next-token logits, the last hidden state (when `output_hidden`), the
    attention mask including the new token and the next positions.
    """
    if len(keep) < len(tokens):
        index = torch.tensor(keep, device=tokens.device)
        cache.batch_select_indices(index)
        mask, positions, tokens = mask[index], positions[index], tokens[index]
    mask = torch.cat([mask, mask.new_ones(len(tokens), 1)], dim=-1)
    out = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=positions[:, None],
                past_key_values=cache, use_cache=True, output_hidden_states=output_hidden)
    hidden = out.hidden_states[-1][:, -1, :] if output_hidden else None
    return out.logits[:, -1, :], hidden, mask, positions + 1


MIN_SHARED_PREFIX = 8       # tokens: shorter common prefixes are not worth a separate forward pass


def _common_prefix_length(sequences: list[list[int]]) -> int:
    first = sequences[0]
    length = min(len(x) for x in sequences)
    for other in sequences[1:]:
        length = next((i for i in range(length) if other[i] != first[i]), length)
    return length


def shared_prefix_length(ids: list[list[int]]) -> int:
    """How many leading tokens the prompts' encodings share (their few-shot exemplars), to encode once for all;
    every prompt keeps at least one token of its own, whose logits start its continuation. 0 when under
    `MIN_SHARED_PREFIX`."""
    shared = _common_prefix_length(ids) if len(ids) > 1 else 0
    return min(shared, min(len(x) for x in ids) - 1) if shared >= MIN_SHARED_PREFIX else 0


@torch.inference_mode()
def sample_continuations(lm: LoadedModel, prompts: list[str], n: int, params: SamplingParams,
                         generator: torch.Generator | list[torch.Generator] | None = None
                         ) -> list[list[Continuation]]:
    """Sample `n` continuations of every prompt.

    `generator`: one stream for the batch, or one per continuation (prompt-major: prompt p's sample s is
    row p*n+s), which makes every continuation independent of the batch it is decoded in.

    Each prompt is encoded once and its KV cache repeated for its n samples (HF `generate` with
    num_return_sequences re-encodes it n times); the token prefix all prompts share (their few-shot
    exemplars) is encoded once for the whole batch. Finished rows are dropped from the batch as they stop,
    so the cost follows the tokens actually generated.
    """
    tok, model, device = lm.tokenizer, lm.model, lm.device
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    prompt_lengths = [len(x) for x in ids]
    shared = shared_prefix_length(ids)
    cache = None
    if shared:
        cache = model(input_ids=torch.tensor([ids[0][:shared]], device=device), use_cache=True,
                      logits_to_keep=1).past_key_values
        cache.batch_repeat_interleave(len(prompts))
    width = max(prompt_lengths) - shared
    own = torch.full((len(ids), width), tok.pad_token_id or 0, dtype=torch.long)
    own_mask = torch.zeros(len(ids), width, dtype=torch.long)
    for row, x in enumerate(ids):             # left padding, between the shared prefix and each prompt's own part
        own[row, width - len(x) + shared:] = torch.tensor(x[shared:], dtype=torch.long)
        own_mask[row, width - len(x) + shared:] = 1
    mask = torch.cat([torch.ones(len(ids), shared, dtype=torch.long), own_mask], dim=-1).to(device)
    positions = (shared + own_mask.cumsum(-1) - 1).clamp(min=0).to(device)
    # logits at the last position only (what the FLOP accounting counts): not the whole prompt's
    out = model(input_ids=own.to(device), attention_mask=mask, position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    # room for the continuation in place: decoding steps then write into the cache instead of copying it
    cache = reserve(out.past_key_values, params.max_new_tokens + 1)
    logits = out.logits[:, -1, :]
    if n > 1:
        cache.batch_repeat_interleave(n)
        logits = logits.repeat_interleave(n, dim=0)
        mask = mask.repeat_interleave(n, dim=0)
    next_position = positions[:, -1].repeat_interleave(n) + 1

    def feed(tokens: torch.Tensor, keep: list[int]) -> tuple[torch.Tensor, list[int]]:
        nonlocal mask, next_position
        if len(keep) < len(tokens):
            keep = compaction_order(keep, len(tokens))  # the finished rows are dropped moving the fewest
        logits, _, mask, next_position = decode_step(model, cache, mask, next_position, tokens, keep)
        return logits, keep

    return decode_rows(logits, prompts, prompt_lengths, shared, n, params, generator, lm.eos_token_ids, tok, feed)


def decode_rows(logits: torch.Tensor, prompts: list[str], prompt_lengths: list[int], shared: int, n: int,
                params: SamplingParams, generator: torch.Generator | list[torch.Generator] | None, eos: set[int],
                tok: Any, feed: Any) -> list[list[Continuation]]:
    """The sampling loop every logits-returning backend shares (`hf`, `llamacpp`): rows are prompt-major (prompt
    p's sample s is row p*n+s) and `logits` holds every row's next-token logits after its prompt.

    Each step draws one token per live row (`sample_next`, from the row's own stream when `generator` is a list),
    ends rows at EOS, a stop string or `max_new_tokens`, and calls `feed(tokens, keep)`: the engine feeds the
    tokens of the batch rows in `keep` (dropping the others) and returns their next logits and the order it
    kept them in. The prompt's `shared` leading tokens were encoded once for all prompts (charged to prompt 0).
    """
    rows = len(prompts) * n
    generated: list[list[int]] = [[] for _ in range(rows)]
    finish: list[str | None] = [None] * rows
    ended_by_eos = [False] * rows
    texts: list[str | None] = [None] * rows             # set when a stop string cut the text
    active = list(range(rows))                          # original row index of each batch row
    for step in range(params.max_new_tokens):
        streams = [generator[row] for row in active] if isinstance(generator, list) else generator
        tokens = sample_next(logits, params, streams)
        keep = []
        for batch_row, (row, token) in enumerate(zip(active, tokens.tolist())):
            generated[row].append(token)
            if token in eos:
                finish[row], ended_by_eos[row] = "stop", True
                generated[row].pop()                    # EOS is not part of the text
            elif params.stop:
                text = tok.decode(generated[row], skip_special_tokens=True)
                cut = _find_stop(text, params.stop, prompts[row // n], params.stop_rule)
                if cut >= 0:
                    finish[row], texts[row] = "stop", text[:cut]
            if finish[row] is None and step + 1 == params.max_new_tokens:
                finish[row] = "length"
            if finish[row] is None:
                keep.append(batch_row)
        if not keep:
            break
        logits, keep = feed(tokens, keep)
        active = [active[batch_row] for batch_row in keep]

    results: list[list[Continuation]] = []
    for p, length in enumerate(prompt_lengths):
        group = []
        for s in range(n):
            row = p * n + s
            text = texts[row]
            if text is None:
                text = tok.decode(generated[row], skip_special_tokens=True)
            # the shared prefix is charged to the first prompt, which encoded it
            prefill = 0 if s else length if p == 0 else length - shared
            group.append(Continuation(text, generated[row], finish[row] or "length", length, prefill,
                                      ended_by_eos[row]))
        results.append(group)
    return results
