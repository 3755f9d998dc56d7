rule sample_dataset:
    output:
        test="results/data/{dataset}/test.jsonl",
        train="results/data/{dataset}/train.jsonl",
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        code=code_hash("infscale.data.sample_dataset"),
    log:
        "logs/sample_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/sample_dataset/{dataset}.tsv"
    conda:
        ENV
    script:
        "../scripts/sample_dataset.py"
