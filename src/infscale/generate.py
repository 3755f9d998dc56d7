"""The generation stage: one (dataset, model, method) shard of questions -> response records, resumable."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import torch

from infscale.compute import ModelDims, generation_flops, seed000_sampling_flops
from infscale.io import ResumableJsonlWriter, read_json, read_jsonl, write_json
from infscale.methods import Resources, build_config, get_method, method_module
from infscale.models.backend import load_backend
from infscale.fingerprint import job_fingerprint
from infscale.progress import Progress

log = logging.getLogger(__name__)


def shard_slice(n_items: int, shard: int, n_shards: int) -> slice:
    """Contiguous chunk `shard` of `n_shards` (sizes differ by at most one)."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is outside 0..{n_shards - 1}")
    base, extra = divmod(n_items, n_shards)
    start = shard * base + min(shard, extra)
    return slice(start, start + base + (shard < extra))


ANSWER_TOKEN_FIELDS = ("n_answer_prompt_tokens", "n_answer_prefill_tokens", "n_answer_tokens")


def decoding_steps(record: dict[str, Any]) -> int:
    """Forward passes that sampled a token of this response, the one that ended it (EOS) included: the steps
    seed 000's base.py charges. Records without `n_sampled_tokens` count their visible and answer tokens."""
    if record.get("n_sampled_tokens") is not None:
        return int(record["n_sampled_tokens"])
    return int(record["n_completion_tokens"]) + int(record.get("n_answer_tokens") or 0)


@contextlib.contextmanager
def _explain_out_of_memory(method_name: str, cfg: Any):
    """Turn a GPU out-of-memory error into one that says which setting to lower (finished work is kept)."""
    try:
        yield
    except torch.OutOfMemoryError as err:
        batch = getattr(cfg, "batch_size", None)
        raise RuntimeError(
            f"out of GPU memory in method {method_name!r}: lower methods.{method_name}.batch_size "
            f"(now {batch}); finished questions are kept and the rerun resumes after them"
        ) from err


def run_generation(test_path: str | Path, train_path: str | Path, model_spec_path: str | Path, method_name: str,
                   method_cfg: dict[str, Any], output: str | Path, timing_output: str | Path, *, shard: int = 0,
                   n_shards: int = 1, seed: int = 42, device: str = "auto", threads: int | None = None,
                   resources: Resources = Resources()) -> None:
    """Generate responses for shard `shard` of the test questions; a killed run resumes where it stopped.
    `resources`: what the method loads besides the policy (its PRM, its Quiet-STaR model) and their files."""
    if threads:
        torch.set_num_threads(threads)
    all_questions = read_jsonl(test_path)
    questions = all_questions[shard_slice(len(all_questions), shard, n_shards)]
    shots = read_jsonl(train_path)
    method = get_method(method_cfg["kind"])
    cfg = build_config(method_name, method_cfg)
    spec = read_json(model_spec_path)
    dims = ModelDims.from_config(spec["config"])

    fingerprint = job_fingerprint(
        ("infscale.generate", method_module(method_cfg["kind"])),
        {"method": method_name, "cfg": method_cfg, "scorer": resources.scorer, "thinker": resources.thinker,
         "shard": shard, "n_shards": n_shards, "seed": seed, "device": device},
        [test_path, train_path, model_spec_path, *resources.scorer_files.values(),
         *([resources.thinker_weights] if resources.thinker_weights else [])])
    writer = ResumableJsonlWriter(output, key_fields=("id", "sample"), fingerprint=fingerprint)
    finished_ids = {key[0] for key in writer.done}
    todo = [q for q in questions if q["id"] not in finished_ids]
    log.info("%s: %d questions in shard %d/%d, %d already done", method_name, len(questions), shard, n_shards,
             len(questions) - len(todo))
    # sampling runs on the model's configured backend; other methods (tree search, thinking) on `hf`
    lm = load_backend(spec, model_spec_path, device=device, threads=threads,
                      engine=method_cfg["kind"] == "sampling")
    log.info("loaded %s on %s in %.1f s", spec["name"], lm.device_name, lm.load_seconds)
    began = time.perf_counter()
    loaded = method.load(lm, cfg, resources) if method.load and todo else {}   # e.g. a search's PRM: load time too
    load_seconds = lm.load_seconds + (time.perf_counter() - began)
    began = time.perf_counter()
    with Progress(len(todo), f"{spec['name']}/{method_name}", unit="question") as progress, \
            _explain_out_of_memory(method_name, cfg):
        for records in method.generate(todo, shots, lm, cfg, seed, **loaded):
            for record in records:
                record["method"] = method_name
                # tree search measures its own per-node costs (and adds its PRM's); others are counted here
                if "decode" not in record.get("flops", {}):
                    record["flops"] = generation_flops(dims, record["n_prefill_tokens"], record["n_prompt_tokens"],
                                                       record["n_completion_tokens"], record["n_thought_tokens"],
                                                       **{k: record.get(k, 0) for k in ANSWER_TOKEN_FIELDS})
                # seed 000's count: search methods set their own (rebase.py's per-node charge)
                if "flops_seed000" not in record:
                    record["flops_seed000"] = seed000_sampling_flops(dims, decoding_steps(record))
            writer.write_many(records)
            progress.update(len({r["id"] for r in records}),
                            sum(r["n_completion_tokens"] + r["n_thought_tokens"] for r in records))
    generate_seconds = time.perf_counter() - began
    writer.finish(sort_key=lambda r: (r["id"], r["sample"]))
    write_json(timing_output, {
        "load_seconds": load_seconds, "generate_seconds": generate_seconds, "device": lm.device_name,
        "torch_threads": torch.get_num_threads(), "n_questions": len(todo), "backend": lm.describe(),
    })
