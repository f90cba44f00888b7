# Supervised tasks on the pretrained model, each next to a baseline that does not use it: variant classes from
# a labelled VCF (label = an INFO key), and region classes from a BED label set.


rule classify_variants:
    input:
        unpack(lambda w: run_files()),
        fasta=lambda w: fasta_of(VARIANT_TASKS[w.variant_task]["reference"]),
        vcf=lambda w: VARIANT_TASKS[w.variant_task]["vcf"],
    output:
        metrics="results/variant_classes/{variant_task}/metrics.json",
    params:
        run=lambda w, input: Path(input.model).parent,
        out=subpath(output.metrics, parent=True),
        window=config["classify_variants"]["window"],
        label_field=lambda w: VARIANT_TASKS[w.variant_task]["label_field"],
        classes=lambda w: class_options(w.variant_task),
        extra=config["classify_variants"]["extra"],
        device=model_device,
    log:
        "logs/classify_variants/{variant_task}.log",
    benchmark:
        "logs/benchmarks/classify_variants/{variant_task}.tsv"
    threads: 2
    resources:
        gpu=config["classify_variants"]["gpus"],
        mem_mb=8000,
        runtime=4 * 60,
    conda:
        "../envs/genoformer.yaml"
    shell:
        "OMP_NUM_THREADS={threads} genoformer classify-variants --reference {input.fasta} --vcf {input.vcf}"
        " --label-field {params.label_field} {params.classes} --checkpoint {params.run}"
        " --window {params.window} --device {params.device} {params.extra}"
        " --out {params.out}"
        " > {log} 2>&1"


rule classify_regions:
    input:
        unpack(lambda w: run_files()),
        fasta=lambda w: fasta_of(REGION_TASKS[w.region_task]["reference"]),
        bed=lambda w: REGION_TASKS[w.region_task]["bed"],
    output:
        metrics="results/regions/{region_task}/metrics.json",
        predictions="results/regions/{region_task}/predictions.tsv",
    params:
        run=lambda w, input: Path(input.model).parent,
        out=subpath(output.metrics, parent=True),
        window=config["classify_regions"]["window"],
        epochs=config["classify_regions"]["finetune_epochs"],
        extra=config["classify_regions"]["extra"],
        device=model_device,
    log:
        "logs/classify_regions/{region_task}.log",
    benchmark:
        "logs/benchmarks/classify_regions/{region_task}.tsv"
    threads: 2
    resources:
        gpu=config["classify_regions"]["gpus"],
        mem_mb=8000,
        runtime=4 * 60,
    conda:
        "../envs/genoformer.yaml"
    shell:
        "OMP_NUM_THREADS={threads} genoformer classify-regions --reference {input.fasta} --bed {input.bed}"
        " --checkpoint {params.run} --window {params.window} --finetune-epochs {params.epochs}"
        " --device {params.device} {params.extra}"
        " --out {params.out} > {log} 2>&1"
