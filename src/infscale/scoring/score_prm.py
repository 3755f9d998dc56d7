"""The PRM scoring stage (rule score_prm): step scores for every response of a generation pool, resumable."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from infscale.fingerprint import job_fingerprint
from infscale.io import ResumableJsonlWriter, read_jsonl
from infscale.progress import Progress
from infscale.scoring.scorers import PRMConfig, ScorerFiles, load_scorer
from infscale.steps import split_steps


def score_prm(samples_path: str | Path, questions_path: str | Path, scorer_name: str, scorer_cfg: dict[str, Any],
              output: str | Path, files: ScorerFiles = ScorerFiles(), device: str = "auto",
              threads: int | None = None) -> None:
    """Step scores for every response of a generation pool (resumable). Responses that already carry step
    scores from this very scorer (tree search scored its nodes while searching) are copied, at no cost: their
    scoring FLOPs are already in the response's `flops.scorer`."""
    if threads:
        torch.set_num_threads(threads)
    cfg = PRMConfig.from_config(scorer_name, scorer_cfg)
    records = read_jsonl(samples_path)
    question_text = {q["id"]: q["question"] for q in read_jsonl(questions_path)}
    scorer_files = [f for f in (files.head, files.model_spec) if f and Path(f).is_file()]
    fingerprint = job_fingerprint(("infscale.scoring.score_prm",), {"scorer": scorer_name, "cfg": scorer_cfg,
                                                                    "device": device},
                                  [samples_path, questions_path, *scorer_files])
    writer = ResumableJsonlWriter(output, key_fields=("id", "sample"), fingerprint=fingerprint)
    todo = [r for r in records if (r["id"], r["sample"]) not in writer.done]
    copied = [r for r in todo if r.get("step_scores") is not None and r.get("meta", {}).get("scorer") == cfg.name]
    writer.write_many([{"id": r["id"], "sample": r["sample"], "scorer": cfg.name, "step_scores": r["step_scores"],
                        "score": r["step_scores"][-1], "flops": 0.0, "seconds": 0.0} for r in copied])
    todo = [r for r in todo if not (r.get("step_scores") is not None and r.get("meta", {}).get("scorer") == cfg.name)]
    if todo:
        scorer = load_scorer(cfg, files, device=device)
        with Progress(len(todo), f"score {cfg.name}", unit="response") as progress:
            for start in range(0, len(todo), cfg.batch_size):
                batch = todo[start : start + cfg.batch_size]
                steps = [r.get("steps") or split_steps(r["completion"], cfg.step_separator) for r in batch]
                began = time.perf_counter()
                scores, flops = scorer.score_paths([question_text[r["id"]] for r in batch],
                                                   [r["prompt"] for r in batch], steps)
                seconds = time.perf_counter() - began
                writer.write_many([{
                    "id": r["id"], "sample": r["sample"], "scorer": cfg.name, "step_scores": s, "score": s[-1],
                    "flops": f, "seconds": seconds / len(batch)} for r, s, f in zip(batch, scores, flops)])
                progress.update(len(batch), sum(r.get("n_completion_tokens", 0) for r in batch))  # tokens scored
    writer.finish(sort_key=lambda r: (r["id"], r["sample"]))
