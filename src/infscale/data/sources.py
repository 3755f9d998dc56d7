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

REPO_ROOT = Path(__file__).resolve().parents[3]
VENDORED_GSM8K = REPO_ROOT / "data" / "gsm8k" / "test.jsonl"


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    source: str                     # gsm8k | reasoning_gym
    n_test: int
    n_train: int = 8
    seed: int = 42
    path: str | None = None         # gsm8k: JSONL with question/answer (default: the vendored test split)
    task: str | None = None         # reasoning_gym: task name, e.g. "products"
    task_config: dict[str, Any] = field(default_factory=dict)
    pool_size: int | None = None    # reasoning_gym: how many questions to generate before sampling

    @classmethod
    def from_config(cls, name: str, cfg: dict[str, Any]) -> "DatasetConfig":
        return cls(name=name, **cfg)


_CALCULATOR_ANNOTATION = re.compile(r"<<[^>]*>>")


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
        yield {
            "id": f"{cfg.task}-s{cfg.seed}-{index:05d}",
            "question": item["question"].strip(),
            "answer": str(item["answer"]).strip(),
            "source": f"reasoning_gym/{cfg.task}",
            "meta": {"index": index, **meta},
        }


SOURCES = {"gsm8k": _gsm8k_pool, "reasoning_gym": _reasoning_gym_pool}


def build_splits(cfg: DatasetConfig) -> dict[str, list[dict[str, Any]]]:
    """Seeded test and train subsets, disjoint by id and by question text."""
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
    order = list(range(len(pool)))
    random.Random(cfg.seed).shuffle(order)
    test = sorted((pool[i] for i in order[: cfg.n_test]), key=lambda r: r["meta"]["index"])
    train = sorted((pool[i] for i in order[cfg.n_test : need]), key=lambda r: r["meta"]["index"])
    return {"test": test, "train": train}


def write_splits(cfg: DatasetConfig, test_path: str | Path, train_path: str | Path) -> None:
    splits = build_splits(cfg)
    write_jsonl(test_path, splits["test"])
    write_jsonl(train_path, splits["train"])
