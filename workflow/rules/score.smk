# PRM scoring (seed 002): the offline value-head PRM is trained here (train_prm), responses' steps are scored
# (score_prm) and the aggregation turns step scores into best-of-N / weighted-majority weights. Tree-search
# methods (rebase, beam) name a PRM with `scorer:`; their generate jobs get it resolved by `resolved_scorer`.


wildcard_constraints:
    scorer=_one_of(config.get("scorers", {})) or "(?!)",


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


WEIGHT_SOURCES["scorers"] = ("prm-", "results/scores/{dataset}/{model}/{method}/prm-{name}.jsonl")


rule train_prm:
    input:
        train="results/data/{dataset}/train.jsonl",
        model=lambda w: resolved_scorer(w.scorer, w.dataset)["model_spec"],
    output:
        head="results/prm/{dataset}/{scorer}/head.pt",
        quality="results/prm/{dataset}/{scorer}/quality.json",
    params:
        scorer=lambda w: resolved_scorer(w.scorer, w.dataset),
        seed=config["seed"],
        device=config["device"],
        code=code_hash("infscale.scoring", "infscale.models.hf", "infscale.prompts", "infscale.grading"),
    threads: config.get("threads") or 2
    resources:
        gpu=GPU,
    log:
        "logs/prm/{dataset}/{scorer}/train.log",
    benchmark:
        "results/benchmarks/prm/{dataset}/{scorer}.tsv"
    conda:
        ENV
    script:
        "../scripts/train_prm.py"


rule score_prm:
    input:
        samples="results/gen/{dataset}/{model}/{method}/samples.jsonl",
        questions="results/data/{dataset}/test.jsonl",
        prm=lambda w: scorer_inputs(w.scorer, w.dataset),
    output:
        "results/scores/{dataset}/{model}/{method}/prm-{scorer}.jsonl",
    params:
        scorer=lambda w: resolved_scorer(w.scorer, w.dataset),
        device=config["device"],
        code=code_hash("infscale.scoring", "infscale.models.hf"),
    threads: config.get("threads") or 2
    resources:
        gpu=GPU,
    log:
        "logs/scores/{dataset}/{model}/{method}/prm-{scorer}.log",
    benchmark:
        "results/benchmarks/scores/{dataset}/{model}/{method}/prm-{scorer}.tsv"
    conda:
        ENV
    script:
        "../scripts/score_prm.py"


rule prm_quality:
    input:
        [f"results/prm/{d}/{s}/quality.json" for d, s in value_head_pairs()],
    output:
        csv="results/tables/prm_quality.csv",
        md="results/tables/prm_quality.md",
    params:
        code=code_hash("infscale.scoring"),
    log:
        "logs/report/prm_quality.log",
    conda:
        ENV
    script:
        "../scripts/prm_quality.py"


EXTRA_OUTPUTS.append(prm_quality_outputs)
