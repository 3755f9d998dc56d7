import re
from pathlib import Path

from infscale.codehash import code_hash
from infscale.config import check_config_files, cot_scaling_pairs, run_triples, validate_config
from infscale.io import remove_finished_partials
from infscale.methods import method_module
from infscale.provenance import git_state
from infscale.reports.headline_tables import configured_selections
from infscale.models import engine_folder_name
from infscale.schema import defaults, setting


check_config_files(workflow.configfiles)
validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))

RUNS = run_triples(config)
ENV = "../../envs/infscale.yaml"
PROVENANCE = "results/provenance.json"     # what produced the results; every metrics file names it
REPO_ROOT = Path(workflow.basedir)


def _one_of(names):
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


wildcard_constraints:
    dataset=_one_of(config["datasets"]),
    model=_one_of(config["models"]),
    method=_one_of(config["methods"]),
    shard=r"\d+",
    scorer=_one_of(config.get("scorers", {})) or "(?!)",
    labeller=_one_of(config["models"]),
    thinker=_one_of(config.get("thinkers", {})) or "(?!)",


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


def named_entry(method, key, section):
    """The entry under `section:` that a method's `key` (`scorer`, `thinker`) names, as the config wrote it; {}
    when the method names none."""
    name = config["methods"][method].get(key)
    return config[section][name] if name else {}


def method_inputs(wildcards):
    """The files a method's generate job loads besides the policy: a tree search's PRM files (`scorer_inputs`),
    a Quiet-STaR method's trained weights (`thinker_weights`)."""
    cfg = config["methods"][wildcards.method]
    files = scorer_inputs(cfg["scorer"], wildcards.dataset) if "scorer" in cfg else {}
    if "thinker" in cfg:
        files["thinker_weights"] = thinker_weights(cfg["thinker"], wildcards.dataset)
    return files


def engine_inputs(model):
    """A ct2 or llamacpp model's engine weights (rule convert_model); nothing for hf and vllm models."""
    cfg = config["models"][model]
    folder = engine_folder_name(cfg.get("backend", defaults("model")["backend"]), cfg.get("compute_type"))
    return [f"resources/models/{model}/{folder}"] if folder else []


def generate_code_hash(wildcards):
    """Generation runs infscale.generate plus the module of the method's kind (loaded by name, so not an import)."""
    return code_hash("infscale.generate", method_module(config["methods"][wildcards.method]["kind"]))


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


def runs_with(key):
    """(dataset, model, method, name) for every `key` (a WEIGHT_SOURCES kind) entry that some run asks for."""
    return [(d, m, meth, name) for d, m, meth in RUNS for name in run_option(d, m, meth, key)]


def scored_pools(key):
    """The graded pools of `runs_with(key)` and their score files, in the same order."""
    runs = runs_with(key)
    pattern = WEIGHT_SOURCES[key][1]
    return ([f"results/graded/{d}/{m}/{meth}/samples.jsonl" for d, m, meth, _ in runs],
            [pattern.format(dataset=d, model=m, method=meth, name=name) for d, m, meth, name in runs])


def weight_files(wildcards):
    files = {}
    for key, (prefix, pattern) in WEIGHT_SOURCES.items():
        for name in run_option(wildcards.dataset, wildcards.model, wildcards.method, key):
            files[f"{prefix}{name}"] = pattern.format(name=name, **wildcards)
    return files


def metrics_files():
    return [f"results/metrics/{d}/{m}/{meth}.json" for d, m, meth in RUNS]


# Stage files (scoring.smk, ...) append functions returning their report outputs; `rule all` asks for them lazily,
# after every stage file has been included.


def used_models():
    """Every model a run generates with, labels with, or a scorer reads."""
    names = {m for run in config["runs"] for key in ("models", "labellers") for m in run.get(key, [])}
    names |= {s["model"] for s in config.get("scorers", {}).values() if "model" in s}
    return sorted(names)


def final_outputs():
    return [PROVENANCE] + [
        "results/tables/accuracy.csv",
        "results/tables/accuracy.md",
        "figures/accuracy_vs_n.png",
        "results/tables/efficiency.csv",
        "results/tables/efficiency.md",
        "figures/accuracy_vs_tflops.png",
        "figures/accuracy_vs_seconds.png",
        "figures/efficiency_ranking.png",
    ] + prm_quality_outputs() + labelling_outputs() + cot_scaling_outputs() + quietstar_outputs() \
        + headline_final_outputs()


# --- PRM scoring and tree search (scoring.smk) ---


def scorer_inputs(name, dataset):
    """A PRM's files for `dataset`, named as `scoring.scorers.ScorerFiles.from_inputs` reads them: a value head's
    trained weights (rule train_prm) and the model.json of the model it reads; none for a hub PRM."""
    cfg = config["scorers"][name]
    if cfg["kind"] != "value_head":
        return {}
    return {"scorer_head": f"results/prm/{dataset}/{name}/head.pt",
            "scorer_model_spec": f"resources/models/{cfg['model']}/model.json"}


def value_head_pairs():
    """(dataset, scorer) of every value-head PRM that some run uses, as a weight or inside a search."""
    pairs = set()
    for run in config["runs"]:
        for dataset in run["datasets"]:
            names = set(run.get("scorers", []))
            names |= {config["methods"][m]["scorer"] for m in run["methods"] if "scorer" in config["methods"][m]}
            pairs |= {(dataset, n) for n in names if config["scorers"][n]["kind"] == "value_head"}
    return sorted(pairs)


def prm_quality_inputs(wildcards=None):
    graded, scores = scored_pools("scorers")
    return {
        "trained": [f"results/prm/{d}/{s}/quality.json" for d, s in value_head_pairs()],
        "graded": graded,
        "scores": scores,
    }


def prm_quality_outputs():
    if not (value_head_pairs() or runs_with("scorers")):
        return []
    return [f"results/tables/{name}.{ext}" for name in ("prm_quality", "prm_pool_quality") for ext in ("csv", "md")]




# --- confidence labelling (scoring.smk, reports.smk) ---


def label_quality_inputs(wildcards=None):
    graded, labels = scored_pools("labellers")
    metrics = sorted({f"results/metrics/{d}/{m}/{meth}.json" for d, m, meth, _ in runs_with("labellers")})
    return {"graded": graded, "labels": labels, "metrics": metrics}


def labelling_outputs():
    if not runs_with("labellers"):
        return []
    return [
        "results/tables/label_quality.csv",
        "results/tables/label_quality.md",
        "figures/reliability.png",
        "figures/confidence_rules_vs_n.png",
        "figures/confidence_cost.png",
    ]


# --- headline tables, figures and the report's first page (reports.smk) ---

HEADLINE = config.get("report", {}).get("headline", {})
configured_selections(config["methods"], HEADLINE)  # a bad entry stops the run at start, naming its key


def headline_outputs():
    outputs = {
        "csv": report("results/tables/headline.csv", caption="../report/headline_table.rst", category="Headline"),
        "md": "results/tables/headline.md",
    }
    if runs_with("labellers"):
        outputs["labelling_csv"] = report("results/tables/headline_labelling.csv",
                                          caption="../report/headline_labelling.rst", category="Headline")
        outputs["labelling_md"] = "results/tables/headline_labelling.md"
    if COT_PAIRS:  # seed 004's tables exist (rule cot_scaling)
        outputs["cot_csv"] = report("results/tables/headline_cot.csv", caption="../report/headline_cot.rst",
                                    category="Headline")
        outputs["cot_md"] = "results/tables/headline_cot.md"
    return outputs


def headline_final_outputs():
    return [str(f) for f in headline_outputs().values()] + [
        "figures/headline_accuracy_vs_cost.png",
        "figures/headline_ranking.png",
        "results/report/front_page.html",
    ]


# --- seed 004: standard vs chain-of-thought across scales (reports.smk) ---


COT_PAIRS = cot_scaling_pairs(config)


def cot_scaling_runs():
    """Per (dataset, model): the graded responses and metrics of both prompt styles, and the model spec."""
    if not COT_PAIRS:
        return []
    styles = {"standard": config["cot_scaling"]["standard"], "cot": config["cot_scaling"]["cot"]}
    return [
        {"dataset": d, "model": m, "spec": f"resources/models/{m}/model.json",
         **{style: {"graded": f"results/graded/{d}/{m}/{method}/samples.jsonl",
                    "metrics": f"results/metrics/{d}/{m}/{method}.json"} for style, method in styles.items()}}
        for d, m in COT_PAIRS
    ]


def cot_scaling_outputs():
    if not COT_PAIRS:
        return []
    return [
        "results/tables/cot_scaling.csv",
        "results/tables/cot_vs_standard.csv",
        "results/tables/toks_generated.csv",
        "results/tables/train_equivalent_flops.csv",
        "figures/cot_improvement_by_train_flops.png",
        "figures/intersecting_lines.png",
    ]


# --- Quiet-STaR (train_quietstar.smk) ---


def thinker_weights(name, dataset):
    """The weights file the training of thinker `name` on `dataset`'s task writes (rule train_quietstar)."""
    return f"results/quietstar/{dataset}/{name}/weights.pt"


def thinker_pairs():
    """(dataset, thinker) of every Quiet-STaR method some run evaluates."""
    return sorted({(d, config["methods"][m]["thinker"]) for d, _, m in RUNS if "thinker" in config["methods"][m]})


def thinker_eval_tests(wildcards):
    """Test splits of every dataset the thinker is evaluated on: their questions are never trained on."""
    return [f"results/data/{d}/test.jsonl" for d, t in thinker_pairs() if t == wildcards.thinker]


def quietstar_outputs():
    return [f"results/quietstar/{d}/{t}/{name}" for d, t in thinker_pairs() for name in ("curves.png", "heldout.json")]
