from infscale.generate import run_generation
from infscale.pipeline import logged

with logged(snakemake.log[0]):
    run_generation(
        snakemake.input.test,
        snakemake.input.train,
        snakemake.input.model,
        snakemake.wildcards.method,
        snakemake.params.method,
        snakemake.output.samples,
        snakemake.output.timing,
        shard=int(snakemake.wildcards.shard),
        n_shards=snakemake.params.n_shards,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
