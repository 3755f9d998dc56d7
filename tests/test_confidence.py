"""Confidence labelling (seed 001): labels from a real labeller's digit distribution, their quality metrics,
the label -> weights -> aggregation glue, the multiple-choice sources, and a tiny labelled workflow end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, Workflow
from infscale.aggregate import aggregate
from infscale.compute import ModelDims, sequence_flops
from infscale.data.sample_dataset import DatasetConfig, build_splits, gpqa_record
from infscale.grading import grade_record
from infscale.io import read_json, read_jsonl, write_json, write_jsonl
from infscale.reports.label_quality import calibration_bins, expected_calibration_error, label_quality
from infscale.scoring.label_confidence import (LabellingConfig, build_label_prompt, confidence_from_probs,
                                         digit_token_ids, label_records, run_labelling, split_label_prompt)

LABEL_CONFIG = REPO / "config" / "test-label.yaml"


# ------------------------------------------------------------------------------------------------ labels


def test_confidence_from_probs_modes_and_squash():
    probs = [0.0] * 10
    probs[7], probs[2] = 0.6, 0.4
    assert confidence_from_probs(probs, "argmax") == pytest.approx(0.7)
    assert confidence_from_probs(probs, "expected") == pytest.approx((0.6 * 7 + 0.4 * 2) / 10)
    # the study's cut tail: w' = 0.1 w + 0.45 is epsilon 0.05
    assert confidence_from_probs(probs, "argmax", epsilon=0.05) == pytest.approx(0.1 * 0.7 + 0.45)
    assert confidence_from_probs([0.1] * 10, "expected") == pytest.approx(0.45)
    with pytest.raises(ValueError, match="10 values"):
        confidence_from_probs([0.5, 0.5])


def test_labelling_config_names_bad_keys():
    from infscale.config import ConfigError, validate_config

    # the keys' bounds are the schema's, checked once at start; the template's fields are the dataclass's
    for key, value in (("mode", "vote"), ("epsilon", 0.7), ("batch_size", 0)):
        config = yaml.safe_load((REPO / "config.yaml").read_text())
        config["labelling"] = {key: value}
        with pytest.raises(ConfigError, match=f"labelling.{key}"):
            validate_config(config, REPO / "workflow" / "schemas" / "config.schema.yaml")
    assert LabellingConfig().mode == "expected" and LabellingConfig().batch_size == 16   # the schema's defaults
    with pytest.raises(ValueError, match=r"\{response\}"):
        LabellingConfig(template="{question} only")
    with pytest.raises(ValueError, match="unknown key"):
        LabellingConfig.from_config({"temperature": 1.0})


@pytest.fixture(scope="module")
def smollm2(prepared_smollm2):
    import torch

    from infscale.models.loading import load_model

    torch.set_num_threads(1)
    spec = read_json(prepared_smollm2 / "model.json")
    return load_model(spec, device="cpu"), ModelDims.from_config(spec["config"])


@pytest.mark.slow
def test_prompt_works_for_chat_and_base_models(smollm2):
    lm, _ = smollm2
    chat = build_label_prompt("What is 2 * 3?", " 6", LabellingConfig(), lm.tokenizer)
    base = build_label_prompt("What is 2 * 3?", " 6", LabellingConfig(chat_template="never"), lm.tokenizer)
    assert "<|im_start|>assistant" in chat and chat.endswith("Confidence: ")
    assert base.startswith("Rate your confidence") and base.endswith("Question: What is 2 * 3?\nProposed answer: 6"
                                                                      "\nConfidence: ")
    # the response starts the part that is not shared between a question's responses
    prefix, suffix = split_label_prompt("What is 2 * 3?", " 6", LabellingConfig(), lm.tokenizer)
    assert prefix + suffix == chat and suffix.startswith("6<|im_end|>")
    # the digit after either prompt is one token, and the ten digits are ten different tokens
    for prompt in (chat, base):
        assert len(set(digit_token_ids(lm.tokenizer, prompt))) == 10


class _MergingTokenizer:
    """Characters as tokens, except that a space and a digit merge into one token (as some BPEs do)."""

    def __call__(self, text, add_special_tokens=False):
        tokens, i = [], 0
        while i < len(text):
            step = 2 if text[i] == " " and text[i + 1:i + 2].isdigit() else 1
            tokens.append(text[i:i + step])
            i += step
        return {"input_ids": [hash(t) % 100_000 for t in tokens]}

    def convert_ids_to_tokens(self, ids):
        return [str(i) for i in ids]


def test_digit_tokens_must_follow_the_prompt_as_one_token():
    assert len(set(digit_token_ids(_MergingTokenizer(), "Confidence:"))) == 10
    with pytest.raises(ValueError, match="answer_prefix"):
        digit_token_ids(_MergingTokenizer(), "Confidence: ")  # the space would merge into the digit


@pytest.mark.slow
def test_labels_from_a_real_forward_pass(smollm2):
    lm, dims = smollm2
    questions = {"q1": "What is 7 * 8?", "q2": "What is 3 * 4?"}
    responses = [{"id": "q1", "sample": 0, "completion": " 56"}, {"id": "q1", "sample": 1, "completion": " 54"},
                 {"id": "q1", "sample": 2, "completion": " 56"}, {"id": "q2", "sample": 0, "completion": " 12"}]
    cfg = LabellingConfig(chat_template="never", batch_size=8)
    records = [r for batch in label_records(lm, dims, questions, responses, cfg, "conf-x") for r in batch]
    by_key = {(r["id"], r["sample"]): r for r in records}
    assert set(by_key) == {(r["id"], r["sample"]) for r in responses}
    for r in records:
        assert sum(r["digit_probs"]) == pytest.approx(1.0, abs=1e-4)
        assert r["confidence"] == pytest.approx(confidence_from_probs(r["digit_probs"], "expected"), abs=1e-5)
        assert 0.5 < r["digit_mass"] <= 1.0  # the labeller does answer with a digit
    first, duplicate = by_key[("q1", 0)], by_key[("q1", 2)]
    assert duplicate["confidence"] == first["confidence"] and duplicate["flops"] == duplicate["seconds"] == 0
    prompt = build_label_prompt(questions["q1"], " 56", cfg, lm.tokenizer)
    n_tokens = len(lm.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert first["n_tokens"] == n_tokens
    assert first["flops"] == sequence_flops(dims, 0, n_tokens, n_logits=1)
    # the shared-prefix pass (padding between prefix and suffix) equals encoding each prompt alone
    import torch

    for r in records:
        prefix, suffix = split_label_prompt(questions[r["id"]], next(x["completion"] for x in responses
                                            if (x["id"], x["sample"]) == (r["id"], r["sample"])), cfg, lm.tokenizer)
        ids = [lm.tokenizer(t, add_special_tokens=False)["input_ids"] for t in (prefix, suffix)]
        with torch.inference_mode():
            logits = lm.model(input_ids=torch.tensor([ids[0] + ids[1]])).logits[0, -1]
        digits = torch.softmax(logits.float(), -1)[digit_token_ids(lm.tokenizer, prefix + suffix)]
        assert r["digit_probs"] == pytest.approx((digits / digits.sum()).tolist(), abs=1e-4)
    # left padding does not change a label: one at a time gives the same digits as the padded batch
    single = [r for batch in label_records(lm, dims, questions, responses, LabellingConfig(chat_template="never",
                                                                                           batch_size=1), "conf-x")
              for r in batch]
    for a, b in zip(single, records):
        assert a["digit_probs"] == pytest.approx(b["digit_probs"], abs=1e-4)
    # argmax mode maps the most likely digit i to i/10
    argmax = next(label_records(lm, dims, questions, responses[:1], LabellingConfig(mode="argmax",
                                                                                    chat_template="never"), "c"))
    assert argmax[0]["confidence"] == max(range(10), key=lambda i: first["digit_probs"][i]) / 10


@pytest.mark.slow
def test_run_labelling_resumes_from_partial(tmp_path, prepared_smollm2):
    questions = [{"id": "q1", "question": "What is 2 * 4?", "answer": "8"}]
    samples = [{"id": "q1", "sample": s, "completion": c} for s, c in enumerate([" 8", " 6", " 9"])]
    write_jsonl(tmp_path / "test.jsonl", questions)
    write_jsonl(tmp_path / "samples.jsonl", samples)
    output = tmp_path / "conf-smollm2-135m.jsonl"
    done = {"id": "q1", "sample": 1, "scorer": "conf-smollm2-135m", "confidence": 0.123, "digit_probs": [0.1] * 10,
            "flops": 1.0, "seconds": 0.5}
    write_jsonl(output.with_name(output.name + ".partial"), [done])
    records = run_labelling(tmp_path / "samples.jsonl", tmp_path / "test.jsonl", prepared_smollm2 / "model.json",
                            output, {"chat_template": "never"}, device="cpu", threads=1)
    assert [(r["id"], r["sample"]) for r in records] == [("q1", 0), ("q1", 1), ("q1", 2)]
    assert records[1]["confidence"] == 0.123          # kept, not relabelled
    assert read_jsonl(output) == records


# ----------------------------------------------------------------------------------------------- quality


def test_ece_and_bins_match_hand_computed():
    conf = [0.05, 0.15, 0.12, 0.95, 1.0]
    correct = [False, True, False, True, True]
    bins = calibration_bins(conf, correct, n_bins=10)
    assert bins["count"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]   # 1.0 falls in the last (closed) bin
    assert bins.loc[1, "mean_confidence"] == pytest.approx(0.135) and bins.loc[1, "accuracy"] == 0.5
    # ECE = 1/5 |0 - 0.05| + 2/5 |0.5 - 0.135| + 2/5 |1 - 0.975|
    expected = 0.2 * 0.05 + 0.4 * 0.365 + 0.4 * 0.025
    assert expected_calibration_error(conf, correct, 10) == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration_bins([1.2], [True])


# ----------------------------------------------------------------------------------- labels -> aggregation


def _fake_run(root: Path) -> tuple[Path, Path, dict[str, Path]]:
    """2 questions x 4 responses; labeller a ranks correct answers first, labeller b the reverse."""
    graded, labels_a, labels_b = [], [], []
    answers = {"q1": ["5", "5", "7", "8"], "q2": ["3", "4", "4", "9"]}
    truth = {"q1": "5", "q2": "3"}
    for qid, group in answers.items():
        for s, answer in enumerate(group):
            ok = answer == truth[qid]
            graded.append({"id": qid, "sample": s, "extracted": answer, "correct": ok, "n_prompt_tokens": 10,
                           "n_prefill_tokens": 10 if s == 0 else 0, "n_completion_tokens": 2, "n_thought_tokens": 0,
                           "flops": {"prefill": 100.0 if s == 0 else 0.0, "decode": 10.0, "thought": 0.0,
                                     "scorer": 0.0}, "flops_seed000": 20.0})
            labels_a.append({"id": qid, "sample": s, "confidence": 0.9 if ok else 0.2, "flops": 1000.0, "seconds": 1.0})
            labels_b.append({"id": qid, "sample": s, "confidence": 0.1 if ok else 0.8, "flops": 3000.0, "seconds": 2.0})
    write_jsonl(root / "graded.jsonl", graded)
    write_jsonl(root / "a.jsonl", labels_a)
    write_jsonl(root / "b.jsonl", labels_b)
    write_json(root / "timing.json", {"load_seconds": 1.0, "generate_seconds": 8.0, "device": "cpu"})
    return root / "graded.jsonl", root / "timing.json", {"conf-a": root / "a.jsonl", "conf-b": root / "b.jsonl"}


def test_labels_become_weighted_rows_with_their_own_cost(tmp_path):
    graded, timing, weights = _fake_run(tmp_path)
    metrics = aggregate(graded, timing, tmp_path / "m.json", dataset="d", model="m", method="s", n_params=10,
                        weights=weights, n_boot=100)
    rows = pd.DataFrame(metrics["rows"])
    for weight in ("conf-a", "conf-b"):
        for rule in ("best_of_n", "weighted_majority"):
            assert sorted(rows[(rows.weight == weight) & (rows.rule == rule)]["n"]) == [1, 2, 4]
    at = {(r.rule, r.weight, r.n): r for r in rows.itertuples()}
    # a good labeller picks the right answer from the full pool, an anti-correlated one never does
    assert at[("best_of_n", "conf-a", 4)].accuracy == 100.0
    assert at[("best_of_n", "conf-b", 4)].accuracy == 0.0
    # cost at N = 4 of M = 4: prefill 200 + decode 80, plus only the row's own labeller
    assert at[("majority", "", 4)].tflops * 1e12 == pytest.approx(280.0)
    assert at[("best_of_n", "conf-a", 4)].tflops * 1e12 == pytest.approx(280.0 + 8 * 1000.0)
    assert at[("best_of_n", "conf-b", 2)].tflops * 1e12 == pytest.approx(200.0 + (80.0 + 8 * 3000.0) / 2)
    assert at[("majority", "", 2)].seconds == pytest.approx(8.0 / 2)
    assert at[("weighted_majority", "conf-a", 2)].seconds == pytest.approx((8.0 + 8 * 1.0) / 2)
    # the run's totals still hold every labeller
    assert metrics["flops"]["scorer"] == pytest.approx(8 * 4000.0)


def test_label_quality_table_self_and_proxy(tmp_path):
    graded, _, weights = _fake_run(tmp_path)
    table, bins = label_quality([("d", "m", "s", "m"), ("d", "m", "s", "b")], [graded, graded],
                                [weights["conf-a"], weights["conf-b"]], n_bins=5)
    assert table["mode"].tolist() == ["self", "proxy"]
    assert table["auroc"].tolist() == [1.0, 0.0]
    assert table["accuracy"].tolist() == [37.5, 37.5]   # 3 of 8 responses are correct
    assert table.loc[0, "label_tflops"] == pytest.approx(8e3 / 1e12)
    assert len(bins) == 10 and bins["count"].sum() == 16


# ------------------------------------------------------------------------------------------ multiple choice


def test_offline_multiple_choice_task_is_seeded_and_gradable():
    cfg = DatasetConfig("mc", "reasoning_gym_choice", n_test=6, n_train=3, task="products",
                        task_config={"min_digits": 1, "max_digits": 1}, seed=3)
    splits = build_splits(cfg)
    assert splits == build_splits(cfg)  # seeded
    for q in splits["test"] + splits["train"]:
        options = [line.split(") ", 1)[1] for line in q["question"].splitlines() if line[:3] in ("A) ", "B) ", "C) ", "D) ")]
        assert len(options) == 4 and len(set(options)) == 4
        assert options["ABCD".index(q["answer"])] == q["meta"]["value"]
    q = splits["test"][0]
    assert grade_record({"completion": f" {q['answer']}", "answer": q["answer"]})["correct"]
    wrong = next(letter for letter in "ABCD" if letter != q["answer"])
    graded = grade_record({"completion": f" {wrong}\nQ: next", "answer": q["answer"]})
    assert graded["extracted"] == wrong and not graded["correct"]


def test_gpqa_needs_a_token(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match="HF_TOKEN"):
        build_splits(DatasetConfig("gpqa", "gpqa", n_test=4))
    with pytest.raises(ValueError, match="subset"):
        build_splits(DatasetConfig("gpqa", "gpqa", n_test=4, task="gpqa_tiny"))


def test_gpqa_record_shuffles_options_with_the_seed():
    row = {"Question": "Which?", "Correct Answer": "right", "Incorrect Answer 1": "w1", "Incorrect Answer 2": "w2",
           "Incorrect Answer 3": "w3", "Explanation": "because"}
    letters = {gpqa_record(row, i, seed=1)["answer"] for i in range(40)}
    assert letters == set("ABCD")  # the correct option moves around
    record = gpqa_record(row, 5, seed=1)
    assert record == gpqa_record(row, 5, seed=1)
    assert f"{record['answer']}) right" in record["question"]


# ------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_labelled_workflow_end_to_end(tmp_path, prepared_smollm2, prepared_gemma3):
    config = yaml.safe_load(LABEL_CONFIG.read_text())
    config["runs"][0]["labellers"] = ["smollm2-135m"]   # self-labelled first
    workflow = Workflow(tmp_path, config, models={"smollm2-135m": prepared_smollm2, "gemma3-270m": prepared_gemma3})
    workflow.run()
    self_labels = read_jsonl(workflow.path("results/scores/products/smollm2-135m/sample4/conf-smollm2-135m.jsonl"))
    assert len(self_labels) == 4 * 4 and all(len(r["digit_probs"]) == 10 for r in self_labels)

    # adding a proxy labeller reruns labelling and what follows it, never sampling or grading
    config["runs"][0]["labellers"] = ["smollm2-135m", "gemma3-270m"]
    workflow.write_config(config)
    jobs = workflow.dry_run_jobs()
    assert jobs.get("label_confidence") == 1 and jobs.get("aggregate") == 1
    assert not {"generate", "merge_shards", "grade", "sample_dataset"} & set(jobs)
    workflow.run()

    metrics = read_json(workflow.path("results/metrics/products/smollm2-135m/sample4.json"))
    weighted = {(r["rule"], r["weight"], r["n"]) for r in metrics["rows"] if r["weight"]}
    for labeller in ("conf-smollm2-135m", "conf-gemma3-270m"):
        assert {(rule, labeller, n) for rule in ("best_of_n", "weighted_majority") for n in (1, 2, 4)} <= weighted
    quality = pd.read_csv(workflow.path("results/tables/label_quality.csv"))
    assert quality["mode"].tolist() == ["self", "proxy"] and quality["labeller"].tolist() == ["smollm2-135m",
                                                                                                "gemma3-270m"]
    assert quality["auroc"].between(0, 1).all() or quality["auroc"].isna().any()
    for figure in ("figures/reliability.png", "figures/confidence_rules_vs_n.png", "figures/confidence_cost.png"):
        assert workflow.path(figure).stat().st_size > 10_000
    gemma_labels = read_jsonl(workflow.path("results/scores/products/smollm2-135m/sample4/conf-gemma3-270m.jsonl"))
    assert sum(r["flops"] for r in gemma_labels) > 0 and json.dumps(gemma_labels[0])


def test_label_config_validates_and_bad_labelling_keys_are_named():
    from infscale.config import ConfigError, validate_config

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    config = yaml.safe_load(LABEL_CONFIG.read_text())
    validate_config(config, schema)
    config["labelling"]["mode"] = "vote"
    with pytest.raises(ConfigError, match="labelling.mode"):
        validate_config(config, schema)
