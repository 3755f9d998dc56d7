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


# ct2 models (models.<name>.backend: ct2): the checkpoint converted for CTranslate2, int8 or float32 weights
rule convert_model:
    input:
        "resources/models/{model}/model.json",
    output:
        directory("resources/models/{model}/ct2-{quantization}"),
    wildcard_constraints:
        quantization="int8|float32",
    params:
        code=code_hash("infscale.models.convert_model"),
    log:
        "logs/convert_model/{model}-{quantization}.log",
    benchmark:
        "results/benchmarks/convert_model/{model}-{quantization}.tsv"
    conda:
        ENV
    script:
        "../scripts/convert_model.py"
