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
    return config["methods"][wildcards.method]


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


def metrics_files():
    return [f"results/metrics/{d}/{m}/{meth}.json" for d, m, meth in RUNS]


def final_outputs():
    return [
        "results/tables/accuracy.csv",
        "results/tables/accuracy.md",
        "figures/accuracy_vs_n.png",
    ]
