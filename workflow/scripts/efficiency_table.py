from infscale.pipeline import logged
from infscale.reports.efficiency_table import efficiency_report_file

with logged(snakemake.log[0]):
    efficiency_report_file(snakemake.input[0], snakemake.output.csv, snakemake.output.md,
                           seed_rounding=snakemake.params.seed_rounding)
