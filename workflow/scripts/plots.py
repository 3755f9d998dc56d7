from infscale.pipeline import logged
from infscale.reports.plots import write_plots

with logged(snakemake.log[0]):
    out = snakemake.output
    write_plots(snakemake.input.accuracy, snakemake.input.efficiency, out.n, out.tflops, out.seconds, out.ranking)
