"""Analytic FLOPs (infscale.compute): config parsing against HF's own models, the sums, and FlopCounterMode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infscale.compute import (
    ModelDims,
    generation_flops,
    seed000_flops_per_token,
    seed000_rebase_flops,
    seed000_sampling_flops,
    sequence_flops,
    sequence_flops_terms,
    thought_flops,
    token_flops,
)

# Small configs, one per supported family, exercising GQA, biases, head_dim != d_model / n_heads, sliding windows.
SMALL_CONFIGS = {
    "llama": dict(model_type="llama", hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=500, tie_word_embeddings=True),
    "llama-bias": dict(model_type="llama", hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=1, vocab_size=500, attention_bias=True,
                       mlp_bias=True),
    "mistral": dict(model_type="mistral", hidden_size=64, intermediate_size=224, num_hidden_layers=3,
                    num_attention_heads=8, num_key_value_heads=2, vocab_size=320, sliding_window=16),
    "qwen2": dict(model_type="qwen2", hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=300, tie_word_embeddings=True,
                  use_sliding_window=True, sliding_window=8, max_window_layers=1),
    "qwen3": dict(model_type="qwen3", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=32, vocab_size=300),
    "gemma": dict(model_type="gemma", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=1, head_dim=32, vocab_size=300),
    "gemma2": dict(model_type="gemma2", hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=32, vocab_size=300, sliding_window=8),
    "gemma3_text": dict(model_type="gemma3_text", hidden_size=64, intermediate_size=96, num_hidden_layers=7,
                        num_attention_heads=4, num_key_value_heads=1, head_dim=48, vocab_size=300,
                        sliding_window=8),
    "gpt_neox": dict(model_type="gpt_neox", hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                     num_attention_heads=4, vocab_size=300),
}

# Published configs (abridged to the keys that matter, as on the Hub) and their published parameter counts.
SMOLLM2_135M = dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, head_dim=64, vocab_size=49152,
                    tie_word_embeddings=True, attention_bias=False, mlp_bias=False)
MISTRAL_7B_V01 = dict(model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, vocab_size=32000, sliding_window=4096,
                      tie_word_embeddings=False)
PYTHIA_70M = dict(model_type="gpt_neox", hidden_size=512, intermediate_size=2048, num_hidden_layers=6,
                  num_attention_heads=8, vocab_size=50304, tie_word_embeddings=False, rotary_pct=0.25,
                  use_parallel_residual=True)
QWEN25_05B = dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                  num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                  use_sliding_window=False, sliding_window=32768, max_window_layers=21)
GEMMA3_270M = dict(model_type="gemma3_text", hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                   num_attention_heads=4, num_key_value_heads=1, head_dim=256, vocab_size=262144,
                   sliding_window=512, layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 3)
# Gemma 3 4B as on the Hub: the language model nested in text_config, defaults (vocab, head_dim) left out
GEMMA3_4B = {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
             "text_config": {"model_type": "gemma3_text", "hidden_size": 2560, "intermediate_size": 10240,
                             "num_hidden_layers": 34, "num_attention_heads": 8, "num_key_value_heads": 4,
                             "sliding_window": 1024},
             "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152}}


def _hf_counts(cfg: dict) -> tuple[int, int, tuple]:
    """(all params, embedding params, per-layer windows) of the HF model built from `cfg` on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**cfg)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())  # tied weights are yielded once
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    n_embedding = embed.numel() + (0 if head is embed else head.numel())
    layer_types = getattr(config, "layer_types", None)
    window = getattr(config, "sliding_window", None)
    if layer_types is None:  # Mistral: one window on every layer
        windows = (window,) * config.num_hidden_layers
    else:
        windows = tuple(window if t == "sliding_attention" else None for t in layer_types)
    return total, n_embedding, windows


@pytest.mark.parametrize("name", sorted(SMALL_CONFIGS))
def test_param_counts_and_windows_match_transformers(name):
    cfg = SMALL_CONFIGS[name]
    dims = ModelDims.from_config(cfg)
    total, n_embedding, windows = _hf_counts(cfg)
    assert dims.n_params == total
    assert dims.n_embedding == n_embedding
    assert dims.n_non_embedding == total - n_embedding
    assert dims.windows == windows


@pytest.mark.parametrize("cfg, n_params, n_non_embedding", [
    (SMOLLM2_135M, 134_515_008, 106_203_456),   # model.json of the embedded model (docs/file-formats.md)
    (MISTRAL_7B_V01, 7_241_732_096, None),      # Mistral-7B-v0.1 model card
    (PYTHIA_70M, 70_426_624, 18_915_328),       # Pythia suite table (total incl. untied embed_in/embed_out)
    (QWEN25_05B, 494_032_768, 357_898_112),     # Qwen2.5-0.5B: 0.49B total, 0.36B non-embedding
    (GEMMA3_270M, 268_098_176, None),           # Gemma 3 270M
])
def test_published_parameter_counts(cfg, n_params, n_non_embedding):
    dims = ModelDims.from_config(cfg)
    assert dims.n_params == n_params
    if n_non_embedding is not None:
        assert dims.n_non_embedding == n_non_embedding


def test_dims_of_published_models():
    smol = ModelDims.from_config(SMOLLM2_135M)
    assert (smol.d_attn, smol.d_kv, smol.gated_mlp, smol.tied_embeddings) == (576, 192, True, True)
    pythia = ModelDims.from_config(PYTHIA_70M)
    assert (pythia.n_kv_heads, pythia.head_dim, pythia.gated_mlp, pythia.tied_embeddings) == (8, 64, False, False)
    gemma = ModelDims.from_config(GEMMA3_270M)
    assert gemma.d_attn == 1024 != gemma.d_model          # 4 heads x 256 on a 640-wide model
    assert gemma.windows == ((512,) * 5 + (None,)) * 3
    assert ModelDims.from_config(MISTRAL_7B_V01).windows == (4096,) * 32
    # Mistral-7B v0.2+ configs set "sliding_window": null (full attention) and "head_dim": null
    v02 = ModelDims.from_config(dict(MISTRAL_7B_V01, sliding_window=None, head_dim=None))
    assert v02.windows == (None,) * 32 and v02.head_dim == 128
    assert ModelDims.from_config(QWEN25_05B).windows == (None,) * 24  # use_sliding_window false


def test_gemma3_text_config_nesting_and_defaults():
    nested = ModelDims.from_config(GEMMA3_4B)
    flat = ModelDims.from_config({**GEMMA3_4B["text_config"], "vocab_size": 262_208, "head_dim": 256,
                                  "tie_word_embeddings": True})
    assert nested == flat
    assert nested.windows == ((1024,) * 5 + (None,)) * 5 + (1024,) * 4  # 6-layer pattern, default
    # a wrapper-level tie_word_embeddings reaches the text model
    untied = ModelDims.from_config({**GEMMA3_4B, "tie_word_embeddings": False})
    assert untied.n_embedding == 2 * nested.n_embedding


def test_gqa_changes_kv_params_not_attention_flops():
    base = dict(SMALL_CONFIGS["llama"], num_key_value_heads=4)
    mha, gqa = ModelDims.from_config(base), ModelDims.from_config(dict(base, num_key_value_heads=1))
    head_dim = 64 // 4
    # K and V each lose (4 - 1) heads of d_model x head_dim per layer
    assert mha.n_non_embedding - gqa.n_non_embedding == 2 * 2 * 64 * head_dim * 3
    assert (sequence_flops_terms(mha, 10, 5)["attention"] == sequence_flops_terms(gqa, 10, 5)["attention"])


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="unsupported model_type 'gpt2'"):
        ModelDims.from_config({"model_type": "gpt2", "n_embd": 768})
    with pytest.raises(ValueError, match="'intermediate_size'"):
        ModelDims.from_config({k: v for k, v in SMALL_CONFIGS["llama"].items() if k != "intermediate_size"})
    with pytest.raises(ValueError, match="num_key_value_heads"):
        ModelDims.from_config(dict(SMALL_CONFIGS["llama"], num_key_value_heads=3))
    with pytest.raises(ValueError, match="layer_types has 2 entries for 7 layers"):
        ModelDims.from_config(dict(SMALL_CONFIGS["gemma3_text"], layer_types=["full_attention"] * 2))


def test_token_flops_is_kaplan_plus_value_matmul_and_lm_head():
    dims = ModelDims.from_config(SMOLLM2_135M)
    n_ctx = 100
    kaplan = 2 * dims.n_non_embedding + 2 * dims.n_layer * n_ctx * dims.d_attn  # Kaplan et al. C_forward
    value_matmul = 2 * dims.n_layer * n_ctx * dims.d_attn                      # softmax . V, same size as QK^T
    lm_head = 2 * dims.d_model * dims.vocab
    assert token_flops(dims, n_ctx, logits=False) == kaplan + value_matmul
    assert token_flops(dims, n_ctx) == kaplan + value_matmul + lm_head
    # one new token after n_ctx - 1 cached ones attends to n_ctx positions
    assert sequence_flops(dims, n_ctx - 1, 1) == token_flops(dims, n_ctx)


@pytest.mark.parametrize("name", ["llama", "gemma3_text", "mistral"])
def test_sequence_flops_sums_token_flops(name):
    dims = ModelDims.from_config(SMALL_CONFIGS[name])  # windows 8 and 16 are crossed by these contexts
    for n_cached, n_new in [(0, 1), (0, 30), (5, 3), (7, 12), (20, 9)]:
        brute = sum(token_flops(dims, n_cached + i) for i in range(1, n_new + 1))
        assert sequence_flops(dims, n_cached, n_new) == pytest.approx(brute, rel=1e-12)


def test_prefill_then_decode_equals_one_pass_and_steps_add_up():
    dims = ModelDims.from_config(GEMMA3_270M)
    prompt, completion = 700, 300  # crosses the 512-token window
    assert sequence_flops(dims, 0, prompt) + sequence_flops(dims, prompt, completion) == pytest.approx(
        sequence_flops(dims, 0, prompt + completion), rel=1e-12)
    steps = sum(sequence_flops(dims, prompt + i, 1) for i in range(completion))
    assert steps == pytest.approx(sequence_flops(dims, prompt, completion), rel=1e-12)


def test_sliding_window_caps_attention():
    dims = ModelDims.from_config(SMALL_CONFIGS["mistral"])  # window 16 on all 3 layers
    far, farther = sequence_flops_terms(dims, 100, 1), sequence_flops_terms(dims, 1000, 1)
    assert far == farther
    assert far["attention"] == 4 * dims.d_attn * 16 * 3


def test_generation_flops_components():
    dims = ModelDims.from_config(SMOLLM2_135M)
    first = generation_flops(dims, n_prefill_tokens=87, n_prompt_tokens=87, n_completion_tokens=3)
    shared = generation_flops(dims, n_prefill_tokens=0, n_prompt_tokens=87, n_completion_tokens=3)
    assert set(first) == {"prefill", "decode", "thought", "scorer"}
    assert shared["prefill"] == 0.0 and first["decode"] == shared["decode"]
    assert first["thought"] == first["scorer"] == 0.0
    # the prefill keeps logits for its last position only
    assert first["prefill"] == sequence_flops(dims, 0, 87) - 86 * 2 * dims.d_model * dims.vocab
    assert first["decode"] == sequence_flops(dims, 87, 3)
    # a prompt whose first 60 tokens come from a cached prefix pays only for the other 27
    partial = generation_flops(dims, n_prefill_tokens=27, n_prompt_tokens=87, n_completion_tokens=3)
    assert partial["prefill"] == sequence_flops(dims, 60, 27, n_logits=1)
    with pytest.raises(ValueError, match="n_prefill_tokens"):
        generation_flops(dims, n_prefill_tokens=90, n_prompt_tokens=87, n_completion_tokens=3)
    with pytest.raises(ValueError, match="n_completion_tokens"):
        generation_flops(dims, n_prefill_tokens=0, n_prompt_tokens=87, n_completion_tokens=-1)


def test_thought_flops_matches_explicit_layout():
    dims = ModelDims.from_config(SMALL_CONFIGS["llama"])
    prompt, completion, per_thought = 11, 6, 4
    # thought token j (1..L) after visible token t (1..T) attends to prompt + t + j positions
    explicit = sum(token_flops(dims, prompt + t + j)
                   for t in range(1, completion + 1) for j in range(1, per_thought + 1))
    assert thought_flops(dims, prompt, completion, completion * per_thought) == pytest.approx(explicit, rel=1e-12)
    after_prompt = sum(token_flops(dims, prompt + j) for j in range(1, 9))
    assert thought_flops(dims, prompt, 0, 8) == pytest.approx(after_prompt, rel=1e-12)
    record = generation_flops(dims, prompt, prompt, completion, completion * per_thought)
    assert record["thought"] == pytest.approx(explicit, rel=1e-12)


def test_seed000_flops_per_token_is_the_study_formula():
    # base.py calculate_flops_per_token: 2·[2·d·L·(2·d/h + d_ff)] + 2·L·d; Mistral-7B: 7.65 GFLOP a token
    dims = ModelDims.from_config(MISTRAL_7B_V01)
    assert seed000_flops_per_token(dims) == 2 * (2 * 4096 * 32 * (2 * 4096 // 32 + 14336)) + 2 * 32 * 4096
    assert seed000_flops_per_token(dims) == 7_650_672_640
    # d // h, not the config's head_dim (they differ in Gemma 3)
    gemma = ModelDims.from_config(SMALL_CONFIGS["gemma3_text"])
    d, layers = gemma.d_model, gemma.n_layer
    assert seed000_flops_per_token(gemma) == 4 * d * layers * (2 * (d // gemma.n_heads) + gemma.d_ff) + 2 * layers * d


def test_seed000_sampling_flops_reproduce_results_file():
    dims = ModelDims.from_config(MISTRAL_7B_V01)
    # Results/metrics_baseline.txt: a vote that ran to the cap (385 reasoning + 11 answer steps) is charged
    # 3,029,666,365,440 FLOPs, the shortest ones 122,410,762,240 (16 steps)
    assert seed000_sampling_flops(dims, 396) == 3_029_666_365_440
    assert seed000_sampling_flops(dims, 16) == 122_410_762_240
    with pytest.raises(ValueError, match="n_decoding_steps"):
        seed000_sampling_flops(dims, -1)


def test_seed000_rebase_flops_charge_step_cap_times_depth():
    dims = ModelDims.from_config(MISTRAL_7B_V01)
    per_step = 7_650_672_640 * 96   # rebase.yaml max_step_tokens: 96
    # Results/width3.json: question 0 kept three depth-1 nodes, question 1 two (one scored <= 0.1, dropped)
    assert seed000_rebase_flops(dims, 96, [1, 1, 1]) == 2_203_393_720_320
    assert seed000_rebase_flops(dims, 96, [1, 1]) == 1_468_929_146_880
    # a node carries its parent's running total: depth k costs k steps
    assert seed000_rebase_flops(dims, 96, [1, 2, 2, 3]) == per_step * 8
    with pytest.raises(ValueError, match="depths must be >= 1"):
        seed000_rebase_flops(dims, 96, [0, 1])


def test_generation_flops_add_the_answer_phase():
    dims = ModelDims.from_config(SMALL_CONFIGS["llama"])
    plain = generation_flops(dims, n_prefill_tokens=20, n_prompt_tokens=20, n_completion_tokens=7)
    answer = generation_flops(dims, 20, 20, 7, n_answer_prompt_tokens=40, n_answer_prefill_tokens=30,
                              n_answer_tokens=5)
    assert answer["prefill"] == plain["prefill"] + sequence_flops(dims, 10, 30, n_logits=1)
    assert answer["decode"] == plain["decode"] + sequence_flops(dims, 40, 5)
    with pytest.raises(ValueError, match="n_answer_prefill_tokens"):
        generation_flops(dims, 20, 20, 7, n_answer_prompt_tokens=4, n_answer_prefill_tokens=5)


# --- against torch's FlopCounterMode on the real embedded model -------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_eager(smollm2_checkpoint):
    import torch
    from transformers import AutoModelForCausalLM

    # eager attention: on CPU, SDPA runs as one fused op that FlopCounterMode does not count
    model = AutoModelForCausalLM.from_pretrained(smollm2_checkpoint, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    config = json.loads((Path(smollm2_checkpoint) / "config.json").read_text())
    return model, ModelDims.from_config(config)


def _counted(model, **inputs):
    """(output, {op name: FLOPs}) of one forward pass under FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        output = model(**inputs, use_cache=True)
    return output, {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}


@pytest.mark.slow
def test_matches_flop_counter_on_smollm2(smollm2_eager):
    import torch

    model, dims = smollm2_eager
    n_prompt = 64
    ids = torch.randint(0, dims.vocab, (1, n_prompt), generator=torch.Generator().manual_seed(0))

    prefill, counts = _counted(model, input_ids=ids)
    ours = sequence_flops_terms(dims, 0, n_prompt)  # a plain forward keeps logits at all 64 positions
    assert sum(ours.values()) == pytest.approx(sum(counts.values()), rel=0.05)
    # linear layers and the LM head are the counter's mm; only norm weights/biases separate them
    assert ours["linear"] + ours["lm_head"] == pytest.approx(counts["aten.mm"], rel=1e-3)
    # eager attention computes the full 64 x 64 score matrix, masked; causal attention needs the lower triangle
    assert counts["aten.bmm"] == 4 * dims.d_attn * dims.n_layer * n_prompt ** 2
    assert ours["attention"] == 4 * dims.d_attn * dims.n_layer * n_prompt * (n_prompt + 1) / 2

    step = torch.tensor([[int(prefill.logits[0, -1].argmax())]])
    _, counts = _counted(model, input_ids=step, past_key_values=prefill.past_key_values)
    ours = sequence_flops_terms(dims, n_prompt, 1)
    assert sum(ours.values()) == pytest.approx(sum(counts.values()), rel=0.05)
    assert ours["attention"] == counts["aten.bmm"]  # QK^T and softmax.V over 65 positions, exactly
    assert ours["linear"] + ours["lm_head"] == pytest.approx(counts["aten.mm"], rel=1e-3)
