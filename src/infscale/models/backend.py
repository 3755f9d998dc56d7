"""Generation backends: one interface, chosen per model in the config
(`models.<name>.backend: hf | ct2 | llamacpp | vllm`).

- `hf`: the reference, `infscale.models.hf.sample_continuations` (our KV-sharing sampler on a transformers model);
- `ct2`: CTranslate2 on a checkpoint converted once by the `convert_model` rule (int8 or float32 on CPU);
- `llamacpp`: llama.cpp on the embedded model's GGUF (`infscale.models.llamacpp`; native, q8_0, q4_0 or float32
  weights by the `convert_model` rule), sampled by the `hf` sampler's own loop and streams;
- `vllm`: vLLM for GPU users (optional extra `pip install .[vllm]`): UNTESTED, no GPU was lent when it was
  written (docs/performance.md).

Every backend returns the same `Continuation` records (token ids and counts, finish reasons, stop strings applied
as the `hf` sampler applies them), so FLOPs, grading and the rest of the pipeline do not depend on the backend.
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from infscale.models import CT2_DEFAULT_COMPUTE_TYPE, LLAMACPP_DEFAULT_COMPUTE_TYPE, engine_folder_name
from infscale.models.hf import Continuation, SamplingParams, _find_stop, eos_token_ids
from infscale.models.llamacpp import LLAMACPP_VERSION, llamacpp_available

BACKENDS = ("hf", "ct2", "llamacpp", "vllm")
CT2_COMPUTE_TYPES = ("int8", "int8_float32", "float32")
LLAMACPP_COMPUTE_TYPES = ("native", "q8_0", "q4_0", "float32")
CT2_VERSION = "4.8.5"


def ct2_available() -> bool:
    return importlib.util.find_spec("ctranslate2") is not None


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def check_backend(name: str, backend: str, compute_type: str | None = None) -> None:
    """A model entry's backend settings, checked at start: one-line errors naming the key."""
    if backend not in BACKENDS:
        raise ValueError(f"models.{name}.backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if backend in ("ct2", "llamacpp"):
        installed, missing, compute_types = {
            "ct2": (ct2_available, f"ct2 needs CTranslate2, which is not installed (pip install "
                    f"ctranslate2=={CT2_VERSION}, or `pip install -e .` which pins it)", CT2_COMPUTE_TYPES),
            "llamacpp": (llamacpp_available, f"llamacpp needs llama-cpp-python, which is not installed (`make setup` "
                         f"builds it: pip install llama-cpp-python=={LLAMACPP_VERSION})", LLAMACPP_COMPUTE_TYPES),
        }[backend]
        if not installed():
            raise ValueError(f"models.{name}.backend: {missing}")
        if compute_type is not None and compute_type not in compute_types:
            raise ValueError(f"models.{name}.compute_type: expected one of {list(compute_types)} for {backend}, "
                             f"got {compute_type!r}")
    if backend == "vllm" and not vllm_available():
        raise ValueError(f"models.{name}.backend: vllm is not installed (optional extra: pip install -e '.[vllm]', "
                         "GPU machines; the vllm backend is untested)")


def key_seed(*key: Any) -> int:
    """A 31-bit seed from a key (e.g. the run seed and a question id), independent of batching and shards."""
    digest = hashlib.sha256(repr(key).encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1


class Backend(Protocol):
    """What a generation-type stage needs from a model, whatever runs it.

    `LoadedModel` (the `hf` backend, `infscale.models.hf`) is one; `CT2Model`, `LlamaCppModel` and `VLLMModel`
    are the others.
    """

    backend: str                      # hf | ct2 | llamacpp | vllm
    tokenizer: Any
    spec: dict[str, Any]
    load_seconds: float
    device_name: str

    def sample(self, prompts: list[str], n: int, params: SamplingParams, generator: Any = None,
               keys: list[tuple[Any, ...]] | None = None) -> list[list[Continuation]]:
        """`n` continuations of every prompt. `generator`: the `hf` sampler's torch stream(s); `keys`: one
        seed key per prompt (e.g. (seed, question id)) for engines with their own random numbers."""
        ...

    def describe(self) -> dict[str, Any]:
        """The backend, engine version and settings, for records' timing and the provenance."""
        ...


@dataclass
class CT2Model:
    """A model run by CTranslate2 (CPU: int8 or float32), with the `hf` sampler's record contract.

    Differences from `hf`, by design (docs/reproducibility.md): with seed keys, one engine call per prompt (its
    n samples together, the prompt encoded once) after reseeding by the key, so a prompt's samples depend on
    its key (and the compute type and thread count) only; the random numbers are CTranslate2's, not torch's,
    so they differ from `hf`'s samples. CTranslate2 has no stop strings: they are checked after every token
    as `hf` checks them (the engine's step callback ends that sample), the text is cut at the stop and only
    the kept tokens are counted.
    """

    generator: Any
    tokenizer: Any
    spec: dict[str, Any]
    load_seconds: float
    compute_type: str
    threads: int
    eos: set[int]
    folder: str
    device_name: str = "cpu"
    backend: str = "ct2"
    device: Any = field(default=None)

    def __post_init__(self) -> None:
        import torch

        self.device = torch.device("cpu")

    def describe(self) -> dict[str, Any]:
        import ctranslate2

        return {"backend": "ct2", "engine_version": ctranslate2.__version__, "compute_type": self.compute_type,
                "threads": self.threads, "converted": self.folder}

    def sample(self, prompts: list[str], n: int, params: SamplingParams, generator: Any = None,
               keys: list[tuple[Any, ...]] | None = None) -> list[list[Continuation]]:
        """With `keys`: one engine call per prompt, the engine reseeded by the prompt's key first (a prompt's
        samples depend on its key only: not on batching, shards or resuming). Without: one call for all
        prompts, drawing from the job's stream (seeded once when the engine was loaded)."""
        if keys is None:
            return self._call(prompts, n, params)
        if len(keys) != len(prompts):
            raise ValueError(f"{len(keys)} seed keys for {len(prompts)} prompts")
        results = []
        for prompt, key in zip(prompts, keys):
            self.reseed(key_seed(*key))
            results += self._call([prompt], n, params)
        return results

    def reseed(self, seed: int) -> None:
        """CTranslate2 seeds a worker thread's random generator once, when the thread starts
        (`set_random_seed` does not reach a running one): reseeding reloads the engine (~0.07 s, cached)."""
        import ctranslate2

        self.generator = None
        ctranslate2.set_random_seed(seed)
        self.generator = ctranslate2.Generator(self.folder, device="cpu", compute_type=self.compute_type,
                                               intra_threads=self.threads, inter_threads=1)

    def next_token_logits(self, prefix_ids: list[int], suffix_ids: list[list[int]]) -> Any:
        """Logits [len(suffix_ids), vocab] (float32 tensor) of the token after prefix + each suffix; the prefix
        is the engine's static prompt, encoded once and cached (labelling)."""
        import numpy as np
        import torch

        static = self.tokenizer.convert_ids_to_tokens(prefix_ids)
        rows = []
        for ids in suffix_ids:
            out = self.generator.generate_batch([self.tokenizer.convert_ids_to_tokens(ids)], static_prompt=static,
                                                max_length=1, sampling_topk=1, return_logits_vocab=True,
                                                include_prompt_in_result=False, end_token=[])
            rows.append(torch.from_numpy(np.array(out[0].logits[0][0])).float().flatten())
        return torch.stack(rows)

    def _call(self, prompts: list[str], n: int, params: SamplingParams) -> list[list[Continuation]]:
        tok = self.tokenizer
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        rows = len(prompts) * n
        generated: list[list[int]] = [[] for _ in range(rows)]
        finish: list[str | None] = [None] * rows
        ended_by_eos = [False] * rows
        texts: list[str | None] = [None] * rows

        def step(result: Any) -> bool:
            # every sampled token, as the hf sampler checks it; True ends that sample (the engine drops it)
            row = result.batch_id * n + result.hypothesis_id
            if finish[row] is not None:
                return True
            generated[row].append(result.token_id)
            if result.token_id in self.eos:
                finish[row], ended_by_eos[row] = "stop", True
                generated[row].pop()
            else:
                texts[row] = stopped_text(generated[row], prompts[result.batch_id], params, tok)
                if texts[row] is not None:
                    finish[row] = "stop"
            return finish[row] is not None

        sampling = {"sampling_topk": 1} if params.temperature == 0 else {
            "sampling_topk": 0, "sampling_temperature": params.temperature, "sampling_topp": params.top_p}
        self.generator.generate_batch([tok.convert_ids_to_tokens(x) for x in ids], max_length=params.max_new_tokens,
                                      num_hypotheses=n, include_prompt_in_result=False, end_token=[], callback=step,
                                      **sampling)
        results = []
        for p, x in enumerate(ids):
            group = []
            for s in range(n):
                row = p * n + s
                text = texts[row] if texts[row] is not None else tok.decode(generated[row], skip_special_tokens=True)
                # each prompt encoded once for its n samples (charged to sample 0, as the hf sampler does)
                group.append(Continuation(text, generated[row], finish[row] or "length", len(x),
                                          len(x) if s == 0 else 0, ended_by_eos[row]))
            results.append(group)
        return results


def load_ct2(spec: dict[str, Any], folder: str | Path, compute_type: str, threads: int, seed: int = 0) -> CT2Model:
    """The ct2 engine, its job stream seeded by `seed` (used by calls without per-prompt keys)."""
    import ctranslate2
    from transformers import AutoTokenizer

    began = time.perf_counter()
    ctranslate2.set_random_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(spec["path"], revision=spec.get("revision"))
    generator = ctranslate2.Generator(str(folder), device="cpu", compute_type=compute_type, intra_threads=threads,
                                      inter_threads=1)
    return CT2Model(generator, tokenizer, spec, time.perf_counter() - began, compute_type, threads,
                    eos_token_ids(tokenizer, spec["path"]), str(folder))


def engine_folder(spec_path: str | Path, spec: dict[str, Any]) -> Path:
    """Where the `convert_model` rule puts a ct2 or llamacpp model's weights: beside its model.json."""
    return Path(spec_path).parent / engine_folder_name(spec["backend"], spec.get("compute_type"))


def load_backend(spec: dict[str, Any], spec_path: str | Path, *, device: str = "auto", threads: int | None = None,
                 engine: bool = True, seed: int = 0) -> Any:
    """The model behind its configured backend (`spec["backend"]`, default hf); `engine=False`: the `hf` model
    whatever the backend (stages the engines do not carry: tree search, hidden-state features)."""
    from infscale.models.loading import load_model

    backend = spec.get("backend", "hf")
    check_backend(spec["name"], backend, spec.get("compute_type"))
    if backend == "hf" or not engine:
        return load_model(spec, device=device, dtype=spec.get("dtype", "auto"))
    if backend == "ct2":
        if device == "cuda":
            raise ValueError(f"models.{spec['name']}.backend: ct2 runs on CPU here; use vllm (or hf) with device: cuda")
        return load_ct2(spec, engine_folder(spec_path, spec), spec.get("compute_type") or CT2_DEFAULT_COMPUTE_TYPE,
                        threads or 2, seed)
    if backend == "llamacpp":
        from infscale.models.convert_model import GGUF_FILE
        from infscale.models.llamacpp import load_llamacpp

        if device == "cuda":
            raise ValueError(f"models.{spec['name']}.backend: llamacpp runs on CPU here; use vllm (or hf) with "
                             "device: cuda")
        return load_llamacpp(spec, engine_folder(spec_path, spec) / GGUF_FILE,
                             spec.get("compute_type") or LLAMACPP_DEFAULT_COMPUTE_TYPE, threads or 2)
    return load_vllm(spec, device=device)


@dataclass
class VLLMModel:
    """vLLM (GPU) with the record contract. UNTESTED: written without a GPU (docs/performance.md). n samples
    per prompt share the prompt through vLLM's automatic prefix caching; seeds per prompt (SamplingParams.seed)."""

    llm: Any
    tokenizer: Any
    spec: dict[str, Any]
    load_seconds: float
    eos: set[int]
    device_name: str = "cuda"
    backend: str = "vllm"
    device: Any = field(default=None)

    def describe(self) -> dict[str, Any]:
        import vllm

        return {"backend": "vllm", "engine_version": vllm.__version__, "dtype": self.spec.get("compute_type"),
                "device": self.device_name, "tested": False}

    def sample(self, prompts: list[str], n: int, params: SamplingParams, generator: Any = None,
               keys: list[tuple[Any, ...]] | None = None) -> list[list[Continuation]]:
        from vllm import SamplingParams as VLLMParams

        if keys is None:
            raise ValueError("the vllm backend needs one seed key per prompt (keys=)")
        tok = self.tokenizer
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        # vLLM stops at EOS and (completion rule) at the stop strings, kept in the output; `truncate` then
        # cuts exactly as the hf sampler does
        stop = list(params.stop) if params.stop_rule == "completion" else []
        requests = [VLLMParams(n=n, temperature=params.temperature, top_p=params.top_p,
                               max_tokens=params.max_new_tokens, seed=key_seed(*key), stop=stop,
                               include_stop_str_in_output=True) for key in keys]
        outputs = self.llm.generate([{"prompt_token_ids": x} for x in ids], requests, use_tqdm=False)
        results = []
        for prompt, x, out in zip(prompts, ids, outputs):
            group = []
            for s, sample in enumerate(out.outputs):
                group.append(truncate(list(sample.token_ids), prompt, len(x), s, params, tok, self.eos))
            results.append(group)
        return results


def stopped_text(tokens: list[int], prompt: str, params: SamplingParams, tok: Any) -> str | None:
    """The text cut at its stop string when the last of `tokens` completed one (as the `hf` sampler checks after
    every token), else None."""
    if not params.stop:
        return None
    text = tok.decode(tokens, skip_special_tokens=True)
    cut = _find_stop(text, params.stop, prompt, params.stop_rule)
    return text[:cut] if cut >= 0 else None


def truncate(tokens: list[int], prompt: str, n_prompt: int, sample: int, params: SamplingParams, tok: Any,
             eos: set[int]) -> Continuation:
    """An engine's raw tokens cut as the `hf` sampler cuts them: at EOS, or at the token that completes a stop
    string (text cut at the stop); only the kept tokens are counted."""
    kept: list[int] = []
    for token in tokens:
        if token in eos:
            return Continuation(tok.decode(kept, skip_special_tokens=True), kept, "stop", n_prompt,
                                n_prompt if sample == 0 else 0, True)
        kept.append(token)
        text = stopped_text(kept, prompt, params, tok)
        if text is not None:
            return Continuation(text, kept, "stop", n_prompt, n_prompt if sample == 0 else 0)
    return Continuation(tok.decode(kept, skip_special_tokens=True), kept, "length", n_prompt,
                        n_prompt if sample == 0 else 0)


def load_vllm(spec: dict[str, Any], device: str = "auto") -> VLLMModel:
    check_backend(spec["name"], "vllm")
    from transformers import AutoTokenizer
    from vllm import LLM

    began = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(spec["path"], revision=spec.get("revision"))
    llm = LLM(model=spec["path"], revision=spec.get("revision"), dtype=spec.get("compute_type") or "auto",
              enable_prefix_caching=True, trust_remote_code=bool(spec.get("trust_remote_code")))
    return VLLMModel(llm, tokenizer, spec, time.perf_counter() - began, eos_token_ids(tokenizer, spec["path"]))
