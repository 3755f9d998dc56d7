rule merge_shards:
    input:
        samples=lambda w: shard_files(w, ".jsonl"),
        timings=lambda w: shard_files(w, ".timing.json"),
    output:
        samples="results/gen/{dataset}/{model}/{method}/samples.jsonl",
        timing="results/gen/{dataset}/{model}/{method}/timing.json",
    params:
        code=code_hash("infscale.merge_shards"),
    log:
        "logs/merge_shards/{dataset}/{model}/{method}.log",
    conda:
        ENV
    script:
        "../scripts/merge_shards.py"
