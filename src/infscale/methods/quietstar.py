"""Quiet-STaR (Zelikman et al. 2024, arXiv 2403.09629) around any Hugging Face causal LM.

`QuietStarLM` adds what the official `ezelikman/quiet-star` model (`modeling_mistral.py`) adds to Mistral —
learned start/end-of-thought embeddings and a mixing ("talk") head — without patching the model's file:

* **Parallel thoughts** (training, `forward`/`loss`): `n_passes_total = n_thought_tokens + 2 + n_talk` forward
  passes over all L positions at once, sharing one KV cache. Pass 0 reads the real tokens; pass 1 the
  start-thought embedding; passes 2..T+1 the thought tokens sampled from the previous pass's outputs; pass T+2
  the end-thought embedding; passes T+3.. the true next tokens (teacher-forced, for the `n_talk`-token loss).
  An additive float 4D mask lets the pass-k query at position i see real tokens <= i and position i of passes
  1..k (its own thought) only; its position id is i + k. The official `n_ahead` is T + 3 (`n_ahead=8`: 5
  sampled thought tokens, though its README counts 6), so the thought length is an explicit parameter here.
* **Mixing head**: an MLP 2H -> H -> H -> 1 (ReLU) on [base hidden, post-thought hidden], its last layer
  zero-initialised, output w used as is (no sigmoid); mixed hidden = (1 - w) h_base + w h_thought goes through
  the LM head. At w = 0 the wrapper is the base model exactly.
* **Start/end embeddings** are `nn.Parameter`s of shape [2, H] (the checkpoint's), row 0 holding
  embedding("---") / 100 and used ×100 (the official reparametrisation: a 100× larger effective learning rate);
  row 1 is the official log-std row, kept for loading only (the reparametrised sampling is off in the paper).
  They are set once in `__init__`, never in `forward` (the official first forward overwrites them unless
  `rm_initialized`/`first_run` flags are set).
* **Loss**: original_loss_weight · base NLL + (1 − original_loss_weight) · mean over the n_talk mixed NLLs,
  plus policy_weight · REINFORCE on the thought tokens: reward = Σ_k log p_mixed − log p_base of the next n_talk
  true tokens, baseline the mean over the `n_passes` thoughts drawn for the same position, negative advantages
  clamped to 0; log-probabilities of the thought tokens at `reinforce_temperature` (official: 3).

Thought tokens are drawn from softmax(logits / thought_temperature); the official code's
`gumbel_softmax(hard=True)` samples softmax(logits) whatever its temperature (argmax of logits + Gumbel noise
does not depend on tau), so thought_temperature = 1 is the official behaviour.

`QuietStarDecoder` is the same model for cached generation: a drop-in causal LM (same call signature as HF
models in `models/hf.decode_step`, the sampler and the tree search) that, after the real tokens of each call,
runs one thought per batch row at its last position on the row's KV cache (start, T tokens, end: T + 2 fed
positions), mixes, and crops the cache back — a thought after every generated token without re-encoding the
sequence (the seed study's evaluation recomputes the full sequence with thoughts at every position per token).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from infscale.models.hf import draw
from infscale.schema import defaults

EMBEDDING_SCALE = 100.0        # official `embedding_scale`: start/end embeddings are stored /100, used ×100
THOUGHT_INIT_STD_SCALE = 1e-2  # official `thought_init_std_scale` (the unused log-std row)
INITIAL_THOUGHT_TOKEN = "---"  # official `initial_start_token` / `initial_end_token`


@dataclass
class QuietStarOutput:
    logits: torch.Tensor            # [B, L, V] mixed logits of the next token (talk step 0)
    base_logits: torch.Tensor       # [B, L, V] the base model's own
    thought_ids: torch.Tensor       # [B, L, T] the thought sampled after each position
    mix_weight: torch.Tensor        # [B, L, 1] w of talk step 0
    talk_logits: list[torch.Tensor] = field(default_factory=list)   # n_talk × [B, L, V]; [0] is `logits`
    thought_logprobs: torch.Tensor | None = None   # [B, L, T] log p(thought token) at reinforce_temperature


def talk_head(hidden_size: int) -> nn.Sequential:
    """The official `use_complex_talk_head` + `use_weighted_talk_head` head: 2H -> H -> H -> 1, ReLU."""
    head = nn.Sequential(nn.Linear(2 * hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size),
                         nn.ReLU(), nn.Linear(hidden_size, 1, bias=False))
    nn.init.zeros_(head[-1].weight)     # w = 0: a fresh wrapper is the base model
    return head


class QuietStarLM(nn.Module):
    """Quiet-STaR around `model` (any HF causal LM whose `base_model` returns `last_hidden_state`)."""

    def __init__(self, model: nn.Module, n_thought_tokens: int = 5, n_talk: int = 4, *, n_passes: int = 1,
                 tokenizer: Any = None, init_token_id: int | None = None, thought_temperature: float = 1.0,
                 reinforce_temperature: float = 3.0, policy_weight: float = 1e6, original_loss_weight: float = 0.5,
                 remove_negative_rewards: bool = True, masked_token_ids: tuple[int, ...] = ()):
        super().__init__()
        if n_thought_tokens < 1 or n_talk < 1 or n_passes < 1:
            raise ValueError(f"n_thought_tokens, n_talk, n_passes must be >= 1 "
                             f"(got {n_thought_tokens}, {n_talk}, {n_passes})")
        self.model = model
        self.n_thought_tokens, self.n_talk, self.n_passes = n_thought_tokens, n_talk, n_passes
        self.thought_temperature, self.reinforce_temperature = thought_temperature, reinforce_temperature
        self.policy_weight, self.original_loss_weight = policy_weight, original_loss_weight
        self.remove_negative_rewards = remove_negative_rewards
        self.masked_token_ids = tuple(masked_token_ids)
        embed = model.get_input_embeddings().weight
        hidden = embed.shape[1]
        if init_token_id is None and tokenizer is not None:
            init_token_id = tokenizer.encode(INITIAL_THOUGHT_TOKEN, add_special_tokens=False)[0]
        with torch.no_grad():
            # without a tokenizer (tests on random models) the mean embedding stands in for "---"
            init = embed[init_token_id] if init_token_id is not None else embed.mean(0)
            log_std = torch.log(embed.float().std(0) * THOUGHT_INIT_STD_SCALE / EMBEDDING_SCALE).to(embed.dtype)
            start = torch.stack([init / EMBEDDING_SCALE, log_std]).detach().clone()
        self.start_embedding = nn.Parameter(start)
        self.end_embedding = nn.Parameter(start.clone())
        self.talk_head = nn.ModuleList([talk_head(hidden).to(embed.device, embed.dtype)])

    # --- pieces shared by the parallel and the cached path ----------------------------------------------------

    @property
    def body(self) -> nn.Module:
        return self.model.base_model

    @property
    def lm_head(self) -> nn.Module:
        return self.model.get_output_embeddings()

    def thought_embedding(self, which: str) -> torch.Tensor:
        param = self.start_embedding if which == "start" else self.end_embedding
        return param[0] * EMBEDDING_SCALE

    def mix(self, h_base: torch.Tensor, h_thought: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mixed hidden, w): (1 − w)·h_base + w·h_thought, w from the talk head on [h_base, h_thought]."""
        w = self.talk_head[0](torch.cat([h_base, h_thought], dim=-1))
        return (1 - w) * h_base + w * h_thought, w

    def thought_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(hidden)
        if self.masked_token_ids:       # the checkpoint's <|startthought|>/<|endthought|> are never sampled
            logits[..., list(self.masked_token_ids)] = torch.finfo(logits.dtype).min
        return logits

    def sample_thought_token(self, logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One token per row of `logits` [..., V] (argmax at thought_temperature 0)."""
        if self.thought_temperature == 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits.detach().float() / self.thought_temperature, dim=-1)
        return draw(probs.reshape(-1, probs.shape[-1]), generator).reshape(probs.shape[:-1])

    # --- the parallel (training) forward --------------------------------------------------------------------

    def _pass_mask(self, L: int, k: int, batch: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Additive [B, 1, L, (k+1)L] mask of pass k: real tokens <= i, and position i of passes 1..k."""
        allowed = torch.zeros(L, (k + 1) * L, dtype=torch.bool, device=device)
        allowed[:, :L] = torch.ones(L, L, dtype=torch.bool, device=device).tril()
        eye = torch.eye(L, dtype=torch.bool, device=device)
        for p in range(1, k + 1):
            allowed[:, p * L:(p + 1) * L] = eye
        mask = torch.zeros(L, (k + 1) * L, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
        return mask[None, None].expand(batch, 1, L, (k + 1) * L)

    def forward(self, input_ids: torch.Tensor, generator: torch.Generator | None = None,
                thought_ids: torch.Tensor | None = None, n_talk: int | None = None) -> QuietStarOutput:
        """Thoughts after every position, in parallel. `thought_ids` [B, L, T] forces the thoughts (teacher
        forcing); `n_talk` (default: 1 in eval mode, the configured n_talk in training mode, as officially)."""
        from transformers import DynamicCache

        n_talk = n_talk or (self.n_talk if self.training else 1)
        B, L = input_ids.shape
        T = self.n_thought_tokens
        device = input_ids.device
        embed = self.model.get_input_embeddings()
        dtype = embed.weight.dtype
        positions = torch.arange(L, device=device)[None].expand(B, L)
        cache = DynamicCache(config=self.model.config)

        def run(k: int, embeds: torch.Tensor) -> torch.Tensor:
            out = self.body(inputs_embeds=embeds, attention_mask=self._pass_mask(L, k, B, dtype, device),
                            position_ids=positions + k, past_key_values=cache, use_cache=True)
            return out.last_hidden_state

        h_base = run(0, embed(input_ids))
        base_logits = self.lm_head(h_base)
        h = run(1, self.thought_embedding("start").expand(B, L, -1))
        sampled, logprobs = [], []
        for j in range(T):
            logits = self.thought_logits(h)
            token = thought_ids[..., j] if thought_ids is not None else self.sample_thought_token(logits, generator)
            sampled.append(token)
            logprobs.append(torch.log_softmax(logits.float() / self.reinforce_temperature, -1)
                            .gather(-1, token[..., None])[..., 0])
            h = run(2 + j, embed(token))
        h = run(T + 2, self.thought_embedding("end").expand(B, L, -1))
        talk_logits, mix_weight = [], None
        for k in range(n_talk):
            if k:   # teacher-forced true token i + k (positions past the end read a copy of the last token)
                shifted = torch.cat([input_ids[:, k:], input_ids[:, -1:].expand(B, k)], dim=1)
                h = run(T + 2 + k, embed(shifted))
            h_base_k = torch.cat([h_base[:, k:], h_base[:, -1:].expand(B, k, -1)], dim=1) if k else h_base
            mixed, w = self.mix(h_base_k, h)
            talk_logits.append(self.lm_head(mixed))
            mix_weight = w if k == 0 else mix_weight
        return QuietStarOutput(talk_logits[0], base_logits, torch.stack(sampled, -1), mix_weight, talk_logits,
                               torch.stack(logprobs, -1))

    # --- training objective ---------------------------------------------------------------------------------

    def loss_terms(self, input_ids: torch.Tensor, generator: torch.Generator | None = None,
                   attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The objective and its parts (means over real target tokens): `loss`, `base_nll`, `mixed_nll`
        (mean over the n_talk steps), `reward` (mean Σ log p_mixed − log p_base per position), `policy_loss`."""
        valid = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        if self.n_passes > 1:
            input_ids = input_ids.repeat_interleave(self.n_passes, 0)
            valid = valid.repeat_interleave(self.n_passes, 0)
        out = self(input_ids, generator=generator, n_talk=self.n_talk)
        B, L = input_ids.shape
        K = self.n_talk

        def nll(logits: torch.Tensor, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
            """Per-position NLL of token i + shift from logits at i (i < L − shift), and its validity."""
            n = L - shift
            values = F.cross_entropy(logits[:, :n].float().reshape(-1, logits.shape[-1]),
                                     input_ids[:, shift:].reshape(-1), reduction="none").reshape(B, n)
            return values, valid[:, shift:] & valid[:, :n]

        def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return (values * mask).sum() / mask.sum().clamp(min=1)

        base_nll, base_valid = nll(out.base_logits, 1)
        mixed = [nll(out.talk_logits[k], 1 + k) for k in range(K)]
        mixed_nll = torch.stack([masked_mean(v, m) for v, m in mixed]).mean()
        lm_loss = self.original_loss_weight * masked_mean(base_nll, base_valid) \
            + (1 - self.original_loss_weight) * mixed_nll
        # reward of the thought at i: Σ_k log p_mixed(x[i+k+1]) − log p_base(x[i+k+1]), for i with all K targets
        n = L - K
        if n <= 0:
            raise ValueError(f"sequences of {L} tokens are too short for n_talk={K}")
        reward = sum(base_nll[:, k:k + n].detach() - mixed[k][0][:, :n].detach() for k in range(K))
        reward_valid = valid[:, :n] & valid[:, K:K + n]
        advantage = reward
        if self.n_passes > 1:
            per_pass = reward.reshape(-1, self.n_passes, n)
            advantage = (per_pass - per_pass.mean(1, keepdim=True)).reshape(B, n)
        if self.remove_negative_rewards:
            advantage = advantage.clamp(min=0)
        logprobs = out.thought_logprobs[:, :n]
        policy_loss = masked_mean(-(advantage[..., None] * logprobs).mean(-1), reward_valid)
        loss = lm_loss + self.policy_weight * policy_loss
        return {"loss": loss, "base_nll": masked_mean(base_nll, base_valid).detach(), "mixed_nll": mixed_nll.detach(),
                "reward": masked_mean(reward, reward_valid), "policy_loss": policy_loss.detach()}

    def loss(self, input_ids: torch.Tensor, generator: torch.Generator | None = None,
             attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.loss_terms(input_ids, generator, attention_mask)["loss"]

    # --- weights ---------------------------------------------------------------------------------------------

    def thinking_state_dict(self) -> dict[str, torch.Tensor]:
        """What Quiet-STaR adds (start/end embeddings, talk head), under the official checkpoint's key names."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("model.")}

    def save(self, path: str | Path, *, include_model: bool = True) -> None:
        """Trained weights: the thinking parameters and (by default) the fine-tuned base model's, atomically."""
        from infscale.io import atomic_open

        state = self.state_dict() if include_model else self.thinking_state_dict()
        with atomic_open(path, "wb") as handle:
            torch.save({k: v.detach().cpu() for k, v in state.items()}, handle)

    def load(self, path: str | Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = self.load_state_dict(state, strict=False)
        wanted = set(self.thinking_state_dict())
        if wanted & set(missing) or unexpected:
            raise ValueError(f"{path}: not a Quiet-STaR state for this model (missing {sorted(wanted & set(missing))},"
                             f" unexpected {sorted(unexpected)[:5]})")


# Keys of `ezelikman/quietstar-8-ahead` (MistralForCausalLM with Quiet-STaR heads) besides the Mistral ones.
OFFICIAL_THINKING_KEYS = ("start_embedding", "end_embedding", "talk_head.0.0.weight", "talk_head.0.0.bias",
                          "talk_head.0.2.weight", "talk_head.0.2.bias", "talk_head.0.4.weight")
# its training (quiet-star-train.py: n_ahead=8 in the hub name) and the seed study's evaluation settings
OFFICIAL_SETTINGS = {"n_thought_tokens": 5, "n_talk": 4, "n_passes": 2, "reinforce_temperature": 3.0,
                     "original_loss_weight": 0.5, "policy_weight": 1e6}


def from_official_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], *, tokenizer: Any = None,
                             **settings: Any) -> QuietStarLM:
    """Wrap `model` (the checkpoint's Mistral weights already loaded, e.g. by `from_pretrained`, which skips
    the extra keys) and load the checkpoint's start/end embeddings and talk head from `state_dict`.

    Its added <|startthought|>/<|endthought|> ids (the rows past the base vocabulary) are masked from sampling.
    """
    missing = [k for k in OFFICIAL_THINKING_KEYS if k not in state_dict]
    if missing:
        raise KeyError(f"not a Quiet-STaR checkpoint: missing {missing}")
    vocab = model.get_input_embeddings().weight.shape[0]
    added = tuple(range(tokenizer.vocab_size, vocab)) if tokenizer is not None else ()
    qs = QuietStarLM(model, **{**OFFICIAL_SETTINGS, **settings}, init_token_id=0, masked_token_ids=added)
    own = {k: state_dict[k] for k in OFFICIAL_THINKING_KEYS}
    for key, value in own.items():
        expected = qs.state_dict()[key].shape
        if value.shape != expected:
            raise ValueError(f"checkpoint key {key}: shape {tuple(value.shape)}, this model needs {tuple(expected)}")
    qs.load_state_dict(own, strict=False)
    return qs


# --- cached generation ------------------------------------------------------------------------------------------


@dataclass
class _Sequence:
    parent: int | None
    charged: bool                                   # its ancestors' thoughts are counted as its own
    thoughts: list[list[int]] = field(default_factory=list)


@dataclass
class ThoughtStats:
    """Thoughts of the decoder's calls since the last reset: their fed positions, their tokens, and per
    sequence (a batch row followed through the cache's batch operations, see `_TrackedCache`)."""

    n_thought_tokens: int = 0                        # positions fed for thoughts (start + T tokens + end each)
    thoughts: list[list[int]] = field(default_factory=list)   # sampled thought tokens, in call order
    sequences: list[_Sequence] = field(default_factory=list)

    def new_sequences(self, parents: list[int | None]) -> list[int]:
        first = len(self.sequences)
        seen: set[int | None] = set()
        for parent in parents:
            self.sequences.append(_Sequence(parent, charged=parent not in seen))
            seen.add(parent)
        return list(range(first, len(self.sequences)))

    def responses(self, n: int) -> list[tuple[list[list[int]], int]]:
        """(thoughts, thoughts charged) of each of the `n` responses of the sampler's batch, in order.

        A response's rows are the sequences nothing was copied from (leaves), in creation order: n of them per
        `sample_continuations` call (the reasoning, then the answer phase when there is one). A leaf reads its
        ancestors' thoughts too (the shared prompt's); only the first child of each ancestor is charged them.
        """
        has_child = {s.parent for s in self.sequences}
        leaves = [i for i in range(len(self.sequences)) if i not in has_child]
        if not leaves or len(leaves) % n:
            raise RuntimeError(f"{len(leaves)} decoded rows do not split into phases of {n} responses")
        result = []
        for response in range(n):
            thoughts, charged = [], 0
            for leaf in leaves[response::n]:
                chain, node, paying = [], leaf, True
                while node is not None:
                    seq = self.sequences[node]
                    chain = seq.thoughts + chain
                    charged += len(seq.thoughts) if paying else 0
                    paying = paying and seq.charged
                    node = seq.parent
                thoughts += chain
            result.append((thoughts, charged))
        return result


def _tracked_cache(config: Any, stats: ThoughtStats) -> Any:
    """A DynamicCache that follows its rows through `batch_repeat_interleave` / `batch_select_indices` (the
    sampler's batch operations), so each row's thoughts land in its own sequence."""
    from transformers import DynamicCache

    class _TrackedCache(DynamicCache):
        rows: list[int] | None = None

        def batch_repeat_interleave(self, repeats: int) -> None:
            super().batch_repeat_interleave(repeats)
            if self.rows is not None:
                self.rows = stats.new_sequences([r for r in self.rows for _ in range(repeats)])

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            super().batch_select_indices(indices)
            if self.rows is not None:
                self.rows = [self.rows[i] for i in indices.tolist()]

    return _TrackedCache(config=config)


class QuietStarDecoder(nn.Module):
    """A causal LM for KV-cached decoding whose next-token logits are Quiet-STaR's mixed ones.

    Call it like the HF model (`input_ids`, `attention_mask` 2D, `position_ids`, `past_key_values`,
    `logits_to_keep`, `output_hidden_states`): it runs the real tokens, then one thought at each row's last
    position on the same cache, which it crops back afterwards, and returns the mixed logits there (earlier
    positions keep the base logits; the hidden state returned is the base model's). `stats` counts the thought
    positions fed; `generator` seeds thought sampling.
    """

    def __init__(self, qs: QuietStarLM, generator: torch.Generator | None = None):
        super().__init__()
        self.qs = qs
        self.generator = generator
        self.stats = ThoughtStats()

    @property
    def config(self) -> Any:
        return self.qs.model.config

    @property
    def generation_config(self) -> Any:
        return self.qs.model.generation_config

    @property
    def device(self) -> torch.device:
        return self.qs.model.device

    def reset_stats(self) -> ThoughtStats:
        stats, self.stats = self.stats, ThoughtStats()
        return stats

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: Any = None, use_cache: bool = True,
                output_hidden_states: bool = False, logits_to_keep: int = 0, **_: Any) -> Any:
        from transformers.modeling_outputs import CausalLMOutputWithPast

        qs = self.qs
        B, n = input_ids.shape
        cache = past_key_values if past_key_values is not None else _tracked_cache(qs.model.config, self.stats)
        rows = getattr(cache, "rows", None)
        if rows is None and past_key_values is None:
            rows = cache.rows = self.stats.new_sequences([None] * B)
        past = cache.get_seq_length()
        device = input_ids.device
        if attention_mask is None:
            attention_mask = torch.ones(B, past + n, dtype=torch.long, device=device)
        if position_ids is None:
            position_ids = torch.arange(past, past + n, device=device)[None].expand(B, n)
        hidden = qs.body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True).last_hidden_state
        kept = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        logits = qs.lm_head(kept)
        h_base = hidden[:, -1]
        length = cache.get_seq_length()
        mask, position = attention_mask, position_ids[:, -1]
        embed = qs.model.get_input_embeddings()
        tokens = []

        def feed(embeds: torch.Tensor) -> torch.Tensor:
            nonlocal mask, position
            mask = torch.cat([mask, mask.new_ones(B, 1)], dim=-1)
            position = position + 1
            return qs.body(inputs_embeds=embeds[:, None], attention_mask=mask, position_ids=position[:, None],
                           past_key_values=cache, use_cache=True).last_hidden_state[:, -1]

        h = feed(qs.thought_embedding("start").expand(B, -1))
        for _ in range(qs.n_thought_tokens):
            token = qs.sample_thought_token(qs.thought_logits(h), self.generator)
            tokens.append(token)
            h = feed(embed(token))
        h_thought = feed(qs.thought_embedding("end").expand(B, -1))
        cache.crop(length - cache.get_seq_length())   # thoughts never enter the visible context (crop takes -n)
        mixed, _ = qs.mix(h_base, h_thought)
        logits = logits.clone()
        logits[:, -1] = qs.thought_logits(mixed)
        thought = torch.stack(tokens, -1).tolist()
        self.stats.n_thought_tokens += B * (qs.n_thought_tokens + 2)
        self.stats.thoughts.extend(thought)
        for row, tokens_of_row in zip(rows or [], thought):
            self.stats.sequences[row].thoughts.append(tokens_of_row)
        return CausalLMOutputWithPast(logits=logits, past_key_values=cache,
                                      hidden_states=(hidden,) if output_hidden_states else None)


# --- a `thinkers:` entry and the wrapper it describes (training and the quietstar methods) ---------------

@dataclass(frozen=True)
class ThinkerConfig:
    """A `thinkers:` entry, its unset keys filled from the schema's defaults (`from_config`). Those are the
    official training run's (quiet-star-train.py + modeling_mistral.py:
    n_ahead 12 = start + 9 thought tokens + end + 1, n_ahead_talk 4, n_passes 2, lr 1e-6, AdamW weight decay
    0.001, 20 warm-up steps, gradient norm clip 1, policy_loss_beta 1e6, original_loss_weight 0.5,
    REINFORCE temperature 3, 8 texts per step, 256 tokens, killed after 100 steps)."""

    name: str
    model: str
    source: str  # train | official (load ezelikman/quietstar-8-ahead's heads)
    n_thought_tokens: int
    n_talk: int
    n_passes: int
    thought_temperature: float
    reinforce_temperature: float
    policy_weight: float
    original_loss_weight: float
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    max_grad_norm: float
    steps: int
    batch_size: int  # texts per step (each run n_passes times)
    max_length: int  # tokens per text
    checkpoint_every: int  # steps between resumable checkpoints
    control: bool  # also fine-tune the plain LM on the same texts (the control)
    text: dict[str, Any] = field(default_factory=dict)   # task, task_config, seed, n_train, n_heldout

    @classmethod
    def from_config(cls, name: str, cfg: dict[str, Any]) -> "ThinkerConfig":
        """The entry `thinkers.<name>` as the config wrote it (validated by the config schema), the keys it
        leaves out at the schema's defaults."""
        return cls(name=name, **{**defaults("thinker"), **cfg})

    def wrapper_settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("n_thought_tokens", "n_talk", "n_passes", "thought_temperature",
                                              "reinforce_temperature", "policy_weight", "original_loss_weight")}


def wrap(model: Any, tokenizer: Any, cfg: ThinkerConfig, weights: str | Path | None = None) -> QuietStarLM:
    """The Quiet-STaR wrapper of `model` for thinker `cfg`, with its trained weights when given."""
    if cfg.source == "official":
        if weights is None:
            raise ValueError(f"thinkers.{cfg.name}: an official thinker needs its extracted weights file")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        return from_official_state_dict(model, state, tokenizer=tokenizer, **cfg.wrapper_settings())
    qs = QuietStarLM(model, tokenizer=tokenizer, **cfg.wrapper_settings())
    if weights is not None:
        qs.load(weights)
    return qs.to(model.device)
