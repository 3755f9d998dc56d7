# Quiet-STaR (issue 13): the wrapper is trained on worked solutions of a dataset's task (never its test
# questions), next to an LM-only fine-tune control, and evaluated by the `quietstar` / `quietstar_rebase`
# methods, whose generate jobs read the trained weights (`method_inputs`, common.smk).


rule train_quietstar:
    input:
        model=lambda w: f"resources/models/{config['thinkers'][w.thinker]['model']}/model.json",
        tests=thinker_eval_tests,
    output:
        weights="results/quietstar/{dataset}/{thinker}/weights.pt",
        curves="results/quietstar/{dataset}/{thinker}/curves.csv",
        plot=report(
            "results/quietstar/{dataset}/{thinker}/curves.png",
            caption="../report/quietstar_curves.rst",
            category="Quiet-STaR",
        ),
        heldout="results/quietstar/{dataset}/{thinker}/heldout.json",
    params:
        thinker=lambda w: config["thinkers"][w.thinker],
        dataset=lambda w: config["datasets"][w.dataset],
        seed=config["seed"],
        device=config["device"],
        code=code_hash("infscale.train_quietstar"),
    threads: config.get("threads") or 2
    resources:
        gpu=GPU,
    log:
        "logs/train_quietstar/{dataset}/{thinker}.log",
    benchmark:
        "results/benchmarks/train_quietstar/{dataset}/{thinker}.tsv"
    conda:
        ENV
    script:
        "../scripts/train_quietstar.py"
