"""Analytic forward FLOPs of decoder-only transformers, from a Hugging Face `config.json`.

Per token that attends to `n_ctx` positions (itself included), a forward pass costs

    C(n_ctx) = 2·N_non-embedding                     (every weight: one multiply-add per token)
             + 4·d_attn·Σ_layers min(n_ctx, window)  (attention: QKᵀ scores and the weighted sum of V)
             + 2·d_model·vocab                       (LM head; only for positions whose logits are needed)

which is Kaplan et al. (2020, Table 1), C_forward = 2N + 2·n_layer·n_ctx·d_attn, with two documented changes:

* Attention counts both matmuls, QKᵀ and softmax·V (2·n_ctx·d_attn each per layer). Kaplan's table lists only
  the first; both are real multiply-adds of the same size, and `torch.utils.flop_counter.FlopCounterMode`
  counts both (tests/test_compute.py checks the count exactly on a decode step). GQA shares K/V heads but
  every query head still scores all positions, so the term uses d_attn = n_heads·head_dim; GQA shows up in N
  (smaller K/V projections). Sliding-window layers (Mistral v0.1, Gemma 2/3) attend to at most `window`
  positions.
* The LM head (de-embedding, 2·d_model·vocab) is its own term and part of every total. Kaplan leaves it out of
  C_forward as negligible for large models, but for small models with big vocabularies it is not: SmolLM2-135M
  spends 57 MFLOPs per token in its head against 212 MFLOPs in all 30 layers. It is counted only for the
  positions whose logits are computed: a generation prefill needs the last position's only (HF `generate`
  passes `logits_to_keep=1`), every decode step needs its own.

N_non-embedding counts every parameter outside the token embeddings and LM head (norm weights and biases
included, as Kaplan's N does, and as `model.json`'s `n_non_embedding_params` does); norms and biases add
~0.03% of FLOPs over the matmuls alone.

Prefixes served from a KV cache are counted once: `sequence_flops(dims, n_cached, n_new)` charges only the
n_new positions, each attending to everything before it. Causal prefill is counted as the lower triangle it
needs; dense kernels that compute the masked upper triangle too (e.g. eager attention, which FlopCounterMode
sees) do up to 2× more attention work in a prefill, which is not charged.

`seed000_flops_per_token`, `seed000_sampling_flops` and `seed000_rebase_flops` reproduce the seed study's
cruder convention, as its code computes it, for comparison (see their docstrings); they are reported beside
these counts, never instead of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

# ----------------------------------------------------------------------------------------------------------
# Architecture families: what each HF model_type's layer holds, with the HF config class defaults for keys a
# config.json may leave out (save_pretrained omits nested defaults, e.g. Gemma 3's text_config).


@dataclass(frozen=True)
class _Family:
    gated_mlp: bool                           # SwiGLU/GeGLU: gate, up, down (3 matrices) vs up, down (2)
    norms_per_layer: int                      # normalisation layers inside each block
    norm_bias: bool = False                   # LayerNorm (weight + bias) vs RMSNorm (weight only)
    qk_norm: bool = False                     # per-head RMSNorm on queries and keys (Gemma 3, Qwen 3)
    qkv_bias: Callable[[dict], bool] = lambda c: bool(c.get("attention_bias", False))
    o_bias: Callable[[dict], bool] = lambda c: bool(c.get("attention_bias", False))
    mlp_bias: Callable[[dict], bool] = lambda c: False
    defaults: dict[str, Any] = field(default_factory=dict)
    windows: Callable[[dict, int], list[int | None]] = lambda c, n: [None] * n  # per-layer window if no layer_types


def _mistral_windows(cfg: dict, n_layer: int) -> list[int | None]:
    # MistralConfig applies one sliding window (default 4096; null in v0.2+) to every layer
    return [cfg.get("sliding_window")] * n_layer


def _qwen_windows(cfg: dict, n_layer: int) -> list[int | None]:
    # Qwen2/3Config: sliding window only with use_sliding_window, and only on layers >= max_window_layers
    if not cfg.get("use_sliding_window", False) or cfg.get("sliding_window") is None:
        return [None] * n_layer
    first = cfg.get("max_window_layers", 28)
    return [cfg["sliding_window"] if i >= first else None for i in range(n_layer)]


def _pattern_windows(default_pattern: int) -> Callable[[dict, int], list[int | None]]:
    # Gemma 2 alternates local/global layers; Gemma 3 has 5 local layers per global one ("sliding_window_pattern")
    def windows(cfg: dict, n_layer: int) -> list[int | None]:
        pattern = cfg.get("sliding_window_pattern", default_pattern)
        return [cfg.get("sliding_window") if (i + 1) % pattern else None for i in range(n_layer)]
    return windows


_LLAMA_LIKE = dict(gated_mlp=True, norms_per_layer=2)
FAMILIES: dict[str, _Family] = {
    "llama": _Family(**_LLAMA_LIKE, mlp_bias=lambda c: bool(c.get("mlp_bias", False)),
                     defaults={"tie_word_embeddings": False}),
    "mistral": _Family(**_LLAMA_LIKE, qkv_bias=lambda c: False, o_bias=lambda c: False,
                       defaults={"tie_word_embeddings": False, "sliding_window": 4096}, windows=_mistral_windows),
    "qwen2": _Family(**_LLAMA_LIKE, qkv_bias=lambda c: True, o_bias=lambda c: False,
                     defaults={"tie_word_embeddings": False}, windows=_qwen_windows),
    "qwen3": _Family(**_LLAMA_LIKE, qk_norm=True, defaults={"tie_word_embeddings": False}, windows=_qwen_windows),
    "gemma": _Family(**_LLAMA_LIKE, defaults={"tie_word_embeddings": True, "head_dim": 256}),
    "gemma2": _Family(gated_mlp=True, norms_per_layer=4,
                      defaults={"tie_word_embeddings": True, "head_dim": 256, "sliding_window": 4096},
                      windows=_pattern_windows(2)),
    "gemma3_text": _Family(gated_mlp=True, norms_per_layer=4, qk_norm=True,
                           defaults={"tie_word_embeddings": True, "head_dim": 256, "sliding_window": 4096,
                                     "vocab_size": 262_208},
                           windows=_pattern_windows(6)),
    "gpt_neox": _Family(gated_mlp=False, norms_per_layer=2, norm_bias=True,
                        qkv_bias=lambda c: bool(c.get("attention_bias", True)),
                        o_bias=lambda c: bool(c.get("attention_bias", True)),
                        mlp_bias=lambda c: True, defaults={"tie_word_embeddings": False}),
}
_ALIASES = {"gemma3": "gemma3_text"}  # multimodal wrapper types whose text model lives in text_config


def _text_config(cfg: dict) -> dict:
    """The language model's config: `text_config` for multimodal wrappers (Gemma 3), else `cfg` itself.

    Keys the wrapper sets at top level (tie_word_embeddings) are inherited unless text_config overrides them.
    """
    if "text_config" not in cfg:
        return cfg
    text = dict(cfg["text_config"] or {})
    text.setdefault("model_type", _ALIASES.get(cfg.get("model_type"), cfg.get("model_type")))
    if "tie_word_embeddings" in cfg:
        text.setdefault("tie_word_embeddings", cfg["tie_word_embeddings"])
    return text


def _require(cfg: dict, key: str, model_type: str) -> Any:
    if cfg.get(key) is None:
        raise ValueError(f"model config ({model_type}) lacks required key {key!r}")
    return cfg[key]


def _layer_windows(cfg: dict, family: _Family, n_layer: int, model_type: str) -> tuple[int | None, ...]:
    layer_types = cfg.get("layer_types")
    if layer_types is None:
        windows = family.windows(cfg, n_layer)
    else:
        if len(layer_types) != n_layer:
            raise ValueError(f"model config ({model_type}): layer_types has {len(layer_types)} entries "
                             f"for {n_layer} layers")
        unknown = set(layer_types) - {"full_attention", "sliding_attention"}
        if unknown:
            raise ValueError(f"model config ({model_type}): unsupported layer_types {sorted(unknown)}")
        windows = [cfg.get("sliding_window") if t == "sliding_attention" else None for t in layer_types]
    if any(w is not None and w <= 0 for w in windows):
        raise ValueError(f"model config ({model_type}): sliding_window must be positive")
    return tuple(windows)


@dataclass(frozen=True)
class ModelDims:
    """The shapes that set a decoder's forward FLOPs, read from a HF config by `from_config`."""

    model_type: str
    n_layer: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    vocab: int
    tied_embeddings: bool
    gated_mlp: bool
    n_non_embedding: int                    # all parameters but token embeddings and the LM head
    n_embedding: int                        # vocab·d_model, twice when the LM head is not tied
    windows: tuple[int | None, ...]         # per layer: sliding-window size, or None for full causal attention

    @property
    def d_attn(self) -> int:
        """Width of all query heads together, n_heads·head_dim (≠ d_model in e.g. Gemma 3)."""
        return self.n_heads * self.head_dim

    @property
    def d_kv(self) -> int:
        """Width of the K (and of the V) projection, n_kv_heads·head_dim: smaller than d_attn under GQA."""
        return self.n_kv_heads * self.head_dim

    @property
    def n_params(self) -> int:
        return self.n_non_embedding + self.n_embedding

    @classmethod
    def from_config(cls, cfg: dict) -> "ModelDims":
        """Read a HF `config.json` dict (Llama, Mistral, Qwen 2/3, Gemma 1/2/3, GPT-NeoX/Pythia)."""
        if not isinstance(cfg, dict):
            raise ValueError(f"model config must be a dict, got {type(cfg).__name__}")
        text = _text_config(cfg)
        raw_type = text.get("model_type")
        model_type = _ALIASES.get(raw_type, raw_type)
        if model_type not in FAMILIES:
            raise ValueError(f"model config: unsupported model_type {raw_type!r}; supported: {sorted(FAMILIES)}")
        family = FAMILIES[model_type]
        text = {**family.defaults, **text}  # null values stay null: Mistral's "sliding_window": null = no window

        n_layer = int(_require(text, "num_hidden_layers", model_type))
        d_model = int(_require(text, "hidden_size", model_type))
        n_heads = int(_require(text, "num_attention_heads", model_type))
        n_kv_heads = int(text.get("num_key_value_heads") or n_heads)  # absent or null: no GQA
        head_dim = int(text.get("head_dim") or d_model // n_heads)
        d_ff = int(_require(text, "intermediate_size", model_type))
        vocab = int(_require(text, "vocab_size", model_type))
        tied = bool(text["tie_word_embeddings"])
        if n_heads % n_kv_heads:
            raise ValueError(f"model config ({model_type}): num_attention_heads {n_heads} is not a multiple "
                             f"of num_key_value_heads {n_kv_heads}")

        dims = cls(
            model_type=model_type, n_layer=n_layer, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads,
            head_dim=head_dim, d_ff=d_ff, vocab=vocab, tied_embeddings=tied, gated_mlp=family.gated_mlp,
            n_non_embedding=0, n_embedding=vocab * d_model * (1 if tied else 2),
            windows=_layer_windows(text, family, n_layer, model_type),
        )
        final_norm = d_model * (2 if family.norm_bias else 1)
        return replace(dims, n_non_embedding=n_layer * _params_per_layer(dims, family, text) + final_norm)


def _params_per_layer(dims: ModelDims, family: _Family, cfg: dict) -> int:
    """Weights, biases and norm parameters of one transformer block."""
    d, d_attn, d_kv = dims.d_model, dims.d_attn, dims.d_kv
    attention = (d * d_attn + 2 * d * d_kv + d_attn * d                 # Q, K, V (n_kv_heads wide), O
                 + (d_attn + 2 * d_kv) * family.qkv_bias(cfg) + d * family.o_bias(cfg)
                 + 2 * dims.head_dim * family.qk_norm)
    n_matrices = 3 if family.gated_mlp else 2
    mlp = n_matrices * d * dims.d_ff + ((n_matrices - 1) * dims.d_ff + d) * family.mlp_bias(cfg)
    norms = family.norms_per_layer * d * (2 if family.norm_bias else 1)
    return attention + mlp + norms


# ----------------------------------------------------------------------------------------------------------
# FLOPs


def _check_counts(**counts: float) -> None:
    """Token counts and sizes are non-negative; a bad one is named."""
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def _attended_positions(window: int | None, first: int, last: int) -> int:
    """Σ_{c=first}^{last} min(c, window): positions attended by tokens whose context lengths run first..last."""
    if last < first:
        return 0
    if window is None or last <= window:
        return (first + last) * (last - first + 1) // 2
    if first > window:
        return window * (last - first + 1)
    return (first + window) * (window - first + 1) // 2 + window * (last - window)


def sequence_flops_terms(dims: ModelDims, n_cached: int, n_new: int, n_logits: int | None = None) -> dict[str, float]:
    """FLOPs by term to run `n_new` tokens after `n_cached` tokens already in the KV cache.

    Token i (i = 1..n_new) attends to n_ctx = n_cached + i positions, so
        linear    = 2·N_non-embedding·n_new
        attention = 4·d_attn·Σ_layers Σ_i min(n_cached + i, window_layer)
        lm_head   = 2·d_model·vocab·n_logits   (n_logits defaults to n_new: logits at every new position)
    """
    _check_counts(n_cached=n_cached, n_new=n_new)
    n_logits = n_new if n_logits is None else n_logits
    if not 0 <= n_logits <= n_new:
        raise ValueError(f"n_logits must be in 0..n_new ({n_new}), got {n_logits}")
    attended = sum(_attended_positions(w, n_cached + 1, n_cached + n_new) for w in dims.windows)
    return {
        "linear": 2.0 * dims.n_non_embedding * n_new,
        "attention": 4.0 * dims.d_attn * attended,
        "lm_head": 2.0 * dims.d_model * dims.vocab * n_logits,
    }


def sequence_flops(dims: ModelDims, n_cached: int, n_new: int, n_logits: int | None = None) -> float:
    """Total of `sequence_flops_terms`: forward FLOPs of n_new tokens after n_cached cached ones.

    Prefill of P tokens = sequence_flops(dims, 0, P); decoding T tokens one at a time after it =
    sequence_flops(dims, P, T); the two add up to sequence_flops(dims, 0, P + T) (when logits are kept alike).
    """
    return sum(sequence_flops_terms(dims, n_cached, n_new, n_logits).values())


def token_flops(dims: ModelDims, n_ctx: float, logits: bool = True) -> float:
    """Forward FLOPs of one token attending to `n_ctx` positions (may be fractional: a mean context)."""
    _check_counts(n_ctx=n_ctx)
    attended = sum(n_ctx if w is None else min(n_ctx, w) for w in dims.windows)
    return 2.0 * dims.n_non_embedding + 4.0 * dims.d_attn * attended + 2.0 * dims.d_model * dims.vocab * logits


def thought_flops(dims: ModelDims, n_prompt_tokens: int, n_completion_tokens: int, n_thought_tokens: int) -> float:
    """FLOPs of hidden thought tokens interleaved with a completion (Quiet-STaR style), each sampled (with logits).

    Assumption (the record does not say where thoughts sit): the thought tokens are spread evenly over the
    completion, L = n_thought / max(n_completion, 1) after each visible token, and thought token j of the thought
    after visible token t attends to the prompt, t visible tokens and its own thought so far:
        n_ctx = n_prompt + t + j,  mean over all thought tokens = n_prompt + (T + 1)/2 + (L + 1)/2
    (T = n_completion; with T = 0 one thought of n_thought tokens follows the prompt). Attention is linear in
    n_ctx, so n_thought·token_flops(mean n_ctx) is exact for full-attention layers (an approximation under
    sliding windows). A thought does not see earlier thoughts: Quiet-STaR keeps them out of the visible context.
    """
    _check_counts(n_prompt_tokens=n_prompt_tokens, n_completion_tokens=n_completion_tokens,
                  n_thought_tokens=n_thought_tokens)
    if n_thought_tokens == 0:
        return 0.0
    per_thought = n_thought_tokens / max(n_completion_tokens, 1)
    visible = (n_completion_tokens + 1) / 2 if n_completion_tokens else 0.0
    mean_ctx = n_prompt_tokens + visible + (per_thought + 1) / 2
    return n_thought_tokens * token_flops(dims, mean_ctx)


def generation_flops(dims: ModelDims, n_prefill_tokens: int, n_prompt_tokens: int, n_completion_tokens: int,
                     n_thought_tokens: int = 0, n_answer_prompt_tokens: int = 0, n_answer_prefill_tokens: int = 0,
                     n_answer_tokens: int = 0) -> dict[str, float]:
    """A response record's `flops` (docs/file-formats.md): forward FLOPs by component.

    prefill  the prompt tokens this response encoded (the last n_prefill of n_prompt; earlier ones come from a
             shared KV cache and are charged to whoever encoded them), with logits at the last position only
             (all that is needed to sample the first completion token; HF `generate` keeps just that one)
             = sequence_flops(dims, n_prompt − n_prefill, n_prefill, n_logits=min(1, n_prefill))
    decode   every completion token as one forward pass with logits at its position after the prompt
             = sequence_flops(dims, n_prompt, n_completion)
             (the usual one-pass-per-generated-token convention: it includes the pass that would feed the
             last token back in, which generation stops before running, i.e. one token's worth too many)
    thought  hidden thought tokens, see `thought_flops`
    scorer   0 here; scoring stages add their own

    With an answer phase (sampling's `answer_suffix`: prompt + reasoning + suffix encoded afresh, then
    `n_answer_tokens` decoded), its encoding is added to prefill and its tokens to decode, counted the same way
    (`n_answer_prefill_tokens` of its `n_answer_prompt_tokens` encoded for this response).
    """
    _check_counts(n_prefill_tokens=n_prefill_tokens, n_prompt_tokens=n_prompt_tokens,
                  n_completion_tokens=n_completion_tokens, n_thought_tokens=n_thought_tokens,
                  n_answer_prompt_tokens=n_answer_prompt_tokens, n_answer_prefill_tokens=n_answer_prefill_tokens,
                  n_answer_tokens=n_answer_tokens)
    if n_prefill_tokens > n_prompt_tokens:
        raise ValueError(f"n_prefill_tokens ({n_prefill_tokens}) exceeds n_prompt_tokens ({n_prompt_tokens})")
    if n_answer_prefill_tokens > n_answer_prompt_tokens:
        raise ValueError(f"n_answer_prefill_tokens ({n_answer_prefill_tokens}) exceeds n_answer_prompt_tokens "
                         f"({n_answer_prompt_tokens})")
    prefill = sequence_flops(dims, n_prompt_tokens - n_prefill_tokens, n_prefill_tokens,
                             n_logits=min(1, n_prefill_tokens))
    prefill += sequence_flops(dims, n_answer_prompt_tokens - n_answer_prefill_tokens, n_answer_prefill_tokens,
                              n_logits=min(1, n_answer_prefill_tokens))
    return {
        "prefill": prefill,
        "decode": sequence_flops(dims, n_prompt_tokens, n_completion_tokens)
                  + sequence_flops(dims, n_answer_prompt_tokens, n_answer_tokens),
        "thought": thought_flops(dims, n_prompt_tokens, n_completion_tokens, n_thought_tokens),
        "scorer": 0.0,
    }


# ----------------------------------------------------------------------------------------------------------
# Seed 000's convention, reproduced for comparison (DESIGN §5). The study's code is the reference:
# MarwanWalid2/Reasoning-vs-InfernceScaling, base.py and rebase.py (docs/report.md cites the lines).


def seed000_flops_per_token(dims: ModelDims) -> int:
    """Seed 000's FLOPs per token, C = 2·N + 2·L·d with N = 2·d·L·(2·(d // h) + d_ff).

    base.py `calculate_flops_per_token` and rebase.py's copy of it, from the HF config's hidden_size d,
    num_hidden_layers L, num_attention_heads h and intermediate_size d_ff: no vocabulary, no context length,
    one 2·d_ff (not 3·d_ff) MLP term. Mistral-7B: 7,650,672,640.
    """
    n = 2 * dims.d_model * dims.n_layer * (2 * (dims.d_model // dims.n_heads) + dims.d_ff)
    return 2 * n + 2 * dims.n_layer * dims.d_model


def seed000_sampling_flops(dims: ModelDims, n_decoding_steps: int) -> float:
    """Seed 000's count for one vote of its sampling baseline: C per decoding step.

    base.py's loop charges `flops_per_token * (~finished_generating).sum()` once per forward pass, i.e. per
    token it samples (the token that ends the vote, EOS included), through the reasoning and the answer after
    the suffix; nothing for the prompt, its re-encoding with the suffix, or attention. A vote that runs to the
    cap takes 396 steps: 3,029,666,365,440 FLOPs for Mistral-7B, the most any vote in Results/ is charged.
    """
    _check_counts(n_decoding_steps=n_decoding_steps)
    return float(seed000_flops_per_token(dims)) * n_decoding_steps


def seed000_rebase_flops(dims: ModelDims, max_step_tokens: int, node_depths: list[int]) -> float:
    """Seed 000's count for one REBASE tree: C · max_step_tokens · depth, summed over the inserted nodes.

    rebase.py's `generate_step` charges every step its cap, `policy_flops_per_token * max_tokens`, whatever it
    generated, and adds its parent's running total (a node at depth k carries k·C·max_step_tokens); then
    `reward_guided_search` adds every inserted node's running total to the question's FLOPs. Nodes the search
    dropped (rebase.py: PRM score <= 0.1) are not inserted and not charged, and the PRM is never charged.
    Pass the depths (root = 0, not a node) of the nodes the tree kept.
    """
    _check_counts(max_step_tokens=max_step_tokens)
    if any(d < 1 for d in node_depths):
        raise ValueError(f"node depths must be >= 1 (the root is not charged), got {min(node_depths)}")
    return float(seed000_flops_per_token(dims)) * max_step_tokens * sum(node_depths)
