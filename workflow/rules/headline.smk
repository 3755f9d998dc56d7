# Headline tables and figures (issue 17): each method at its headline selection (`report.headline`), shaped like
# the seed studies' tables, and the report's first page (workflow/report/workflow.rst includes it).

from infscale.reports.headline import STANDARD_STYLES, Selection

HEADLINE = config.get("report", {}).get("headline", {})
for _method, _text in HEADLINE.items():  # a bad entry stops the run at start, naming its key
    if _method not in config["methods"]:
        raise ValueError(f"report.headline.{_method}: no such method under `methods:` (known: {sorted(config['methods'])})")
    Selection.parse(_text, f"report.headline.{_method}")


def prompt_style(method):
    return config["methods"][method].get("prompt", {}).get("style", "fewshot")


def runs_cot_pairs():
    """Whether some dataset/model runs both a standard and a chain-of-thought prompt style (seed 004's table)."""
    styles = {}
    for dataset, model, method in RUNS:
        styles.setdefault((dataset, model), set()).add(prompt_style(method) in STANDARD_STYLES)
    return any(len(kinds) == 2 for kinds in styles.values())


def headline_outputs():
    outputs = {
        "csv": report("results/tables/headline.csv", caption="../report/headline_table.rst", category="Headline"),
        "md": "results/tables/headline.md",
    }
    if runs_with("labellers"):
        outputs["labelling_csv"] = report("results/tables/headline_labelling.csv",
                                          caption="../report/headline_labelling.rst", category="Headline")
        outputs["labelling_md"] = "results/tables/headline_labelling.md"
    if runs_cot_pairs():
        outputs["cot_csv"] = report("results/tables/headline_cot.csv", caption="../report/headline_cot.rst",
                                    category="Headline")
        outputs["cot_md"] = "results/tables/headline_cot.md"
    return outputs


def headline_final_outputs():
    return [str(f) for f in headline_outputs().values()] + [
        "figures/headline_accuracy_vs_cost.png",
        "figures/headline_ranking.png",
        "results/report/front_page.html",
    ]


rule headline_tables:
    input:
        accuracy="results/tables/accuracy.csv",
        metrics=metrics_files(),
    output:
        **headline_outputs(),
    params:
        methods=config["methods"],
        headline=HEADLINE,
        seed_rounding=config.get("report", {}).get("seed_rounding", False),
        training_tokens={name: cfg.get("training_tokens") for name, cfg in config["models"].items()},
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
        labelling=[f for k, f in headline_outputs().items() if k == "labelling_csv"],
        cot=[f for k, f in headline_outputs().items() if k == "cot_csv"],
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
