from infscale.merge_shards import merge_shards
from infscale.pipeline import logged

with logged(snakemake.log[0]):
    merge_shards(snakemake.input.samples, snakemake.input.timings, snakemake.output.samples, snakemake.output.timing)
