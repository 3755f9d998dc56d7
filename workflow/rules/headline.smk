# Headline tables and figures (issue 17): each method at its headline selection (`report.headline`), shaped like
# the seed studies' tables, and the report's first page (workflow/report/workflow.rst includes it).

rule headline_tables:
    input:
        accuracy="results/tables/accuracy.csv",
        metrics=metrics_files(),
        # seed 004's own tables, when the run has CoT pairs (cot_scaling.smk)
        cot=lambda w: ["results/tables/cot_scaling.csv", "results/tables/cot_vs_standard.csv",
                       "results/tables/train_equivalent_flops.csv"] if COT_PAIRS else [],
    output:
        **headline_outputs(),
    params:
        methods=config["methods"],
        headline=HEADLINE,
        seed_rounding=config.get("report", {}).get("seed_rounding", False),
        code=code_hash("infscale.reports.headline", "infscale.reports.efficiency", "infscale.reports.tables"),
    log:
        "logs/report/headline_tables.log",
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
        code=code_hash("infscale.reports.headline_plots", "infscale.reports.plots", "infscale.reports.headline"),
    log:
        "logs/report/headline_figures.log",
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
        n_boot=config.get("aggregate", {}).get("n_boot", 2000),
        code=code_hash("infscale.reports.front_page", "infscale.reports.headline"),
    log:
        "logs/report/front_page.log",
    conda:
        ENV
    script:
        "../scripts/front_page.py"
