# PRM scoring (seed 002): the offline value-head PRM is trained here (train_prm), responses' steps are scored
# (score_prm) and the aggregation turns step scores into best-of-N / weighted-majority weights. Tree-search
# methods (rebase, beam) name a PRM with `scorer:`; their generate jobs get it resolved by `resolved_scorer`.


rule train_prm:
    input:
        train="results/data/{dataset}/train.jsonl",
        model=lambda w: resolved_scorer(w.scorer, w.dataset)["model_spec"],
        engine=lambda w: engine_inputs(resolved_scorer(w.scorer, w.dataset)["model"]),
    output:
        head="results/prm/{dataset}/{scorer}/head.pt",
        quality="results/prm/{dataset}/{scorer}/quality.json",
    params:
        scorer=lambda w: resolved_scorer(w.scorer, w.dataset),
        seed=config["seed"],
        device=config["device"],
        code=code_hash("infscale.scoring.prm_train"),
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
        code=code_hash("infscale.scoring.prm"),
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
        unpack(prm_quality_inputs),
    output:
        csv="results/tables/prm_quality.csv",
        md="results/tables/prm_quality.md",
        pool_csv="results/tables/prm_pool_quality.csv",
        pool_md="results/tables/prm_pool_quality.md",
    params:
        runs=[list(r) for r in runs_with("scorers")],
        seed=config["seed"],
        code=code_hash("infscale.reports.prm"),
    log:
        "logs/report/prm_quality.log",
    conda:
        ENV
    script:
        "../scripts/prm_quality.py"

