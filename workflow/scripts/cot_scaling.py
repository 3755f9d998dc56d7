from infscale.reports.cot_scaling import write_cot_scaling
from infscale.pipeline import logged

with logged(snakemake.log[0]):
    write_cot_scaling(snakemake.params.runs, snakemake.params.models, snakemake.output, n_boot=snakemake.params.n_boot,
                      seed=snakemake.params.seed)
