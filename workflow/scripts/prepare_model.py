from pathlib import Path

from infscale.models import ModelConfig
from infscale.models.prepare_model import prepare_model
from infscale.pipeline import logged

with logged(snakemake.log[0]):
    cfg = ModelConfig.from_config(snakemake.wildcards.model, snakemake.params.model)
    prepare_model(cfg, Path(snakemake.output[0]).parent)
