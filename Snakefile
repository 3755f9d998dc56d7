# infscale: accuracy vs inference compute, reproducibly.
#   snakemake --cores 8 --resources gpu=1                      # default config.yaml (offline CPU demo)
#   snakemake --cores 8 --resources gpu=1 --configfile config/seed000.yaml
#   snakemake --profile profiles/slurm --configfile config/seed000.yaml
from snakemake.utils import min_version

min_version("9.0")


# config.yaml is the default; a --configfile replaces it rather than being merged into it, so a study
# config never inherits the demo's datasets, models or methods.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"


# `snakemake --report results/report.html`: this description, then the outputs marked with report() (docs/report.md)
report: "workflow/report/workflow.rst"


# resumable jobs keep their complete `.partial` file (a kill before Snakemake records the job resumes from it);
# once a run has succeeded, those beside finished outputs are no longer needed (docs/reproducibility.md)
onsuccess:
    remove_finished_partials("results")


rule all:
    input:
        lambda wildcards: final_outputs(),
    default_target: True


include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/merge_shards.smk"
include: "workflow/rules/grade.smk"
include: "workflow/rules/scoring.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/reports.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/train_quietstar.smk"
