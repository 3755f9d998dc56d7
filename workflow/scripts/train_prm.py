from infscale.pipeline import logged
from infscale.scoring.train_prm import train_value_head

with logged(snakemake.log[0]):
    train_value_head(snakemake.input.train, snakemake.input.model, snakemake.wildcards.scorer, snakemake.params.scorer,
                     snakemake.output.head, snakemake.output.quality, dataset=snakemake.wildcards.dataset,
                     seed=snakemake.params.seed, device=snakemake.params.device, threads=snakemake.threads)
