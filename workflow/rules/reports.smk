# Reports (infscale.reports): tables and figures from the metrics, scores and graded pools, and the report's first
# page (workflow/report/workflow.rst includes it). One rule per report module.


rule accuracy_table:
    input:
        metrics_files(),
    output:
        csv=report("results/tables/accuracy.csv", caption="../report/accuracy_table.rst", category="Tables"),
        md="results/tables/accuracy.md",
    params:
        code=code_hash("infscale.reports.accuracy_table"),
    log:
        "logs/accuracy_table/accuracy_table.log",
    conda:
        ENV
    script:
        "../scripts/accuracy_table.py"


rule efficiency_table:
    input:
        "results/tables/accuracy.csv",
    output:
        csv=report("results/tables/efficiency.csv", caption="../report/efficiency_table.rst", category="Tables"),
        md="results/tables/efficiency.md",
    params:
        seed_rounding=setting(config, "report", "seed_rounding"),
        code=code_hash("infscale.reports.efficiency_table"),
    log:
        "logs/efficiency_table/efficiency_table.log",
    conda:
        ENV
    script:
        "../scripts/efficiency_table.py"


rule plots:
    input:
        accuracy="results/tables/accuracy.csv",
        efficiency="results/tables/efficiency.csv",
    output:
        n=report("figures/accuracy_vs_n.png", caption="../report/accuracy_vs_n.rst", category="Figures"),
        n_pdf="figures/accuracy_vs_n.pdf",
        tflops=report("figures/accuracy_vs_tflops.png", caption="../report/accuracy_vs_tflops.rst", category="Figures"),
        tflops_pdf="figures/accuracy_vs_tflops.pdf",
        seconds=report("figures/accuracy_vs_seconds.png", caption="../report/accuracy_vs_seconds.rst",
                       category="Figures"),
        seconds_pdf="figures/accuracy_vs_seconds.pdf",
        ranking=report("figures/efficiency_ranking.png", caption="../report/efficiency_ranking.rst", category="Figures"),
        ranking_pdf="figures/efficiency_ranking.pdf",
    params:
        code=code_hash("infscale.reports.plots"),
    log:
        "logs/plots/plots.log",
    conda:
        ENV
    script:
        "../scripts/plots.py"


rule label_quality:
    input:
        unpack(label_quality_inputs),
    output:
        csv=report("results/tables/label_quality.csv", caption="../report/label_quality.rst", category="Tables"),
        md="results/tables/label_quality.md",
        png=report("figures/reliability.png", caption="../report/reliability.rst", category="Figures"),
        pdf="figures/reliability.pdf",
        rules=report("figures/confidence_rules_vs_n.png", caption="../report/confidence_rules_vs_n.rst",
                     category="Figures"),
        rules_pdf="figures/confidence_rules_vs_n.pdf",
        cost=report("figures/confidence_cost.png", caption="../report/confidence_cost.rst", category="Figures"),
        cost_pdf="figures/confidence_cost.pdf",
    params:
        runs=[list(r) for r in runs_with("labellers")],
        n_bins=setting(config, "labelling", "n_bins"),
        code=code_hash("infscale.reports.label_quality"),
    log:
        "logs/label_quality/label_quality.log",
    conda:
        ENV
    script:
        "../scripts/label_quality.py"


rule prm_quality:
    input:
        unpack(prm_quality_inputs),
    output:
        csv="results/tables/prm_quality.csv",
        md="results/tables/prm_quality.md",
        pool_csv="results/tables/prm_pool_quality.csv",
        pool_md="results/tables/prm_pool_quality.md",
    params:
        runs=[list(r) for r in runs_with("scorers")],
        seed=config["seed"],
        code=code_hash("infscale.reports.prm_quality"),
    log:
        "logs/prm_quality/prm_quality.log",
    conda:
        ENV
    script:
        "../scripts/prm_quality.py"


# Seed 004 (docs/seed004.md): every (dataset, model) runs the `cot_scaling.standard` and `cot_scaling.cot`
# methods (greedy, one response per question); cot_scaling turns their graded responses and metrics into the
# study's tables (accuracy and tokens per style, paired CoT - standard differences, train-equivalent FLOPs) and
# plot_cot_scaling draws its two figures.


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
        n_boot=setting(config, "aggregate", "n_boot"),
        seed=config["seed"],
        code=code_hash("infscale.reports.cot_scaling"),
    log:
        "logs/cot_scaling/cot_scaling.log",
    benchmark:
        "results/benchmarks/cot_scaling/cot_scaling.tsv"
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
        max_requests=setting(config, "cot_scaling", "max_requests"),
        code=code_hash("infscale.reports.plot_cot_scaling"),
    log:
        "logs/plot_cot_scaling/plot_cot_scaling.log",
    conda:
        ENV
    script:
        "../scripts/plot_cot_scaling.py"


# Headline tables and figures (issue 17): each method at its headline selection (`report.headline`), shaped like
# the seed studies' tables, and the report's first page.


rule headline_tables:
    input:
        accuracy="results/tables/accuracy.csv",
        metrics=metrics_files(),
        # seed 004's own tables, when the run has CoT pairs (rule cot_scaling)
        cot=lambda w: ["results/tables/cot_scaling.csv", "results/tables/cot_vs_standard.csv",
                       "results/tables/train_equivalent_flops.csv"] if COT_PAIRS else [],
    output:
        **headline_outputs(),
    params:
        methods=config["methods"],
        headline=HEADLINE,
        seed_rounding=setting(config, "report", "seed_rounding"),
        code=code_hash("infscale.reports.headline_tables"),
    log:
        "logs/headline_tables/headline_tables.log",
    conda:
        ENV
    script:
        "../scripts/headline_tables.py"


rule headline_figures:
    input:
        accuracy="results/tables/accuracy.csv",
        headline="results/tables/headline.csv",
    output:
        curves=report("figures/headline_accuracy_vs_cost.png", caption="../report/headline_accuracy_vs_cost.rst",
                      category="Headline"),
        curves_pdf="figures/headline_accuracy_vs_cost.pdf",
        ranking=report("figures/headline_ranking.png", caption="../report/headline_ranking.rst",
                       category="Headline"),
        ranking_pdf="figures/headline_ranking.pdf",
    params:
        methods=list(config["methods"]),  # config order fixes each method's colour
        code=code_hash("infscale.reports.headline_figures"),
    log:
        "logs/headline_figures/headline_figures.log",
    conda:
        ENV
    script:
        "../scripts/headline_figures.py"


rule front_page:
    input:
        headline="results/tables/headline.csv",
        curves="figures/headline_accuracy_vs_cost.png",
        ranking="figures/headline_ranking.png",
        labelling=[str(f) for k, f in headline_outputs().items() if k == "labelling_csv"],
        cot=[str(f) for k, f in headline_outputs().items() if k == "cot_csv"],
    output:
        "results/report/front_page.html",
    params:
        n_boot=setting(config, "aggregate", "n_boot"),
        code=code_hash("infscale.reports.front_page"),
    log:
        "logs/front_page/front_page.log",
    conda:
        ENV
    script:
        "../scripts/front_page.py"
