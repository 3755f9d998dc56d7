from infscale.aggregate import aggregate
from infscale.pipeline import logged

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    aggregate(snakemake.input.graded, snakemake.input.timing, snakemake.output[0], dataset=w.dataset,
              model=w.model, method=w.method, seed=snakemake.params.seed, **snakemake.params.aggregate)
