"""Generation backends (infscale.models.backend): the config check, the record contract, and agreement of the
fp32 CTranslate2 engine with the `hf` reference, token for token, on the demo's prompts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import REPO, TEST_CACHE
from infscale.models import backend as backend_module
from infscale.models.backend import check_backend, key_seed, load_vllm, truncate
from infscale.models.hf import SamplingParams


class CharTokenizer:
    """One token per character (id = code point), enough for the cutting rules."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


def _ids(text: str) -> list[int]:
    return [ord(c) for c in text]


def test_unknown_backend_names_the_key():
    with pytest.raises(ValueError, match=r"models\.m\.backend: expected one of"):
        check_backend("m", "tgi")


def test_ct2_missing_names_the_key(monkeypatch):
    monkeypatch.setattr(backend_module, "ct2_available", lambda: False)
    with pytest.raises(ValueError, match=r"models\.m\.backend: ct2 needs CTranslate2, which is not installed"):
        check_backend("m", "ct2")


def test_vllm_is_import_guarded(monkeypatch):
    monkeypatch.setattr(backend_module, "vllm_available", lambda: False)
    with pytest.raises(ValueError, match=r"models\.m\.backend: vllm is not installed .*untested"):
        load_vllm({"name": "m", "path": "nowhere"})
    with pytest.raises(ValueError, match=r"models\.m\.backend: vllm is not installed"):
        check_backend("m", "vllm")


def test_bad_ct2_compute_type_names_the_key():
    if not backend_module.ct2_available():
        pytest.skip("ctranslate2 not installed")
    with pytest.raises(ValueError, match=r"models\.m\.compute_type"):
        check_backend("m", "ct2", "int4")


def test_key_seeds_are_stable_and_distinct():
    assert key_seed(42, "q1") == key_seed(42, "q1")
    assert key_seed(42, "q1") != key_seed(42, "q2") != key_seed(43, "q2")
    assert 0 <= key_seed(1, "x") < 2 ** 31


def test_engine_tokens_are_cut_as_the_hf_sampler_cuts_them():
    tok, eos = CharTokenizer(), {0}
    params = SamplingParams(max_new_tokens=10, stop=("\n",))
    cut = truncate(_ids(" 42\nQ: more"), "Q: 6*7?\nA:", 9, 0, params, tok, eos)
    assert (cut.text, cut.token_ids, cut.finish_reason, cut.n_prefill_tokens) == (" 42", _ids(" 42\n"), "stop", 9)
    ended = truncate(_ids(" 4") + [0] + _ids("2"), "p", 9, 3, params, tok, eos)
    assert (ended.text, ended.finish_reason, ended.eos, ended.n_sampled_tokens, ended.n_prefill_tokens) == \
        (" 4", "stop", True, 3, 0)
    whole = SamplingParams(max_new_tokens=10, stop=("Q:",), stop_rule="whole_text")
    assert truncate(_ids(" 1 Q: 2"), "Q: x", 4, 0, whole, tok, eos).text == " 1 "
    assert truncate(_ids(" 12"), "p", 1, 0, params, tok, eos).finish_reason == "length"


# --- the engine itself (slow: loads the model) ---


def _demo_prompts(tokenizer) -> list[str]:
    """The default demo's prompts: products (plain 3-shot) and chain (3-shot step by step), as config.yaml
    builds them."""
    from infscale.data import DatasetConfig, build_splits
    from infscale.prompts import PromptConfig, build_prompt

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    prompts = []
    for dataset, method in (("products", "sample16"), ("chain", "chain_sample16")):
        data = build_splits(DatasetConfig.from_config(dataset, config["datasets"][dataset]))
        prompt_cfg = PromptConfig(**config["methods"][method]["prompt"])
        prompts += [build_prompt(q["question"], data["train"], prompt_cfg, tokenizer) for q in data["test"]]
    return prompts


@pytest.fixture(scope="module")
def engines(prepared_smollm2: Path):
    pytest.importorskip("ctranslate2")
    from infscale.io import read_json
    from infscale.models.backend import load_ct2
    from infscale.models.convert_model import ct2_convert
    from infscale.models.loading import load_model

    spec = read_json(prepared_smollm2 / "model.json")
    folder = ct2_convert(spec["path"], TEST_CACHE / "ct2" / "smollm2-135m-float32", "float32")
    return load_model(spec, device="cpu"), load_ct2(spec, folder, "float32", 2)


@pytest.mark.slow
def test_greedy_fp32_ct2_equals_hf_token_for_token_on_the_demo_prompts(engines):
    hf, ct2 = engines
    prompts = _demo_prompts(hf.tokenizer)
    assert len(prompts) == 64
    for stop, new in ((("\n",), 16), (("\n\n", "Q:"), 32)):
        params = SamplingParams(temperature=0.0, max_new_tokens=new, stop=stop)
        ours = hf.sample(prompts, 1, params)
        theirs = ct2.sample(prompts, 1, params, keys=[(0, i) for i in range(len(prompts))])
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert (b[0].token_ids, b[0].text, b[0].finish_reason, b[0].eos) == \
                (a[0].token_ids, a[0].text, a[0].finish_reason, a[0].eos), (i, prompts[i][-60:])


@pytest.mark.slow
def test_ct2_samples_depend_on_their_key_only(engines):
    _, ct2 = engines
    prompts = _demo_prompts(ct2.tokenizer)[:3]
    params = SamplingParams(temperature=1.0, max_new_tokens=12, stop=("\n",))
    together = ct2.sample(prompts, 4, params, keys=[(42, "a"), (42, "b"), (42, "c")])
    alone = ct2.sample(prompts[1:2], 4, params, keys=[(42, "b")])
    assert [c.token_ids for c in alone[0]] == [c.token_ids for c in together[1]]
    other = ct2.sample(prompts[1:2], 4, params, keys=[(43, "b")])
    assert [c.token_ids for c in other[0]] != [c.token_ids for c in alone[0]]
    # without keys: one batched call from the job's stream (PRM rollouts), the same record contract
    batched = ct2.sample(prompts, 4, params)
    for group in together + batched:
        for s, cont in enumerate(group):
            assert cont.n_prompt_tokens > 0 and cont.n_prefill_tokens == (cont.n_prompt_tokens if s == 0 else 0)
            assert cont.finish_reason in ("stop", "length") and "\n" not in cont.text


@pytest.mark.slow
def test_ct2_labels_match_hf_labels(engines):
    """Labelling through the engine (fp32): the same tokens, the same digit distributions to float tolerance."""
    assert_labels_match(*engines)


def assert_labels_match(hf, engine, atol: float = 1e-4) -> None:
    """An engine labels three responses with the `hf` reference's tokens and digit distributions (to `atol`)."""
    import torch

    from infscale.scoring.label_confidence import LabellingConfig, digit_token_ids, label_group, split_label_prompt

    cfg = LabellingConfig(chat_template="never")
    responses = [" 6", " 12\nQ: What", " I think it is 6"]
    prefix, _ = split_label_prompt("What is 2 * 3?", responses[0], cfg, hf.tokenizer)
    suffixes = [split_label_prompt("What is 2 * 3?", r, cfg, hf.tokenizer)[1] for r in responses]
    digit_ids = digit_token_ids(hf.tokenizer, prefix + suffixes[0])
    ours, ours_mass, ours_prefix, ours_lengths = label_group(hf, prefix, suffixes, digit_ids)
    theirs, theirs_mass, theirs_prefix, theirs_lengths = label_group(engine, prefix, suffixes, digit_ids)
    assert (theirs_prefix, theirs_lengths) == (ours_prefix, ours_lengths)
    assert torch.allclose(theirs, ours, atol=atol) and torch.allclose(theirs_mass, ours_mass, atol=atol)
