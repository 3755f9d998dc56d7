rule aggregate:
    input:
        graded="results/graded/{dataset}/{model}/{method}/samples.jsonl",
        timing="results/gen/{dataset}/{model}/{method}/timing.json",
        weights=lambda w: list(weight_files(w).values()),
        model_spec="resources/models/{model}/model.json",  # n_params, for seed 000's FLOPs
    output:
        "results/metrics/{dataset}/{model}/{method}.json",
    params:
        aggregate=config.get("aggregate", {}),
        seed=config["seed"],
        provenance=PROVENANCE,
        weights=weight_files,
        method=lambda w: config["methods"][w.method],  # width and token cap, for seed 000's FLOPs
        code=code_hash("infscale.aggregate", "infscale.io"),
    log:
        "logs/metrics/{dataset}/{model}/{method}.log",
    benchmark:
        "results/benchmarks/aggregate/{dataset}/{model}/{method}.tsv"
    conda:
        ENV
    script:
        "../scripts/aggregate.py"
