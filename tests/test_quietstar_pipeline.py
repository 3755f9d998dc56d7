"""Quiet-STaR in the pipeline: training resumes exactly, and the tiny config (a random 2-layer Llama) trains a
thinker and runs `quietstar` and `quietstar_rebase` end to end with their thought costs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TEST_CACHE, Workflow

QS_CONFIG = REPO / "config" / "test-quietstar-tiny.yaml"
LOCAL_MODEL = "resources/models-local/tiny-llama"


@pytest.fixture(scope="session")
def tiny_llama_checkpoint(smollm2_checkpoint: Path) -> Path:
    """A random 2-layer Llama (hidden 64) with SmolLM2's tokenizer, saved once per test cache."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = TEST_CACHE / "models-local" / "tiny-llama"
    if not (folder / "config.json").exists():
        tok = AutoTokenizer.from_pretrained(smollm2_checkpoint)
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                          tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        LlamaForCausalLM(cfg).save_pretrained(folder)
        tok.save_pretrained(folder)
    return folder.resolve()


def _thinker(**overrides):
    from infscale.methods.quietstar import ThinkerConfig

    cfg = yaml.safe_load(QS_CONFIG.read_text())["thinkers"]["qs"]
    return ThinkerConfig.from_config("qs", {**cfg, **overrides})


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_weights(tiny_llama_checkpoint, tmp_path):
    import torch

    from infscale.models.loading import load_model
    from infscale.train_quietstar import train

    texts = [f"Q: {a} + {b} =\nA: {a} + {b} = {a + b}\nThe answer is {a + b}." for a, b in [(1, 2), (3, 4), (5, 6)]]
    spec = {"name": "tiny", "source": "local", "path": str(tiny_llama_checkpoint)}

    def run(steps: int, checkpoint: Path):
        lm = load_model(spec, device="cpu", dtype="float32")
        return train(lm, _thinker(steps=steps, checkpoint_every=1), texts, checkpoint, seed=3)

    whole, _, whole_curves = run(2, tmp_path / "a.pt")
    run(1, tmp_path / "b.pt")                       # "killed" after step 1: its checkpoint stays
    resumed, _, resumed_curves = run(2, tmp_path / "b.pt")
    assert [c["step"] for c in resumed_curves] == [1, 2]
    for a, b in zip(whole_curves, resumed_curves):
        assert {k: v for k, v in a.items() if k != "seconds"} == pytest.approx(
            {k: v for k, v in b.items() if k != "seconds"}, nan_ok=True)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_bad_thinker_config_names_the_key():
    """The schema refuses a bad thinker entry, naming its key (ThinkerConfig does not check it again)."""
    from infscale.config import ConfigError, validate_config

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    for entry, message in (({"model": "smollm2-135m", "n_ahead": 8}, r"unknown key thinkers\.qs\.n_ahead"),
                           ({"model": "smollm2-135m", "source": "hub"}, r"thinkers\.qs\.source")):
        config = yaml.safe_load((REPO / "config.yaml").read_text())
        config["thinkers"] = {"qs": entry}
        with pytest.raises(ConfigError, match=message):
            validate_config(config, schema)


@pytest.fixture(scope="module")
def quietstar_run(tmp_path_factory, tiny_llama_checkpoint) -> Workflow:
    root = tmp_path_factory.mktemp("quietstar-run")
    link = root / LOCAL_MODEL
    link.parent.mkdir(parents=True)
    link.symlink_to(tiny_llama_checkpoint, target_is_directory=True)
    workflow = Workflow(root, yaml.safe_load(QS_CONFIG.read_text()))
    workflow.run()
    return workflow


@pytest.mark.slow
def test_training_rule_writes_curves_and_heldout_comparison(quietstar_run):
    folder = quietstar_run.path("results/quietstar/chain/qs")
    rows = list(csv.DictReader((folder / "curves.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert {"base_nll", "mixed_nll", "reward", "policy_loss", "control_nll"} <= set(rows[0])
    assert (folder / "curves.png").stat().st_size > 0 and (folder / "weights.pt").exists()
    assert not (folder / "resume.pt").exists()      # the checkpoint goes once the weights are written
    heldout = json.loads((folder / "heldout.json").read_text())
    assert heldout["n_heldout_texts"] == 4
    for name in ("thinking_on_minus_off", "quietstar_minus_control", "quietstar_minus_original"):
        diff = heldout["differences"][name]
        assert diff["ci_low"] <= diff["mean"] <= diff["ci_high"] and diff["n_texts"] == 4
    # no evaluation question was trained on
    test_questions = [json.loads(line)["question"] for line in quietstar_run.path("results/data/chain/test.jsonl").open()]
    log = quietstar_run.path("logs/train_quietstar/chain/qs.log").read_text()
    assert "step 2/2" in log and all(q not in log for q in test_questions)


@pytest.mark.slow
def test_quietstar_records_carry_their_thoughts(quietstar_run):
    size = 2 + 2          # start + 2 thought tokens + end
    records = [json.loads(line) for line in quietstar_run.path("results/gen/chain/tiny/qs2/samples.jsonl").open()]
    assert len(records) == 2 * 2
    for r in records:
        thoughts = r["meta"]["thoughts"]
        assert r["meta"]["thought_tokens_each"] == size and all(isinstance(t, str) for t in thoughts)
        # every sampled token came from a thought: the prompt's (charged to sample 0) and one per fed token
        assert r["n_thought_tokens"] == (len(thoughts) - (r["sample"] != 0)) * size
        assert len(thoughts) >= r["n_completion_tokens"]
        assert r["flops"]["thought"] > r["flops"]["decode"] > 0     # thoughts dominate the cost


@pytest.mark.slow
def test_quietstar_rebase_counts_the_trees_thoughts(quietstar_run):
    records = [json.loads(line) for line in quietstar_run.path("results/gen/chain/tiny/qs_rebase2/samples.jsonl").open()]
    for question in {r["id"] for r in records}:
        group = [r for r in records if r["id"] == question]
        first = next(r for r in group if r["sample"] == 0)
        assert sum(r["n_thought_tokens"] for r in group) == first["meta"]["tree_thought_tokens"] > 0
        assert first["meta"]["thoughts"] and "tree" in first["meta"]
        assert all(r["flops"]["thought"] > 0 for r in group if r["n_thought_tokens"])
    efficiency = list(csv.DictReader(quietstar_run.path("results/tables/efficiency.csv").open()))
    assert {"sample2", "qs2", "qs_rebase2"} <= {r["method"] for r in efficiency}
