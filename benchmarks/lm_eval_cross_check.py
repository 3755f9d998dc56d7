"""Cross-check seed 004's CoT prompt and answer extraction against lm-evaluation-harness (issue 12, item 5).

Runs lm-eval's `gsm8k_cot_zeroshot` task (its own YAML, pointed at the vendored data/gsm8k/test.jsonl instead of
the hub) and our pipeline's `zeroshot_cot` prompt on the same local HF model folder and the same questions,
greedy, with the same token cap; then compares per question the generated text, lm-eval's extracted answers
(`strict-match` and `flexible-extract` filters) and ours (`infscale.grading`, flexible), and the accuracies with
95% bootstrap CIs.

lm-eval is an optional extra (`pip install -e ".[lmeval]"`, lm-eval==0.4.13), never a core dependency. Offline:

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/lm_eval_cross_check.py \
        --model-dir resources/models/smollm2-135m/checkpoint --n-questions 30 --output results/lm_eval_cross_check

Writes `per_question.csv` and `summary.json` into --output (numbers in docs/seed004.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from infscale.data.sample_dataset import VENDORED_GSM8K, DatasetConfig, build_splits
from infscale.stats import bootstrap_ci
from infscale.generate import run_generation
from infscale.grade import grade_responses
from infscale.io import read_jsonl, write_json, write_jsonl
from infscale.models import ModelConfig
from infscale.models.prepare_model import prepare_model

TASK = "gsm8k_cot_zeroshot"
LOCAL_TASK = "gsm8k_cot_zeroshot_local"


def lm_eval_task_yaml(questions_path: Path, max_new_tokens: int) -> dict:
    """lm-eval's own gsm8k_cot_zeroshot YAML with the hub dataset replaced by a local JSON file."""
    import lm_eval

    source = Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k-cot-zeroshot.yaml"
    task = yaml.safe_load(source.read_text())
    for key in ("tag", "dataset_name", "training_split", "fewshot_split"):
        task.pop(key, None)
    task.update({"task": LOCAL_TASK, "dataset_path": "json",
                 "dataset_kwargs": {"data_files": {"test": str(questions_path)}}, "test_split": "test"})
    task["generation_kwargs"] = {**task["generation_kwargs"], "max_gen_toks": max_new_tokens}
    return task


def run_lm_eval(model_dir: Path, questions_path: Path, workdir: Path, max_new_tokens: int, batch_size: int) -> pd.DataFrame:
    import lm_eval
    from lm_eval.tasks import TaskManager

    task_dir = workdir / "tasks"
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / f"{LOCAL_TASK}.yaml").write_text(yaml.safe_dump(lm_eval_task_yaml(questions_path, max_new_tokens)))
    results = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={model_dir},dtype=float32", tasks=[LOCAL_TASK], device="cpu",
        batch_size=batch_size, log_samples=True, task_manager=TaskManager(include_path=str(task_dir)),
    )
    rows = {}
    for sample in results["samples"][LOCAL_TASK]:
        row = rows.setdefault(sample["doc_id"], {"doc_id": sample["doc_id"], "lm_eval_prompt": _context(sample),
                                                 "lm_eval_text": sample["resps"][0][0]})
        filtered = sample["filtered_resps"][0]
        row[f"lm_eval_{sample['filter']}"] = filtered
        row[f"lm_eval_{sample['filter']}_correct"] = bool(sample["exact_match"])
    return pd.DataFrame(sorted(rows.values(), key=lambda r: r["doc_id"]))


def _context(sample: dict) -> str:
    """The prompt lm-eval sent: `arguments` is [[context, gen_kwargs]] or {"gen_args_0": {"arg_0": context, ...}}."""
    arguments = sample["arguments"]
    if isinstance(arguments, dict):
        return next(iter(arguments.values()))["arg_0"]
    return arguments[0][0]


def run_ours(model_dir: Path, test_path: Path, workdir: Path, max_new_tokens: int, batch_size: int) -> pd.DataFrame:
    spec_dir = workdir / "model"
    prepare_model(ModelConfig("cross-check", "local", str(model_dir.resolve())), spec_dir)
    empty = workdir / "train.jsonl"
    write_jsonl(empty, [])
    method = {"kind": "sampling", "n_samples": 1, "temperature": 0.0, "max_new_tokens": max_new_tokens,
              "stop": ["Q:", "</s>", "<|im_end|>"], "batch_size": batch_size,
              "prompt": {"style": "zeroshot_cot", "n_shots": 0, "chat_template": "never"}}
    samples = workdir / "ours.jsonl"
    run_generation(test_path, empty, spec_dir / "model.json", "cot", method, samples, workdir / "timing.json",
                   device="cpu")
    graded = workdir / "ours.graded.jsonl"
    grade_responses(samples, test_path, graded, mode="flexible")
    return pd.DataFrame([{"id": r["id"], "ours_prompt": r["prompt"], "ours_text": r["completion"],
                          "ours_extracted": r["extracted"], "ours_correct": bool(r["correct"])}
                         for r in read_jsonl(graded)])


def _number(text: object) -> str | None:
    """A filtered answer as lm-eval's exact_match compares it (commas, $ and a final period dropped)."""
    if not isinstance(text, str) or text == "[invalid]":
        return None
    return text.replace(",", "").replace("$", "").rstrip(".").strip() or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="a local HF checkpoint folder")
    parser.add_argument("--n-questions", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42, help="question subset seed (config/seed004-cpu.yaml: 42)")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()

    args.output.mkdir(parents=True, exist_ok=True)
    test = build_splits(DatasetConfig("gsm8k", "gsm8k", n_test=args.n_questions, n_train=0, seed=args.seed))["test"]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        test_path = workdir / "test.jsonl"
        write_jsonl(test_path, test)
        # lm-eval reads the vendored file's own records (question, "... #### answer"), the same questions
        vendored = read_jsonl(VENDORED_GSM8K)
        questions_path = workdir / "gsm8k_subset.jsonl"
        write_jsonl(questions_path, [{"question": q["question"], "answer": vendored[q["meta"]["index"]]["answer"]}
                                     for q in test])
        lm_eval_rows = run_lm_eval(args.model_dir, questions_path, workdir, args.max_new_tokens, args.batch_size)
        ours = run_ours(args.model_dir, test_path, workdir, args.max_new_tokens, args.batch_size)
    table = pd.concat([pd.DataFrame({"id": [q["id"] for q in test], "reference": [q["answer"] for q in test]}),
                       lm_eval_rows.drop(columns="doc_id")], axis=1).merge(ours, on="id")
    table["same_prompt"] = table["lm_eval_prompt"] == table["ours_prompt"]
    table["same_text"] = [a.strip() == b.strip() for a, b in zip(table["lm_eval_text"], table["ours_text"])]
    table["same_flexible_answer"] = [_number(a) == (b if b is None else str(b))
                                     for a, b in zip(table["lm_eval_flexible-extract"], table["ours_extracted"])]
    table.to_csv(args.output / "per_question.csv", index=False)

    def accuracy(column: str) -> dict:
        values = table[column].astype(float).to_numpy() * 100
        low, high = bootstrap_ci(values, seed=args.seed)
        return {"accuracy": float(values.mean()), "ci_low": low, "ci_high": high}

    paired = (table["ours_correct"].astype(float) - table["lm_eval_flexible-extract_correct"].astype(float)) * 100
    low, high = bootstrap_ci(paired.to_numpy(), seed=args.seed)
    summary = {
        "model_dir": str(args.model_dir), "n_questions": len(table), "max_new_tokens": args.max_new_tokens,
        "lm_eval_strict": accuracy("lm_eval_strict-match_correct"),
        "lm_eval_flexible": accuracy("lm_eval_flexible-extract_correct"),
        "ours_flexible": accuracy("ours_correct"),
        "ours_minus_lm_eval_flexible": {"difference": float(paired.mean()), "ci_low": low, "ci_high": high},
        "same_prompt": int(table["same_prompt"].sum()),
        "same_generated_text": int(table["same_text"].sum()),
        "same_flexible_answer": int(table["same_flexible_answer"].sum()),
    }
    write_json(args.output / "summary.json", summary)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
