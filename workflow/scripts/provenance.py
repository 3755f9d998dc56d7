from infscale.pipeline import logged
from infscale.provenance import write_provenance

with logged(snakemake.log[0]):
    write_provenance(snakemake.output[0], config=snakemake.params.config, model_specs=snakemake.input.models,
                     threads=snakemake.params.threads, repo=snakemake.params.repo,
                     constraints=snakemake.input.constraints)
