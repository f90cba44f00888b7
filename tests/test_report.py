"""Each report figure is built from small inputs in the pipeline's real formats, through `genoformer report`."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from sklearn.metrics import roc_auc_score

from genoformer.cli import main
from genoformer.report import plots, track
from genoformer.report.tables import annotation_note, split_text
from genoformer.tasks.regions import read_region_labels

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def assert_figure(path) -> None:
    """A PNG of a real figure: right signature, a sensible size, and ink (lines, text) on the white page."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    height, width = image.shape[:2]
    assert height >= 250 and width >= 400
    rgb = image[..., :3].reshape(-1, 3)
    inked = (rgb < 0.85).any(axis=1).mean()
    assert 0.01 < inked < 0.9, f"{inked:.3f} of the pixels are not white"
    assert len(np.unique((rgb * 255).astype(np.uint8), axis=0)) > 30  # anti-aliased lines and colours


def report(*args) -> int:
    return main(["report", *map(str, args)])


def write_metrics(path, steps=40, eval_every=10):
    rng = np.random.default_rng(0)
    with open(path, "w") as handle:
        for step in range(1, steps + 1):
            row = {"step": step, "loss": 4.0 * np.exp(-step / 20) + 1 + 0.05 * rng.standard_normal(),
                   "lr": 1e-3, "grad_norm": 1.0, "tokens_per_s": 5000.0}
            if step % eval_every == 0:
                row["val_bits_per_base"] = 2.0 - 0.005 * step
            handle.write(json.dumps(row) + "\n")


def evaluation(model_bits, markov_bits, order=3, two_sided=None, novel=None, ci95=None, bootstrap=None):
    """An evaluate JSON as `genoformer.train.evaluate.evaluate_run` writes it (the keys the figure reads);
    without ``two_sided``, as written before the two-sided Markov figure; with ``novel`` = (novel bases, model
    bits, Markov bits, two-sided Markov bits) the novel-base figures, else as written before them; with ``ci95``
    (and ``bootstrap``) the intervals and 4 mask passes over 600 distinct bases, else as written before them."""
    split = {"bits_per_base": model_bits, "markov_bits_per_base": markov_bits, "scored_bases": 1000}
    if two_sided is not None:
        split["markov_two_sided_bits_per_base"] = two_sided
    if novel is not None:
        split.update(zip(("novel_bases", "novel_bits_per_base", "markov_novel_bits_per_base",
                          "markov_two_sided_novel_bits_per_base"), novel))
    masking = {"mask_ratio": 0.15, "span_bases": 1, "span_tokens": 3, "seed": 0}
    if ci95 is not None:
        split.update(ci95=ci95, bootstrap=bootstrap or {"unit": "interval", "units": 12}, distinct_scored_bases=600)
        masking["passes"] = 4
    return {"k": 3, "stride": 1, "window": 128, "masking": masking, "markov": {"order": order, "concentration": 1.0},
            "splits": {"val": dict(split, bits_per_base=model_bits + 0.01), "test": split}}


CI95 = {"bits_per_base": [1.9012, 1.9188], "markov_bits_per_base": [1.9203, 1.9391],
        "markov_two_sided_bits_per_base": [1.8711, 1.9102], "model_minus_markov": [-0.0281, -0.0114],
        "model_minus_markov_two_sided": [0.0102, 0.0391]}


def test_loss_curves(tmp_path):
    write_metrics(tmp_path / "metrics.jsonl")
    assert report("loss", "--metrics", tmp_path / "metrics.jsonl", "--out", tmp_path / "loss.png") == 0
    assert_figure(tmp_path / "loss.png")


def test_the_uniform_guess_line_is_drawn_where_validation_bits_come_near_2_or_cross_it():
    assert plots.near_uniform_guess([1.99, 1.97, 1.963])  # the bundled run: just below
    assert plots.near_uniform_guess([2.05, 1.98, 1.95])  # an early evaluation above the guess, then below it
    assert plots.near_uniform_guess([2.3, 2.06])  # still worse than a guess (k = 3 tokens, a few hundred steps)
    assert not plots.near_uniform_guess([1.6, 1.5]) and not plots.near_uniform_guess([2.5, 2.2])


def test_loss_curves_name_the_bad_line(tmp_path, capsys):
    write_metrics(tmp_path / "metrics.jsonl", steps=3)
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 4, "loss": \n')
    assert report("loss", "--metrics", tmp_path / "metrics.jsonl", "--out", tmp_path / "loss.png") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("genoformer report: error:") and "metrics.jsonl: line 4: not JSON" in error
    assert "\n" not in error
    assert not (tmp_path / "loss.png").exists()


def test_loss_curves_refuse_a_value_that_is_not_a_number(tmp_path, capsys):
    write_metrics(tmp_path / "metrics.jsonl", steps=3)
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 4, "loss": "1.2"}\n')  # a string would be plotted as a category
    assert report("loss", "--metrics", tmp_path / "metrics.jsonl", "--out", tmp_path / "loss.png") == 2
    assert "metrics.jsonl: record 4: loss '1.2' is not a number" in capsys.readouterr().err
    assert not (tmp_path / "loss.png").exists()


def test_bits_per_base(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps(evaluation(1.91, 1.93, two_sided=1.89)))
    (tmp_path / "sample.json").write_text(json.dumps(evaluation(1.98, 1.95, order=2)))
    assert report("bits-per-base", "--eval", f"cdiph={tmp_path / 'run.json'}",
                  f"NA12878={tmp_path / 'sample.json'}", "--out", tmp_path / "bits.png") == 0
    assert_figure(tmp_path / "bits.png")
    # with novel-base figures (hollow markers), one JSON without a novel base and one from before them
    (tmp_path / "run.json").write_text(json.dumps(evaluation(1.91, 1.93, two_sided=1.89,
                                                             novel=(962, 1.94, 1.95, 1.90))))
    (tmp_path / "none.json").write_text(json.dumps(evaluation(1.90, 1.92, two_sided=1.88,
                                                              novel=(0, None, None, None))))
    assert report("bits-per-base", "--eval", f"cdiph={tmp_path / 'run.json'}", f"copies={tmp_path / 'none.json'}",
                  f"NA12878={tmp_path / 'sample.json'}", "--out", tmp_path / "novel.png") == 0
    assert_figure(tmp_path / "novel.png")
    assert imread(tmp_path / "novel.png").shape != imread(tmp_path / "bits.png").shape or \
        not np.array_equal(imread(tmp_path / "novel.png"), imread(tmp_path / "bits.png"))
    # with intervals (error bars) next to a JSON from before them, and one whose interval is undefined (null)
    (tmp_path / "run.json").write_text(json.dumps(evaluation(1.91, 1.93, two_sided=1.89, ci95=CI95)))
    (tmp_path / "undefined.json").write_text(json.dumps(evaluation(
        1.90, 1.92, two_sided=1.88, ci95={**CI95, "bits_per_base": [None, None]})))
    assert report("bits-per-base", "--eval", f"cdiph={tmp_path / 'run.json'}", f"NA12878={tmp_path / 'sample.json'}",
                  f"undefined={tmp_path / 'undefined.json'}", "--out", tmp_path / "ci.png") == 0
    assert_figure(tmp_path / "ci.png")
    assert not np.array_equal(imread(tmp_path / "ci.png")[:, :, :3].min(axis=2) < 0.85,
                              imread(tmp_path / "bits.png")[:, :, :3].min(axis=2) < 0.85)


def test_bits_per_base_rows_say_how_many_bases_their_difference_rests_on():
    """A sample whose reads cover little of its genome is scored on a few hundred hidden bases (the bundled
    SARS-CoV-2 reads: 141): its row says so next to the difference, as the summary table does."""
    few = dict(evaluation(1.90, 1.82), splits={"test": {"bits_per_base": 1.90, "markov_bits_per_base": 1.82,
                                                        "scored_bases": 141}})
    assert plots.row_label("SRR11728627", plots.eval_figures(few, "x.json")) == \
        "SRR11728627\nmodel - Markov: +0.080\n141 hidden bases scored"
    assert plots.row_label("cdiph", plots.eval_figures(evaluation(1.91, 1.93), "x.json")) == \
        "cdiph\nmodel - Markov: -0.020\n1,000 hidden bases scored"
    older = {"splits": {"test": {"bits_per_base": 1.91, "markov_bits_per_base": 1.93}}, "markov": {"order": 2}}
    assert plots.row_label("old", plots.eval_figures(older, "x.json")) == "old\nmodel - Markov: -0.020"
    with_ci = plots.eval_figures(evaluation(1.91, 1.93, ci95=CI95), "x.json")
    assert plots.row_label("cdiph", with_ci) == \
        "cdiph\nmodel - Markov: -0.020 [-0.028, -0.011]\n1,000 hidden bases scored"
    # the chloroplast's run: ahead of the one-sided chain, level with the two-sided one; the label shows both
    both = plots.eval_figures(evaluation(1.9128, 1.9337, two_sided=1.9122, ci95=CI95), "x.json")
    assert plots.row_label("athal_cp", both) == \
        "athal_cp\nmodel - Markov (left side): -0.021 [-0.028, -0.011]\nmodel - Markov (both sides): +0.001 " \
        "[+0.010, +0.039]\n1,000 hidden bases scored"


def test_eval_figures_read_the_test_split(tmp_path):
    before_intervals = {"ci95": {}, "bootstrap": None, "passes": None, "distinct_scored_bases": None,
                        "markov_two_sided_approximate_bases": None, "windows": None, "split_windows": None}
    assert plots.eval_figures(evaluation(1.91, 1.93, order=4), "x.json") == \
        {"model": 1.91, "markov": 1.93, "markov_two_sided": None, "markov_order": 4, "scored_bases": 1000,
         "novel_bases": None, "novel_model": None, "novel_markov": None, "novel_markov_two_sided": None,
         **before_intervals}
    with_ci = plots.eval_figures(evaluation(1.91, 1.93, ci95={**CI95, "model_minus_markov": [None, -0.01]}),
                                 "x.json")
    assert with_ci["ci95"] == {name: tuple(bounds) for name, bounds in CI95.items() if name != "model_minus_markov"}
    assert (with_ci["bootstrap"], with_ci["passes"], with_ci["distinct_scored_bases"]) == \
        ({"unit": "interval", "units": 12}, 4, 600)
    for bad in ({**CI95, "bits_per_base": [1.9]}, {**CI95, "bits_per_base": ["low", 1.9]}, [1.9, 2.0]):
        with pytest.raises(plots.InputError, match=r"x.json: not a `genoformer evaluate` result \(its test split"):
            plots.eval_figures(evaluation(1.91, 1.93, ci95=bad), "x.json")
    assert plots.eval_figures(evaluation(1.91, 1.93, order=4, two_sided=1.88), "x.json")["markov_two_sided"] == 1.88
    assert plots.eval_figures(evaluation(1.91, 1.93, two_sided=1.88, novel=(962, 1.94, 1.95, 1.90)), "x.json") == \
        {"model": 1.91, "markov": 1.93, "markov_two_sided": 1.88, "markov_order": 3, "scored_bases": 1000,
         "novel_bases": 962, "novel_model": 1.94, "novel_markov": 1.95, "novel_markov_two_sided": 1.90,
         **before_intervals}
    with pytest.raises(plots.InputError, match=r"x.json: not a `genoformer evaluate` result \(its test split is not"):
        plots.eval_figures(evaluation(1.91, 1.93, novel=(962, "many", 1.95, 1.90)), "x.json")
    with pytest.raises(plots.InputError, match="x.json: not a `genoformer evaluate` result"):
        plots.eval_figures({"splits": {}}, "x.json")
    with pytest.raises(plots.InputError, match=r"x.json: not a `genoformer evaluate` result \(its test split is not"):
        plots.eval_figures({"splits": {"test": []}, "markov": {"order": 2}}, "x.json")


def test_an_evaluation_without_the_test_split_is_refused_not_shown_as_test(tmp_path, capsys):
    """`genoformer evaluate --splits val` writes only the val split, where the Markov order and smoothing were
    chosen. The figure's axis and the summary say "test split"; they once showed the val figures under it."""
    only_val = evaluation(1.91, 1.93)
    del only_val["splits"]["test"]
    (tmp_path / "val.json").write_text(json.dumps(only_val))
    for kind, out in (("bits-per-base", "bits.png"), ("summary", "summary.html")):
        assert report(kind, "--eval", f"cdiph={tmp_path / 'val.json'}", "--out", tmp_path / out) == 2
        error = capsys.readouterr().err
        assert "val.json: no test split (it has val)" in error and "--splits val test" in error
        assert not (tmp_path / out).exists()


def test_benchmark_times(tmp_path):
    paths = []
    for rule, job, seconds in (("pretrain", "cdiph", 61.5), ("score_variants", "a.000", 3.0),
                               ("score_variants", "a.001", 4.5), ("report_loss", "loss", 1.2)):
        path = tmp_path / "benchmarks" / rule / f"{job}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BENCHMARK_HEADER + f"{seconds}\t0:00:{int(seconds):02d}\t512.3\t900\t400\t450\t1\t2\t90\t{seconds}\n")
        paths.append(path)
    table = plots.read_benchmarks(paths)
    per_rule = table.groupby("rule")["s"].sum()
    assert per_rule["score_variants"] == pytest.approx(7.5) and per_rule["pretrain"] == pytest.approx(61.5)
    assert report("benchmarks", "--benchmarks", *paths, "--out", tmp_path / "bench.png") == 0
    assert_figure(tmp_path / "bench.png")


def test_benchmark_memory_of_a_job_snakemake_did_not_sample_is_not_shown(tmp_path):
    """The bundled run's tokenize_reference benchmark: 0.47 s, so Snakemake's only sample (cpu_time 0) caught the
    shell starting, 2.96 MB, not the tokenizer; the figure says the memory was not sampled instead of "3 MB peak".
    Rules with a sampled job show their largest peak."""
    short = tmp_path / "benchmarks" / "tokenize_reference" / "cdiph.tsv"
    short.parent.mkdir(parents=True)
    short.write_text(BENCHMARK_HEADER + "0.47\t0:00:00\t2.96\t4.26\t0.09\t0.60\t0.00\t0.00\t0.00\t0.00\n")
    sampled = tmp_path / "benchmarks" / "pretrain" / "cdiph.tsv"
    sampled.parent.mkdir(parents=True)
    sampled.write_text(BENCHMARK_HEADER + "124.29\t0:02:04\t527.42\t900\t400\t450\t1\t2\t180\t220.5\n")
    table = plots.read_benchmarks([short, sampled]).set_index("rule")
    assert pd.isna(table.loc["tokenize_reference", "max_rss"]) and table.loc["pretrain", "max_rss"] == 527.42
    assert plots.benchmark_label(0.47, 1, None) == "0.5 s, 1 job, memory not sampled"
    assert plots.benchmark_label(124.29, 1, 527.42) == "124.3 s (2 min), 1 job, 527 MB peak"
    assert plots.benchmark_label(1269.5, 3, 1450.2) == "1,269.5 s (21 min), 3 jobs, 1,450 MB peak"


@pytest.fixture(scope="module")
def scored_coding_vcf(tmp_path_factory, chloroplast_fasta, resources):
    """Real coding SNVs of the bundled chloroplast (two genes) written as score-variants writes them: the input
    INFO (CONSEQUENCE, ...) plus a GF_LLR score, here lower for stop-gained by construction."""
    from genoformer.io.fasta import Reference
    from genoformer.tasks.coding import CODING_INFO, coding_snvs
    from genoformer.tasks.vcf_writer import InfoField, write_sites_vcf

    path = tmp_path_factory.mktemp("scored") / "coding.vcf.gz"
    rng = np.random.default_rng(1)
    with Reference(chloroplast_fasta) as reference:
        snvs = coding_snvs(reference, resources / "athal_cp" / "NC_000932.1.gff3", n_genes=2, seed=0)
        records = [dict(contig=s.contig, pos=s.pos, ref=s.ref, alt=s.alt,
                        info={"CONSEQUENCE": s.consequence,
                              "GF_LLR": rng.normal(-1.0 if s.consequence == "stop_gained" else 0.0, 0.5)})
                   for s in snvs]
        fields = [field for field in CODING_INFO if field.id == "CONSEQUENCE"]
        fields.append(InfoField("GF_LLR", "1", "Float", "log P(ALT) - log P(REF)"))
        write_sites_vcf(path, reference, records, info_fields=fields)
    return path


def test_score_distributions_by_class(tmp_path, scored_coding_vcf):
    table = plots.read_scored_vcf(scored_coding_vcf, ["GF_LLR", "CONSEQUENCE"])
    assert {"synonymous", "missense", "stop_gained"} <= set(table["CONSEQUENCE"])
    assert report("variant-classes", "--vcf", scored_coding_vcf, "--out", tmp_path / "classes.png") == 0
    assert_figure(tmp_path / "classes.png")


def test_variant_track_has_one_panel_per_locus(tmp_path, scored_coding_vcf):
    table = plots.read_scored_vcf(scored_coding_vcf, ["GF_LLR"], optional=("CONSEQUENCE", "ABSENT"))
    assert "CONSEQUENCE" in table.columns and "ABSENT" not in table.columns
    found = track.loci(table, gap=5000)
    assert len(found) == 2  # the two sampled genes are far apart on the chloroplast
    assert sum(len(locus) for locus in found) == len(table)
    assert all(locus["pos"].diff().dropna().le(5000).all() for locus in found)
    assert table.attrs["contig_lengths"] == {"NC_000932.1": 154478}  # the overview spans the whole contig
    assert report("variant-track", "--vcf", scored_coding_vcf, "--out", tmp_path / "track.png") == 0
    assert_figure(tmp_path / "track.png")


def test_variant_track_shows_the_loci_of_the_most_notable_scores():
    """The panels are the loci holding the lowest LLRs (the highest distances), not the most variants, in genome
    order; each labels its most notable variant."""
    table = pd.DataFrame({"contig": ["a"] * 6 + ["b"] * 2, "pos": [10, 20, 30, 9000, 9010, 30000, 5, 15],
                          "GF_LLR": [0.1, 0.2, 0.0, -0.9, 0.3, -0.1, -0.5, 0.4],
                          "GF_EMB_LOCAL": [1.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]})
    found = track.loci(table, gap=5000)
    assert [len(locus) for locus in found] == [3, 2, 1, 2]
    assert track.notable_loci(found, "GF_LLR", 2) == [1, 3]  # -0.9 at a:9,000 and -0.5 at b:5, not the 3 at a:10
    assert track.notable_loci(found, "GF_EMB_LOCAL", 1) == [0]
    assert track.most_notable(found[1], "GF_LLR")["pos"] == 9000
    assert track.genome_offsets(table, {"a": 50000}) == {"a": 0, "b": 50000, None: 50015}


def test_variant_figures_name_a_missing_field(tmp_path, scored_coding_vcf, capsys):
    assert report("variant-classes", "--vcf", scored_coding_vcf, "--score", "GF_EMB", "--out",
                  tmp_path / "x.png") == 2
    assert "no INFO field GF_EMB in the header" in capsys.readouterr().err


def test_variant_figures_reject_a_damaged_or_plain_gzip_vcf_in_one_line(tmp_path, scored_coding_vcf, capsys):
    """A scored VCF with a record htslib cannot parse, or recompressed with plain gzip: one line naming the file
    (and the record), not an OSError/NotImplementedError traceback."""
    import gzip

    import pysam

    lines = pysam.BGZFile(str(scored_coding_vcf)).read().decode().splitlines(keepends=True)
    fifth = [i for i, line in enumerate(lines) if not line.startswith("#")][4]
    fields = lines[fifth].split("\t")
    lines[fifth] = "\t".join([fields[0], fields[1] + "x", *fields[2:]])
    damaged = tmp_path / "damaged.vcf"
    damaged.write_text("".join(lines))
    plain = tmp_path / "plain.vcf.gz"
    plain.write_bytes(gzip.compress(pysam.BGZFile(str(scored_coding_vcf)).read()))
    for kind in ("variant-classes", "variant-track", "top-variants"):
        out = tmp_path / ("x.html" if kind == "top-variants" else "x.png")
        for vcf, message in ((damaged, f"{damaged}: malformed VCF at record 5: Could not parse the position"),
                             (plain, f"{plain}: plain gzip, not bgzip")):
            assert report(kind, "--vcf", vcf, "--out", out) == 2
            error = capsys.readouterr().err.strip()
            assert error.startswith("genoformer report: error:") and "\n" not in error and message in error, error
            assert not out.exists()


def test_benchmark_time_that_is_not_a_number_names_the_line(tmp_path, capsys):
    path = tmp_path / "benchmarks" / "pretrain" / "cdiph.tsv"
    path.parent.mkdir(parents=True)
    path.write_text(BENCHMARK_HEADER + "61.5\t0:01:01\t512.3\t900\t400\t450\t1\t2\t90\t61\n"
                    + "1m\t-\t-\t-\t-\t-\t-\t-\t-\t-\n")
    assert report("benchmarks", "--benchmarks", path, "--out", tmp_path / "bench.png") == 2
    assert f"{path}: line 3: column s is '1m', not a number of seconds" in capsys.readouterr().err
    assert not (tmp_path / "bench.png").exists()


def region_predictions(path, n=120, classes=("coding", "intergenic")):
    """A two-class predictions.tsv as classify-regions writes it; the probe separates the classes better."""
    rng = np.random.default_rng(0)
    label = np.where(np.arange(n) % 2 == 0, *classes)
    positive = label == classes[1]
    pd.DataFrame({
        "chrom": "NZ_LN831026.1", "start": np.arange(n) * 1000, "end": np.arange(n) * 1000 + 100,
        "name": [f"r{i}" for i in range(n)], "label": label,
        "split": np.where(np.arange(n) % 3 == 0, "test", "train"),
        "window_start": np.arange(n) * 1000 - 78, "window_end": np.arange(n) * 1000 + 178,
        "score_probe": 1 / (1 + np.exp(-(2.0 * positive - 1 + rng.normal(0, 0.8, n)))),
        "score_kmer": 1 / (1 + np.exp(-(0.5 * positive + rng.normal(0, 1.0, n)))),
    }).to_csv(path, sep="\t", index=False, na_rep="NA")


def test_roc_pr_curves_of_region_predictions(tmp_path):
    region_predictions(tmp_path / "predictions.tsv")
    labels, scores, positive = plots.read_region_predictions(tmp_path / "predictions.tsv")
    assert positive == "intergenic" and len(labels) == 40 and labels.sum() == 20  # held-out rows only
    assert set(scores) == {"model: logistic regression on its hidden states", "k-mer spectrum baseline (no model)"}
    assert report("roc-pr", "--predictions", tmp_path / "predictions.tsv", "--title", "cdiph_genes",
                  "--out", tmp_path / "roc.png") == 0
    assert_figure(tmp_path / "roc.png")


@pytest.mark.parametrize("classes", [("9", "10"), ("-1", "1"), ("coding", "intergenic"), ("B", "a"), ("01", "1"),
                                     ("+1", "1"), ("1000", "1e3")])
def test_roc_pr_takes_the_positive_class_classify_regions_scored(tmp_path, classes):
    """score_<method> is P(second class) in classify-regions' order, which is numeric for integer labels: the
    curves must call the same class positive (sorting 9 and 10 as text inverted them)."""
    bed = tmp_path / "labels.bed"
    bed.write_text("".join(f"NZ_LN831026.1\t{i * 100}\t{i * 100 + 50}\tr{i}\t0\t+\t{classes[i % 2]}\n"
                           for i in range(10)))
    assert read_region_labels(None, bed=bed).classes == list(classes)
    region_predictions(tmp_path / "predictions.tsv", classes=classes)
    labels, scores, positive = plots.read_region_predictions(tmp_path / "predictions.tsv")
    assert positive == classes[1]
    assert roc_auc_score(labels, scores[plots.METHOD_NAMES["probe"]]) > 0.8  # the probe scores the second class high


def test_roc_pr_of_a_vcf_names_the_file(tmp_path, capsys, resources):
    vcf = resources / "human_chr22_q" / "NA12878.chr22.tiny.giab.vcf"
    assert report("roc-pr", "--predictions", vcf, "--out", tmp_path / "roc.png") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("genoformer report: error:") and "\n" not in error
    assert f"{vcf}: not a tab-separated table with a header line" in error
    assert not (tmp_path / "roc.png").exists()


def test_out_must_be_a_png(tmp_path, capsys):
    region_predictions(tmp_path / "predictions.tsv")
    assert report("roc-pr", "--predictions", tmp_path / "predictions.tsv", "--out", tmp_path / "roc.pdf") == 2
    error = capsys.readouterr().err.strip()
    assert "roc.pdf: the figure is written as PNG, so its name must end in .png" in error and "\n" not in error
    assert not (tmp_path / "roc.pdf").exists()


# ----- table pages (HTML) -----


class TableCells(HTMLParser):
    """The headings and the table cells of an HTML page: ``tables`` is a list of tables, each a list of rows."""

    def __init__(self, page: str):
        super().__init__()
        self.headings, self.tables, self._text, self._in = [], [], None, None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th", "h2"):
            self._in, self._text = tag, ""

    def handle_data(self, data):
        if self._in:
            self._text += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._in == tag:
            self.tables[-1][-1].append(self._text.strip())
        elif tag == "h2" and self._in == tag:
            self.headings.append(self._text.strip())
        if tag == self._in:
            self._in = None


def as_rows(table):
    """A parsed table as dicts keyed by its header row."""
    header, *rows = table
    return [dict(zip(header, row)) for row in rows]


def classifier_metrics(methods, classes, n_groups=8):
    """A metrics.json as classify-regions writes it (the sections the summary reads), from the real metric
    function on seeded held-out labels and scores in ``n_groups`` split groups: ``methods`` maps a method key to
    how well it separates."""
    from genoformer.tasks.metrics import classification_metrics

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60)
    groups = np.arange(60) % n_groups
    test = {name: classification_metrics(labels, np.stack([1 - p, p], axis=1), groups=groups, n_bootstrap=200)
            for name, separation in methods.items()
            for p in [1 / (1 + np.exp(-(separation * (2 * labels - 1) + rng.normal(0, 1, labels.size))))]}
    return {"classes": classes, "test": test}


def test_summary_page_lists_every_evaluation_and_method(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps(evaluation(1.91, 1.93, order=5)))
    regions = classifier_metrics({"probe": 1.0, "finetune": 1.5, "kmer": 2.0}, ["coding", "intergenic"])
    variants = classifier_metrics({"kmer_baseline": 0.5, "model_probe": 1.0, "zero_shot_neg_llr": 0.2,
                                   "composition_neg_llr": 0.1},
                                  {"negative": "synonymous", "positive": "stop_gained"}, n_groups=3)
    regions["split"] = {"method": "blocks", "block_bp": 100_000, "groups_train": 17, "groups_test": 8,
                        "n_left_out_copies": 2}
    (tmp_path / "regions.json").write_text(json.dumps(regions))
    (tmp_path / "variants.json").write_text(json.dumps(variants))
    out = tmp_path / "summary.html"
    assert report("summary", "--eval", f"cdiph={tmp_path / 'run.json'}",
                  "--task", f"cdiph_genes={tmp_path / 'regions.json'}", f"cdiph_coding={tmp_path / 'variants.json'}",
                  "--out", out) == 0
    page = TableCells(out.read_text())
    assert page.headings == ["Held-out bits per base (test split)", "Supervised tasks"]  # the split eval_figures reads
    [bits] = as_rows(page.tables[0])
    assert bits == {"sequence": "cdiph", "model bits/base [95% CI]": "1.9100 [not computed]",
                    "Markov bits/base [95% CI]": "1.9300 [not computed]", "Markov order": "5",
                    "model - Markov [95% CI]": "-0.0200 [not computed]",
                    "two-sided Markov bits/base [95% CI]": "not computed",
                    "model - two-sided Markov [95% CI]": "—", "hidden bases scored": "1,000",
                    "novel hidden bases": "not computed",
                    "model bits/base, novel [95% CI]": "not computed",
                    "Markov bits/base, novel [95% CI]": "not computed",
                    "two-sided Markov bits/base, novel [95% CI]": "not computed",
                    "model - Markov, novel [95% CI]": "not computed",
                    "model - two-sided Markov, novel [95% CI]": "not computed"}
    rows = as_rows(page.tables[1])
    assert [(r["task"], r["uses the model"]) for r in rows] == [
        ("cdiph_genes", "yes"), ("cdiph_genes", "yes"), ("cdiph_genes", "no"),
        ("cdiph_coding", "yes"), ("cdiph_coding", "yes"), ("cdiph_coding", "no"),
        ("cdiph_coding", "no")]  # baselines after the model
    probe = regions["test"]["probe"]["auroc"]
    assert rows[0]["method"] == "model: logistic regression on frozen hidden states"
    assert rows[0]["AUROC [95% CI]"] == f"{probe['value']:.3f} [{probe['ci95'][0]:.3f}, {probe['ci95'][1]:.3f}]"
    counts = regions["test"]["probe"]["n_per_class"]
    assert rows[0]["held-out examples"] == f"coding {counts[0]}, intergenic {counts[1]}"
    assert rows[0]["held out"] == "8 of 25 100,000 bp blocks; 2 left out (a repeat copy in training)"
    assert rows[3]["held out"] == "—"  # a metrics.json without its split
    variants["split"] = {"method": "contig", "groups_train": 7, "groups_test": 3}
    (tmp_path / "variants.json").write_text(json.dumps(variants))
    assert report("summary", "--task", f"cdiph_coding={tmp_path / 'variants.json'}", "--out", out) == 0
    assert as_rows(TableCells(out.read_text()).tables[0])[0]["held out"] == \
        "3 of 10 contigs; intervals resample examples (fewer than 5 held-out groups), so they are too narrow: split " \
        "by blocks, a smaller --block holds out more"
    for method in variants["test"].values():  # metrics.json from before groups were resampled
        del method["bootstrap"]
    (tmp_path / "variants.json").write_text(json.dumps(variants))
    assert report("summary", "--task", f"cdiph_coding={tmp_path / 'variants.json'}", "--out", out) == 0
    assert as_rows(TableCells(out.read_text()).tables[0])[0]["held out"] == \
        "3 of 10 contigs; intervals resample examples (metrics written before intervals resampled groups)"
    assert rows[5]["method"] == "k-mer context, logistic regression"
    assert rows[6]["method"] == "base composition: zero-shot -LLR (no model, no training)"
    zero_shot = variants["test"]["zero_shot_neg_llr"]["auroc"]["value"]
    assert rows[4]["AUROC [95% CI]"].startswith(f"{zero_shot:.3f} [")


def test_summary_says_when_fine_tuning_kept_its_start(tmp_path):
    """The bundled run's region task: fine-tuning kept epoch 0 (validation loss 0.4167 at the start, 0.4177 after
    epoch 1), so its row is the probe-initialized head on the window mean, no weight fine-tuned; the row says so
    instead of "fine-tuned". A kept epoch 1 is named; a metrics.json without the selection keeps the plain name."""
    from genoformer.report.tables import task_rows

    regions = classifier_metrics({"probe": 1.0, "finetune": 1.5, "kmer": 2.0}, ["coding", "intergenic"])
    regions["finetune_selection"] = {"validation_examples": 42, "validation_loss": [0.4167, 0.4177], "epoch_kept": 0}
    methods = [row["method"] for row in task_rows("cdiph_genes", regions, "metrics.json")]
    assert methods[1] == "model: fine-tuning kept its start (no epoch lowered the validation loss): a logistic " \
        "regression on the window's mean hidden state"
    regions["finetune_selection"].update(validation_loss=[0.4167, 0.39], epoch_kept=1)
    assert task_rows("cdiph_genes", regions, "metrics.json")[1]["method"] == "model: fine-tuned (epoch 1 kept)"
    del regions["finetune_selection"]
    assert task_rows("cdiph_genes", regions, "metrics.json")[1]["method"] == "model: fine-tuned"


def test_summary_shows_the_novel_base_figures_beside_the_others(tmp_path):
    """An evaluate JSON with novel-base figures shows them next to the figures over all hidden bases; one whose
    split has no novel base says so, and one from before them says "not computed" in the same table."""
    (tmp_path / "run.json").write_text(json.dumps(evaluation(1.91, 1.93, two_sided=1.89,
                                                             novel=(962, 1.9412, 1.9533, 1.9021))))
    (tmp_path / "none.json").write_text(json.dumps(evaluation(1.90, 1.92, two_sided=1.88,
                                                              novel=(0, None, None, None))))
    (tmp_path / "old.json").write_text(json.dumps(evaluation(1.98, 1.95)))
    out = tmp_path / "summary.html"
    assert report("summary", "--eval", f"cdiph={tmp_path / 'run.json'}", f"copies={tmp_path / 'none.json'}",
                  f"old={tmp_path / 'old.json'}", "--out", out) == 0
    page = TableCells(out.read_text())
    novel = [(row["novel hidden bases"], row["model bits/base, novel [95% CI]"],
              row["Markov bits/base, novel [95% CI]"], row["two-sided Markov bits/base, novel [95% CI]"],
              row["model - Markov, novel [95% CI]"], row["model - two-sided Markov, novel [95% CI]"])
             for row in as_rows(page.tables[0])]
    assert novel == [("962 of 1,000 (96.2%)", "1.9412 [not computed]", "1.9533 [not computed]",
                      "1.9021 [not computed]", "-0.0121 [not computed]", "+0.0391 [not computed]"),
                     ("0 of 1,000 (0.0%)", "—", "—", "—", "—", "—"), ("not computed",) * 6]
    assert "Novel: only the hidden bases that no 31-mer" in out.read_text()


def test_summary_shows_the_novel_base_intervals_and_approximated_bases(tmp_path):
    """An evaluate JSON with novel-base intervals shows each novel figure and paired novel difference with its
    interval, and says for how many bases the two-sided chain read the other hidden bases (none: nothing said)."""
    novel_ci95 = {"novel_bits_per_base": [1.9301, 1.9512], "markov_novel_bits_per_base": [1.9433, 1.9630],
                  "markov_two_sided_novel_bits_per_base": [1.8904, 1.9155],
                  "novel_model_minus_markov": [-0.0199, -0.0043],
                  "novel_model_minus_markov_two_sided": [0.0302, 0.0488]}
    run = evaluation(1.91, 1.93, two_sided=1.89, novel=(962, 1.9412, 1.9533, 1.9021), ci95={**CI95, **novel_ci95})
    run["splits"]["test"]["markov_two_sided_approximate_bases"] = 0
    (tmp_path / "run.json").write_text(json.dumps(run))
    run["splits"]["test"]["markov_two_sided_approximate_bases"] = 37
    (tmp_path / "approximate.json").write_text(json.dumps(run))
    out = tmp_path / "summary.html"
    assert report("summary", "--eval", f"run={tmp_path / 'run.json'}",
                  f"approximate={tmp_path / 'approximate.json'}", "--out", out) == 0
    exact, approximate = as_rows(TableCells(out.read_text()).tables[0])
    assert {name: exact[name] for name in exact if "novel" in name} == {
        "novel hidden bases": "962 of 1,000 (96.2%)", "model bits/base, novel [95% CI]": "1.9412 [1.9301, 1.9512]",
        "Markov bits/base, novel [95% CI]": "1.9533 [1.9433, 1.9630]",
        "two-sided Markov bits/base, novel [95% CI]": "1.9021 [1.8904, 1.9155]",
        "model - Markov, novel [95% CI]": "-0.0121 [-0.0199, -0.0043]",
        "model - two-sided Markov, novel [95% CI]": "+0.0391 [+0.0302, +0.0488]"}
    assert "the two-sided chain" not in exact["hidden bases scored"]
    assert approximate["hidden bases scored"] == (
        "1,000 (4 mask passes over 600 bases); the two-sided chain read the other hidden bases as their true bases "
        "for 37 (clusters too big to sum out); intervals resample 12 held-out blocks or contigs")
    (tmp_path / "novel.png").unlink(missing_ok=True)
    assert report("bits-per-base", "--eval", f"run={tmp_path / 'run.json'}", "--out", tmp_path / "novel.png") == 0
    assert_figure(tmp_path / "novel.png")


def test_the_held_out_column_says_whether_repeat_copies_were_left_out_or_kept():
    split = {"method": "blocks", "block_bp": 15_000, "groups_train": 7, "groups_test": 3, "with_repeat_copy": 12}
    assert split_text({**split, "repeat_copies": "left out", "n_left_out_copies": 4}) == \
        "3 of 10 15,000 bp blocks; 4 left out (a repeat copy in training)"
    assert split_text({**split, "repeat_copies": "kept", "n_left_out_copies": 0}) == \
        "3 of 10 15,000 bp blocks; repeat copies kept on both sides (12 examples have one)"
    # regions overlapping a training region are left out whether or not copies are kept, and said apart
    assert split_text({**split, "repeat_copies": "left out", "n_left_out_copies": 4, "n_left_out_overlapping": 2}) \
        == "3 of 10 15,000 bp blocks; 4 left out (a repeat copy in training); 2 left out (overlapping a training " \
        "region)"
    assert split_text({**split, "repeat_copies": "kept", "n_left_out_copies": 0, "n_left_out_overlapping": 1}) == \
        "3 of 10 15,000 bp blocks; repeat copies kept on both sides (12 examples have one); 1 left out (overlapping " \
        "a training region)"


def test_top_variants_page_lists_the_lowest_scores_first(tmp_path, scored_coding_vcf):
    out = tmp_path / "top.html"
    assert report("top-variants", "--vcf", scored_coding_vcf, "--n", 7, "--out", out) == 0
    rows = as_rows(TableCells(out.read_text()).tables[0])
    table = plots.read_scored_vcf(scored_coding_vcf, ["GF_LLR"])
    lowest = table.sort_values("GF_LLR").head(7)
    assert [float(r["GF_LLR"]) for r in rows] == pytest.approx(lowest["GF_LLR"].tolist(), abs=5e-4)
    assert [float(r["P(ALT) / P(REF)"]) for r in rows] == pytest.approx(np.exp(lowest["GF_LLR"]).tolist(), abs=5e-3)
    assert [(r["contig"], int(r["position (1-based)"].replace(",", "")), r["ref"], r["alt"]) for r in rows] == \
        list(zip(lowest.contig, lowest.pos, lowest.ref, lowest.alt))
    assert any("," in r["position (1-based)"] for r in rows)  # chloroplast positions in the thousands
    assert all(r["GF_LLR"][0] in "+-" for r in rows)  # signed, as the note's median is
    note = out.read_text()
    above = sum(float(r["GF_LLR"]) > 0 for r in rows)
    assert f"The 7 of {len(table):,} scored variants with the lowest GF_LLR" in note
    assert f"median GF_LLR is {table['GF_LLR'].median():+.3f}" in note
    assert (f"the {above} listed with a score above 0 are not unexpected" in note) == (above > 0)
    assert {r["id"] for r in rows} == {"."} and {r["CONSEQUENCE"] for r in rows} <= {"synonymous", "missense",
                                                                                      "stop_gained", "stop_lost",
                                                                                      "start_lost"}


def test_top_variants_note_names_only_the_annotation_columns_shown():
    """coding-variants' VCF has all four annotation fields; a VCF with INFO GENE alone gets no word about codons."""
    assert annotation_note(["contig", "GENE", "CONSEQUENCE", "AA", "CODON", "GF_LLR"]) == \
        " GENE, CONSEQUENCE, AA (amino acid, REF>ALT; * is a stop) and CODON (REF>ALT, on the gene's strand): the " \
        "VCF's own annotation."
    assert annotation_note(["contig", "GENE", "GF_LLR"]) == " GENE: the VCF's own annotation."
    assert annotation_note(["contig", "GF_LLR", "GF_EMB_LOCAL"]).startswith(" GF_EMB_LOCAL: how far ALT moves")
    assert annotation_note(["contig", "GF_LLR"]) == ""


@pytest.mark.parametrize("args,message", [
    (["summary", "--task", "t={eval}"], "{eval}: not a classifier metrics.json (no 'test' section"),
    (["summary", "--eval", "a={eval}", "a={eval}"], "--eval label 'a' is given twice"),
    (["summary"], "give at least one --eval or --task"),
    (["summary", "--eval", "{eval}"], "--eval '{eval}' is not LABEL=PATH"),
    (["top-variants", "--vcf", "{eval}"], "{eval}: not a readable VCF"),
])
def test_table_pages_reject_bad_input_in_one_line(tmp_path, capsys, args, message):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(evaluation(1.9, 1.95)))
    out = tmp_path / "page.html"
    assert report(*[a.format(eval=path) for a in args], "--out", out) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("genoformer report: error:") and "\n" not in error
    assert message.format(eval=path) in error
    assert not out.exists()


def test_table_page_must_be_html(tmp_path, capsys, scored_coding_vcf):
    assert report("top-variants", "--vcf", scored_coding_vcf, "--out", tmp_path / "top.png") == 2
    assert "top.png: the table page is written as HTML, so its name must end in .html" in capsys.readouterr().err


def test_class_auroc_ranks_by_the_direction_the_score_points():
    """An LLR is low for stop-gained SNVs, an embedding distance high: each ranks its own way (ranking a distance
    like an LLR printed 1 - AUROC in the figure's title)."""
    damaging, benign = np.array([-3.0, -2.5, -2.0]), np.array([-0.5, 0.0, 0.2])
    assert plots.class_auroc("GF_LLR", damaging, benign) == (1.0, "lower")
    assert plots.class_auroc("GF_EMB_LOCAL", -damaging, -benign) == (1.0, "higher")


def test_summary_shows_the_two_sided_markov_figure_or_says_it_is_missing(tmp_path):
    (tmp_path / "new.json").write_text(json.dumps(evaluation(1.91, 1.93, two_sided=1.8765)))
    (tmp_path / "old.json").write_text(json.dumps(evaluation(1.98, 1.95)))
    assert report("summary", "--eval", f"new={tmp_path / 'new.json'}", f"old={tmp_path / 'old.json'}",
                  "--out", tmp_path / "summary.html") == 0
    text = (tmp_path / "summary.html").read_text()
    # it says what each chain reads: the one-sided the true bases of hidden ones, the two-sided what the model reads
    assert ("(other hidden bases read as their true bases, which the model never sees), and two-sided, from the "
            "visible bases on both sides, every hidden base summed out, as the model sees them") in \
        " ".join(text.split())
    new, old = as_rows(TableCells(text).tables[0])
    assert (new["sequence"], new["two-sided Markov bits/base [95% CI]"], new["model - two-sided Markov [95% CI]"]) \
        == ("new", "1.8765 [not computed]", "+0.0335 [not computed]")
    assert (old["sequence"], old["two-sided Markov bits/base [95% CI]"], old["model - two-sided Markov [95% CI]"]) \
        == ("old", "not computed", "—")


def test_summary_shows_each_figure_with_its_interval_and_what_was_resampled(tmp_path):
    """An evaluate JSON with intervals shows each figure and each paired difference with its interval, and how
    many (pass, base) pairs, passes, distinct bases and resampled blocks (or windows) they rest on; a JSON from
    before intervals renders in the same table, its intervals "not computed"."""
    (tmp_path / "new.json").write_text(json.dumps(evaluation(1.91, 1.93, two_sided=1.8765, ci95=CI95)))
    (tmp_path / "few.json").write_text(json.dumps(evaluation(1.91, 1.93, ci95=CI95,
                                                             bootstrap={"unit": "window", "units": 48})))
    (tmp_path / "old.json").write_text(json.dumps(evaluation(1.98, 1.95, two_sided=1.90)))
    sampled = evaluation(1.91, 1.93, ci95=CI95, bootstrap={"unit": "interval", "units": 256})
    sampled["splits"]["test"].update(windows=256, split_windows=27_612)  # config evaluate.max_windows on chrX
    (tmp_path / "sampled.json").write_text(json.dumps(sampled))
    assert report("summary", "--eval", f"new={tmp_path / 'new.json'}", f"few={tmp_path / 'few.json'}",
                  f"old={tmp_path / 'old.json'}", f"sampled={tmp_path / 'sampled.json'}", "--out",
                  tmp_path / "summary.html") == 0
    text = (tmp_path / "summary.html").read_text()
    assert "each difference is paired, both figures from the same resamples" in " ".join(text.split())
    new, few, old, sampled = as_rows(TableCells(text).tables[0])
    assert sampled["hidden bases scored"] == "1,000 (4 mask passes over 600 bases); in 256 of the split's 27,612 " \
        "windows, spread evenly over it (--max-windows; config evaluate.max_windows); intervals resample 256 " \
        "held-out blocks or contigs"
    shown = [name for name in new if "CI" in name and "novel" not in name or name == "hidden bases scored"]
    assert {name: new[name] for name in shown} == {
        "model bits/base [95% CI]": "1.9100 [1.9012, 1.9188]", "Markov bits/base [95% CI]": "1.9300 [1.9203, 1.9391]",
        "model - Markov [95% CI]": "-0.0200 [-0.0281, -0.0114]",
        "two-sided Markov bits/base [95% CI]": "1.8765 [1.8711, 1.9102]",
        "model - two-sided Markov [95% CI]": "+0.0335 [+0.0102, +0.0391]",
        "hidden bases scored": "1,000 (4 mask passes over 600 bases); intervals resample 12 held-out blocks or "
                               "contigs"}
    assert few["hidden bases scored"] == "1,000 (4 mask passes over 600 bases); intervals resample 48 windows " \
        "(fewer than 5 held-out blocks or contigs), so they are too narrow: tokenize with a smaller --block for more " \
        "blocks"
    assert (old["model - two-sided Markov [95% CI]"], old["hidden bases scored"]) == ("+0.0800 [not computed]",
                                                                                      "1,000")
