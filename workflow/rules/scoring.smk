# Scoring responses (infscale.scoring): confidence labels from a labeller model (seed 001) and PRM step scores
# (seed 002), each a weight source of the aggregation; and training the offline value-head PRM.
#
# Confidence labelling: a labeller model (any entry under `models:`) gives every response of a run a confidence
# label read from its digit-token distribution. A run turns it on with `labellers: [model names]`; self-labelling
# lists the run's own model, proxy mode a different one. Labels feed the aggregation as weights (best-of-N by
# confidence, confidence-weighted majority), so adding a labeller reruns only labelling and what follows it.
#
# PRMs: the offline value-head PRM is trained here (train_prm), responses' steps are scored (score_prm). Tree-search
# methods (rebase, beam) name a PRM with `scorer:`; their generate jobs read its files as inputs (`method_inputs`).


rule label_confidence:
    input:
        samples="results/gen/{dataset}/{model}/{method}/samples.jsonl",
        questions="results/data/{dataset}/test.jsonl",
        labeller="resources/models/{labeller}/model.json",
        engine=lambda w: engine_inputs(w.labeller),
    output:
        "results/scores/{dataset}/{model}/{method}/conf-{labeller}.jsonl",
    params:
        labelling={k: v for k, v in config.get("labelling", {}).items() if k != "n_bins"},
        device=config["device"],
        code=code_hash("infscale.scoring.label_confidence"),
    threads: config.get("threads") or 2
    resources:
        gpu=GPU,
    log:
        "logs/label_confidence/{dataset}/{model}/{method}/conf-{labeller}.log",
    benchmark:
        "results/benchmarks/label_confidence/{dataset}/{model}/{method}/conf-{labeller}.tsv"
    conda:
        ENV
    script:
        "../scripts/label_confidence.py"


rule train_prm:
    input:
        train="results/data/{dataset}/train.jsonl",
        model=lambda w: f"resources/models/{config['scorers'][w.scorer]['model']}/model.json",
        engine=lambda w: engine_inputs(config["scorers"][w.scorer]["model"]),
    output:
        head="results/prm/{dataset}/{scorer}/head.pt",
        quality="results/prm/{dataset}/{scorer}/quality.json",
    params:
        scorer=lambda w: config["scorers"][w.scorer],
        seed=config["seed"],
        device=config["device"],
        code=code_hash("infscale.scoring.train_prm"),
    threads: config.get("threads") or 2
    resources:
        gpu=GPU,
    log:
        "logs/train_prm/{dataset}/{scorer}.log",
    benchmark:
        "results/benchmarks/train_prm/{dataset}/{scorer}.tsv"
    conda:
        ENV
    script:
        "../scripts/train_prm.py"


rule score_prm:
    input:
        unpack(lambda w: scorer_inputs(w.scorer, w.dataset)),  # a value head's files (common.smk)
        samples="results/gen/{dataset}/{model}/{method}/samples.jsonl",
        questions="results/data/{dataset}/test.jsonl",
    output:
        "results/scores/{dataset}/{model}/{method}/prm-{scorer}.jsonl",
    params:
        scorer=lambda w: config["scorers"][w.scorer],
        device=config["device"],
        code=code_hash("infscale.scoring.score_prm"),
    threads: config.get("threads") or 2
    resources:
        gpu=GPU,
    log:
        "logs/score_prm/{dataset}/{model}/{method}/prm-{scorer}.log",
    benchmark:
        "results/benchmarks/score_prm/{dataset}/{model}/{method}/prm-{scorer}.tsv"
    conda:
        ENV
    script:
        "../scripts/score_prm.py"
