"""Benchmark: decoding throughput of HF `generate`, the project's sampler and the inference engines, side by side.

One run, the same prompts and token counts for every engine (EOS is ignored, no stop strings, so every engine
decodes exactly the same number of tokens). Each engine family runs in a fresh process, one after another: in a
shared process an engine that has run slows the others (after one CTranslate2 call, HF `generate` at batch 1
dropped from 24 to 16 tok/s here).

- batch 1 / 8 / 32 / 128: that many distinct prompts (~60 tokens: a 1-shot products prompt, exemplars rotated
  so the prompts share no few-shot prefix), one sample each, `--new-tokens` new tokens, T = 1;
- workload B: 8 of those prompts x 16 samples x 32 new tokens, T = 1 (HF `generate` with
  `num_return_sequences=16`; the sampler and CTranslate2 encode each prompt once).

Engines: HF `generate`, `infscale.models.hf.sample_continuations` (the `hf` backend), CTranslate2 at int8 and
float32 (the `ct2` backend, converted here into .cache-tests), llama.cpp on the embedded GGUF as shipped (Q4_1)
and re-quantised to Q8_0, Q4_0 and float32 (the `llamacpp` backend: its `sample`, one seeded stream per row as
the pipeline calls it); vLLM is not run on CPU. Prints tokens/s, achieved GFLOP/s (the analytic count of
`infscale.compute`: each prompt encoded once plus every decoded token, the same useful work for every engine)
and the ratio to HF `generate`, then the measured fp32 matmul peak. The last lines name the best engine at
batch 1 and on B; the very last is `ratio_shared=<best engine tok/s / HF generate tok/s on workload B>`.

    PYTHONPATH=src .venv/bin/python benchmarks/decode.py [--threads 2] [--engines ...] [--batches 1 8]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from infscale.compute import ModelDims, sequence_flops
from infscale.data import DatasetConfig, build_splits
from infscale.io import read_json
from infscale.models.hf import LoadedModel, SamplingParams, sample_continuations, stream_generator
from infscale.models.loading import load_model
from infscale.prompts import PromptConfig, build_prompt
from sampling_kv_sharing import REPO, model_spec  # the embedded SmolLM2, prepared once (benchmarks/ is on sys.path)


class NoEos(LoadedModel):
    """The loaded model with EOS ignored: every row decodes exactly `max_new_tokens` tokens."""

    @property
    def eos_token_ids(self) -> set[int]:
        return set()


def prompts_for(n: int) -> list[str]:
    data = build_splits(DatasetConfig("products", "reasoning_gym", n, 16, task="products",
                                      task_config={"min_digits": 1, "max_digits": 2}))
    shots = data["train"]
    return [build_prompt(q["question"], [shots[i % len(shots)]], PromptConfig("fewshot", 1, "never"))
            for i, q in enumerate(data["test"])]


def matmul_peak(threads: int, size: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - began) / 1e9


def workloads_of(args: argparse.Namespace) -> list[tuple[str, list[int], int, int]]:
    """(name, prompt indices, samples per prompt, new tokens): the batch sweep, then workload B."""
    return [(f"batch {b}", list(range(b)), 1, args.new_tokens) for b in args.batches] + \
        [("B: 8x16x32", list(range(8)), 16, 32)]


def measure(args: argparse.Namespace, wanted: list[str]) -> dict[tuple[str, str], tuple[float, float]]:
    """(workload, engine) -> tok/s and GFLOP/s of the engines in `wanted`, measured in this process."""
    workloads = workloads_of(args)
    torch.set_num_threads(args.threads)

    from infscale.models.convert_model import ct2_convert, gguf_convert
    from infscale.models.embedded import embedded_gguf, get_embedded

    spec_path = model_spec()
    spec = read_json(spec_path)
    dims = ModelDims.from_config(spec["config"])
    base = load_model(spec_path, device="cpu")
    lm = NoEos(base.model, base.tokenizer, base.device, base.spec, base.load_seconds, base.device_name)
    tok = lm.tokenizer
    prompts = prompts_for(max(max(args.batches), 8))
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]

    # --- engines: each a function (prompt indices, samples per prompt, new tokens) -> tokens decoded ---
    def hf_generate(rows: list[int], n: int, new: int) -> int:
        enc = tok([prompts[i] for i in rows], return_tensors="pt", padding=True, padding_side="left",
                  add_special_tokens=False)
        torch.manual_seed(0)
        with torch.inference_mode():
            out = lm.model.generate(**enc, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                                    max_new_tokens=new, min_new_tokens=new, num_return_sequences=n,
                                    pad_token_id=tok.pad_token_id)
        return (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]

    def sampler(rows: list[int], n: int, new: int) -> int:
        params = SamplingParams(temperature=1.0, max_new_tokens=new)
        streams = [stream_generator(0, i, s) for i in rows for s in range(n)]
        groups = sample_continuations(lm, [prompts[i] for i in rows], n, params, streams)
        return sum(len(c.token_ids) for g in groups for c in g)

    engines: dict[str, Callable[[list[int], int, int], int]] = {"hf_generate": hf_generate, "sampler": sampler}
    ct2_types = [e.removeprefix("ct2_") for e in wanted if e.startswith("ct2_")]
    if ct2_types:
        import ctranslate2

        checkpoint = spec["path"] if Path(spec["path"]).is_absolute() else str(REPO / spec["path"])
        for compute_type in ct2_types:
            quantization = "float32" if compute_type == "float32" else "int8"
            folder = REPO / ".cache-tests" / "ct2" / f"smollm2-135m-{quantization}"
            ct2_convert(checkpoint, folder, quantization)
            generator = ctranslate2.Generator(str(folder), device="cpu", compute_type=compute_type,
                                              intra_threads=args.threads, inter_threads=1)

            def ct2(rows: list[int], n: int, new: int, generator=generator) -> int:
                tokens = [tok.convert_ids_to_tokens(ids[i]) for i in rows]
                ctranslate2.set_random_seed(0)
                out = generator.generate_batch(tokens, max_length=new, sampling_topk=0, sampling_temperature=1.0,
                                               num_hypotheses=n, include_prompt_in_result=False, end_token=[])
                return sum(len(s) for r in out for s in r.sequences_ids)

            def ct2_per_prompt(rows: list[int], n: int, new: int, generator=generator) -> int:
                # the backend's reproducible scheme: one call per prompt, seeded per prompt
                total = 0
                for i in rows:
                    ctranslate2.set_random_seed(i)
                    out = generator.generate_batch([tok.convert_ids_to_tokens(ids[i])], max_length=new,
                                                   sampling_topk=0, sampling_temperature=1.0, num_hypotheses=n,
                                                   include_prompt_in_result=False, end_token=[])
                    total += sum(len(s) for s in out[0].sequences_ids)
                return total

            engines[f"ct2_{compute_type}"] = ct2
            engines[f"ct2_{compute_type}/prompt"] = ct2_per_prompt
    llamacpp_types = [e.removeprefix("llamacpp_") for e in wanted if e.startswith("llamacpp_")]
    if llamacpp_types:
        from infscale.models.llamacpp import LlamaCppModel, LlamaWeights

        source = embedded_gguf(get_embedded("smollm2-135m-instruct"), REPO / ".cache-tests" / "gguf")
        for compute_type in llamacpp_types:
            gguf = gguf_convert(source, REPO / ".cache-tests" / "gguf" / f"smollm2-135m-{compute_type}", compute_type)
            # EOS ignored (an empty EOS set), as NoEos does for the hf rows
            engine = LlamaCppModel(LlamaWeights(gguf, compute_type), tok, spec, 0.0, compute_type, args.threads, set())

            def llamacpp(rows: list[int], n: int, new: int, engine=engine) -> int:
                params = SamplingParams(temperature=1.0, max_new_tokens=new)
                streams = [stream_generator(0, i, s) for i in rows for s in range(n)]
                groups = engine.sample([prompts[i] for i in rows], n, params, streams)
                return sum(len(c.token_ids) for g in groups for c in g)

            engines[f"llamacpp_{compute_type}"] = llamacpp
    engines = {k: v for k, v in engines.items() if k.split("/")[0] in wanted}

    def flops(rows: list[int], n: int, new: int) -> float:
        # useful work: each prompt encoded once (logits at its last position), n x new decoded tokens
        return sum(sequence_flops(dims, 0, len(ids[i]), 1) + n * sequence_flops(dims, len(ids[i]), new)
                   for i in rows)

    for name, rows, n, new in workloads[:1]:        # warm-up: first calls allocate caches and pools
        for engine in engines.values():
            engine(rows, n, 4)
    table: dict[tuple[str, str], tuple[float, float]] = {}
    for name, rows, n, new in workloads:
        for engine_name, engine in engines.items():
            if engine_name.endswith("/prompt") and n == 1:
                continue                                # one call per prompt: where M samples share it (B)
            # best of repeats for short runs (the machine is shared): until 3 s are spent, at most 5 runs
            seconds, spent, runs = float("inf"), 0.0, 0
            while runs < 1 or (spent < 3.0 and runs < 5):
                began = time.perf_counter()
                tokens = engine(rows, n, new)
                elapsed = time.perf_counter() - began
                seconds, spent, runs = min(seconds, elapsed), spent + elapsed, runs + 1
            table[name, engine_name] = (tokens / seconds, flops(rows, n, new) / seconds / 1e9)
            print(f"  {name} {engine_name}: {tokens / seconds:.1f} tok/s ({runs} runs)", file=sys.stderr, flush=True)

    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=32, help="new tokens per sequence in the batch sweep")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--ct2-compute-types", nargs="+", default=["int8", "float32"],
                        help="CTranslate2 compute types (int8, int8_float32, float32)")
    parser.add_argument("--llamacpp-compute-types", nargs="+", default=["q8_0", "q4_0"],
                        help="llama.cpp weights: q8_0 q4_0 native (the embedded Q4_1 GGUF as shipped) float32; "
                             "the default two keep the run under 10 min (all four: ~21 min)")
    parser.add_argument("--engines", nargs="+", default=None,
                        help="subset of: hf_generate sampler ct2_int8 ct2_float32 ct2_int8_float32 llamacpp_native "
                             "llamacpp_q8_0 llamacpp_q4_0 llamacpp_float32")
    args = parser.parse_args()
    from infscale.models.backend import ct2_available, vllm_available
    from infscale.models.llamacpp import llamacpp_available

    # each engine family in a fresh process, one after the other: an engine that ran in a process slows the
    # others there (after one CTranslate2 call, HF generate at batch 1 ran at 16 instead of 24 tok/s)
    families = [["hf_generate", "sampler"]]
    families += [[f"ct2_{c}"] for c in args.ct2_compute_types] if ct2_available() else []
    families += [[f"llamacpp_{c}"] for c in args.llamacpp_compute_types] if llamacpp_available() else []
    if args.engines:
        families = [[e for e in family if e in args.engines or e == "hf_generate"] for family in families]
        families = [family for family in families if family]
    table: dict[tuple[str, str], tuple[float, float]] = {}
    notes: list[str] = []
    for family in families:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            table.update(pool.submit(measure, args, family).result())
    if not ct2_available():
        notes.append("CTranslate2 not installed (pip install ctranslate2): its rows are missing")
    if not llamacpp_available():
        notes.append("llama-cpp-python not installed (make setup builds it): the llamacpp rows are missing")
    if vllm_available():
        notes.append("vLLM is importable but not benchmarked on this CPU machine (backend untested)")
    workloads = workloads_of(args)
    torch.set_num_threads(args.threads)
    names = list(dict.fromkeys(engine for _, engine in table))
    print(f"SmolLM2-135M, CPU, {args.threads} threads, T=1, EOS ignored; batch sweep: ~60-token distinct prompts x "
          f"{args.new_tokens} new tokens; B: 8 prompts x 16 samples x 32 new tokens")
    print("tok/s (GFLOP/s) [ratio to HF generate], best of 1-5 runs (repeated up to 3 s); x/prompt: one seeded "
          "call per prompt (the ct2 backend's scheme)")
    print(f"{'engine':<22}" + "".join(f"{name:>26}" for name, *_ in workloads))
    for engine_name in names:
        cells = []
        for name, *_ in workloads:
            if (name, engine_name) in table:
                speed, gflops = table[name, engine_name]
                cells.append(f"{speed:8.1f} ({gflops:5.1f}) [{speed / table[name, 'hf_generate'][0]:4.2f}x]")
            else:
                cells.append("-")
        print(f"{engine_name:<22}" + "".join(f"{c:>26}" for c in cells))
    print(f"fp32 matmul peak ({args.threads} threads, 1024^3): {matmul_peak(args.threads):.1f} GFLOP/s")
    for note in notes:
        print(note)
    one = workloads[0][0]
    if one == "batch 1":
        best_one, speed_one = max(((n, table[one, n][0]) for n in names if n != "hf_generate" and (one, n) in table),
                                  key=lambda x: x[1])
        print(f"best engine at batch 1: {best_one} ({speed_one / table[one, 'hf_generate'][0]:.2f}x HF generate)")
    b_name = workloads[-1][0]
    hf_b = table[b_name, "hf_generate"][0]
    best_name, best = max(((n, table[b_name, n][0]) for n in names if n != "hf_generate" and (b_name, n) in table),
                          key=lambda x: x[1])
    print(f"best engine on B: {best_name}")
    print(f"ratio_shared={best / hf_b:.2f}")


if __name__ == "__main__":
    main()
