rule generate:
    input:
        unpack(method_inputs),  # a search's PRM files, a Quiet-STaR method's trained weights (common.smk)
        test="results/data/{dataset}/test.jsonl",
        train="results/data/{dataset}/train.jsonl",
        model="resources/models/{model}/model.json",
        engine=lambda w: engine_inputs(w.model) if config["methods"][w.method]["kind"] == "sampling" else [],
    output:
        samples="results/gen/{dataset}/{model}/{method}/shard-{shard}.jsonl",
        timing="results/gen/{dataset}/{model}/{method}/shard-{shard}.timing.json",
    params:
        method=lambda w: config["methods"][w.method],
        scorer=lambda w: named_entry(w.method, "scorer", "scorers"),  # the entry its `scorer:` names, or {}
        thinker=lambda w: named_entry(w.method, "thinker", "thinkers"),  # the entry its `thinker:` names, or {}
        n_shards=lambda w: n_shards(w.method),
        seed=config["seed"],
        device=config["device"],
        code=generate_code_hash,
    threads: config.get("threads") or 2
    resources:
        gpu=GPU,
    log:
        "logs/generate/{dataset}/{model}/{method}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/generate/{dataset}/{model}/{method}/shard-{shard}.tsv"
    conda:
        ENV
    script:
        "../scripts/generate.py"
