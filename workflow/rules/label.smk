# Confidence labelling (seed 001): a labeller model (any entry under `models:`) gives every response of a run a
# confidence label read from its digit-token distribution. A run turns it on with `labellers: [model names]`;
# self-labelling lists the run's own model, proxy mode a different one. Labels feed the aggregation as weights
# (best-of-N by confidence, confidence-weighted majority), so adding a labeller reruns only labelling and what
# follows it.

rule label_confidence:
    input:
        samples="results/gen/{dataset}/{model}/{method}/samples.jsonl",
        questions="results/data/{dataset}/test.jsonl",
        labeller="resources/models/{labeller}/model.json",
        engine=lambda w: engine_inputs(w.labeller),
    output:
        "results/scores/{dataset}/{model}/{method}/conf-{labeller}.jsonl",
    params:
        labelling={k: v for k, v in config.get("labelling", {}).items() if k != "n_bins"},
        device=config["device"],
        code=code_hash("infscale.scoring.confidence"),
    threads: config.get("threads") or 2
    resources:
        gpu=GPU,
    log:
        "logs/scores/{dataset}/{model}/{method}/conf-{labeller}.log",
    benchmark:
        "results/benchmarks/label/{dataset}/{model}/{method}/conf-{labeller}.tsv"
    conda:
        ENV
    script:
        "../scripts/label_confidence.py"


rule label_quality:
    input:
        unpack(label_quality_inputs),
    output:
        csv=report("results/tables/label_quality.csv", caption="../report/label_quality.rst", category="Tables"),
        md="results/tables/label_quality.md",
        png=report("figures/reliability.png", caption="../report/reliability.rst", category="Figures"),
        pdf="figures/reliability.pdf",
    params:
        runs=[list(r) for r in runs_with("labellers")],
        n_bins=config.get("labelling", {}).get("n_bins", 10),
        code=code_hash("infscale.reports.confidence"),
    log:
        "logs/report/label_quality.log",
    conda:
        ENV
    script:
        "../scripts/label_quality.py"


rule plot_confidence_rules:
    input:
        metrics=lambda w: sorted({f"results/metrics/{d}/{m}/{meth}.json" for d, m, meth, _ in runs_with("labellers")}),
    output:
        rules=report("figures/confidence_rules_vs_n.png", caption="../report/confidence_rules_vs_n.rst",
                     category="Figures"),
        rules_pdf="figures/confidence_rules_vs_n.pdf",
        cost=report("figures/confidence_cost.png", caption="../report/confidence_cost.rst", category="Figures"),
        cost_pdf="figures/confidence_cost.pdf",
    params:
        code=code_hash("infscale.reports.confidence"),
    log:
        "logs/report/confidence_plots.log",
    conda:
        ENV
    script:
        "../scripts/plot_confidence.py"

