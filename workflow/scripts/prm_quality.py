from infscale.pipeline import logged
from infscale.reports.prm_quality import write_prm_quality

with logged(snakemake.log[0]):
    write_prm_quality(snakemake.input.trained, snakemake.params.runs, snakemake.input.graded, snakemake.input.scores,
                      snakemake.output.csv, snakemake.output.md, snakemake.output.pool_csv, snakemake.output.pool_md,
                      seed=snakemake.params.seed)
