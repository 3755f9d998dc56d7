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


# an engine's weights beside model.json: ct2 models (backend ct2) the checkpoint converted for CTranslate2,
# llamacpp models (backend llamacpp) the embedded GGUF as shipped or re-quantised
rule convert_model:
    input:
        "resources/models/{model}/model.json",
    output:
        directory("resources/models/{model}/{engine}-{quantization}"),
    wildcard_constraints:
        engine="ct2|gguf",
        quantization="int8|float32|native|q8_0|q4_0",
    params:
        code=code_hash("infscale.models.convert_model"),
    log:
        "logs/convert_model/{model}-{engine}-{quantization}.log",
    benchmark:
        "results/benchmarks/convert_model/{model}-{engine}-{quantization}.tsv"
    conda:
        ENV
    script:
        "../scripts/convert_model.py"
