from infscale.pipeline import logged
from infscale.reports.confidence import plot_confidence

with logged(snakemake.log[0]):
    plot_confidence(snakemake.input.metrics, snakemake.output.rules, snakemake.output.cost)
