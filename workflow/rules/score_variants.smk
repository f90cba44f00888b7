# Zero-shot variant-effect scores, scattered: each variant set is scored by config score_variants.chunks jobs,
# `genoformer score-variants --shard i/n` scoring every n-th model window (variants sharing a window share its
# forward passes, so no window is split between jobs; on a cluster each job gets its own GPU), then gathered by
# `genoformer merge-vcf` into one bgzipped, indexed VCF (config vcf_index) plus one table in input order.


rule score_variants:
    input:
        unpack(lambda w: run_files()),
        fasta=lambda w: fasta_of(VARIANT_SET_REFERENCE[w.variant_set]),
        vcf=lambda w: VARIANT_SETS[w.variant_set],
    output:
        vcf=temp("results/variants/{variant_set}/shard-{chunk}.vcf.gz"),
        index=temp(f"results/variants/{{variant_set}}/shard-{{chunk}}.vcf.gz.{VCF_INDEX}"),
        table=temp("results/variants/{variant_set}/shard-{chunk}.tsv"),
    params:
        run=lambda w, input: Path(input.model).parent,
        shard=lambda w: f"{int(w.chunk)}/{len(CHUNKS)}",
        window=config["score_variants"]["window"],
        extra=config["score_variants"]["extra"],
        index=VCF_INDEX,
        device=model_device,
    log:
        "logs/score_variants/{variant_set}/{chunk}.log",
    benchmark:
        "logs/benchmarks/score_variants/{variant_set}.{chunk}.tsv"
    threads: 2
    resources:
        gpu=config["score_variants"]["gpus"],
        mem_mb=8000,
        runtime=4 * 60,
    conda:
        "../envs/genoformer.yaml"
    shell:
        "OMP_NUM_THREADS={threads} genoformer score-variants --reference {input.fasta} --vcf {input.vcf}"
        " --checkpoint {params.run} --window {params.window} --shard {params.shard}"
        " --device {params.device} {params.extra}"
        " --index {params.index} --out {output.vcf} --table {output.table} > {log} 2>&1"


rule merge_scored_variants:
    input:
        vcfs=expand("results/variants/{{variant_set}}/shard-{chunk}.vcf.gz", chunk=CHUNKS),
        indexes=expand("results/variants/{{variant_set}}/shard-{chunk}.vcf.gz.{index}", chunk=CHUNKS, index=VCF_INDEX),
        tables=expand("results/variants/{{variant_set}}/shard-{chunk}.tsv", chunk=CHUNKS),
    output:
        vcf="results/variants/{variant_set}.vcf.gz",
        index=f"results/variants/{{variant_set}}.vcf.gz.{VCF_INDEX}",
        table="results/variants/{variant_set}.tsv",
    params:
        index=VCF_INDEX,
    log:
        "logs/merge_scored_variants/{variant_set}.log",
    benchmark:
        "logs/benchmarks/merge_scored_variants/{variant_set}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer merge-vcf --vcfs {input.vcfs} --index {params.index} --out {output.vcf} --tables {input.tables}"
        " --table-out {output.table} > {log} 2>&1"
