# genoformer's Snakemake workflow: the rules, envs, schemas and report captions live in workflow/, the settings in
# config/. This file is the entry point, so `snakemake` runs from the repository root (README.md, "Quick start").
include: "workflow/Snakefile"


rule all:
    input:
        final_outputs(),
    default_target: True
