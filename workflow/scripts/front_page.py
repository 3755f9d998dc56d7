from infscale.pipeline import logged
from infscale.reports.front_page import front_page

with logged(snakemake.log[0]):
    front_page(snakemake.input.headline, snakemake.input.curves, snakemake.input.ranking, snakemake.output[0],
               n_boot=snakemake.params.n_boot, labelling_csv=next(iter(snakemake.input.labelling), None),
               cot_csv=next(iter(snakemake.input.cot), None))
