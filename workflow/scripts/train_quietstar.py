from infscale.pipeline import logged
from infscale.train_quietstar import run_training

with logged(snakemake.log[0]):
    run_training(snakemake.input.model, snakemake.params.dataset, snakemake.input.tests, snakemake.wildcards.thinker,
                 snakemake.params.thinker, snakemake.output.weights, snakemake.output.curves, snakemake.output.plot,
                 snakemake.output.heldout, seed=snakemake.params.seed, device=snakemake.params.device,
                 threads=snakemake.threads)
