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
