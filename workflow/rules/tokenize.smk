# Tokenize the pretraining genome, and each sample's consensus genome from its reads.
# One job per genome, not per contig: `genoformer tokenize` streams a genome at tens of Mbp/s per core and
# writes one shard per contig plus a manifest holding the genome-wide split, so a per-contig scatter would
# only add a merge step (a human genome tokenizes in minutes on one core).


rule tokenize_reference:
    input:
        fasta=lambda w: fasta_of(w.reference),
    output:
        manifest="tokens/{reference}/manifest.json",
    params:
        out=subpath(output.manifest, parent=True),
        k=config["tokenize"]["k"],
        stride=config["tokenize"]["stride"],
        window=config["tokenize"]["window"],
        extra=config["tokenize"].get("extra", ""),
    log:
        "logs/tokenize_reference/{reference}.log",
    benchmark:
        "logs/benchmarks/tokenize_reference/{reference}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer tokenize --fasta {input.fasta} --k {params.k} --stride {params.stride}"
        " --window {params.window} {params.extra} --out {params.out} > {log} 2>&1"


rule tokenize_sample:
    input:
        fasta=lambda w: fasta_of(SAMPLE[w.sample]["reference"]),
        bam=lambda w: SAMPLE[w.sample]["bam"],
    output:
        manifest="tokens/samples/{sample}/manifest.json",
    params:
        out=subpath(output.manifest, parent=True),
        k=config["tokenize"]["k"],
        stride=config["tokenize"]["stride"],
        window=config["tokenize"]["window"],
        extra=config["tokenize"].get("extra", ""),
    log:
        "logs/tokenize_sample/{sample}.log",
    benchmark:
        "logs/benchmarks/tokenize_sample/{sample}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer tokenize --fasta {input.fasta} --bam {input.bam} --k {params.k} --stride {params.stride}"
        " --window {params.window} {params.extra} --out {params.out} > {log} 2>&1"
