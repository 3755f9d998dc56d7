from infscale.pipeline import logged
from infscale.scoring.prm import score_responses

with logged(snakemake.log[0]):
    score_responses(snakemake.input.samples, snakemake.input.questions, snakemake.params.scorer, snakemake.output[0],
                    device=snakemake.params.device, threads=snakemake.threads)
