# The figures (PNG) and table pages (HTML) of `snakemake --report report.html`, made by `genoformer report <kind>`;
# each has a caption in workflow/report/. `snakemake` builds them all by default, so a finished run is ready for
# --report.


rule report_summary:
    input:
        run=f"runs/{RUN}/eval.json",
        samples=expand("results/eval/{sample}.json", sample=BAM_SAMPLES),
        variant_tasks=expand("results/variant_classes/{variant_task}/metrics.json", variant_task=VARIANT_TASKS),
        region_tasks=expand("results/regions/{region_task}/metrics.json", region_task=REGION_TASKS),
    output:
        report(
            "results/report/summary.html",
            caption="../report/summary.rst",
            category="0. Summary",
        ),
    params:
        evaluations=lambda w, input: " ".join(
            [f"{RUN}={input.run}"]
            + [f"{sample}={path}" for sample, path in zip(BAM_SAMPLES, input.samples)]
        ),
        tasks=lambda w, input: " ".join(
            ["--task"] * bool(VARIANT_TASKS or REGION_TASKS)
            + [f"{task}={path}" for task, path in zip(VARIANT_TASKS, input.variant_tasks)]
            + [f"{task}={path}" for task, path in zip(REGION_TASKS, input.region_tasks)]
        ),
    log:
        "logs/report/summary.log",
    benchmark:
        "logs/benchmarks/report_summary/summary.tsv"
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer report summary --eval {params.evaluations} {params.tasks} --out {output} > {log} 2>&1"


rule report_training_loss:
    input:
        unpack(lambda w: run_files()),
    output:
        report(
            "results/report/training_loss.png",
            caption="../report/training_loss.rst",
            category="1. Pretraining",
        ),
    params:
        metrics=lambda w, input: Path(input.model).with_name("metrics.jsonl"),
    log:
        "logs/report/training_loss.log",
    benchmark:
        "logs/benchmarks/report_training_loss/training_loss.tsv"
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer report loss --metrics {params.metrics} --out {output} > {log} 2>&1"


rule report_bits_per_base:
    input:
        run=f"runs/{RUN}/eval.json",
        samples=expand("results/eval/{sample}.json", sample=BAM_SAMPLES),
    output:
        report(
            "results/report/bits_per_base.png",
            caption="../report/bits_per_base.rst",
            category="1. Pretraining",
        ),
    params:
        evaluations=lambda w, input: " ".join(
            [f"{RUN}={input.run}"]
            + [f"{sample}={path}" for sample, path in zip(BAM_SAMPLES, input.samples)]
        ),
    log:
        "logs/report/bits_per_base.log",
    benchmark:
        "logs/benchmarks/report_bits_per_base/bits_per_base.tsv"
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer report bits-per-base --eval {params.evaluations} --out {output} > {log} 2>&1"


rule report_regions:
    input:
        predictions="results/regions/{region_task}/predictions.tsv",
    output:
        report(
            "results/report/regions/{region_task}.png",
            caption="../report/regions.rst",
            category="3. Region classification",
            labels={"task": "{region_task}"},
        ),
    log:
        "logs/report/regions/{region_task}.log",
    benchmark:
        "logs/benchmarks/report_regions/{region_task}.tsv"
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer report roc-pr --predictions {input.predictions} --title {wildcards.region_task}"
        " --out {output} > {log} 2>&1"


rule report_variant_classes:
    input:
        vcf="results/variants/{variant_set}.vcf.gz",
    output:
        report(
            "results/report/variant_classes/{variant_set}.png",
            caption="../report/variant_classes.rst",
            category="2. Variant effects",
            labels={"variant set": "{variant_set}", "figure": "scores by class"},
        ),
    log:
        "logs/report/variant_classes/{variant_set}.log",
    benchmark:
        "logs/benchmarks/report_variant_classes/{variant_set}.tsv"
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer report variant-classes --vcf {input.vcf} --out {output} > {log} 2>&1"


rule report_top_variants:
    input:
        vcf="results/variants/{variant_set}.vcf.gz",
    output:
        report(
            "results/report/top_variants/{variant_set}.html",
            caption="../report/top_variants.rst",
            category="2. Variant effects",
            labels={"variant set": "{variant_set}", "figure": "least expected variants"},
        ),
    log:
        "logs/report/top_variants/{variant_set}.log",
    benchmark:
        "logs/benchmarks/report_top_variants/{variant_set}.tsv"
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer report top-variants --vcf {input.vcf} --out {output} > {log} 2>&1"


rule report_variant_track:
    input:
        vcf="results/variants/{variant_set}.vcf.gz",
    output:
        report(
            "results/report/variant_track/{variant_set}.png",
            caption="../report/variant_track.rst",
            category="2. Variant effects",
            labels={"variant set": "{variant_set}", "figure": "genome track"},
        ),
    log:
        "logs/report/variant_track/{variant_set}.log",
    benchmark:
        "logs/benchmarks/report_variant_track/{variant_set}.tsv"
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer report variant-track --vcf {input.vcf} --out {output} > {log} 2>&1"


rule report_benchmarks:
    input:
        benchmark_files(),
    output:
        report(
            "results/report/benchmarks.png",
            caption="../report/benchmarks.rst",
            category="4. Run time",
        ),
    log:
        "logs/report/benchmarks.log",
    benchmark:
        "logs/benchmarks/report_benchmarks/benchmarks.tsv"
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer report benchmarks --benchmarks {input} --out {output} > {log} 2>&1"
