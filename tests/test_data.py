import pytest

from infscale.data import DatasetConfig, build_splits


def test_gsm8k_splits_are_seeded_disjoint_and_canonical():
    cfg = DatasetConfig("gsm8k", "gsm8k", n_test=128, n_train=8, seed=42)
    a, b = build_splits(cfg), build_splits(cfg)
    assert a == b
    assert len(a["test"]) == 128 and len(a["train"]) == 8
    assert not {q["id"] for q in a["test"]} & {q["id"] for q in a["train"]}
    for q in a["test"]:
        assert q["id"] == f"gsm8k-{q['meta']['index']:04d}"
        assert "<<" not in q["meta"]["solution"] and "####" not in q["meta"]["solution"]
        float(q["answer"])  # canonical: a bare number, thousands separators removed
    assert build_splits(DatasetConfig("gsm8k", "gsm8k", n_test=128, seed=1))["test"] != a["test"]


def test_reasoning_gym_splits_drop_duplicate_questions():
    cfg = DatasetConfig("p", "reasoning_gym", n_test=30, n_train=8, task="products",
                        task_config={"min_digits": 1, "max_digits": 1})
    splits = build_splits(cfg)
    texts = [q["question"] for q in splits["test"] + splits["train"]]
    assert len(texts) == len(set(texts)) == 38
    assert all(q["id"].startswith("products-s42-") for q in splits["test"])


def test_too_few_questions_is_a_clear_error():
    cfg = DatasetConfig("p", "reasoning_gym", n_test=500, n_train=8, task="products",
                        task_config={"min_digits": 1, "max_digits": 1})
    with pytest.raises(ValueError, match=r"datasets.p: only \d+ distinct questions"):
        build_splits(cfg)


def test_unknown_source_and_bad_task_config_name_the_dataset():
    with pytest.raises(ValueError, match="datasets.x.source"):
        build_splits(DatasetConfig("x", "nope", n_test=1))
    with pytest.raises(ValueError, match="datasets.y"):
        build_splits(DatasetConfig("y", "reasoning_gym", n_test=1, task="products", task_config={"min_digits": 0}))


# seed 000's question order: the "True Answer" of questions 0..56 in its Results/metrics_baseline.txt
# (MarwanWalid2/Reasoning-vs-InfernceScaling), which evaluated load_dataset("gsm8k", "main", split="test")
# .shuffle(seed=42)[0:128]
SEED000_TRUE_ANSWERS = [
    109, 89, 13, 5, 25, 452, 43, 34, 120, 11, 34, 12, 15, 24, 105, 120, 17, 36, 12, 45, 45, 8, 36, 1, 18, 33,
    1248, 25, 1, 32, 2, 30, 4, 54, 250, 324, 129200, 4400, 70, 276000, 108, 160, 90, 20, 296, 4800, 30, 8, 1920,
    6, 13, 420, 10, 12, 50, 92, 623,
]


def test_shuffle_head_selects_seed000_questions_in_its_order():
    cfg = DatasetConfig("gsm8k", "gsm8k", n_test=128, n_train=8, seed=42, selection="shuffle_head")
    splits = build_splits(cfg)
    test = splits["test"]
    assert len(test) == 128 and len({q["id"] for q in test}) == 128
    assert [int(q["answer"]) for q in test[: len(SEED000_TRUE_ANSWERS)]] == SEED000_TRUE_ANSWERS
    assert test[0]["question"].startswith("Darrell and Allen's ages are in the ratio of 7:11")  # width3.json q0
    # datasets.Dataset.shuffle(seed=42) of the 1319 test rows, not a sorted subset
    assert [q["meta"]["index"] for q in test[:5]] == [30, 754, 429, 1010, 1284]
    assert not {q["id"] for q in test} & {q["id"] for q in splits["train"]}
    assert build_splits(cfg) == splits
    # the default selection draws another subset and keeps the source's order
    default = build_splits(DatasetConfig("gsm8k", "gsm8k", n_test=128, n_train=8, seed=42))["test"]
    assert default != test and [q["meta"]["index"] for q in default] == sorted(q["meta"]["index"] for q in default)


def test_unknown_selection_names_the_dataset():
    with pytest.raises(ValueError, match="datasets.g.selection: unknown selection 'head'"):
        build_splits(DatasetConfig("g", "gsm8k", n_test=4, selection="head"))
