"""End-to-end Snakemake runs on the tiny config: real outputs, caching, targeted reruns, resources, resume."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import yaml

from conftest import TINY_CONFIG, copy_workflow
from infscale.config import run_triples
from infscale.io import read_json, read_jsonl

pytestmark = pytest.mark.slow


def test_tiny_run_writes_every_stage(tiny_run):
    cfg = tiny_run.config
    questions = read_jsonl(tiny_run.path("results/data/products/test.jsonl"))
    train = read_jsonl(tiny_run.path("results/data/products/train.jsonl"))
    assert len(questions) == cfg["datasets"]["products"]["n_test"]
    assert not {q["id"] for q in questions} & {q["id"] for q in train}
    assert not {q["question"] for q in questions} & {q["question"] for q in train}

    spec = read_json(tiny_run.path("resources/models/smollm2-135m/model.json"))
    assert spec["config"]["model_type"] == "llama" and spec["n_params"] == 134_515_008

    for method, m in (("sample4", 4), ("greedy", 1)):
        gen = read_jsonl(tiny_run.path(f"results/gen/products/smollm2-135m/{method}/samples.jsonl"))
        assert len(gen) == len(questions) * m
        assert sorted({(r["id"], r["sample"]) for r in gen}) == sorted((q["id"], s) for q in questions for s in range(m))
        for r in gen:
            assert r["method"] == method
            assert 1 <= r["n_completion_tokens"] <= cfg["methods"][method]["max_new_tokens"]
            assert r["finish_reason"] in {"stop", "length"}
            assert "\n" not in r["completion"]  # stop string honoured and cut
            assert r["flops"]["decode"] > 0 and r["seconds"] >= 0
            # the prompt is encoded once per question; its KV cache serves the other samples
            assert (0 < r["n_prefill_tokens"] <= r["n_prompt_tokens"]) if r["sample"] == 0 else r["n_prefill_tokens"] == 0
            assert (r["flops"]["prefill"] > 0) == (r["sample"] == 0)
        # the few-shot prefix the prompts share is encoded once per batch, by the batch's first prompt
        firsts = [r for r in gen if r["sample"] == 0]
        assert any(r["n_prefill_tokens"] == r["n_prompt_tokens"] for r in firsts)
        assert any(r["n_prefill_tokens"] < r["n_prompt_tokens"] for r in firsts)
        timing = read_json(tiny_run.path(f"results/gen/products/smollm2-135m/{method}/timing.json"))
        assert timing["generate_seconds"] > 0 and timing["load_seconds"] > 0

    graded = read_jsonl(tiny_run.path("results/graded/products/smollm2-135m/sample4/samples.jsonl"))
    by_id = {q["id"]: q["answer"] for q in questions}
    for r in graded:
        assert r["reference"] == by_id[r["id"]]
        assert r["correct"] == (r["extracted"] is not None and float(r["extracted"]) == float(r["reference"]))

    metrics = read_json(tiny_run.path("results/metrics/products/smollm2-135m/sample4.json"))
    rows = {(row["rule"], row["n"]): row for row in metrics["rows"] if not row["weight"]}
    assert {n for _, n in rows} == {1, 2, 4}
    mean_acc = 100 * sum(r["correct"] for r in graded) / len(graded)
    assert rows[("mean", 1)]["accuracy"] == pytest.approx(mean_acc)
    assert rows[("pass", 4)]["accuracy"] == pytest.approx(
        100 * sum(any(r["correct"] for r in graded if r["id"] == q) for q in by_id) / len(by_id))
    for row in rows.values():
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
    assert rows[("majority", 4)]["tflops"] > rows[("majority", 1)]["tflops"]

    table = pd.read_csv(tiny_run.path("results/tables/accuracy.csv"), keep_default_na=False)
    assert set(table["method"]) == {"sample4", "greedy"}
    assert (tiny_run.path("results/tables/accuracy.md").read_text()).startswith("# Accuracy")
    assert tiny_run.path("figures/accuracy_vs_n.png").stat().st_size > 10_000
    assert tiny_run.path("figures/accuracy_vs_n.pdf").exists()
    assert "finished in" in tiny_run.path("logs/generate/products/smollm2-135m/sample4/shard-0.log").read_text()


def test_second_run_does_nothing(tiny_run):
    assert tiny_run.dry_run_jobs() == {}


def test_changing_one_temperature_reruns_only_that_method(tiny_run, tmp_path):
    workflow = copy_workflow(tiny_run, tmp_path / "copy")
    config = copy.deepcopy(workflow.config)
    config["methods"]["sample4"]["temperature"] = 0.7
    workflow.write_config(config)
    jobs = workflow.dry_run_jobs()
    shards = config["methods"]["sample4"]["shards"]
    assert jobs.pop("generate") == shards           # sample4's shards; greedy's generation is untouched
    assert jobs.pop("merge_shards") == 1
    assert jobs.pop("grade") == 1
    assert jobs.pop("aggregate") == 1
    # nothing upstream or beside it reruns: only tables and figures that read every method's metrics
    upstream = {"prepare_model", "sample_dataset", "train_prm", "score_prm", "label_confidence"}
    assert not upstream & set(jobs)
    report_rules = {"all", "accuracy_table", "efficiency_table", "plots", "label_quality", "prm_quality", "provenance",
                    "headline_tables", "headline_figures", "front_page"}
    assert all(rule in report_rules or rule.startswith("plot_") for rule in jobs), jobs


def _job_resources(workflow, rule: str) -> list[str]:
    """The `resources:` line of every job of `rule` in a dry run with one GPU available."""
    out = workflow.run("--dry-run", "--resources", "gpu=1").stdout
    blocks = out.split("\nrule ")[1:]
    return [line.strip() for block in blocks if block.startswith(f"{rule}:")
            for line in block.splitlines() if line.strip().startswith("resources:")]


def test_gpu_resource_follows_the_device(tiny_workflow):
    config = copy.deepcopy(tiny_workflow.config)
    config["device"] = "cuda"
    tiny_workflow.write_config(config)
    generate = _job_resources(tiny_workflow, "generate")
    assert len(generate) == 3 and all("gpu=1" in line for line in generate)   # serialised by --resources gpu=1
    assert all("gpu=1" not in line for line in _job_resources(tiny_workflow, "grade"))
    config["device"] = "cpu"
    tiny_workflow.write_config(config)
    assert all("gpu=0" in line for line in _job_resources(tiny_workflow, "generate"))


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["methods"]["sample4"].update(temprature=0.5), "methods.sample4.temprature"),
    (lambda c: c["methods"]["sample4"].update(n_samples="four"), "methods.sample4.n_samples"),
    (lambda c: c.pop("models"), "missing key models"),
    (lambda c: c["runs"][0]["models"].append("gpt-99"), "runs.0.models: 'gpt-99' is not defined"),
    (lambda c: c.update(colour="blue"), "unknown key colour"),
    (lambda c: c["datasets"]["products"].update(source="mmlu"), "datasets.products.source"),
    (lambda c: c.setdefault("report", {}).update(headline={"nope": "majority"}), "report.headline.nope: no such method"),
    (lambda c: c.setdefault("report", {}).update(headline={"sample4": "majority@x"}),
     "report.headline.sample4: 'majority@x' is not"),
])
def test_bad_config_names_the_key(tiny_workflow, mutate, message):
    config = copy.deepcopy(tiny_workflow.config)
    mutate(config)
    tiny_workflow.write_config(config)
    proc = tiny_workflow.run("--dry-run", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_shipped_configs_pass_validation():
    from pathlib import Path

    from infscale.config import validate_config

    schema = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
    for path in [TINY_CONFIG.parents[1] / "config.yaml", *sorted(TINY_CONFIG.parent.glob("*.yaml"))]:
        validate_config(yaml.safe_load(path.read_text()), schema)


def test_killed_generation_resumes_without_redoing_work(tiny_run, tmp_path):
    from infscale.generate import run_generation

    run = tiny_run.path
    method_cfg = tiny_run.config["methods"]["sample4"]
    finished = read_jsonl(run("results/gen/products/smollm2-135m/sample4/shard-0.jsonl"))
    first_id = finished[0]["id"]
    output = tmp_path / "shard-0.jsonl"
    # a killed job: one question's records flushed, then half a line
    kept = [r for r in finished if r["id"] == first_id]
    partial = output.with_name(output.name + ".partial")
    partial.write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"id": "trunc')
    run_generation(run("results/data/products/test.jsonl"), run("results/data/products/train.jsonl"),
                   run("resources/models/smollm2-135m/model.json"), "sample4", method_cfg, output,
                   tmp_path / "timing.json", shard=0, n_shards=method_cfg["shards"], seed=tiny_run.config["seed"],
                   device="cpu", threads=1)
    resumed = read_jsonl(output)
    assert sorted(map(str, read_jsonl(partial)[1:])) == sorted(map(str, resumed))   # kept, complete, under its header
    assert [r for r in resumed if r["id"] == first_id] == kept       # finished work kept verbatim
    assert sorted((r["id"], r["sample"]) for r in resumed) == sorted((r["id"], r["sample"]) for r in finished)
    assert read_json(tmp_path / "timing.json")["n_questions"] == len({r["id"] for r in finished}) - 1


@pytest.mark.parametrize("study", sorted(p.name for p in TINY_CONFIG.parent.glob("*.yaml") if not p.name.startswith("test-")))
def test_study_configs_dry_run_without_downloads(study, tmp_path, monkeypatch):
    from conftest import Workflow

    # planning a study's hub models needs no download; HF_HUB_OFFLINE=1 would declare them unloadable (an error)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    config = yaml.safe_load((TINY_CONFIG.parent / study).read_text())
    workflow = Workflow(tmp_path, config)
    jobs = workflow.dry_run_jobs("--resources", "gpu=1")
    n_generation_jobs = sum(config["methods"][m].get("shards", 1) for _, _, m in run_triples(config))
    assert jobs["generate"] == n_generation_jobs
    # the runs' models and their confidence labellers
    assert jobs["prepare_model"] == len({m for run in config["runs"] for m in run["models"] + run.get("labellers", [])})
    assert not (tmp_path / "resources").exists()        # nothing was downloaded or prepared
