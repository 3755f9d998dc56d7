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
