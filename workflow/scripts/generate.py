from infscale.generate import run_generation
from infscale.methods import Resources
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
        resources=Resources.from_job(dict(snakemake.input.items()), snakemake.params.scorer, snakemake.params.thinker),
    )
