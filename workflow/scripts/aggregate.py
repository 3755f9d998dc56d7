from infscale.aggregate import aggregate
from infscale.io import read_json
from infscale.pipeline import logged

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    aggregate(snakemake.input.graded, snakemake.input.timing, snakemake.output[0], dataset=w.dataset,
              model=w.model, method=w.method, n_params=read_json(snakemake.input.model_spec)["n_params"],
              weights=snakemake.params.weights, seed=snakemake.params.seed,
              provenance=snakemake.params.provenance,
              **snakemake.params.aggregate)
