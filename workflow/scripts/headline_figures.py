from infscale.pipeline import logged
from infscale.reports.headline_figures import write_headline_figures

with logged(snakemake.log[0]):
    write_headline_figures(snakemake.input.accuracy, snakemake.input.headline, snakemake.params.methods,
                           snakemake.output.curves, snakemake.output.ranking)
