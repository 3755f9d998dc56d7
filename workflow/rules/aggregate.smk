rule aggregate:
    input:
        graded="results/graded/{dataset}/{model}/{method}/samples.jsonl",
        timing="results/gen/{dataset}/{model}/{method}/timing.json",
        weights=lambda w: list(weight_files(w).values()),
        model_spec="resources/models/{model}/model.json",  # n_params, reported with the costs
    output:
        "results/metrics/{dataset}/{model}/{method}.json",
    params:
        aggregate=config.get("aggregate", {}),
        seed=config["seed"],
        provenance=PROVENANCE,
        weights=weight_files,
        code=code_hash("infscale.aggregate", "infscale.io"),
    log:
        "logs/aggregate/{dataset}/{model}/{method}.log",
    benchmark:
        "results/benchmarks/aggregate/{dataset}/{model}/{method}.tsv"
    conda:
        ENV
    script:
        "../scripts/aggregate.py"
