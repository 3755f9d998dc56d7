from infscale.pipeline import logged
from infscale.scoring.prm_train import quality_table

with logged(snakemake.log[0]):
    quality_table(list(snakemake.input), snakemake.output.csv, snakemake.output.md)
