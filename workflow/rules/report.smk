rule accuracy_table:
    input:
        metrics_files(),
    output:
        csv=report("results/tables/accuracy.csv", caption="../report/accuracy_table.rst", category="Tables"),
        md="results/tables/accuracy.md",
    params:
        code=code_hash("infscale.reports.tables"),
    log:
        "logs/report/accuracy_table.log",
    conda:
        ENV
    script:
        "../scripts/accuracy_table.py"


rule plot_accuracy_vs_n:
    input:
        "results/tables/accuracy.csv",
    output:
        png=report("figures/accuracy_vs_n.png", caption="../report/accuracy_vs_n.rst", category="Figures"),
        pdf="figures/accuracy_vs_n.pdf",
    params:
        code=code_hash("infscale.reports.plots"),
    log:
        "logs/report/accuracy_vs_n.log",
    conda:
        ENV
    script:
        "../scripts/plot_accuracy_vs_n.py"


rule efficiency_table:
    input:
        "results/tables/accuracy.csv",
    output:
        csv=report("results/tables/efficiency.csv", caption="../report/efficiency_table.rst", category="Tables"),
        md="results/tables/efficiency.md",
    params:
        seed_rounding=config.get("report", {}).get("seed_rounding", False),
        code=code_hash("infscale.reports.efficiency"),
    log:
        "logs/report/efficiency_table.log",
    conda:
        ENV
    script:
        "../scripts/efficiency_table.py"


rule plot_accuracy_vs_tflops:
    input:
        "results/tables/accuracy.csv",
    output:
        png=report("figures/accuracy_vs_tflops.png", caption="../report/accuracy_vs_tflops.rst", category="Figures"),
        pdf="figures/accuracy_vs_tflops.pdf",
    params:
        x="tflops",
        code=code_hash("infscale.reports.plots", "infscale.reports.tables"),
    log:
        "logs/report/accuracy_vs_tflops.log",
    conda:
        ENV
    script:
        "../scripts/plot_accuracy_vs_cost.py"


rule plot_accuracy_vs_seconds:
    input:
        "results/tables/accuracy.csv",
    output:
        png=report("figures/accuracy_vs_seconds.png", caption="../report/accuracy_vs_seconds.rst", category="Figures"),
        pdf="figures/accuracy_vs_seconds.pdf",
    params:
        x="seconds",
        code=code_hash("infscale.reports.plots", "infscale.reports.tables"),
    log:
        "logs/report/accuracy_vs_seconds.log",
    conda:
        ENV
    script:
        "../scripts/plot_accuracy_vs_cost.py"


rule plot_efficiency_ranking:
    input:
        "results/tables/efficiency.csv",
    output:
        png=report("figures/efficiency_ranking.png", caption="../report/efficiency_ranking.rst", category="Figures"),
        pdf="figures/efficiency_ranking.pdf",
    params:
        code=code_hash("infscale.reports.plots", "infscale.reports.tables"),
    log:
        "logs/report/efficiency_ranking.log",
    conda:
        ENV
    script:
        "../scripts/plot_efficiency_ranking.py"
