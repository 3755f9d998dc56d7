from infscale.pipeline import logged
from infscale.scoring.label_confidence import run_labelling

with logged(snakemake.log[0]):
    run_labelling(
        snakemake.input.samples,
        snakemake.input.questions,
        snakemake.input.labeller,
        snakemake.output[0],
        snakemake.params.labelling,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
