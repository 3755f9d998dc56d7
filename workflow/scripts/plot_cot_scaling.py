import pandas as pd

from infscale.pipeline import logged
from infscale.reports.plot_cot_scaling import plot_cot_improvement, plot_intersecting_lines

with logged(snakemake.log[0]):
    models = pd.read_csv(snakemake.input.models)
    plot_cot_improvement(models, pd.read_csv(snakemake.input.differences), snakemake.output.improvement)
    plot_intersecting_lines(models, snakemake.output.lines, max_requests=snakemake.params.max_requests)
