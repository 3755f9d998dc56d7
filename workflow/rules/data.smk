rule sample_dataset:
    output:
        test="results/data/{dataset}/test.jsonl",
        train="results/data/{dataset}/train.jsonl",
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        code=code_hash("infscale.data"),
    log:
        "logs/data/{dataset}.log",
    conda:
        ENV
    script:
        "../scripts/sample_dataset.py"
