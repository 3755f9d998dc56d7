from infscale.data.sample_dataset import DatasetConfig, write_splits
from infscale.pipeline import logged

with logged(snakemake.log[0]):
    cfg = DatasetConfig.from_config(snakemake.wildcards.dataset, snakemake.params.dataset)
    write_splits(cfg, snakemake.output.test, snakemake.output.train)
