"""The KV-sharing sampler against transformers' own `generate`, on the embedded model."""

import pytest
import torch

from infscale.models.hf import SamplingParams, sample_continuations, sample_next
from infscale.models.loading import load_model
from infscale.prompts import PromptConfig, build_prompt

pytestmark = pytest.mark.slow

SHOTS = [{"question": "2 * 3?", "answer": "6"}, {"question": "4 * 5?", "answer": "20"}]


@pytest.fixture(scope="module")
def lm(prepared_smollm2):
    torch.set_num_threads(2)
    return load_model(prepared_smollm2 / "model.json", device="cpu")


@pytest.mark.parametrize("shared", [True, False], ids=["shared-few-shot-prefix", "no-shared-prefix"])
def test_greedy_matches_hf_generate_with_left_padding(lm, shared):
    cfg = PromptConfig("fewshot", 2, "never")
    questions = ("7 * 8?", "Is 9 * 9 equal to 81? Answer yes or no.", "3 * 3?")
    prompts = [build_prompt(q, SHOTS, cfg, lm.tokenizer) for q in questions]
    if not shared:                  # no common token prefix: nothing is encoded for the batch as a whole
        prompts = [prompts[0], "Q: " + prompts[1], "A list: " + prompts[2]]
    ours = sample_continuations(lm, prompts, 2, SamplingParams(temperature=0.0, max_new_tokens=8))
    for prompt, group in zip(prompts, ours):
        enc = lm.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        ref = lm.model.generate(**enc, do_sample=False, max_new_tokens=8, pad_token_id=lm.tokenizer.pad_token_id)
        expected = ref[0, enc["input_ids"].shape[1]:].tolist()
        expected = [t for t in expected if t not in lm.eos_token_ids][: len(group[0].token_ids)]
        assert group[0].token_ids == expected
        assert group[1].token_ids == group[0].token_ids        # every sample continues the same cached prompt
        assert group[1].n_prefill_tokens == 0
    # the first prompt encodes the shared prefix, the others only their own tokens after it
    assert ours[0][0].n_prefill_tokens == ours[0][0].n_prompt_tokens
    own = [g[0].n_prompt_tokens - g[0].n_prefill_tokens for g in ours[1:]]
    if shared:
        assert own[0] == own[1] > 8
    else:
        assert own == [0, 0]


def test_stop_strings_cut_text_and_end_rows_independently(lm):
    prompt = build_prompt("6 * 7?", SHOTS, PromptConfig("fewshot", 2, "never"), lm.tokenizer)
    params = SamplingParams(temperature=1.0, max_new_tokens=12, stop=("\n",))
    groups = sample_continuations(lm, [prompt], 6, params, torch.Generator().manual_seed(0))
    for cont in groups[0]:
        assert "\n" not in cont.text
        assert cont.finish_reason in {"stop", "length"}
        assert len(cont.token_ids) <= 12
    again = sample_continuations(lm, [prompt], 6, params, torch.Generator().manual_seed(0))
    assert [c.token_ids for c in again[0]] == [c.token_ids for c in groups[0]]  # seeded


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    params = SamplingParams(temperature=1.0, top_p=0.7)
    draws = {sample_next(logits, params, torch.Generator().manual_seed(s)).item() for s in range(200)}
    assert draws == {0, 1}
    assert sample_next(logits, SamplingParams(temperature=0.0), None).item() == 0


def test_answer_phase_decodes_after_the_suffix(lm):
    from infscale.compute import ModelDims, generation_flops
    from infscale.methods import build_config
    from infscale.methods.sampling import answer_prompt, generate

    suffix = "\nTherefore, the answer (arabic numerals) is"
    cfg = build_config("baseline", {"kind": "sampling", "n_samples": 3, "max_new_tokens": 6, "temperature": 1.0,
                                    "stop": ["Q:", "\n\n\n"], "stop_rule": "whole_text", "answer_suffix": suffix,
                                    "answer_tokens": 4, "prompt": {"style": "zeroshot_cot", "n_shots": 0,
                                                                    "chat_template": "never", "bos": True}})
    questions = [{"id": f"q{i}", "question": q, "meta": {"index": i}} for i, q in enumerate(["6 * 7?", "2 + 9?"])]
    records = [r for batch in generate(questions, [], lm, cfg, seed=1) for r in batch]
    assert len(records) == 6
    for r in records:
        full = answer_prompt(r["prompt"], r["completion"], suffix)
        assert r["n_answer_prompt_tokens"] == len(lm.tokenizer(full, add_special_tokens=False)["input_ids"])
        assert 0 <= r["n_answer_tokens"] <= 4 and isinstance(r["answer_text"], str)
        assert 0 <= r["n_answer_prefill_tokens"] <= r["n_answer_prompt_tokens"]
        # every sampled token is one decoding step: reasoning + answer, plus at most one EOS in each phase
        visible = r["n_completion_tokens"] + r["n_answer_tokens"]
        assert visible <= r["n_sampled_tokens"] <= visible + 2
        assert r["seconds"] > 0
    # the answer phase's encoding is charged once per record (or once for a prefix the batch shares)
    assert sum(r["n_answer_prefill_tokens"] for r in records) <= sum(r["n_answer_prompt_tokens"] for r in records)
    dims = ModelDims.from_config(lm.spec["config"])
    flops = generation_flops(dims, 10, 10, 6, 0, 50, 50, 4)
    assert flops["decode"] > generation_flops(dims, 10, 10, 6)["decode"]
    again = [r for batch in generate(questions, [], lm, cfg, seed=1) for r in batch]
    assert [r["answer_text"] for r in again] == [r["answer_text"] for r in records]   # seeded


def test_samples_do_not_depend_on_batch_size_or_shards(lm):
    """Each (question, sample) draws from its own stream: byte-identical samples however the work is split."""
    from infscale.generate import shard_slice
    from infscale.methods.sampling import SamplingConfig, generate

    questions = [{"id": f"q{i}", "question": f"{i + 2} * {i + 3}?", "meta": {"index": i}} for i in range(4)]

    def run(batch_size: int, n_shards: int) -> list[tuple]:
        cfg = SamplingConfig(n_samples=3, temperature=1.0, max_new_tokens=8, batch_size=batch_size,
                             prompt={"style": "fewshot", "n_shots": 2, "chat_template": "never"})
        records = []
        for shard in range(n_shards):
            part = questions[shard_slice(len(questions), shard, n_shards)]
            for batch in generate(part, SHOTS, lm, cfg, seed=42):
                records += batch
        return sorted((r["id"], r["sample"], r["completion"], r["n_completion_tokens"], r["finish_reason"])
                      for r in records)

    reference = run(batch_size=12, n_shards=1)          # all four questions in one batch
    assert len({r[2] for r in reference}) > 4            # samples really vary
    assert run(batch_size=3, n_shards=1) == reference    # one question per batch
    assert run(batch_size=6, n_shards=2) == reference    # two shards of two-question batches
    assert run(batch_size=12, n_shards=3) == reference   # uneven shards
