"""The llamacpp backend (infscale.models.llamacpp): GGUF conversion, agreement with the `hf` reference token for
token at float32, samples that depend on their streams only, and the record contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TEST_CACHE
from infscale.models import backend as backend_module
from infscale.models.backend import check_backend
from infscale.models.hf import SamplingParams, stream_generator

pytest.importorskip("llama_cpp")    # built by `make setup`; the tests below need it


def test_llamacpp_missing_names_the_key(monkeypatch):
    monkeypatch.setattr(backend_module, "llamacpp_available", lambda: False)
    with pytest.raises(ValueError, match=r"models\.m\.backend: llamacpp needs llama-cpp-python"):
        check_backend("m", "llamacpp")


def test_bad_llamacpp_compute_type_names_the_key():
    with pytest.raises(ValueError, match=r"models\.m\.compute_type: expected one of .*q8_0.* for llamacpp"):
        check_backend("m", "llamacpp", "int8")


@pytest.fixture(scope="module")
def shipped_gguf() -> Path:
    from infscale.models.embedded import embedded_gguf, get_embedded

    return embedded_gguf(get_embedded("smollm2-135m-instruct"), TEST_CACHE / "gguf")


def test_gguf_conversion_keeps_the_metadata_and_quantises_the_matrices(shipped_gguf, tmp_path):
    import gguf
    from gguf import GGMLQuantizationType as Q

    from infscale.models.convert_model import gguf_convert

    native = gguf_convert(shipped_gguf, tmp_path / "gguf-native", "native")
    assert native.read_bytes() == shipped_gguf.read_bytes()
    q8 = gguf.GGUFReader(gguf_convert(shipped_gguf, tmp_path / "gguf-q8_0", "q8_0"))
    source = gguf.GGUFReader(shipped_gguf)
    assert [t.name for t in q8.tensors] == [t.name for t in source.tensors]
    assert {t.tensor_type for t in q8.tensors if len(t.shape) > 1} == {Q.Q8_0}
    assert {t.tensor_type for t in q8.tensors if len(t.shape) == 1} == {Q.F32}
    for key in ("tokenizer.ggml.tokens", "llama.block_count", "tokenizer.ggml.eos_token_id"):
        assert q8.fields[key].contents() == source.fields[key].contents()


def test_a_failed_gguf_conversion_leaves_no_folder(shipped_gguf, tmp_path):
    from infscale.models.convert_model import gguf_convert

    with pytest.raises(ValueError, match="GGUF quantization: expected native or one of"):
        gguf_convert(shipped_gguf, tmp_path / "gguf-int3", "int3")
    assert list(tmp_path.iterdir()) == []


# --- the engine itself (slow: loads the model) ---


@pytest.fixture(scope="module")
def engines(prepared_smollm2: Path, shipped_gguf: Path):
    from infscale.io import read_json
    from infscale.models.convert_model import gguf_convert
    from infscale.models.llamacpp import load_llamacpp
    from infscale.models.loading import load_model

    spec = read_json(prepared_smollm2 / "model.json")
    hf = load_model(spec, device="cpu")
    gguf = gguf_convert(shipped_gguf, TEST_CACHE / "gguf" / "smollm2-135m-float32", "float32")
    llama = load_llamacpp(spec, gguf, "float32", 2)
    assert llama.eos_token_ids == hf.eos_token_ids
    return hf, llama


@pytest.mark.slow
def test_greedy_fp32_llamacpp_equals_hf_token_for_token_on_the_demo_prompts(engines):
    from test_backend import _demo_prompts

    hf, llama = engines
    prompts = _demo_prompts(hf.tokenizer)
    assert len(prompts) == 64
    for stop, new in ((("\n",), 16), (("\n\n", "Q:"), 32)):
        params = SamplingParams(temperature=0.0, max_new_tokens=new, stop=stop)
        ours, theirs = hf.sample(prompts, 1, params), llama.sample(prompts, 1, params)
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert (b[0].token_ids, b[0].text, b[0].finish_reason, b[0].eos, b[0].n_prefill_tokens) == \
                (a[0].token_ids, a[0].text, a[0].finish_reason, a[0].eos, a[0].n_prefill_tokens), (i, prompts[i][-60:])


@pytest.mark.slow
def test_llamacpp_samples_depend_on_their_streams_only(engines, monkeypatch):
    from test_backend import _demo_prompts

    from infscale.models import llamacpp

    _, llama = engines
    prompts = _demo_prompts(llama.tokenizer)[:3]
    params = SamplingParams(temperature=1.0, max_new_tokens=12, stop=("\n",))

    def streams(question: int) -> list:
        return [stream_generator(42, question, s) for s in range(4)]

    together = llama.sample(prompts, 4, params, streams(0) + streams(1) + streams(2))
    alone = llama.sample(prompts[1:2], 4, params, streams(1))
    assert [c.token_ids for c in alone[0]] == [c.token_ids for c in together[1]]
    # prompts split across contexts (here one prompt's 4 rows a context) draw the same tokens
    monkeypatch.setattr(llamacpp, "MAX_SEQUENCES", 4)
    chunked = llama.sample(prompts, 4, params, streams(0) + streams(1) + streams(2))
    assert [[c.token_ids for c in g] for g in chunked] == [[c.token_ids for c in g] for g in together]
    other = llama.sample(prompts[1:2], 4, params, [stream_generator(43, 1, s) for s in range(4)])
    assert [c.token_ids for c in other[0]] != [c.token_ids for c in alone[0]]
    for group in together:
        for s, cont in enumerate(group):
            assert cont.finish_reason in ("stop", "length") and "\n" not in cont.text
            assert (cont.n_prefill_tokens > 0) == (s == 0) and cont.n_prompt_tokens > 0


@pytest.mark.slow
def test_llamacpp_labels_match_hf_labels(engines):
    """Labelling through the engine (fp32): the same tokens, the same digit distributions to 1e-4."""
    from test_backend import assert_labels_match

    assert_labels_match(*engines)
