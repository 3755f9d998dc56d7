from infscale.models.convert_model import convert_model
from infscale.pipeline import logged

with logged(snakemake.log[0]):
    convert_model(snakemake.input[0], snakemake.output[0], snakemake.wildcards.engine, snakemake.wildcards.quantization)
