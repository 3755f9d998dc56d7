# What produced the results (docs/reproducibility.md): versions, git commit, device, config digest, model file
# digests. Every metrics file names this file; it reruns when the commit, the config or a model changes.

rule provenance:
    input:
        models=lambda w: expand("resources/models/{model}/model.json", model=used_models()),
        constraints=workflow.source_path("../../constraints.txt"),
    output:
        report(PROVENANCE, caption="../report/provenance.rst", category="Provenance"),
    params:
        config=config,
        git=git_state(REPO_ROOT),
        threads=config.get("threads") or 2,
        repo=str(REPO_ROOT),
        code=code_hash("infscale.provenance"),
    log:
        "logs/provenance/provenance.log",
    benchmark:
        "results/benchmarks/provenance/provenance.tsv"
    conda:
        ENV
    script:
        "../scripts/provenance.py"
