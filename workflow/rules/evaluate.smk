# Held-out bits/base and masked-token accuracy of the pretrained model, next to a Markov baseline fit on the
# same training split: on the pretraining genome, and on each sample's consensus genome. Both rules take their
# GPU from config evaluate.gpus (one key: they run the same forward passes) and run where it says (model_device).


rule evaluate:
    input:
        unpack(lambda w: run_files(w.reference)),
        manifest="tokens/{reference}/manifest.json",
    output:
        "runs/{reference}/eval.json",
    params:
        data=lambda w, input: Path(input.manifest).parent,
        run=lambda w, input: Path(input.model).parent,
        options=evaluate_options(),
        device=model_device,
    log:
        "logs/evaluate/{reference}.log",
    benchmark:
        "logs/benchmarks/evaluate/{reference}.tsv"
    threads: 2
    resources:
        gpu=config["evaluate"]["gpus"],
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/genoformer.yaml"
    shell:
        "OMP_NUM_THREADS={threads} genoformer evaluate --checkpoint {params.run} --data {params.data}"
        " --device {params.device} {params.options} --out {output} > {log} 2>&1"


rule evaluate_sample:
    input:
        unpack(lambda w: run_files()),
        manifest="tokens/samples/{sample}/manifest.json",
    output:
        "results/eval/{sample}.json",
    params:
        data=lambda w, input: Path(input.manifest).parent,
        run=lambda w, input: Path(input.model).parent,
        options=evaluate_options(),
        device=model_device,
    log:
        "logs/evaluate_sample/{sample}.log",
    benchmark:
        "logs/benchmarks/evaluate_sample/{sample}.tsv"
    threads: 2
    resources:
        gpu=config["evaluate"]["gpus"],
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/genoformer.yaml"
    shell:
        "OMP_NUM_THREADS={threads} genoformer evaluate --checkpoint {params.run} --data {params.data}"
        " --device {params.device} {params.options} --out {output} > {log} 2>&1"
