"""Quiet-STaR wrapper (methods/quietstar.py) on a tiny random Llama: the properties the issue lists, the cached
decoder against the parallel forward, training gradients, the official-checkpoint loader and save/load."""

from __future__ import annotations

import pytest
import torch

from infscale.methods.quietstar import (
    OFFICIAL_THINKING_KEYS,
    QuietStarDecoder,
    QuietStarLM,
    from_official_state_dict,
)

VOCAB, L = 97, 10


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(cfg).eval()


def perturb_talk_head(qs: QuietStarLM, scale: float = 0.3) -> None:
    """A trained-looking head (w != 0), so the thoughts matter."""
    with torch.no_grad():
        for p in qs.talk_head.parameters():
            p.add_(torch.randn_like(p) * scale)


@pytest.fixture()
def tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, L), generator=torch.Generator().manual_seed(1))


def test_base_logits_are_the_models(tokens):
    model = tiny_llama()
    qs = QuietStarLM(model, n_thought_tokens=5, n_talk=4).eval()
    out = qs(tokens, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.base_logits, model(tokens).logits, atol=1e-5, rtol=0)
    assert out.logits.shape == (2, L, VOCAB) and out.thought_ids.shape == (2, L, 5)
    assert out.mix_weight.shape[:2] == (2, L)


def test_fresh_wrapper_is_the_base_model(tokens):
    qs = QuietStarLM(tiny_llama(), n_thought_tokens=3, n_talk=2).eval()
    out = qs(tokens, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.logits, out.base_logits)
    assert torch.count_nonzero(out.mix_weight) == 0


def test_logits_never_see_later_tokens(tokens):
    qs = QuietStarLM(tiny_llama(), n_thought_tokens=3, n_talk=1).eval()
    perturb_talk_head(qs)
    changed = tokens.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % VOCAB
    a = qs(tokens, generator=torch.Generator().manual_seed(0))
    b = qs(changed, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.logits[:, :6], b.logits[:, :6], atol=1e-6, rtol=0)
    assert torch.equal(a.thought_ids[:, :6], b.thought_ids[:, :6])
    assert not torch.allclose(a.logits[:, 6:], b.logits[:, 6:])


@pytest.mark.parametrize("greedy", [True, False])
def test_parallel_thoughts_equal_sequential_ones(tokens, greedy):
    """Thought at every position at once == the prefix, start, thought, end run as one plain sequence."""
    model = tiny_llama()
    qs = QuietStarLM(model, n_thought_tokens=4, n_talk=1, thought_temperature=0.0 if greedy else 1.0).eval()
    perturb_talk_head(qs)
    out = qs(tokens, generator=torch.Generator().manual_seed(0))
    embed = model.get_input_embeddings()
    with torch.no_grad():
        for i in range(L):
            prefix = tokens[:, : i + 1]
            h_base = model.base_model(input_ids=prefix).last_hidden_state[:, -1]
            seq = [embed(prefix), qs.thought_embedding("start").expand(2, 1, -1)]
            thought = []
            for j in range(qs.n_thought_tokens):
                h = model.base_model(inputs_embeds=torch.cat(seq, 1)).last_hidden_state[:, -1]
                # sampled thoughts are replayed; greedy ones must come out the same on their own
                token = qs.thought_logits(h).argmax(-1) if greedy else out.thought_ids[:, i, j]
                thought.append(token)
                seq.append(embed(token)[:, None])
            seq.append(qs.thought_embedding("end").expand(2, 1, -1))
            h_thought = model.base_model(inputs_embeds=torch.cat(seq, 1)).last_hidden_state[:, -1]
            mixed, _ = qs.mix(h_base, h_thought)
            if greedy:
                assert torch.equal(torch.stack(thought, -1), out.thought_ids[:, i])
            torch.testing.assert_close(qs.lm_head(mixed), out.logits[:, i], atol=1e-4, rtol=0)


def test_cached_decoder_matches_parallel_forward(tokens):
    qs = QuietStarLM(tiny_llama(), n_thought_tokens=3, n_talk=1, thought_temperature=0.0).eval()
    perturb_talk_head(qs)
    full = qs(tokens)
    decoder = QuietStarDecoder(qs)
    out = decoder(tokens[:, :4], logits_to_keep=1)
    cache = out.past_key_values
    torch.testing.assert_close(out.logits[:, -1], full.logits[:, 3], atol=1e-5, rtol=0)
    for i in range(4, L):
        out = decoder(tokens[:, i : i + 1], past_key_values=cache)
        assert cache.get_seq_length() == i + 1          # the thought was cropped off again
        torch.testing.assert_close(out.logits[:, -1], full.logits[:, i], atol=1e-5, rtol=0)
        assert decoder.stats.thoughts[-2:] == full.thought_ids[:, i].tolist()
    assert decoder.stats.n_thought_tokens == (L - 3) * 2 * (3 + 2)


def test_gradient_steps_train_talk_head_and_start_embedding(tokens):
    qs = QuietStarLM(tiny_llama(), n_thought_tokens=2, n_talk=2, n_passes=2, policy_weight=1.0).train()
    start, head = qs.start_embedding.detach().clone(), qs.talk_head[0][-1].weight.detach().clone()
    optimizer = torch.optim.AdamW(qs.parameters(), lr=1e-2, weight_decay=0.0)
    for step in range(2):
        optimizer.zero_grad()
        terms = qs.loss_terms(tokens, generator=torch.Generator().manual_seed(step))
        assert set(terms) == {"loss", "base_nll", "mixed_nll", "reward", "policy_loss"}
        assert torch.isfinite(terms["loss"])
        terms["loss"].backward()
        optimizer.step()
        if step == 0:
            # w = 0 at the start: the thoughts cannot matter yet, only the head's last layer learns
            assert float(terms["reward"]) == 0.0
            assert not torch.equal(qs.talk_head[0][-1].weight, head)
    assert not torch.equal(qs.start_embedding, start)


def test_official_state_dict_loads(tokens):
    """A synthetic state dict with ezelikman/quietstar-8-ahead's extra key names and shapes (H = hidden)."""
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    cfg = MistralConfig(vocab_size=VOCAB + 2, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2)
    model = MistralForCausalLM(cfg).eval()
    H = 32
    shapes = {"start_embedding": (2, H), "end_embedding": (2, H), "talk_head.0.0.weight": (H, 2 * H),
              "talk_head.0.0.bias": (H,), "talk_head.0.2.weight": (H, H), "talk_head.0.2.bias": (H,),
              "talk_head.0.4.weight": (1, H)}
    assert set(shapes) == set(OFFICIAL_THINKING_KEYS)
    state = {**model.state_dict(), **{k: torch.randn(s) for k, s in shapes.items()}}

    class Tok:
        vocab_size = VOCAB

    qs = from_official_state_dict(model, state, tokenizer=Tok())
    assert qs.n_thought_tokens == 5 and qs.masked_token_ids == (VOCAB, VOCAB + 1)
    for key in shapes:
        assert torch.equal(qs.state_dict()[key], state[key])
    out = qs.eval()(tokens, generator=torch.Generator().manual_seed(0))
    assert (out.thought_ids < VOCAB).all()     # <|startthought|>/<|endthought|> are never sampled
    with pytest.raises(ValueError, match="talk_head.0.0.weight"):
        from_official_state_dict(model, {**state, "talk_head.0.0.weight": torch.randn(H, H)})
    with pytest.raises(KeyError, match="end_embedding"):
        from_official_state_dict(model, {k: v for k, v in state.items() if k != "end_embedding"})


def test_save_and_load_round_trip(tmp_path, tokens):
    qs = QuietStarLM(tiny_llama(), n_thought_tokens=2, n_talk=1).eval()
    perturb_talk_head(qs)
    qs.save(tmp_path / "weights.pt")
    other = QuietStarLM(tiny_llama(seed=1), n_thought_tokens=2, n_talk=1).eval()
    other.load(tmp_path / "weights.pt")
    a = qs(tokens, generator=torch.Generator().manual_seed(0))
    b = other(tokens, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.logits, b.logits)
