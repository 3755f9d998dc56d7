from infscale.pipeline import logged
from infscale.scoring.score_prm import score_prm
from infscale.scoring.scorers import ScorerFiles

with logged(snakemake.log[0]):
    score_prm(snakemake.input.samples, snakemake.input.questions, snakemake.wildcards.scorer, snakemake.params.scorer,
              snakemake.output[0], files=ScorerFiles.from_inputs(dict(snakemake.input.items())),
              device=snakemake.params.device, threads=snakemake.threads)
