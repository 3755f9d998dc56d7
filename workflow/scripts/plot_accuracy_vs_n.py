import pandas as pd

from infscale.pipeline import logged
from infscale.reports.plots import plot_accuracy_vs_n

with logged(snakemake.log[0]):
    plot_accuracy_vs_n(pd.read_csv(snakemake.input[0], keep_default_na=False), snakemake.output.png)
