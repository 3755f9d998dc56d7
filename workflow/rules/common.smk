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
    scorer=_one_of(config.get("scorers", {})) or "(?!)",
    labeller=_one_of(config["models"]),


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
WEIGHT_SOURCES = {
    "scorers": ("prm-", "results/scores/{dataset}/{model}/{method}/prm-{name}.jsonl"),  # PRM step scores
    "labellers": ("conf-", "results/scores/{dataset}/{model}/{method}/conf-{name}.jsonl"),  # confidence labels
}


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
    ] + prm_quality_outputs() + labelling_outputs()


# --- PRM scoring and tree search (score.smk) ---


def resolved_scorer(name, dataset):
    """A `scorers:` entry plus what jobs need to load it for `dataset`: the trained head and model spec."""
    if name not in config.get("scorers", {}):
        raise ValueError(f"scorer {name!r} is not defined under `scorers:` (known: {sorted(config.get('scorers', {}))})")
    cfg = {**config["scorers"][name], "name": name}
    if cfg["kind"] == "value_head":
        cfg["path"] = f"results/prm/{dataset}/{name}/head.pt"
        cfg["model_spec"] = f"resources/models/{cfg['model']}/model.json"
    return cfg


def scorer_inputs(name, dataset):
    cfg = resolved_scorer(name, dataset)
    return [cfg["path"], cfg["model_spec"]] if cfg["kind"] == "value_head" else []


def search_scorer_inputs(wildcards):
    """The PRM files a tree-search method's generate job reads (none for sampling)."""
    name = config["methods"][wildcards.method].get("scorer")
    return scorer_inputs(name, wildcards.dataset) if name else []


def value_head_pairs():
    """(dataset, scorer) of every value-head PRM that some run uses, as a weight or inside a search."""
    pairs = set()
    for run in config["runs"]:
        for dataset in run["datasets"]:
            names = set(run.get("scorers", []))
            names |= {config["methods"][m]["scorer"] for m in run["methods"] if "scorer" in config["methods"][m]}
            pairs |= {(dataset, n) for n in names if config["scorers"][n]["kind"] == "value_head"}
    return sorted(pairs)


def prm_quality_outputs():
    return ["results/tables/prm_quality.csv", "results/tables/prm_quality.md"] if value_head_pairs() else []




# --- confidence labelling (label.smk) ---




def labelled_runs():
    """(dataset, model, method, labeller) for every label file the config asks for."""
    return [(d, m, meth, lab) for d, m, meth in RUNS for lab in run_option(d, m, meth, "labellers")]


def label_quality_inputs(wildcards=None):
    return {
        "graded": [f"results/graded/{d}/{m}/{meth}/samples.jsonl" for d, m, meth, _ in labelled_runs()],
        "labels": [f"results/scores/{d}/{m}/{meth}/conf-{lab}.jsonl" for d, m, meth, lab in labelled_runs()],
    }


def labelling_outputs():
    if not labelled_runs():
        return []
    return [
        "results/tables/label_quality.csv",
        "results/tables/label_quality.md",
        "figures/reliability.png",
        "figures/confidence_rules_vs_n.png",
        "figures/confidence_cost.png",
    ]
