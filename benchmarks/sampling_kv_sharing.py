"""Benchmark: our KV-sharing sampler vs transformers' `generate(num_return_sequences=M)`, side by side.

HF `generate` re-encodes each prompt M times; `infscale.models.hf.sample_continuations` encodes the few-shot
prefix the prompts share once, each prompt's own part once, repeats the KV cache for the M samples, and
drops finished rows from the batch. Prints wall time, generated tokens/s and the
ratio, on the embedded SmolLM2-135M (prepared by `make run` or converted here into .cache-tests).

    .venv/bin/python benchmarks/sampling_kv_sharing.py [--questions 8] [--samples 16] [--max-new-tokens 16]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from infscale.data import DatasetConfig, build_splits
from infscale.models import ModelConfig
from infscale.models.prepare_model import prepare_model
from infscale.models.hf import SamplingParams, sample_continuations
from infscale.models.loading import load_model
from infscale.prompts import PromptConfig, build_prompt

REPO = Path(__file__).resolve().parents[1]


def model_spec() -> Path:
    for folder in (REPO / "resources/models/smollm2-135m", REPO / ".cache-tests/models/smollm2-135m"):
        if (folder / "model.json").exists():
            return folder / "model.json"
    folder = REPO / ".cache-tests/models/smollm2-135m"
    prepare_model(ModelConfig("smollm2-135m", "embedded", "smollm2-135m-instruct"), folder.resolve())
    return folder / "model.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lm = load_model(model_spec(), device="cpu")
    data = build_splits(DatasetConfig("products", "reasoning_gym", args.questions, 3, task="products",
                                      task_config={"min_digits": 1, "max_digits": 1}))
    prompts = [build_prompt(q["question"], data["train"], PromptConfig("fewshot", 3, "never")) for q in data["test"]]
    params = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens, stop=("\n",))

    began = time.perf_counter()
    ours = sample_continuations(lm, prompts, args.samples, params, torch.Generator().manual_seed(0))
    ours_s = time.perf_counter() - began
    ours_tokens = sum(len(c.token_ids) for g in ours for c in g)

    tok = lm.tokenizer
    enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    torch.manual_seed(0)
    began = time.perf_counter()
    with torch.inference_mode():
        out = lm.model.generate(**enc, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                                max_new_tokens=args.max_new_tokens, num_return_sequences=args.samples,
                                stop_strings=["\n"], tokenizer=tok, pad_token_id=tok.pad_token_id)
    hf_s = time.perf_counter() - began
    new = out[:, enc["input_ids"].shape[1]:]
    hf_tokens = int((new != tok.pad_token_id).sum())

    print(f"{args.questions} prompts x {args.samples} samples, <= {args.max_new_tokens} new tokens, "
          f"{torch.get_num_threads()} threads")
    print(f"{'':<28}{'seconds':>9}{'tokens':>8}{'tok/s':>8}")
    print(f"{'infscale (shared KV cache)':<28}{ours_s:>9.2f}{ours_tokens:>8}{ours_tokens / ours_s:>8.1f}")
    print(f"{'HF generate (re-encode)':<28}{hf_s:>9.2f}{hf_tokens:>8}{hf_tokens / hf_s:>8.1f}")
    print(f"speed-up in wall time: {hf_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
