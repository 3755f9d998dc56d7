from infscale.pipeline import logged
from infscale.reports.plots import plot_efficiency_ranking
from infscale.reports.tables import read_table

with logged(snakemake.log[0]):
    plot_efficiency_ranking(read_table(snakemake.input[0]), snakemake.output.png)
