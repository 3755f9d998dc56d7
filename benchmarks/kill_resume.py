"""Benchmark: SIGKILL generation, scoring and labelling jobs at random moments, rerun, and check the result.

A tiny config (one-digit products, SmolLM2-135M: sampling, a value-head PRM that scores the samples, and
self-labelled confidence) is run once uninterrupted: the reference. Each trial copies that finished folder,
deletes one job's output, starts Snakemake for it and SIGKILLs the whole process group (scheduler and job, as
when a node dies) at a uniformly random moment of the job's run time, then unlocks and reruns. Per trial:

- records redone: finished records on disk at the kill (the `.partial` file, or the final file) that the
  rerun computed again, from the resumed job's log line (`kept ... written ...`, infscale.io);
- truncated / duplicated: unparseable lines, and repeated (id, sample) keys, in the rerun's final file;
- equal: the final file equals the reference's, field by field, except wall-time and prefill-accounting fields
  (`seconds`; generation's `n_prefill_tokens` and `flops`, which depend on which questions share a batch).

    .venv/bin/python benchmarks/kill_resume.py [--trials 4 3 3] [--seed 0] [--out benchmarks/results/kill_resume]

Needs the embedded SmolLM2 prepared (tests' cache or `make run`); CPU-heavy: run it alone, under nice.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from infscale.io import RESUME_HEADER

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
VOLATILE = {"seconds"}                                   # wall time differs run to run
GEN_VOLATILE = VOLATILE | {"n_prefill_tokens", "flops"}  # prefix sharing depends on the batch's questions

CONFIG = {
    "seed": 42, "device": "cpu", "threads": 1,
    "datasets": {"products": {"source": "reasoning_gym", "task": "products",
                              "task_config": {"min_digits": 1, "max_digits": 1},
                              "n_test": 8, "n_train": 7, "seed": 7}},
    "models": {"smollm2-135m": {"source": "embedded", "id": "smollm2-135m-instruct"}},
    "scorers": {"vh": {"kind": "value_head", "model": "smollm2-135m", "n_rollouts": 2, "n_completions": 2,
                       "max_new_tokens": 12, "batch_size": 4,
                       "prompt": {"style": "fewshot", "n_shots": 3, "chat_template": "never"}}},
    "methods": {"sample4": {"kind": "sampling", "n_samples": 4, "temperature": 1.0, "max_new_tokens": 12,
                            "stop": ["\n"], "batch_size": 4,     # one question per batch: many checkpoints
                            "prompt": {"style": "fewshot", "n_shots": 3, "chat_template": "never"}}},
    "runs": [{"datasets": ["products"], "models": ["smollm2-135m"], "methods": ["sample4"], "scorers": ["vh"],
              "labellers": ["smollm2-135m"]}],
    "labelling": {"mode": "expected", "batch_size": 4, "chat_template": "never"},
    "aggregate": {"n_boot": 200},
}

POOL = "results/{}/products/smollm2-135m/sample4"
BATCHES = 8                 # 8 questions x 4 samples: 8 generation batches; scoring and labelling 32 / 4 per batch
RECORDS_PER_BATCH = 4


@dataclass(frozen=True)
class Stage:
    name: str
    output: str          # the job's output that is deleted and rebuilt
    log: str             # its job log
    volatile: frozenset


STAGES = [
    Stage("generation", POOL.format("gen") + "/shard-0.jsonl", "logs/gen/products/smollm2-135m/sample4/shard-0.log",
          frozenset(GEN_VOLATILE)),
    Stage("scoring", POOL.format("scores") + "/prm-vh.jsonl", "logs/scores/products/smollm2-135m/sample4/prm-vh.log",
          frozenset(VOLATILE)),
    Stage("labelling", POOL.format("scores") + "/conf-smollm2-135m.jsonl",
          "logs/scores/products/smollm2-135m/sample4/conf-smollm2-135m.log", frozenset(VOLATILE)),
]


def snakemake(root: Path, *args: str) -> list[str]:
    return [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(root),
            "--configfile", str(root / "config.yaml"), "--cores", "2", *args]


def prepared_model() -> Path:
    cache = Path(os.environ.get("INFSCALE_TEST_CACHE", REPO / ".cache-tests"))
    for folder in (REPO / "resources/models/smollm2-135m", cache / "models/smollm2-135m"):
        if (folder / "model.json").exists():
            return folder.resolve()
    raise SystemExit("prepare the embedded SmolLM2 first (make run, or the test suite's cache)")


def reference_run(root: Path) -> None:
    if (root / "done").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    (root / "resources/models").mkdir(parents=True)
    (root / "resources/models/smollm2-135m").symlink_to(prepared_model(), target_is_directory=True)
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    subprocess.run(snakemake(root), check=True)
    (root / "done").write_text("")


def read_lines(path: Path) -> tuple[list[dict], int]:
    """Records of a JSONL file and the number of lines that do not parse."""
    records, bad = [], 0
    if not path.exists():
        return records, bad
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1
    return records, bad


def records_in(partial: Path) -> int:
    """Finished records in a partial file (its header line aside); 0 while it does not exist."""
    return sum(RESUME_HEADER not in r for r in read_lines(partial)[0])


def key(record: dict) -> tuple:
    return record["id"], record["sample"]


def logged_seconds(log: Path) -> float:
    """The job's run time from its log (`finished in X s`: from the script's start, after its imports)."""
    line = next(line for line in log.read_text().splitlines() if "finished in" in line)
    return float(line.split("finished in ")[1].split()[0])


def kept_count(log: Path, output: str) -> int | None:
    """`kept` from the resumed job's log line; None when the rerun did not run the job."""
    if not log.exists():
        return None
    for line in log.read_text().splitlines():
        if f"{output}: " in line and "records kept from an earlier run" in line:
            return int(line.split(f"{output}: ")[1].split()[0])
    return None


def trial(reference: Path, work: Path, stage: Stage, rng: random.Random) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(reference, work, symlinks=True)
    output, log = work / stage.output, work / stage.log
    output.unlink()
    log.unlink()
    # a random moment of the job: after a uniformly drawn number of its BATCHES batches (0: during model
    # loading), plus a uniform part of one batch's time (so kills also land mid-batch and mid-write)
    job_seconds = logged_seconds(reference / stage.log)
    batches_done = rng.randrange(BATCHES)
    extra = rng.uniform(0.0, job_seconds / BATCHES)
    partial = output.with_name(output.name + ".partial")

    proc = subprocess.Popen(snakemake(work, str(output.relative_to(work))), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and not (log.exists() and records_in(partial) >= batches_done * RECORDS_PER_BATCH):
        time.sleep(0.02)
    time.sleep(extra)
    finished_before_kill = proc.poll() is not None
    if finished_before_kill:     # the job beat the kill: no fault injected, the caller draws another moment
        return {"stage": stage.name, "finished_before_kill": True}
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    on_disk = {key(r) for r in read_lines(partial)[0] if RESUME_HEADER not in r} | {key(r) for r in read_lines(output)[0]}
    log.unlink(missing_ok=True)
    subprocess.run(snakemake(work, "--unlock"), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(snakemake(work, str(output.relative_to(work)), "--rerun-incomplete"), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    kept = kept_count(log, str(output.relative_to(work)))
    redone = 0 if kept is None else len(on_disk) - kept
    records, bad = read_lines(output)
    keys = [key(r) for r in records]
    ref_records, _ = read_lines(reference / stage.output)

    def stable(rs: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in stage.volatile} for r in rs]

    return {"stage": stage.name, "kill_after_batches": batches_done, "plus_s": round(extra, 2),
            "job_s": round(job_seconds, 1),
            "finished_before_kill": False, "records_at_kill": len(on_disk),
            "redone": redone, "truncated": bad, "duplicated": len(keys) - len(set(keys)),
            "missing": len(set(map(key, ref_records)) - set(keys)), "equal": stable(records) == stable(ref_records),
            "leftover_partial": partial.exists()}


def moments(rows: list[dict]) -> str:
    return ", ".join(f"{r['kill_after_batches']}+{r['plus_s']}" for r in rows)


def table(rows: list[dict]) -> str:
    lines = ["| stage | trials | kill moment (batches done + s) | finished records on disk at kill | records redone | "
             "truncated | duplicated | missing | final output equal to uninterrupted |",
             "|---|---|---|---|---|---|---|---|---|"]
    for stage in STAGES:
        rs = [r for r in rows if r["stage"] == stage.name]
        if not rs:
            continue
        lines.append(
            f"| {stage.name} | {len(rs)} | {moments(rs)} "
            f"(job {rs[0]['job_s']} s, 8 batches) | "
            f"{', '.join(str(r['records_at_kill']) for r in rs)} | {sum(r['redone'] for r in rs)} | "
            f"{sum(r['truncated'] for r in rs)} | {sum(r['duplicated'] for r in rs)} | {sum(r['missing'] for r in rs)} | "
            f"{sum(r['equal'] for r in rs)}/{len(rs)} |")
    total = len(rows)
    lines.append(f"| **all** | {total} | | {sum(r['records_at_kill'] for r in rows)} | "
                 f"{sum(r['redone'] for r in rows)} | {sum(r['truncated'] for r in rows)} | "
                 f"{sum(r['duplicated'] for r in rows)} | {sum(r['missing'] for r in rows)} | "
                 f"{sum(r['equal'] for r in rows)}/{total} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs=3, default=[4, 3, 3], metavar=("GEN", "SCORE", "LABEL"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/kill_resume")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    reference = args.out / "reference"
    reference_run(reference)
    rows, beaten = [], []        # beaten: trials whose job finished before its kill moment (redrawn)
    for stage, n in zip(STAGES, args.trials):
        for i in range(n):
            for attempt in range(5):
                row = trial(reference, args.out / "trial", stage, rng)
                print(json.dumps(row), flush=True)
                if not row["finished_before_kill"]:
                    break
                beaten.append(row)
            rows.append(row)
    shutil.rmtree(args.out / "trial", ignore_errors=True)
    (args.out / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    note = f"\n{len(beaten)} drawn kill moments fell after the job had finished and were drawn again.\n"
    (args.out / "table.md").write_text(table(rows) + "\n" + note)
    print(table(rows) + "\n" + note)


if __name__ == "__main__":
    main()
