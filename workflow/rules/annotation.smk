# Labelled sets derived from a reference's annotation (GFF3 with CDS features): the SNVs of a seeded sample
# of genes with their protein consequence (synonymous / missense / stop-gained ...; at most config
# coding_variants.per_class of each), and coding vs intergenic regions for the region classifier.


rule coding_variants:
    input:
        fasta=lambda w: fasta_of(w.reference),
        gff=lambda w: REFERENCES[w.reference]["annotation"],
    output:
        vcf="results/annotation/{reference}/coding_variants.vcf.gz",
        index=f"results/annotation/{{reference}}/coding_variants.vcf.gz.{VCF_INDEX}",
    params:
        genes=config["coding_variants"]["genes"],
        per_class=lambda w: (
            ""
            if config["coding_variants"]["per_class"] is None
            else f"--per-class {config['coding_variants']['per_class']}"
        ),
        seed=config["coding_variants"]["seed"],
        table=lambda w: REFERENCES[w.reference].get("genetic_code", 11),
        index=VCF_INDEX,
    log:
        "logs/coding_variants/{reference}.log",
    benchmark:
        "logs/benchmarks/coding_variants/{reference}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer coding-variants --reference {input.fasta} --gff {input.gff} --genes {params.genes}"
        " {params.per_class} --seed {params.seed} --table {params.table} --index {params.index}"
        " --out {output.vcf} > {log} 2>&1"


rule region_labels:
    input:
        fasta=lambda w: fasta_of(w.reference),
        gff=lambda w: REFERENCES[w.reference]["annotation"],
    output:
        bed="results/annotation/{reference}/regions.bed",
    params:
        length=config["region_labels"]["length"],
        per_class=config["region_labels"]["per_class"],
        seed=config["region_labels"]["seed"],
    log:
        "logs/region_labels/{reference}.log",
    benchmark:
        "logs/benchmarks/region_labels/{reference}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/genoformer.yaml"
    shell:
        "genoformer region-labels --reference {input.fasta} --gff {input.gff} --length {params.length}"
        " --per-class {params.per_class} --seed {params.seed} --out {output.bed} > {log} 2>&1"
