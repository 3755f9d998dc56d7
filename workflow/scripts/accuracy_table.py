from infscale.pipeline import logged
from infscale.reports.accuracy_table import accuracy_table

with logged(snakemake.log[0]):
    accuracy_table(snakemake.input, snakemake.output.csv, snakemake.output.md)
