"""Question sources: the vendored GSM8K test split, reasoning-gym generators, and a multiple-choice task.

Every source yields questions in a fixed order with stable ids; `build_splits` draws a seeded test subset and a
disjoint train subset (few-shot exemplars, learned scorers) from that pool.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infscale.io import iter_jsonl, write_jsonl
from infscale.schema import defaults

REPO_ROOT = Path(__file__).resolve().parents[3]
VENDORED_GSM8K = REPO_ROOT / "data" / "gsm8k" / "test.jsonl"


_DEFAULTS = defaults("dataset")   # the schema's bounds and defaults of a `datasets:` entry


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    source: str                     # gsm8k | reasoning_gym
    n_test: int
    n_train: int = _DEFAULTS["n_train"]
    seed: int = _DEFAULTS["seed"]
    path: str | None = None         # gsm8k: JSONL with question/answer (default: the vendored test split)
    task: str | None = None         # reasoning_gym: task name, e.g. "products"
    task_config: dict[str, Any] = field(default_factory=dict)
    pool_size: int | None = None    # reasoning_gym: how many questions to generate before sampling
    selection: str = _DEFAULTS["selection"]   # random | shuffle_head, see SELECTIONS

    @classmethod
    def from_config(cls, name: str, cfg: dict[str, Any]) -> "DatasetConfig":
        return cls(name=name, **cfg)


_CALCULATOR_ANNOTATION = re.compile(r"<<[^>]*>>")
_CHAIN = re.compile(r"^\s*(-?\d+)((?:\s*[-+]\s*-?\d+)+)\s*$")
_CHAIN_TERM = re.compile(r"([-+])\s*(-?\d+)")


def stepwise_solution(expression: str) -> str | None:
    """A worked solution of a +/- chain, one operation per line, left to right ("4 - 1 = 3\\n3 - 7 = -4"),
    so chain-of-thought exemplars show the step format tree search expands; None for other expressions."""
    match = _CHAIN.match(expression)
    if not match:
        return None
    value, lines = int(match.group(1)), []
    for op, term in _CHAIN_TERM.findall(match.group(2)):
        new = value + int(term) if op == "+" else value - int(term)
        lines.append(f"{value} {op} {term} = {new}")
        value = new
    return "\n".join(lines)


def _gsm8k_pool(cfg: DatasetConfig) -> Iterator[dict[str, Any]]:
    path = Path(cfg.path) if cfg.path else VENDORED_GSM8K
    if not path.is_absolute() and not path.exists():
        path = REPO_ROOT / path
    for index, row in enumerate(iter_jsonl(path)):
        solution, sep, final = row["answer"].rpartition("####")
        if not sep:
            raise ValueError(f"{path}:{index + 1}: GSM8K answer has no '#### <number>' line")
        yield {
            "id": f"gsm8k-{index:04d}",
            "question": row["question"].strip(),
            "answer": final.strip().replace(",", ""),
            "source": "gsm8k",
            # calculator annotations <<a*b=c>> are training artefacts, not part of the written solution
            "meta": {"index": index, "solution": _CALCULATOR_ANNOTATION.sub("", solution).strip()},
        }


def _reasoning_gym_pool(cfg: DatasetConfig) -> Iterator[dict[str, Any]]:
    import reasoning_gym

    if not cfg.task:
        raise ValueError(f"datasets.{cfg.name}.task: a reasoning_gym dataset needs a task name")
    size = cfg.pool_size or 4 * (cfg.n_test + cfg.n_train)
    try:
        generator = reasoning_gym.create_dataset(cfg.task, seed=cfg.seed, size=size, **cfg.task_config)
    except (TypeError, ValueError, KeyError, AssertionError) as err:
        raise ValueError(f"datasets.{cfg.name}: reasoning_gym task {cfg.task!r} rejected its config: {err}") from err
    for index, item in enumerate(generator):
        meta = {k: v for k, v in item["metadata"].items() if isinstance(v, (str, int, float, bool))}
        if "solution" not in meta and isinstance(meta.get("expression"), str):
            solution = stepwise_solution(meta["expression"])
            if solution:
                meta["solution"] = solution
        yield {
            "id": f"{cfg.task}-s{cfg.seed}-{index:05d}",
            "question": item["question"].strip(),
            "answer": str(item["answer"]).strip(),
            "source": f"reasoning_gym/{cfg.task}",
            "meta": {"index": index, **meta},
        }


LETTERS = "ABCDEFGHIJ"


def format_choices(question: str, options: list[str]) -> str:
    """A question followed by lettered options, one per line ("A) 12"), and what to answer with."""
    lines = [f"{LETTERS[i]}) {o}" for i, o in enumerate(options)]
    return "\n".join([question.strip(), *lines, "Answer with the letter of the correct option."])


def _numeric_distractors(answer: int, rng: random.Random, n: int) -> list[int]:
    """n distinct wrong integers near `answer` (off by a little, or by ten: the slips arithmetic makes),
    never negative when the answer is not."""
    near = [answer + d for d in (-3, -2, -1, 1, 2, 3, -10, 10)]
    near = [x for x in near if x >= 0 or answer < 0]
    return rng.sample(near, n)


def _choice_pool(cfg: DatasetConfig) -> Iterator[dict[str, Any]]:
    """An offline multiple-choice task: each reasoning-gym question with an integer answer, given 4 lettered
    options (the answer and 3 nearby wrong numbers, shuffled with the dataset seed); the answer is the letter."""
    for record in _reasoning_gym_pool(cfg):
        try:
            value = int(record["answer"])
        except ValueError:
            raise ValueError(f"datasets.{cfg.name}: source reasoning_gym_choice needs integer answers; task "
                             f"{cfg.task!r} gave {record['answer']!r} for {record['id']}") from None
        rng = random.Random(f"{cfg.seed}-{record['id']}")
        options = [value, *_numeric_distractors(value, rng, 3)]
        rng.shuffle(options)
        letter = LETTERS[options.index(value)]
        yield {**record, "id": record["id"] + "-mc", "question": format_choices(record["question"], [str(o) for o in options]),
               "answer": letter, "source": record["source"] + "/choice",
               "meta": {**record["meta"], "value": str(value), "solution": f"{value} is option {letter}"}}


GPQA_REPO = "Idavidrein/gpqa"
GPQA_SUBSETS = ("gpqa_diamond", "gpqa_main", "gpqa_extended", "gpqa_experts")


def _gpqa_pool(cfg: DatasetConfig) -> Iterator[dict[str, Any]]:
    """GPQA (gated on the hub: needs an HF_TOKEN whose account accepted its terms). `task` picks the subset
    (default gpqa_diamond); the four options are shuffled per question with the dataset seed, answer = letter."""
    import os

    subset = cfg.task or "gpqa_diamond"
    if subset not in GPQA_SUBSETS:
        raise ValueError(f"datasets.{cfg.name}.task: GPQA subset must be one of {list(GPQA_SUBSETS)}, got {subset!r}")
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise RuntimeError(
            f"datasets.{cfg.name}: {GPQA_REPO} is a gated dataset; set HF_TOKEN to a Hugging Face token whose "
            f"account accepted its terms at https://huggingface.co/datasets/{GPQA_REPO} (or use the offline "
            f"multiple-choice source `reasoning_gym_choice`)")
    from datasets import load_dataset

    rows = load_dataset(GPQA_REPO, subset, split="train", token=token)
    for index, row in enumerate(rows):
        yield gpqa_record(row, index, cfg.seed, subset)


def gpqa_record(row: dict[str, Any], index: int, seed: int, subset: str = "gpqa_diamond") -> dict[str, Any]:
    """One GPQA row as a question record with shuffled lettered options."""
    correct = row["Correct Answer"].strip()
    options = [correct] + [row[f"Incorrect Answer {k}"].strip() for k in (1, 2, 3)]
    random.Random(f"{seed}-{subset}-{index}").shuffle(options)
    letter = LETTERS[options.index(correct)]
    meta = {"index": index, "subset": subset, "solution": (row.get("Explanation") or "").strip()}
    return {"id": f"{subset}-{index:04d}", "question": format_choices(row["Question"], options), "answer": letter,
            "source": f"gpqa/{subset}", "meta": meta}


SOURCES = {"gsm8k": _gsm8k_pool, "reasoning_gym": _reasoning_gym_pool, "reasoning_gym_choice": _choice_pool,
           "gpqa": _gpqa_pool}


# random: a seeded random subset, kept in the source's order;
# shuffle_head: `datasets.Dataset.shuffle(seed=seed)` of the source, its first n_test in that order (then n_train
# more) - seed 000's question set (base.py and rebase.py: load_dataset("gsm8k", "main", split="test")
# .shuffle(seed=42), questions 0..127)
SELECTIONS = ("random", "shuffle_head")


def _selection_order(cfg: DatasetConfig, n_pool: int) -> list[int]:
    """Pool positions in the order the splits take them from."""
    if cfg.selection == "shuffle_head":
        from datasets import Dataset

        return list(Dataset.from_dict({"position": list(range(n_pool))}).shuffle(seed=cfg.seed)["position"])
    order = list(range(n_pool))
    random.Random(cfg.seed).shuffle(order)
    return order


def build_splits(cfg: DatasetConfig) -> dict[str, list[dict[str, Any]]]:
    """Seeded test and train subsets, disjoint by id and by question text.

    `selection: random` keeps each subset in the source's order; `shuffle_head` keeps the shuffled order.
    """
    if cfg.selection not in SELECTIONS:
        raise ValueError(f"datasets.{cfg.name}.selection: unknown selection {cfg.selection!r}; "
                         f"known: {sorted(SELECTIONS)}")
    try:
        pool_fn = SOURCES[cfg.source]
    except KeyError:
        raise ValueError(f"datasets.{cfg.name}.source: unknown source {cfg.source!r}; known: {sorted(SOURCES)}") from None
    seen: set[str] = set()
    pool = []
    for record in pool_fn(cfg):
        if record["question"] not in seen:  # generators repeat easy questions; duplicates would leak shots
            seen.add(record["question"])
            pool.append(record)
    need = cfg.n_test + cfg.n_train
    if len(pool) < need:
        raise ValueError(
            f"datasets.{cfg.name}: only {len(pool)} distinct questions available, "
            f"n_test + n_train = {need}; lower them or raise pool_size"
        )
    order = _selection_order(cfg, len(pool))
    test = [pool[i] for i in order[: cfg.n_test]]
    train = [pool[i] for i in order[cfg.n_test : need]]
    if cfg.selection == "random":
        test, train = (sorted(split, key=lambda r: r["meta"]["index"]) for split in (test, train))
    return {"test": test, "train": train}


def write_splits(cfg: DatasetConfig, test_path: str | Path, train_path: str | Path) -> None:
    splits = build_splits(cfg)
    write_jsonl(test_path, splits["test"])
    write_jsonl(train_path, splits["train"])
