rule prepare_model:
    output:
        "resources/models/{model}/model.json",
    params:
        model=lambda w: config["models"][w.model],
        code=code_hash("infscale.models.prepare_model"),
    log:
        "logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    conda:
        ENV
    script:
        "../scripts/prepare_model.py"
