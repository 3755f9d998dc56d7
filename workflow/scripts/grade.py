from infscale.grade import grade_responses
from infscale.pipeline import logged

with logged(snakemake.log[0]):
    grade_responses(snakemake.input.samples, snakemake.input.questions, snakemake.output[0],
                    mode=snakemake.params.mode)
