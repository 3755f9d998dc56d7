rule generate:
    input:
        test="results/data/{dataset}/test.jsonl",
        train="results/data/{dataset}/train.jsonl",
        model="resources/models/{model}/model.json",
        engine=lambda w: engine_inputs(w.model) if method_cfg(w)["kind"] == "sampling" else [],
        prm=lambda w: search_scorer_inputs(w),  # tree search: its PRM (score.smk)
        thinker=lambda w: thinker_inputs(w),  # Quiet-STaR: its trained weights (quietstar.smk)
    output:
        samples="results/gen/{dataset}/{model}/{method}/shard-{shard}.jsonl",
        timing="results/gen/{dataset}/{model}/{method}/shard-{shard}.timing.json",
    params:
        method=method_cfg,
        n_shards=lambda w: n_shards(w.method),
        seed=config["seed"],
        device=config["device"],
        code=generate_code_hash,
    threads: config.get("threads") or 2
    resources:
        gpu=GPU,
    log:
        "logs/gen/{dataset}/{model}/{method}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/gen/{dataset}/{model}/{method}/shard-{shard}.tsv"
    conda:
        ENV
    script:
        "../scripts/generate.py"


rule merge_shards:
    input:
        samples=lambda w: shard_files(w, ".jsonl"),
        timings=lambda w: shard_files(w, ".timing.json"),
    output:
        samples="results/gen/{dataset}/{model}/{method}/samples.jsonl",
        timing="results/gen/{dataset}/{model}/{method}/timing.json",
    params:
        code=code_hash("infscale.generate"),
    log:
        "logs/gen/{dataset}/{model}/{method}/merge.log",
    conda:
        ENV
    script:
        "../scripts/merge_shards.py"
