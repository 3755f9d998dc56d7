# Seed 004 (docs/seed004.md): every (dataset, model) runs the `cot_scaling.standard` and `cot_scaling.cot`
# methods (greedy, one response per question); these rules turn their graded responses and metrics into the
# study's tables (accuracy and tokens per style, paired CoT - standard differences, train-equivalent FLOPs)
# and its two figures.


rule cot_scaling:
    input:
        graded=[run[style]["graded"] for run in cot_scaling_runs() for style in ("standard", "cot")],
        metrics=[run[style]["metrics"] for run in cot_scaling_runs() for style in ("standard", "cot")],
        specs=sorted({run["spec"] for run in cot_scaling_runs()}),
    output:
        styles=report("results/tables/cot_scaling.csv", caption="../report/cot_scaling.rst", category="Seed 004"),
        styles_md="results/tables/cot_scaling.md",
        differences=report("results/tables/cot_vs_standard.csv", caption="../report/cot_vs_standard.rst",
                           category="Seed 004"),
        differences_md="results/tables/cot_vs_standard.md",
        tokens=report("results/tables/toks_generated.csv", caption="../report/toks_generated.rst", category="Seed 004"),
        models=report("results/tables/train_equivalent_flops.csv", caption="../report/train_equivalent_flops.rst",
                      category="Seed 004"),
    params:
        runs=cot_scaling_runs(),
        models=config["models"],  # training_tokens D and family of each model
        n_boot=config.get("aggregate", {}).get("n_boot", 2000),
        seed=config["seed"],
        code=code_hash("infscale.cot_scaling"),
    log:
        "logs/report/cot_scaling.log",
    benchmark:
        "results/benchmarks/report/cot_scaling.tsv"
    conda:
        ENV
    script:
        "../scripts/cot_scaling.py"


rule plot_cot_scaling:
    input:
        models="results/tables/train_equivalent_flops.csv",
        differences="results/tables/cot_vs_standard.csv",
    output:
        improvement=report("figures/cot_improvement_by_train_flops.png",
                           caption="../report/cot_improvement_by_train_flops.rst", category="Seed 004"),
        improvement_pdf="figures/cot_improvement_by_train_flops.pdf",
        lines=report("figures/intersecting_lines.png", caption="../report/intersecting_lines.rst", category="Seed 004"),
        lines_pdf="figures/intersecting_lines.pdf",
    params:
        max_requests=config.get("cot_scaling", {}).get("max_requests", 1.0e15),
        code=code_hash("infscale.reports.cot_scaling"),
    log:
        "logs/report/plot_cot_scaling.log",
    conda:
        ENV
    script:
        "../scripts/plot_cot_scaling.py"
