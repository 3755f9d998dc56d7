rule grade:
    input:
        samples="results/gen/{dataset}/{model}/{method}/samples.jsonl",
        questions="results/data/{dataset}/test.jsonl",
    output:
        "results/graded/{dataset}/{model}/{method}/samples.jsonl",
    params:
        mode=setting(config, "grading", "mode"),
        code=code_hash("infscale.grade"),
    log:
        "logs/grade/{dataset}/{model}/{method}.log",
    conda:
        ENV
    script:
        "../scripts/grade.py"
