"""classify-variants: labels from INFO, the trained classifier next to its baselines, predictions as VCF."""

import json
import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pysam
import pytest

from genoformer.cli import main
from genoformer.errors import ConfigError, InputError
from genoformer.io.fasta import Reference
from genoformer.io.vcf import Variant, read_variants
from genoformer.tasks.baselines import composition_llr, genome_composition, markov_llr
from genoformer.tasks.coding import coding_snvs, write_coding_vcf
from genoformer.tasks.linear import LinearModel
from genoformer.tasks.variant_classes import context_features, model_features, variant_contexts
from genoformer.tasks.variant_labels import variant_labels
from genoformer.train.markov import MarkovModel, count, interpolate
from tiny_pretrained import CDIPH, tiny_run  # noqa: F401  (tiny_run is a fixture)

CONTIG = "NC_000932.1"
CDIPH_GFF = CDIPH.parent / "NZ_LN831026.1.pyrodigal_predicted_CDS.gff3"


@pytest.fixture(scope="module")
def chloroplast(chloroplast_fasta):
    with Reference(chloroplast_fasta) as reference:
        yield reference


def labelled_vcf(path, reference, infos):
    """A VCF of SNVs at positions 1001, 1011, ... with the given INFO strings."""
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID={CONTIG},length={reference.contigs[CONTIG]}>",
             '##INFO=<ID=CLS,Number=1,Type=String,Description="class">',
             '##INFO=<ID=BIN,Number=1,Type=Integer,Description="0/1 label">',
             '##INFO=<ID=HIT,Number=0,Type=Flag,Description="flag label">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for i, info in enumerate(infos):
        pos = 1001 + 10 * i
        ref = reference.fetch(CONTIG, pos - 1, pos).upper()
        lines.append(f"{CONTIG}\t{pos}\t.\t{ref}\t{'A' if ref != 'A' else 'C'}\t.\t.\t{info}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_labels_from_info_values_flags_and_0_1(chloroplast, tmp_path):
    infos = ["CLS=stop;BIN=1;HIT", "CLS=syn;BIN=0", "CLS=mis;BIN=1", "CLS=stop;BIN=0;HIT", "CLS=syn;BIN=1", "BIN=0"]
    variants = read_variants(labelled_vcf(tmp_path / "l.vcf", chloroplast, infos), chloroplast)
    named = variant_labels(variants, "CLS", ["stop"], ["syn"])
    assert named.indices.tolist() == [0, 1, 3, 4] and named.labels.tolist() == [1, 0, 1, 0]
    assert named.classes == ["syn", "stop"] and named.unlabelled == 2
    rest = variant_labels(variants, "CLS", ["stop"])  # without --negative every other value is negative
    assert rest.indices.tolist() == [0, 1, 2, 3, 4] and rest.labels.tolist() == [1, 0, 0, 1, 0]
    assert variant_labels(variants, "BIN").labels.tolist() == [1, 0, 1, 0, 1, 0]
    assert variant_labels(variants, "HIT").labels.tolist() == [1, 0, 0, 1, 0, 0]
    with pytest.raises(ConfigError, match="CLS' has values mis, stop, syn; name the classes"):
        variant_labels(variants, "CLS")
    with pytest.raises(InputError, match="INFO field 'NOPE' is not declared"):
        variant_labels(variants, "NOPE")
    with pytest.raises(InputError, match="each class needs at least 2"):
        variant_labels(variants, "CLS", ["mis"], ["syn"])
    sub = variant_labels(variants, "BIN").subsample(2, seed=0)
    assert np.bincount(sub.labels).tolist() == [2, 2] and list(sub.indices) == sorted(sub.indices)


def test_missing_labels_are_left_out_and_unreadable_ones_refused(chloroplast, tmp_path, caplog):
    """BIN=. is left out with a warning naming the record, not a class 'None' (which, with only --positive,
    silently became the negative class); BIN=abc in an Integer field, which htslib reads as missing without a
    word, is an error naming the record."""
    infos = ["BIN=1", "BIN=0", "BIN=.", "BIN=1", "BIN=0", "BIN=."]
    variants = read_variants(labelled_vcf(tmp_path / "l.vcf", chloroplast, infos), chloroplast)
    with caplog.at_level("WARNING"):
        labels = variant_labels(variants, "BIN")
    assert labels.indices.tolist() == [0, 1, 3, 4] and labels.unlabelled == 2
    assert f"l.vcf record 3 ({CONTIG}:1021): INFO BIN has no value ('.'); 2 such" in caplog.text
    assert variant_labels(variants, "BIN", ["1"]).indices.tolist() == [0, 1, 3, 4]
    infos[2] = "BIN=abc"
    with pytest.raises(InputError, match=rf"l.vcf record 3 \(line 9, {CONTIG}:1021\): INFO BIN='abc' is not an "
                                         "Integer as its header declares"):
        read_variants(labelled_vcf(tmp_path / "l.vcf", chloroplast, infos), chloroplast, strict_info=("BIN",))


def test_a_missing_string_label_is_left_out_not_a_class(chloroplast, tmp_path, caplog):
    """pysam reads a missing String value (CLS=.) as the text '.', not None: it is left out with the warning
    like a missing number, not made a class ('.' would be negative under --positive alone)."""
    infos = ["CLS=stop", "CLS=syn", "CLS=.", "CLS=stop", "CLS=syn", "CLS=."]
    variants = read_variants(labelled_vcf(tmp_path / "l.vcf", chloroplast, infos), chloroplast)
    with caplog.at_level("WARNING"):
        labels = variant_labels(variants, "CLS", ["stop"])
    assert labels.indices.tolist() == [0, 1, 3, 4] and labels.labels.tolist() == [1, 0, 1, 0]
    assert labels.unlabelled == 2
    assert f"l.vcf record 3 ({CONTIG}:1021): INFO CLS has no value ('.'); 2 such" in caplog.text


def test_named_label_values_must_occur(chloroplast, tmp_path):
    """A class value named that no variant has (a typo, another spelling) is an error listing the values there
    are, even when the class has other variants; so is a field no variant has a value in."""
    infos = ["CLS=stop;BIN=1", "CLS=syn", "CLS=stop", "CLS=syn", "CLS=mis"]
    variants = read_variants(labelled_vcf(tmp_path / "l.vcf", chloroplast, infos), chloroplast)
    with pytest.raises(ConfigError) as err:
        variant_labels(variants, "CLS", ["stop", "Stop_gained"], ["syn"])
    assert str(err.value) == f"{tmp_path / 'l.vcf'}: no variant has the positive label value(s) Stop_gained in " \
        "INFO field 'CLS' (its values: mis, stop, syn)"
    with pytest.raises(ConfigError, match="no variant has the negative label value\\(s\\) synonymous in"):
        variant_labels(variants, "CLS", ["stop"], ["synonymous"])
    with pytest.raises(InputError, match="l.vcf: no variant has a value in INFO field 'BIN'"):
        variant_labels(read_variants(labelled_vcf(tmp_path / "l.vcf", chloroplast, ["CLS=stop"] * 4), chloroplast),
                       "BIN")


def test_a_multi_allelic_record_labels_each_alt_by_its_own_number_a_value(chloroplast, tmp_path):
    """CLS declared Number=A: each ALT of a record gets its own value, and an ALT whose value is '.' is left out."""
    vcf = labelled_vcf(tmp_path / "l.vcf", chloroplast, ["CLS=stop", "CLS=syn", "CLS=stop", "CLS=syn"])
    text = vcf.read_text().replace("ID=CLS,Number=1", "ID=CLS,Number=A")
    lines = text.splitlines()
    fields = lines[-1].split("\t")
    second = next(base for base in "ACGT" if base not in (fields[3], fields[4]))
    lines[-1] = "\t".join(fields[:4] + [f"{fields[4]},{second}"] + fields[5:7] + ["CLS=syn,."])
    fields = lines[-2].split("\t")
    second = next(base for base in "ACGT" if base not in (fields[3], fields[4]))
    lines[-2] = "\t".join(fields[:4] + [f"{fields[4]},{second}"] + fields[5:7] + ["CLS=stop,syn"])
    vcf.write_text("\n".join(lines) + "\n")
    variants = read_variants(vcf, chloroplast)
    labels = variant_labels(variants, "CLS", ["stop"])
    assert [v.record for v in variants.variants] == [1, 2, 3, 3, 4, 4]
    assert labels.indices.tolist() == [0, 1, 2, 3, 4] and labels.labels.tolist() == [1, 0, 1, 0, 0]


def test_a_value_that_differs_from_a_named_one_only_in_case_or_spaces_is_an_error(chloroplast, tmp_path):
    """'Stop' next to the named 'stop' is a spelling of that class, not another value: under --positive alone it
    would silently join the negative class, with both classes named it would be dropped."""
    infos = ["CLS=stop", "CLS=syn", "CLS=Stop", "CLS=stop", "CLS=syn", "CLS=mis"]
    variants = read_variants(labelled_vcf(tmp_path / "l.vcf", chloroplast, infos), chloroplast)
    for negative in (None, ["syn"]):
        with pytest.raises(ConfigError) as err:
            variant_labels(variants, "CLS", ["stop"], negative)
        assert str(err.value) == f"{tmp_path / 'l.vcf'}: INFO field 'CLS' has the value 'Stop', which differs from " \
            "the positive label value 'stop' only in case or spaces; name it too, or correct the file"
    assert variant_labels(variants, "CLS", ["stop", "Stop"]).labels.tolist() == [1, 0, 1, 1, 0, 0]


def test_one_variant_with_both_labels_is_an_error_naming_both_records(chloroplast, tmp_path):
    vcf = labelled_vcf(tmp_path / "l.vcf", chloroplast, ["BIN=1", "BIN=0", "BIN=1", "BIN=0"])
    lines = vcf.read_text().splitlines()
    vcf.write_text("\n".join(lines[:-1] + [lines[-2].replace("BIN=1", "BIN=0"), lines[-1]]) + "\n")
    variants = read_variants(vcf, chloroplast)
    with pytest.raises(InputError, match=rf"l.vcf records 3 and 4: variant {CONTIG}:1021 \w>\w has INFO BIN of "
                                         r"both classes \('1' and '0'\)"):
        variant_labels(variants, "BIN")
    vcf.write_text("\n".join(lines[:-1] + [lines[-2], lines[-1]]) + "\n")  # the same label twice is fine
    assert variant_labels(read_variants(vcf, chloroplast), "BIN").labels.tolist() == [1, 0, 1, 1, 0]


def test_context_baseline_sees_the_created_kmers(chloroplast, tmp_path):
    variants = read_variants(labelled_vcf(tmp_path / "l.vcf", chloroplast, ["BIN=1"]), chloroplast).variants
    features = context_features(variant_contexts(variants, chloroplast, flank=4), k=2)
    ref_counts, change = features[0, :16], features[0, 16:]
    assert ref_counts.sum() == 8 and change.sum() == 0  # 9 bases -> 8 dinucleotides, ALT keeps the length
    assert (change != 0).sum() >= 2  # the SNV destroys and creates dinucleotides


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_cli_trains_evaluates_and_predicts(tiny_run, tmp_path):
    rng = np.random.default_rng(0)
    with Reference(CDIPH) as reference:
        snvs = coding_snvs(reference, CDIPH_GFF, n_genes=4, seed=5)
        chosen = {name: [snvs[i] for i in rng.choice(np.flatnonzero([s.consequence == name for s in snvs]), size,
                                                      replace=False)]
                  for name, size in (("stop_gained", 40), ("synonymous", 40), ("missense", 10))}
        labelled = chosen["stop_gained"] + chosen["synonymous"]
        write_coding_vcf(tmp_path / "coding.vcf.gz", labelled + chosen["missense"], reference, source="test")
        write_coding_vcf(tmp_path / "new.vcf.gz", labelled, reference, source="test")
    out = tmp_path / "out"
    code = main(["classify-variants", "--reference", str(CDIPH), "--vcf", str(tmp_path / "coding.vcf.gz"),
                 "--label-field", "CONSEQUENCE", "--positive", "stop_gained", "--negative", "synonymous",
                 "--checkpoint", str(tiny_run), "--out", str(out), "--window", "128", "--window-step", "64",
                 "--bootstrap", "200", "--batch-size", "16",
                 "--predict", str(tmp_path / "new.vcf.gz")])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == {"negative": "synonymous", "positive": "stop_gained"}
    split = metrics["split"]
    assert split["method"] == "blocks" and split["n_train"] + split["n_test"] == 80 and split["n_test"] > 0
    assert metrics["left_out"] == {"unlabelled": 10, "no_llr": 0}  # missense is in neither class
    for name in ("model_probe", "kmer_baseline", "zero_shot_neg_llr", "composition_neg_llr"):
        auroc = metrics["test"][name]["auroc"]
        assert auroc["ci95"][0] <= auroc["value"] <= auroc["ci95"][1]
    assert "accuracy" in metrics["test"]["model_probe"] and "accuracy" not in metrics["test"]["zero_shot_neg_llr"]
    predictions = pd.read_csv(out / "predictions.tsv", sep="\t")
    assert set(predictions["split"]) == {"train", "test"} and set(predictions["label"]) == {"stop_gained", "synonymous"}
    assert predictions["prob_model"].between(0, 1).all() and predictions["prob_kmer"].between(0, 1).all()
    assert np.isfinite(predictions["composition_LLR"]).all() and predictions["composition_LLR"].nunique() > 1
    # the saved classifier is the one that made the predictions
    probe = LinearModel.from_json(json.loads((out / "classifier.json").read_text())["model_probe"])
    assert probe.classes == ["synonymous", "stop_gained"] and probe.coef.shape == (1, 2 * 32 + 6)
    with pysam.VariantFile(str(out / "predicted.vcf.gz")) as predicted:
        records = list(predicted)
        assert "GF_PROB" in predicted.header.info and "##genoformer_checkpoint_sha256=" in str(predicted.header)
    assert len(records) == 80 and all(0 <= r.info["GF_PROB"] <= 1 for r in records)
    # the same variants predicted anew get the probabilities they got in training (same windows, same classifier)
    known = {(p, a): prob for p, a, prob in zip(predictions["pos"], predictions["alt"], predictions["prob_model"])}
    assert [r.info["GF_PROB"] for r in records] == pytest.approx([known[r.pos, r.alts[0]] for r in records], abs=1e-5)


@pytest.mark.slow
def test_bad_label_field_is_one_line_exit_2(chloroplast, chloroplast_fasta, tmp_path):
    vcf = labelled_vcf(tmp_path / "l.vcf", chloroplast, ["BIN=1", "BIN=0"])
    result = subprocess.run([sys.executable, "-m", "genoformer", "-q", "classify-variants", "--reference",
                             str(chloroplast_fasta), "--vcf", str(vcf), "--label-field", "CLINSIG", "--checkpoint",
                             str(tmp_path), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "INFO field 'CLINSIG' is not declared" in result.stderr and not (tmp_path / "out").exists()


def test_predict_vcf_is_checked_before_the_model_is_loaded(chloroplast, chloroplast_fasta, tmp_path, capsys):
    """A --predict VCF that is missing (or bad) fails before the checkpoint is even loaded, not after training:
    here the checkpoint does not exist either, and the error is about the --predict file."""
    vcf = labelled_vcf(tmp_path / "l.vcf", chloroplast, ["BIN=1", "BIN=0"] * 3)
    assert main(["-q", "classify-variants", "--reference", str(chloroplast_fasta), "--vcf", str(vcf),
                 "--label-field", "BIN", "--predict", str(tmp_path / "new.vcf"), "--checkpoint",
                 str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"genoformer classify-variants: error: {tmp_path / 'new.vcf'}: VCF file not found"
    assert not (tmp_path / "out").exists()


def test_model_features_layout():
    from genoformer.tasks.variants import VariantScores
    n, dim = 3, 4
    scores = VariantScores(llr=np.ones((n, 2)), emb_local=2 * np.ones((n, 2)), emb_pooled=3 * np.ones((n, 2)),
                           window_start=np.zeros(n), window_end=np.ones(n), scored=np.ones(n, bool),
                           local_delta=np.arange(n * 2 * dim, dtype=float).reshape(n, 2, dim))
    features = model_features(scores)
    assert features.shape == (n, 2 * dim + 6)
    assert features[1, :dim].tolist() == scores.local_delta[1, 0].tolist()
    assert features[1, dim:2 * dim].tolist() == scores.local_delta[1, 1].tolist()
    assert features[0, 2 * dim:].tolist() == [1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize("flags, message", [
    (["--context-k", "0"], "--context-k 0: must be from 1 to 8"),
    (["--context-k", "20"], "--context-k 20: must be from 1 to 8"),
    (["--context", "-5"], "--context -5: must be at least 0"),
    (["--context", "1", "--context-k", "4"], "--context-k 4: longer than the 3 bp"),
    (["--bootstrap", "0"], "--bootstrap 0: must be at least 1"),
    (["--test-fraction", "1.5"], "--test-fraction 1.5: must be greater than 0 and less than 1"),
    (["--test-fraction", "0"], "--test-fraction 0.0: must be greater than 0 and less than 1"),
])
def test_flags_out_of_range_are_one_line_exit_2(tmp_path, capsys, chloroplast_fasta, flags, message):
    """Checked before any file is read or model loaded: nothing is trained, no output folder appears."""
    code = main(["classify-variants", "--reference", str(chloroplast_fasta), "--vcf", str(tmp_path / "l.vcf"),
                 "--label-field", "BIN", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "out"), *flags])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error
    assert error.startswith(f"genoformer classify-variants: error: {message}") and not (tmp_path / "out").exists()


def test_a_label_htslib_would_misread_is_refused_by_the_command(chloroplast, chloroplast_fasta, tmp_path, capsys):
    """BIN=abc in an Integer label field: htslib drops it without a word. Elsewhere in a VCF that is a warning
    (a header that misdeclares a passed-through field); in the label field it would silently unlabel a variant,
    so classify-variants stops, before any model is loaded."""
    vcf = labelled_vcf(tmp_path / "l.vcf", chloroplast, ["BIN=1", "BIN=0", "BIN=abc", "BIN=1", "BIN=0"])
    code = main(["classify-variants", "--reference", str(chloroplast_fasta), "--vcf", str(vcf), "--label-field",
                 "BIN", "--checkpoint", str(tmp_path / "absent"), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error and not (tmp_path / "out").exists()
    assert error == f"genoformer classify-variants: error: {vcf} record 3 (line 9, {CONTIG}:1021): INFO BIN='abc' " \
        "is not an Integer as its header declares"


def composition_from_codes(reference):
    """genome_composition as it was: the order-0 chain of every contig's base codes, counted by the Markov counter."""
    pieces = (reference.codes(contig)[0] for contig in reference.contigs)
    return interpolate(count(pieces, 0), 0, 1.0)


def test_genome_composition_equals_the_codes_counted(cdiph_fasta, tmp_path):
    """The raw-byte count gives exactly the tables of the codes counted, on the bundled bgzipped genome and on a
    random multi-contig FASTA with lowercase, U, N and the other ambiguity codes."""
    rng = np.random.default_rng(0)
    alphabet = list("ACGTacgtUuNnRYSWKMBDHVrykm")
    random_fasta = tmp_path / "random.fa"
    random_fasta.write_text("".join(f">c{i}\n" + "".join(rng.choice(alphabet, int(n))) + "\n"
                                    for i, n in enumerate(rng.integers(1, 5000, 5))))
    for path in (cdiph_fasta, random_fasta):
        with Reference(path) as reference:
            model = genome_composition(reference)
            assert model.order == 0 and model.concentration == 1.0
            np.testing.assert_array_equal(model.tables[0], composition_from_codes(reference)[0])


def test_composition_llr_is_the_log_ratio_of_genome_base_frequencies(chloroplast, chloroplast_fasta):
    """For SNVs and a deletion, against base frequencies counted base by base over the chloroplast (smoothed as
    the Markov chains are: (n + 1/4) / (N + 1))."""
    sequence = chloroplast.fetch(CONTIG, 0, chloroplast.contigs[CONTIG]).upper()
    counts = Counter(base for base in sequence if base in "ACGT")
    total = sum(counts.values())
    frequency = {base: (counts[base] + 0.25) / (total + 1) for base in "ACGT"}
    variants = []
    for pos, alt in ((1001, "A"), (5003, "G"), (20007, "T"), (77777, "C")):
        ref = sequence[pos - 1]
        variants.append(Variant(CONTIG, pos, ref, alt if alt != ref else "A" if ref != "A" else "C", None, None, (),
                                {}, len(variants) + 1))
    deletion = sequence[9_999:10_002]
    variants.append(Variant(CONTIG, 10_000, deletion, deletion[0], None, None, (), {}, 5))
    expected = [math.log(frequency[v.alt]) - sum(math.log(frequency[b]) for b in v.ref) for v in variants[:4]]
    expected.append(-sum(math.log(frequency[b]) for b in deletion[1:]))
    np.testing.assert_allclose(composition_llr(variants, chloroplast), expected, rtol=1e-12)


def test_markov_llr_sums_the_chain_over_the_allele_and_the_bases_after_it(chloroplast):
    """An order-2 chain of the chloroplast: log P(ALT) - log P(REF) of the allele and the 2 bases after it, each
    base given the 2 before it, computed base by base, for an SNV, a deletion and an insertion; NaN where the
    2 bases before or after run past the contig."""
    length = chloroplast.contigs[CONTIG]
    sequence = chloroplast.fetch(CONTIG, 0, length).upper()
    tables = interpolate(count([chloroplast.codes(CONTIG)[0]], 2), 2, 2.0)
    markov = MarkovModel(order=2, concentration=2.0, tables=tables)
    code = {base: i for i, base in enumerate("ACGT")}

    def log_p(bases):  # natural log of bases[2:], each given the two before it
        return sum(tables[2][4 * code[bases[i - 2]] + code[bases[i - 1]], code[bases[i]]]
                   for i in range(2, len(bases))) * math.log(2)

    def variant(pos, ref, alt):
        return Variant(CONTIG, pos, ref, alt, None, None, (), {}, 1)

    snv = variant(1001, sequence[1000], "A" if sequence[1000] != "A" else "C")
    deletion = variant(5000, sequence[4999:5002], sequence[4999])
    insertion = variant(7000, sequence[6999], sequence[6999] + "GT")
    expected = [log_p(sequence[v.pos - 3:v.pos - 1] + v.alt + sequence[v.pos - 1 + len(v.ref):v.pos + len(v.ref) + 1])
                - log_p(sequence[v.pos - 3:v.pos + len(v.ref) + 1]) for v in (snv, deletion, insertion)]
    near_ends = [variant(2, sequence[1], "A" if sequence[1] != "A" else "C"),
                 variant(length - 1, sequence[-2], "A" if sequence[-2] != "A" else "C")]
    scores = markov_llr([snv, deletion, insertion, *near_ends], chloroplast, markov, 2)
    np.testing.assert_allclose(scores[:3], expected, rtol=1e-12)
    assert np.isnan(scores[3:]).all()


def test_a_number_r_label_labels_each_alt_by_its_own_entry(allele_type_vcf, human_q, caplog):
    """ALLELE_TYPE (Number=R: REF's entry first) on the real freebayes calls, q:186 made T>C,TA: each ALT takes
    its own entry, as it takes its own TYPE (Number=A); the REF's entry labels nothing; a '.' entry leaves its ALT
    out."""
    with Reference(human_q / "q.fa") as reference:
        variants = read_variants(allele_type_vcf(), reference, strict_info=("ALLELE_TYPE",))
        missing = read_variants(allele_type_vcf(("ref", ".", "ins")), reference, strict_info=("ALLELE_TYPE",))
    assert [(v.record, v.alt, v.info["ALLELE_TYPE"]) for v in variants.variants[:3]] == [
        (1, "C", ("ref", "snp")), (1, "TA", ("ref", "ins")), (2, "T", ("ref", "snp"))]
    by_r = variant_labels(variants, "ALLELE_TYPE", ["snp"], ["del", "ins"])
    by_a = variant_labels(variants, "TYPE", ["snp"], ["del", "ins"])
    assert by_r.labels.tolist() == by_a.labels.tolist() and by_r.indices.tolist() == by_a.indices.tolist()
    assert by_r.labels.tolist()[:2] == [1, 0] and Counter(by_r.labels.tolist()) == {1: 14, 0: 3}
    rest = variant_labels(variants, "ALLELE_TYPE", ["snp"])  # every other ALT value negative; 'ref' is none
    assert rest.classes == ["other", "snp"] and rest.labels.tolist() == by_r.labels.tolist()
    with pytest.raises(ConfigError, match=r"no variant has the negative label value\(s\) ref in INFO field "
                                          r"'ALLELE_TYPE' \(its values: del, ins, snp\)"):
        variant_labels(variants, "ALLELE_TYPE", ["snp"], ["ref"])
    with caplog.at_level("WARNING", logger="genoformer.tasks.variant_labels"):
        one_out = variant_labels(missing, "ALLELE_TYPE", ["snp"], ["del", "ins"])
    assert one_out.indices.tolist()[:2] == [1, 2] and one_out.unlabelled == 1
    assert "record 1 (q:186): INFO ALLELE_TYPE has no value ('.'); 1 such variant(s) left out" in caplog.text


@pytest.mark.parametrize("field, values, problem", [
    ("ALLELE_TYPE", dict(allele_types=("ref", "snp")), "INFO ALLELE_TYPE has 2 value(s) for 2 ALT(s); it is "
     "declared Number=R (one value for REF and one per ALT), so 3"),
    ("ALLELE_TYPE", dict(allele_types=("ref", "snp", "ins", "del")), "INFO ALLELE_TYPE has 4 value(s) for 2 "
     "ALT(s); it is declared Number=R (one value for REF and one per ALT), so 3"),
    ("TYPE", dict(types=("snp",)), "INFO TYPE has 1 value(s) for 2 ALT(s); it is declared Number=A (one value per "
     "ALT), so 2"),
])
def test_a_per_allele_label_of_the_wrong_count_is_one_line_exit_2(allele_type_vcf, human_q, tmp_path, capsys, field,
                                                                   values, problem):
    """No entry of such a value can be told to be an ALT's own: classify-variants stops before any model is
    loaded, naming the record; read as a passed-through field (not the label) the value is kept whole."""
    vcf = allele_type_vcf(**values)
    code = main(["classify-variants", "--reference", str(human_q / "q.fa"), "--vcf", str(vcf), "--label-field",
                 field, "--positive", "snp", "--checkpoint", str(tmp_path / "absent"), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and not (tmp_path / "out").exists()
    assert error == f"genoformer classify-variants: error: {vcf} record 1 (q:186): {problem}"
    with Reference(human_q / "q.fa") as reference:
        first = read_variants(vcf, reference).variants[0]
    assert first.info[field] == next(iter(values.values()))


def test_a_class_left_without_llrs_is_one_line_exit_2(chloroplast, chloroplast_fasta, tmp_path, capsys):
    """Every positive is a 150 bp deletion, longer than the 128 bp windows allow: none has an LLR, so all are left
    out. The classifier then saw one class and scikit-learn raised a traceback; now the file, the class, its first
    variant and what to change are named before any fitting."""
    from genoformer.model import ReformerConfig, ReformerForMaskedLM
    from genoformer.tokenize.vocab import KmerVocab
    from tiny_pretrained import save_run

    config = ReformerConfig(vocab_size=KmerVocab(3).size, dim=16, depth=1, heads=2, n_hashes=1, bucket_size=16)
    run = save_run(ReformerForMaskedLM(config).eval(), tmp_path / "run")
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID={CONTIG},length={chloroplast.contigs[CONTIG]}>",
             '##INFO=<ID=CLS,Number=1,Type=String,Description="class">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for i in range(12):
        pos = 2001 + 1000 * i
        ref = chloroplast.fetch(CONTIG, pos - 1, pos + (150 if i % 2 else 0)).upper()
        alt = ref[0] if i % 2 else ("A" if ref != "A" else "C")
        lines.append(f"{CONTIG}\t{pos}\t.\t{ref}\t{alt}\t.\t.\tCLS={'del' if i % 2 else 'snv'}")
    vcf = tmp_path / "labelled.vcf"
    vcf.write_text("\n".join(lines) + "\n")
    assert main(["-q", "classify-variants", "--reference", str(chloroplast_fasta), "--vcf", str(vcf), "--label-field",
                 "CLS", "--positive", "del", "--checkpoint", str(run), "--out", str(tmp_path / "out"), "--window",
                 "128", "--bootstrap", "10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()
    assert f"{vcf}: 6 of the 6 variants of class 'del' have no LLR" in err and f"record 2, {CONTIG}:3001" in err
