from infscale.pipeline import logged
from infscale.reports.label_quality import plot_confidence, write_label_quality

with logged(snakemake.log[0]):
    write_label_quality(snakemake.params.runs, snakemake.input.graded, snakemake.input.labels,
                        snakemake.output.csv, snakemake.output.md, snakemake.output.png,
                        n_bins=snakemake.params.n_bins)
    plot_confidence(snakemake.input.metrics, snakemake.output.rules, snakemake.output.cost)
