# Masked-LM pretraining of the Reformer on the tokenized reference.
# A killed job resumes: snakemake deletes the job's declared outputs (the top-level weights) before it reruns
# it, but not runs/<name>/checkpoints/ nor metrics.jsonl, and the job passes --resume whenever a checkpoint is
# there. `genoformer pretrain --resume` refuses checkpoints made with another config or on other tokens (genome,
# window, train/val/test split): after changing the pretraining config or config tokenize, delete runs/<name>/
# (the workflow never throws checkpoints away itself; workflow_checks.check_pretrain_run stops the DAG, naming the
# changed values, when the config file, pretrain.set or tokenize k/stride differ from the newest checkpoint's,
# or when tokenize's --contigs/--regions would choose other sequences, or its window options would cut
# tokens/<name>/ into other windows, than it holds).
# With config pretrain.gpus > 1 (or `set-resources: pretrain: gpu: N` in a profile) pretraining runs as
# `torchrun --standalone --nproc_per_node N` (one DDP process per GPU, NCCL). The job's `gpu` resource also sets
# the pretraining config's run.device, whatever the config file says (model_device: `cpu` with no GPU, else
# `auto`). A resume may change it (a run started on the CPU goes on on a GPU, and back), the only config key it may.


rule pretrain:
    input:
        manifest="tokens/{reference}/manifest.json",
        config=config["pretrain"]["config"],
    output:
        **run_files("{reference}"),
    params:
        data=lambda w, input: Path(input.manifest).parent,
        run=subpath(output.model, parent=True),
        launcher=pretrain_launcher,
        device=model_device,
        overrides=" ".join(
            f"--set {shlex.quote(f'{key}={value}')}" for key, value in config["pretrain"]["set"].items()
        ),
    log:
        "logs/pretrain/{reference}.log",
    benchmark:
        "logs/benchmarks/pretrain/{reference}.tsv"
    threads: 2
    resources:
        gpu=config["pretrain"]["gpus"],
        mem_mb=8000,
        runtime=24 * 60,
    conda:
        "../envs/genoformer.yaml"
    shell:
        """
        (
        echo "pretrain on $(hostname): CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-}} SLURM_JOB_ID=${{SLURM_JOB_ID:-}}"
        resume=""
        if ls -d {params.run}/checkpoints/step-* > /dev/null 2>&1; then resume="--resume"; fi
        OMP_NUM_THREADS={threads} {params.launcher} pretrain --data {params.data:q} --config {input.config:q} \
            --out {params.run:q} $resume --set run.device={params.device} {params.overrides}
        ) > {log} 2>&1
        """
