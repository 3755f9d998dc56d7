import re

from infscale.config import code_hash, run_triples, validate_config


validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))

RUNS = run_triples(config)
ENV = "../../envs/infscale.yaml"


def _one_of(names):
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


wildcard_constraints:
    dataset=_one_of(config["datasets"]),
    model=_one_of(config["models"]),
    method=_one_of(config["methods"]),
    shard=r"\d+",


def uses_gpu():
    """Generation-type rules ask for `gpu=1` when the run's device is CUDA (so `--resources gpu=1`
    serialises them while CPU stages run alongside, and Slurm gives them a GPU)."""
    if config["device"] == "cuda":
        return True
    if config["device"] == "auto":
        import torch

        return torch.cuda.is_available()
    return False


GPU = 1 if uses_gpu() else 0


def method_cfg(wildcards):
    cfg = config["methods"][wildcards.method]
    if "scorer" in cfg:  # tree search: its PRM's entry, resolved for this dataset (score.smk)
        cfg = {**cfg, "scorer": resolved_scorer(cfg["scorer"], wildcards.dataset)}
    return cfg


def n_shards(method):
    return config["methods"][method].get("shards", 1)


def shard_files(wildcards, suffix):
    return expand(
        "results/gen/{dataset}/{model}/{method}/shard-{shard}{suffix}",
        dataset=wildcards.dataset,
        model=wildcards.model,
        method=wildcards.method,
        shard=range(n_shards(wildcards.method)),
        suffix=suffix,
    )


def run_option(dataset, model, method, key):
    """Union of a list option (e.g. `scorers`, `labellers`) over the runs that include this triple."""
    names = []
    for run in config["runs"]:
        if dataset in run["datasets"] and model in run["models"] and method in run["methods"]:
            names += [n for n in run.get(key, []) if n not in names]
    return names


# Score files that weight responses in the aggregation, by kind: a run option and the file it names.
# Stages that produce weights (PRM scoring, confidence labelling) register themselves here.
WEIGHT_SOURCES = {}


def weight_files(wildcards):
    files = {}
    for key, (prefix, pattern) in WEIGHT_SOURCES.items():
        for name in run_option(wildcards.dataset, wildcards.model, wildcards.method, key):
            files[f"{prefix}{name}"] = pattern.format(name=name, **wildcards)
    return files


def metrics_files():
    return [f"results/metrics/{d}/{m}/{meth}.json" for d, m, meth in RUNS]


# Stage files (label.smk, ...) append functions returning their report outputs; `rule all` asks for them lazily,
# after every stage file has been included.
EXTRA_OUTPUTS = []


def final_outputs():
    return [
        "results/tables/accuracy.csv",
        "results/tables/accuracy.md",
        "figures/accuracy_vs_n.png",
        "results/tables/efficiency.csv",
        "results/tables/efficiency.md",
        "figures/accuracy_vs_tflops.png",
        "figures/accuracy_vs_seconds.png",
        "figures/efficiency_ranking.png",
    ] + [path for outputs in EXTRA_OUTPUTS for path in outputs()]
