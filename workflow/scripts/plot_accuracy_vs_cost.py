from infscale.pipeline import logged
from infscale.reports.plots import plot_accuracy_vs_cost
from infscale.reports.tables import read_table

with logged(snakemake.log[0]):
    plot_accuracy_vs_cost(read_table(snakemake.input[0]), snakemake.output.png, x=snakemake.params.x)
