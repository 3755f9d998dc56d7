from infscale.pipeline import logged
from infscale.reports.headline_tables import write_headline_tables

with logged(snakemake.log[0]):
    write_headline_tables(snakemake.input.accuracy, snakemake.input.metrics, snakemake.params.methods,
                          snakemake.params.headline, dict(snakemake.output.items()),
                          seed_rounding=snakemake.params.seed_rounding,
                          cot_tables=dict(zip(("styles", "differences", "models"), snakemake.input.cot)))
