"""score-variants: the shared-pass scores against a one-variant-at-a-time reference, forward counts, outputs, CLI."""

import gzip
import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest
import torch

from genoformer.cli import main
from genoformer.errors import ConfigError
from genoformer.io.fasta import Reference, encode_bases, reverse_complement_codes
from genoformer.io.vcf import Variant, read_variants
from genoformer.model import ReformerConfig, ReformerForMaskedLM
from genoformer.tasks.coding import coding_snvs
from genoformer.tasks.encoder import Encoder, load_encoder, token_range
from genoformer.tasks.metrics import classification_metrics
from genoformer.tasks.variants import alternate_window, pack_sites, score_variants, window_bounds
from genoformer.tokenize.encode import encode
from genoformer.tokenize.vocab import MASK, KmerVocab
from tiny_pretrained import CDIPH, TRAIN_START, save_run, tiny_run  # noqa: F401  (tiny_run is a fixture)
from tiny_pretrained import CONTIG as CDIPH_CONTIG

CONTIG = "NC_000932.1"
CDIPH_GFF = CDIPH.parent / "NZ_LN831026.1.pyrodigal_predicted_CDS.gff3"


def tiny_model(k: int, seed: int = 0) -> ReformerForMaskedLM:
    torch.manual_seed(seed)
    config = ReformerConfig(vocab_size=KmerVocab(k).size, dim=16, depth=1, heads=2, n_hashes=1, bucket_size=16)
    return ReformerForMaskedLM(config).eval()


@pytest.fixture(scope="module")
def chloroplast(chloroplast_fasta):
    with Reference(chloroplast_fasta) as reference:
        yield reference


def variant(contig, pos, ref, alt, record=1):
    return Variant(contig=contig, pos=pos, ref=ref, alt=alt, id=None, qual=None, filter=(), info={}, record=record)


def random_variants(reference, rng, n, start, end, kinds=("snv", "mnv", "ins", "del")):
    variants = []
    for number, pos in enumerate(sorted(rng.choice(np.arange(start, end), n, replace=False))):
        kind = kinds[number % len(kinds)]
        length = {"snv": 1, "mnv": 2, "ins": 1, "del": 3}[kind]
        ref = reference.fetch(CONTIG, pos, pos + length).upper()
        if kind in ("snv", "mnv"):
            alt = "".join(rng.choice([b for b in "ACGT" if b != r]) for r in ref)
        elif kind == "ins":
            alt = ref + "".join(rng.choice(list("ACGT"), 2))
        else:
            alt = ref[0]
        variants.append(variant(CONTIG, int(pos) + 1, ref, alt))
    return variants


def direct_scores(model, vocab, stride, reference, var, start, end):
    """LLR and embedding distances of one variant, one strand at a time, with no sharing: the obvious way."""
    k = vocab.k
    codes = reference.codes(CONTIG, start, end)[0]
    offset = var.pos - 1 - start
    following = reference.codes(CONTIG, end, min(reference.contigs[CONTIG], end + 10))[0]
    alt_forward = alternate_window(codes, offset, var.ref, var.alt, following)
    results = []
    for strand in (0, 1):
        ref_seq = codes if strand == 0 else reverse_complement_codes(codes)
        alt_seq = alt_forward if strand == 0 else reverse_complement_codes(alt_forward)
        size = codes.size

        def span(length):
            return (offset, offset + length) if strand == 0 else (size - offset - length, size - offset)

        def forward(seq, masked_span=None):
            tokens = torch.from_numpy(encode(seq, vocab, stride).astype(np.int64))
            positions = [] if masked_span is None else list(token_range(*masked_span, k, stride, tokens.numel()))
            tokens[positions] = MASK
            with torch.no_grad():
                hidden = model.reformer(tokens[None])[0]
            return hidden, positions

        @torch.no_grad()
        def log_prob(seq, hidden, positions):
            log_probs = torch.log_softmax(model.lm_head(hidden[positions]), dim=-1)
            ids = [vocab.token_id("".join("ACGT"[b] for b in seq[t * stride:t * stride + k])) for t in positions]
            return float(log_probs[range(len(ids)), ids].sum())

        hidden, positions = forward(ref_seq, span(len(var.ref)))
        ref_lp = log_prob(ref_seq, hidden, positions)
        if not positions:
            llr = math.nan
        elif len(var.ref) == len(var.alt):  # the sum over tokens, over how many of them cover a base on average
            bases = range(*span(len(var.ref)))
            per_base = np.mean([sum(t * stride <= b < t * stride + k for t in positions) for b in bases])
            llr = (log_prob(alt_seq, hidden, positions) - ref_lp) / per_base
        else:  # alleles of different lengths: mean log-probability per masked token
            alt_hidden, alt_positions = forward(alt_seq, span(len(var.alt)))
            llr = log_prob(alt_seq, alt_hidden, alt_positions) / len(alt_positions) - ref_lp / len(positions)
        ref_hidden, _ = forward(ref_seq)
        alt_hidden, _ = forward(alt_seq)
        n_ref = encode(ref_seq, vocab, stride).size
        ref_local = ref_hidden[list(token_range(*span(len(var.ref)), k, stride, n_ref))].mean(0)
        alt_local = alt_hidden[list(token_range(*span(len(var.alt)), k, stride, n_ref))].mean(0)
        results.append((llr, float((alt_local - ref_local).norm()),
                        float((alt_hidden.mean(0) - ref_hidden.mean(0)).norm())))
    return np.array(results)  # [strand, (llr, local, pooled)]


@pytest.mark.slow
@pytest.mark.parametrize("k,stride", [(3, 1), (4, 2)])
def test_shared_passes_equal_one_variant_at_a_time(chloroplast, k, stride):
    model, vocab = tiny_model(k), KmerVocab(k)
    rng = np.random.default_rng(k * 10 + stride)
    variants = random_variants(chloroplast, rng, 4, 5000, 5400)  # an SNV, an MNV, an insertion, a deletion
    window = 120
    encoder = Encoder(model, vocab, stride, torch.device("cpu"), batch_size=3)
    # mask spacing above the window: every site gets its own masked pass, exactly as the reference does it
    scores = score_variants(variants, chloroplast, encoder, window=window, step=stride, mask_spacing=10**6,
                            progress=False)
    for i, var in enumerate(variants):
        start, end = scores.window_start[i], scores.window_end[i]
        assert end - start == window and start % stride == 0
        assert abs((start + end) / 2 - (var.pos - 1)) <= stride
        expected = direct_scores(model, vocab, stride, chloroplast, var, start, end)
        found = np.stack([scores.llr[i], scores.emb_local[i], scores.emb_pooled[i]], axis=1)
        np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_many_variants_in_one_window_share_forward_passes(chloroplast):
    model, vocab = tiny_model(3), KmerVocab(3)
    rng = np.random.default_rng(7)
    variants = random_variants(chloroplast, rng, 200, 19_750, 20_200, kinds=("snv",))
    variants += [variant(v.contig, v.pos, v.ref, next(b for b in "ACGT" if b not in (v.ref, v.alt)))
                 for v in variants[:100]]  # second ALT at half of the sites
    encoder = Encoder(model, vocab, 1, torch.device("cpu"), batch_size=8)
    scores = score_variants(variants, chloroplast, encoder, window=1024, step=512, mask_spacing=25,
                            embeddings=False, progress=False)
    assert {(s, e) for s, e in zip(scores.window_start, scores.window_end)} == {(19456, 20480)}
    assert scores.scored.all() and not np.isnan(scores.llr).any()
    # LLR only: a masked pass holds sites >= 25 bp apart; the passes needed per strand are the most sites in
    # any 26 bp stretch (greedy packing in position order is optimal for intervals)
    positions = np.array(sorted({v.pos for v in variants}))
    crowded = max(int(np.sum((positions >= p) & (positions < p + 26))) for p in positions)
    assert set(encoder.forwards) == {"masked"} and encoder.forwards["masked"] == 2 * crowded
    assert 2 * crowded < len(variants) / 8
    # with embeddings: one reference pass per window and strand, one alternate pass per ALT and strand
    encoder.forwards.clear()
    score_variants(variants[:5], chloroplast, encoder, window=1024, step=512, mask_spacing=25, progress=False)
    assert encoder.forwards["reference"] == 2 and encoder.forwards["alternate"] == 2 * 5


def test_shards_split_the_windows_between_them(chloroplast):
    model, vocab = tiny_model(3), KmerVocab(3)
    variants = random_variants(chloroplast, np.random.default_rng(5), 12, 1000, 9000, kinds=("snv",))
    encoder = Encoder(model, vocab, 1, torch.device("cpu"), batch_size=8)
    whole = score_variants(variants, chloroplast, encoder, window=400, mask_spacing=50, embeddings=False,
                           progress=False)
    shards = [score_variants(variants, chloroplast, encoder, window=400, mask_spacing=50, embeddings=False,
                             shard=(i, 3), progress=False) for i in range(3)]
    assert all(s.scored.any() for s in shards)
    assert (sum(s.scored.astype(int) for s in shards) == 1).all()  # every variant in exactly one shard
    merged = np.where(shards[0].scored[:, None], shards[0].llr, np.where(shards[1].scored[:, None], shards[1].llr,
                                                                          shards[2].llr))
    np.testing.assert_allclose(merged, whole.llr)


def test_packed_masks_are_spaced_and_complete():
    rng = np.random.default_rng(3)
    starts = rng.integers(0, 5000, 400)
    spans = [(int(s), int(s) + int(rng.integers(1, 4))) for s in starts]
    passes = pack_sites(spans, spacing=100)
    assert sorted(i for group in passes for i in group) == list(range(len(spans)))
    for group in passes:
        ordered = sorted(spans[i] for i in group)
        assert all(b[0] - a[1] >= 100 for a, b in zip(ordered, ordered[1:]))
    assert len(passes) < len(spans) / 5


def test_windows_follow_the_grid_and_stay_inside_contigs():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        length = int(rng.integers(100, 400_000))
        window, stride = int(rng.integers(50, 200_000)), int(rng.integers(1, 7))
        step = int(rng.integers(1, window // 2 + 1))
        pos = int(rng.integers(0, length))
        start, end = window_bounds(pos, length, window, step, stride)
        grid = -(-step // stride) * stride
        assert start % stride == 0 and start % grid == 0 or start == max(0, length - window) // stride * stride
        assert 0 <= start <= pos < end <= length
        if length >= window:
            assert window <= end - start < window + stride
            if window / 2 + grid <= pos <= length - window / 2 - grid:
                assert abs(start + window / 2 - pos) <= grid / 2
        else:
            assert (start, end) == (0, length)


def test_n_alleles_and_edge_variants_get_nan_not_errors(chloroplast):
    model, vocab = tiny_model(3), KmerVocab(3)
    length = chloroplast.contigs[CONTIG]
    last = chloroplast.fetch(CONTIG, length - 1, length).upper()
    variants = [variant(CONTIG, 1000, chloroplast.fetch(CONTIG, 999, 1000).upper(), "N"),
                variant(CONTIG, length, last, "A" if last != "A" else "C")]
    encoder = Encoder(model, vocab, 3, torch.device("cpu"))
    scores = score_variants(variants, chloroplast, encoder, window=300, progress=False)
    assert np.isnan(scores.llr[0]).all() and np.isfinite(scores.emb_pooled[0]).all()
    # pushed inside the contig, up to its last whole token; with stride 3 the last base of the contig may lie
    # after the last whole k-mer: then no token covers it
    assert length - 3 < scores.window_end[1] <= length and (scores.window_end[1] - scores.window_start[1]) % 3 == 0
    covered = (length - 3) // 3 * 3 + 3 >= length
    assert np.isfinite(scores.llr[1]).all() == covered


def test_variant_on_a_contig_shorter_than_k_gets_no_score_not_an_error(chloroplast, tmp_path):
    """A 2-bp contig holds no 3-mer token: its variant is NaN (the model was run on an empty sequence and the
    whole run failed with 'input_ids must have shape [batch, length>0]'); the other contig's is scored."""
    fasta = tmp_path / "two_contigs.fa"
    fasta.write_text(f">long\n{chloroplast.fetch(CONTIG, 0, 3000)}\n>tiny\n{chloroplast.fetch(CONTIG, 3000, 3002)}\n")
    encoder = Encoder(tiny_model(3), KmerVocab(3), 1, torch.device("cpu"))
    with Reference(fasta) as reference:
        variants = [variant(name, 2, base, "A" if base != "A" else "C")
                    for name in ("long", "tiny") for base in [reference.fetch(name, 1, 2).upper()]]
        scores = score_variants(variants, reference, encoder, window=200, progress=False)
    assert scores.scored.all() and np.isfinite(scores.llr[0]).all() and np.isfinite(scores.emb_pooled[0]).all()
    assert np.isnan(scores.llr[1]).all() and np.isnan(scores.emb_pooled[1]).all()


@pytest.mark.parametrize("stride", [1, 3])
def test_variants_the_window_does_not_see_get_no_embedding_distance(chloroplast, stride):
    """An insertion at the contig's last base (its inserted bases lie past the window's end) and, with stride 3,
    SNVs on the two last bases (after the last whole token) leave every token of the window as it was: their
    embedding distances came out 0, as if the model saw no effect, and are now NaN like their LLR. The SNV on
    the base before still gets every score."""
    length = chloroplast.contigs[CONTIG]
    base = {p: chloroplast.fetch(CONTIG, p - 1, p).upper() for p in range(length - 3, length + 1)}
    last_seen = length if stride == 1 else length - 2  # 154,478 bp: 154,476 in whole 3-mers from a start % 3 == 0
    unseen = [variant(CONTIG, last_seen, base[last_seen], base[last_seen] + "GG")]
    unseen += [variant(CONTIG, p, base[p], "A" if base[p] != "A" else "C") for p in range(last_seen + 1, length + 1)]
    seen = variant(CONTIG, length - 3, base[length - 3], "A" if base[length - 3] != "A" else "C")
    encoder = Encoder(tiny_model(3), KmerVocab(3), stride, torch.device("cpu"))
    scores = score_variants([seen, *unseen], chloroplast, encoder, window=300, progress=False)
    assert scores.window_end[0] == last_seen and len(unseen) == (1 if stride == 1 else 3)
    assert np.isfinite(scores.llr[0]).all() and np.isfinite(scores.emb_local[0]).all()
    assert (scores.emb_pooled[0] > 0).all()
    for values in (scores.llr, scores.emb_local, scores.emb_pooled):
        assert np.isnan(values[1:]).all()


@pytest.mark.parametrize("k,stride", [(3, 1), (3, 2), (3, 3), (4, 2)])
def test_snvs_at_contig_ends_match_one_variant_at_a_time(chloroplast, k, stride):
    """SNVs on the first and last bases of a contig, which fewer tokens cover: the LLR is still the mean over
    the tokens that do (not shrunk by the count inside the contig), on both strands. Both strands score the
    same bases: the reverse pass covers the contig's first bases whenever the forward pass does."""
    model, vocab = tiny_model(k), KmerVocab(k)
    length = chloroplast.contigs[CONTIG]
    positions = [1, 2, 3, 4, 2000, length - 3, length - 2, length - 1, length]
    bases = [chloroplast.fetch(CONTIG, p - 1, p).upper() for p in positions]
    variants = [variant(CONTIG, p, b, "ACGT"[("ACGT".index(b) + 1) % 4]) for p, b in zip(positions, bases)]
    encoder = Encoder(model, vocab, stride, torch.device("cpu"))
    scores = score_variants(variants, chloroplast, encoder, window=61, step=stride, mask_spacing=10**6,
                            progress=False)
    for i, var in enumerate(variants):
        start, end = scores.window_start[i], scores.window_end[i]
        assert (end - start - k) % stride == 0  # the window ends with a whole token
        expected = direct_scores(model, vocab, stride, chloroplast, var, start, end)
        np.testing.assert_allclose(scores.llr[i], expected[:, 0], rtol=1e-4, atol=1e-5)
        assert np.isnan(scores.llr[i, 0]) == np.isnan(scores.llr[i, 1])
    assert np.isfinite(scores.llr[:4]).all()  # no token is missing at a contig's start, on either strand


def write_vcf(path, records, contigs):
    header = "##fileformat=VCFv4.2\n" + "".join(f"##contig=<ID={c},length={n}>\n" for c, n in contigs.items())
    header += '##INFO=<ID=DP,Number=1,Type=Integer,Description="depth">\n'
    header += '##INFO=<ID=AF,Number=A,Type=Float,Description="allele frequency">\n'
    header += "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    path.write_text(header + "".join("\t".join(map(str, r)) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_run(tiny_model(3), tmp_path_factory.mktemp("run"))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "genoformer", *map(str, args)], capture_output=True, text=True)


def quiet_cli(*args):
    """The CLI with info logs off: a user mistake must leave exactly one line on stderr."""
    return cli("-q", *args)


@pytest.mark.slow
def test_cli_writes_indexed_vcf_and_table(chloroplast, chloroplast_fasta, checkpoint, tmp_path):
    bases = {p: chloroplast.fetch(CONTIG, p - 1, p).upper() for p in (3000, 3050, 3100)}
    records = [
        (CONTIG, 3000, "rs1", bases[3000], "A,G" if bases[3000] not in "AG" else "C,T", 50, "PASS", "DP=10;AF=0.1,0.2"),
        (CONTIG, 3050, ".", bases[3050], "<DEL>", ".", ".", "DP=3"),
        (CONTIG, 3100, ".", bases[3100] + chloroplast.fetch(CONTIG, 3100, 3102).upper(), bases[3100], ".", ".", "DP=7"),
    ]
    vcf = write_vcf(tmp_path / "in.vcf", records, chloroplast.contigs)
    out = tmp_path / "scored.vcf.gz"
    result = cli("score-variants", "--reference", chloroplast_fasta, "--vcf", vcf, "--checkpoint", checkpoint,
                 "--out", out, "--window", 600, "--per-strand")
    assert result.returncode == 0, result.stderr
    with pysam.VariantFile(str(out)) as scored:
        header = str(scored.header)
        rows = list(scored.fetch(CONTIG, 2990, 3200))
    assert "##genoformer_checkpoint_sha256=" in header and "##genoformer_window=600" in header
    assert all(f"ID={key}," in header for key in ("GF_LLR", "GF_LLR_FWD", "GF_LLR_REV", "GF_EMB_LOCAL", "GF_EMB_POOLED"))
    assert [(r.pos, r.alts[0]) for r in rows][:2] == [(3000, records[0][4][0]), (3000, records[0][4][2])]
    assert len(rows) == 3  # two ALTs split, symbolic skipped, one deletion
    assert [r.info["AF"][0] for r in rows[:2]] == pytest.approx([0.1, 0.2]) and rows[2].info["DP"] == 7
    for r in rows:
        assert r.info["GF_LLR"] == pytest.approx((r.info["GF_LLR_FWD"] + r.info["GF_LLR_REV"]) / 2, rel=1e-5)
    table = pd.read_csv(tmp_path / "scored.tsv", sep="\t")
    assert len(table) == 3 and table["GF_EMB_POOLED"].notna().all() and list(table["record"]) == [1, 1, 3]


def test_table_values_are_the_vcf_values(chloroplast, chloroplast_fasta, checkpoint, tmp_path):
    """Every score of the table reads as the VCF's, digit for digit. The VCF holds float32: the table printed
    the float64 score, whose 6th digit differed from the VCF's for about 1 value in 400 (a table row could not be
    matched to its VCF record by value)."""
    variants = random_variants(chloroplast, np.random.default_rng(2), 200, 1000, 40_000, kinds=("snv", "del"))
    vcf = write_vcf(tmp_path / "in.vcf", [(CONTIG, v.pos, ".", v.ref, v.alt, ".", ".", "DP=1") for v in variants],
                    chloroplast.contigs)
    out = tmp_path / "scored.vcf.gz"
    assert main(["-q", "score-variants", "--reference", str(chloroplast_fasta), "--vcf", str(vcf), "--checkpoint",
                 str(checkpoint), "--out", str(out), "--window", "128", "--per-strand"]) == 0
    table = pd.read_csv(tmp_path / "scored.tsv", sep="\t", dtype=str).set_index(["pos", "alt"])
    columns = [column for column in table.columns if column.startswith("GF_")]
    compared = 0
    with pysam.VariantFile(str(out)) as scored:
        for record in scored:
            info = dict(field.split("=") for field in str(record).rstrip().split("\t")[7].split(";"))
            row = table.loc[(str(record.pos), record.alts[0])]
            assert {column: info.get(column, "NA") for column in columns} == row[columns].to_dict()
            compared += len(columns)
    assert compared == 200 * 9


@pytest.mark.slow
def test_cli_bad_input_is_one_line_exit_2(chloroplast, chloroplast_fasta, checkpoint, tmp_path, capsys):
    base = chloroplast.fetch(CONTIG, 99, 100).upper()
    wrong = "A" if base != "A" else "C"
    vcf = write_vcf(tmp_path / "mismatch.vcf", [(CONTIG, 100, ".", wrong, "G", ".", ".", "DP=1")], chloroplast.contigs)
    out = tmp_path / "o.vcf.gz"
    result = quiet_cli("score-variants", "--reference", chloroplast_fasta, "--vcf", vcf, "--checkpoint", checkpoint,
                       "--out", out, "--window", 300)
    assert result.returncode == 2 and "does not match reference" in result.stderr and "record 1" in result.stderr
    assert result.stderr.startswith("genoformer score-variants: error: ") and result.stderr.count("\n") == 1
    assert not out.exists()
    other = write_vcf(tmp_path / "other.vcf", [("chr7", 5, ".", "A", "G", ".", ".", "DP=1")], {"chr7": 1000})
    result = quiet_cli("score-variants", "--reference", chloroplast_fasta, "--vcf", other, "--checkpoint", checkpoint,
                       "--out", out)
    assert result.returncode == 2 and "chr7" in result.stderr and result.stderr.count("\n") == 1
    # the same CLI in-process (cheaper): skipping mismatches works and is counted; a bad checkpoint is exit 2
    args = ["score-variants", "--reference", str(chloroplast_fasta), "--vcf", str(vcf), "--out", str(out),
            "--window", "300", "--skip-ref-mismatch"]
    assert main(["-q", *args, "--checkpoint", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main([*args, "--checkpoint", str(checkpoint)]) == 0
    with pysam.VariantFile(str(out)) as scored:
        assert list(scored) == [] and "ref_mismatch=1" in str(scored.header)


@pytest.mark.parametrize("damage, named", [
    ("vocab", "vocab.json: vocabulary of 261 tokens (k=4), but the model in "),
    ("stride", "trainer_state.json: data.stride 5 must be from 1 to k=3"),
])
def test_checkpoint_files_that_disagree_are_named(human_q, checkpoint, tmp_path, capsys, damage, named):
    """A vocab.json of another k, or a trainer_state.json stride past k: the error names the checkpoint's file."""
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(checkpoint, run)
    if damage == "vocab":
        (run / "vocab.json").write_text(json.dumps(KmerVocab(4).to_json()))
    else:
        state = json.loads((run / "trainer_state.json").read_text())
        state["data"]["stride"] = 5
        (run / "trainer_state.json").write_text(json.dumps(state))
    out = tmp_path / "scored.vcf.gz"
    assert main(["-q", "score-variants", "--reference", str(human_q / "q.fa"), "--vcf", str(human_q / "q.vcf.gz"),
                 "--checkpoint", str(run), "--window", "256", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"error: {run}/{named}" in err[0], err
    assert not out.exists()


def test_table_path_that_is_a_folder_leaves_no_scored_vcf(human_q, checkpoint, tmp_path, capsys):
    """--table naming a folder is refused before scoring: the scored VCF is not written and then the table
    refused (a scored VCF without its table, from a command that failed)."""
    out = tmp_path / "scored.vcf.gz"
    folder = tmp_path / "tables"
    folder.mkdir()
    assert main(["-q", "score-variants", "--reference", str(human_q / "q.fa"), "--vcf", str(human_q / "q.vcf.gz"),
                 "--checkpoint", str(checkpoint), "--window", "256", "--no-embeddings", "--out", str(out),
                 "--table", str(folder)]) == 2
    assert f"{folder}: output path is a folder" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tables"]


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_giab_vcf_with_undeclared_info_field_scores_end_to_end(human_q, tiny_run, tmp_path):
    """The bundled GIAB VCF uses INFO PLNCIIonWG (values like 67,0,116) without declaring it: the output
    declares it Number=. and keeps every value, and FILTER PASS stays PASS. (Its header declares allalts, which
    holds alleles, an Integer: corrected here, so the value is kept; as shipped it is warned about,
    tests/test_io_vcf.py.)"""
    out = tmp_path / "giab.vcf.gz"
    giab = tmp_path / "giab.vcf"
    giab.write_text((human_q / "NA12878.chr22.tiny.giab.vcf").read_text().replace(
        "##INFO=<ID=allalts,Number=1,Type=Integer,", "##INFO=<ID=allalts,Number=.,Type=String,"))
    assert main(["-q", "score-variants", "--reference", str(human_q / "q.fa"), "--vcf", str(giab),
                 "--checkpoint", str(tiny_run), "--window", "256", "--out", str(out)]) == 0
    with pysam.VariantFile(str(giab)) as source:
        expected = [(r.pos, r.info.get("PLNCIIonWG"), tuple(r.filter)) for r in source]
    with pysam.VariantFile(str(out)) as scored:
        assert scored.header.info["PLNCIIonWG"].number == "."
        assert "##genoformer_shard=0/1" in str(scored.header)
        rows = [(r.pos, r.info.get("PLNCIIonWG"), tuple(r.filter)) for r in scored]
    assert rows == expected and len(rows) == 14
    assert rows[0] == (186, ("67", "0", "116"), ("PASS",))
    with pysam.VariantFile(str(out)) as scored:
        assert next(iter(scored)).info["allalts"] == ("C",)


def test_window_step_zero_or_negative_is_a_range_error(chloroplast):
    encoder = Encoder(tiny_model(3), KmerVocab(3), 1, torch.device("cpu"))
    variants = random_variants(chloroplast, np.random.default_rng(1), 2, 3000, 4000, kinds=("snv",))
    for step in (0, -8):
        with pytest.raises(ConfigError, match=rf"window step \({step} bp\) from 1 to half the window"):
            score_variants(variants, chloroplast, encoder, window=300, step=step, progress=False)


@pytest.mark.parametrize("command", ["score-variants", "classify-variants"])
@pytest.mark.parametrize("flags,named", [
    (["--window", "0"], "--window 0: must be at least 1"),
    (["--window", "300", "--window-step", "0"], "--window-step 0: must be from 1 to 150"),
    (["--window", "300", "--window-step", "151"], "--window-step 151: must be from 1 to 150"),
    (["--mask-spacing", "-1"], "--mask-spacing -1: must be at least 0"),
    (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["--stride", "0"], "--stride 0: must be at least 1"),
])
def test_bad_flags_are_refused_before_any_file_is_read(chloroplast_fasta, tmp_path, capsys, command, flags, named):
    """The flags are checked first: the VCF and checkpoint named here do not even exist (a real VCF would be
    read, and the model loaded, before the old checks ran)."""
    out = tmp_path / ("o.vcf.gz" if command == "score-variants" else "out")
    label = ["--label-field", "CLASS"] if command == "classify-variants" else []
    assert main(["-q", command, *label, "--reference", str(chloroplast_fasta), "--vcf", str(tmp_path / "absent.vcf.gz"),
                 "--checkpoint", str(tmp_path / "absent_run"), "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1 and not out.exists()


@pytest.fixture(scope="module")
def scored_shards(chloroplast, chloroplast_fasta, checkpoint, tmp_path_factory):
    """score-variants on 12 SNVs: as shards 0/3, 1/3, 2/3, unsharded, and shard 1/3 with another window."""
    folder = tmp_path_factory.mktemp("shards")
    variants = random_variants(chloroplast, np.random.default_rng(5), 12, 1000, 9000, kinds=("snv",))
    vcf = write_vcf(folder / "in.vcf", [(CONTIG, v.pos, ".", v.ref, v.alt, ".", ".", "DP=1") for v in variants],
                    chloroplast.contigs)
    runs = {f"s{i}": ["--shard", f"{i}/3"] for i in range(3)}
    runs.update(whole=[], other=["--shard", "1/3", "--window", "500"])
    for name, extra in runs.items():
        assert main(["-q", "score-variants", "--reference", str(chloroplast_fasta), "--vcf", str(vcf), "--checkpoint",
                     str(checkpoint), "--out", str(folder / f"{name}.vcf.gz"), "--window", "400", "--no-embeddings",
                     *extra]) == 0
    return folder


def test_merged_shards_equal_the_unsharded_run(scored_shards, tmp_path):
    shards = [scored_shards / f"s{i}.vcf.gz" for i in (2, 0, 1)]
    tables = [scored_shards / f"s{i}.tsv" for i in (2, 0, 1)]
    with pysam.VariantFile(str(shards[0])) as vcf:
        assert "##genoformer_shard=2/3" in str(vcf.header)
    out, table = tmp_path / "m.vcf.gz", tmp_path / "m.tsv"
    assert main(["merge-vcf", "--vcfs", *map(str, shards), "--out", str(out), "--tables", *map(str, tables),
                 "--table-out", str(table)]) == 0

    def body(path):
        with pysam.VariantFile(str(path)) as vcf:
            return [str(record) for record in vcf]
    assert body(out) == body(scored_shards / "whole.vcf.gz") and len(body(out)) == 12
    assert table.read_text() == (scored_shards / "whole.tsv").read_text()
    # a single unsharded file (shard 0/1) merges too
    assert main(["merge-vcf", "--vcfs", str(scored_shards / "whole.vcf.gz"), "--out", str(tmp_path / "w.vcf.gz")]) == 0
    assert body(tmp_path / "w.vcf.gz") == body(out)


@pytest.mark.parametrize("vcfs,extra,expected", [
    (["s0", "s1", "s1", "s2"], [], "s1.vcf.gz: shard 1/3 given twice (also {d}/s1.vcf.gz)"),
    (["s0", "s2"], [], "s0.vcf.gz: shard(s) 1/3 of its run missing"),
    (["s0", "other", "s2"], [], "other.vcf.gz: ##genoformer_window=500 but {d}/s0.vcf.gz has ##genoformer_window=400"),
    (["s0", "s1", "s2", "whole"], [], "whole.vcf.gz: shard 0/1 but {d}/s0.vcf.gz is a shard of 3"),
    (["s0", "s1", "s2"], ["--out", "{d}/s1.vcf.gz"], "s1.vcf.gz: the merged VCF would overwrite one of its inputs"),
    (["s0", "s1", "s2"], ["--tables", "{d}/s0.tsv", "--table-out", "{t}/m.tsv"], "--tables: 1 tables for 3 VCFs"),
    (["s0", "s1", "s2"], ["--tables", "{d}/s0.vcf.gz", "{d}/s1.vcf.gz", "{d}/s2.vcf.gz", "--table-out", "{t}/m.tsv"],
     "s0.vcf.gz: not a tab-separated table: Error tokenizing data"),
])
def test_merge_rejects_shards_that_are_not_one_run(scored_shards, tmp_path, capsys, vcfs, extra, expected):
    extra = [arg.format(d=scored_shards, t=tmp_path) for arg in extra]
    out = ["--out", str(tmp_path / "m.vcf.gz")] if "--out" not in extra else []
    before = (scored_shards / "s1.vcf.gz").read_bytes()
    assert main(["-q", "merge-vcf", "--vcfs", *(str(scored_shards / f"{v}.vcf.gz") for v in vcfs), *out,
                 *extra]) == 2
    err = capsys.readouterr().err
    assert expected.format(d=scored_shards) in err and err.count("\n") == 1, err
    assert not (tmp_path / "m.tsv").exists() and (scored_shards / "s1.vcf.gz").read_bytes() == before


def test_alternate_window_keeps_length_and_alignment():
    codes = encode_bases("ACGTACGTAC")
    following = encode_bases("GGG")
    assert "".join("ACGTN"[c] for c in alternate_window(codes, 2, "G", "GTT", following)) == "ACGTTTACGT"
    assert "".join("ACGTN"[c] for c in alternate_window(codes, 2, "GTA", "G", following)) == "ACGCGTACGG"
    assert "".join("ACGTN"[c] for c in alternate_window(codes, 9, "C", "T", following)) == "ACGTACGTAT"
    # a deletion whose REF runs past the window's end: the bases after the REF, not the deleted ones, follow
    following = encode_bases("GTC")
    assert "".join("ACGTN"[c] for c in alternate_window(codes, 8, "ACGT", "A", following)) == "ACGTACGTAC"


def test_long_deletions_are_scored_in_a_window_that_holds_them(chloroplast):
    """A deletion half a window long is centred in its window and its alternate window is the reference with the
    deleted bases removed; one longer than the window gets embeddings but no LLR."""
    model, vocab = tiny_model(3), KmerVocab(3)
    window, pos = 512, 5000  # 1-based POS of the deletions' first (kept) base
    deletions = [variant(CONTIG, pos, chloroplast.fetch(CONTIG, pos - 1, pos - 1 + length).upper(),
                         chloroplast.fetch(CONTIG, pos - 1, pos).upper()) for length in (301, 700)]
    encoder = Encoder(model, vocab, 1, torch.device("cpu"))
    scores = score_variants(deletions, chloroplast, encoder, window=window, progress=False)
    start, end = scores.window_start[0], scores.window_end[0]
    assert start <= pos - 1 and pos - 1 + 301 <= end  # the whole REF is inside the window
    assert np.isfinite(scores.llr[0]).all() and np.isfinite(scores.emb_local[0]).all()
    assert np.isnan(scores.llr[1]).all() and np.isfinite(scores.emb_pooled[1]).all()

    start, end = scores.window_start[1], scores.window_end[1]
    codes = chloroplast.codes(CONTIG, start, end)[0]
    following = chloroplast.codes(CONTIG, end, end + 700)[0]
    alt = alternate_window(codes, pos - 1 - start, deletions[1].ref, deletions[1].alt, following)
    expected = chloroplast.fetch(CONTIG, start, pos) + chloroplast.fetch(CONTIG, pos - 1 + 700, end + 699)
    assert "".join("ACGTN"[c] for c in alt) == expected.upper()


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_pretrained_model_ranks_stop_gained_below_synonymous(tiny_run):
    """Real biology at demo scale: on genes the tiny model never saw, stop-gained SNVs get lower LLRs than
    synonymous ones (AUROC of -LLR above chance, CI excluding 0.5)."""
    with Reference(CDIPH) as reference:
        snvs = [s for s in coding_snvs(reference, CDIPH_GFF, n_genes=3, seed=1)
                if s.consequence in ("stop_gained", "synonymous") and s.pos <= TRAIN_START]
        variants = [variant(s.contig, s.pos, s.ref, s.alt, i + 1) for i, s in enumerate(snvs)]
        encoder, _ = load_encoder(tiny_run, device="cpu", batch_size=16)
        scores = score_variants(variants, reference, encoder, window=128, step=64, mask_spacing=12,
                                embeddings=False, progress=False)
    stop_gained = np.array([s.consequence == "stop_gained" for s in snvs])
    assert stop_gained.sum() >= 100 and (~stop_gained).sum() >= 500
    result = classification_metrics(stop_gained, -scores.llr.mean(axis=1), n_bootstrap=300)
    assert result["auroc"]["ci95"][0] > 0.5, result
    assert sum(encoder.forwards.values()) < len(variants) / 2


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_indel_llrs_are_not_a_measure_of_allele_length(tiny_run):
    """Summed over their tokens, a 2-bp insertion's LLR came out near -2 ln 4 and a deletion's near +2 ln 4
    whatever the model saw (each extra base costs ~ln 4 nats): insertions filled the least-expected list. Per
    masked token, indels land where SNVs do."""
    rng = np.random.default_rng(0)
    with Reference(CDIPH) as reference:
        positions = sorted(rng.choice(np.arange(50_000, TRAIN_START - 1000), 90, replace=False))
        variants = []
        for number, pos in enumerate(int(p) for p in positions):
            bases = reference.fetch(CDIPH_CONTIG, pos, pos + 3).upper()
            ref, alt = [(bases[0], "ACGT".replace(bases[0], "")[number % 3]),  # an SNV
                        (bases[0], bases[0] + "AG"[number % 2] + "CT"[number % 2]),  # a 2-bp insertion
                        (bases, bases[0])][number % 3]  # a 2-bp deletion
            variants.append(variant(CDIPH_CONTIG, pos + 1, ref, alt, number + 1))
        encoder, _ = load_encoder(tiny_run, device="cpu", batch_size=16)
        llr = score_variants(variants, reference, encoder, window=256, step=32, embeddings=False,
                             progress=False).llr.mean(axis=1)
    kinds = np.arange(len(variants)) % 3  # 0 SNV, 1 2-bp insertion, 2 2-bp deletion
    assert np.isfinite(llr).all()
    snv = np.median(llr[kinds == 0])
    for kind in (1, 2):
        assert abs(np.median(llr[kinds == kind]) - snv) < 1.0, (kind, np.median(llr[kinds == kind]), snv)


def test_merge_keeps_the_unsharded_order_of_variants_at_one_position(chloroplast, chloroplast_fasta, checkpoint,
                                                                     tmp_path):
    """Variants at one position whose longer alleles centre them in different windows land in different shards:
    an SNV and a 60-bp deletion in two records at 1200, and the two ALTs (a 60-bp insertion, then an SNV) of one
    record at 3000. The merged VCF and table must not depend on the order the shards are given in (they
    followed it: the unsharded run sorts same-position records by REF and ALT, and keeps ALTs in record order)."""
    def base(pos, length=1):
        return chloroplast.fetch(CONTIG, pos - 1, pos - 1 + length).upper()

    def other(b):
        return "A" if b != "A" else "C"

    inserted = chloroplast.fetch(CONTIG, 5000, 5060).upper()
    records = [(CONTIG, 1200, ".", base(1200), other(base(1200)), ".", ".", "DP=1"),
               (CONTIG, 1200, ".", base(1200, 61), base(1200), ".", ".", "DP=2"),
               (CONTIG, 3000, ".", base(3000), f"{base(3000) + inserted},{other(base(3000))}", ".", ".", "DP=3")]
    vcf = write_vcf(tmp_path / "in.vcf", records, chloroplast.contigs)
    for name, shard in (("whole", "0/1"), ("s0", "0/2"), ("s1", "1/2")):
        assert main(["-q", "score-variants", "--reference", str(chloroplast_fasta), "--vcf", str(vcf), "--checkpoint",
                     str(checkpoint), "--out", str(tmp_path / f"{name}.vcf.gz"), "--window", "400", "--shard", shard,
                     "--no-embeddings"]) == 0
    assert len(pd.read_csv(tmp_path / "s0.tsv", sep="\t")) == 2  # the two SNVs; the long alleles are in s1

    def body(path):
        with pysam.VariantFile(str(path)) as scored:
            return [str(record) for record in scored]
    for order in (("s0", "s1"), ("s1", "s0")):
        out, table = tmp_path / f"{order[0]}_first.vcf.gz", tmp_path / f"{order[0]}_first.tsv"
        assert main(["-q", "merge-vcf", "--vcfs", *(str(tmp_path / f"{s}.vcf.gz") for s in order), "--out", str(out),
                     "--tables", *(str(tmp_path / f"{s}.tsv") for s in order), "--table-out", str(table)]) == 0
        assert body(out) == body(tmp_path / "whole.vcf.gz") and len(body(out)) == 4, order
        assert table.read_text() == (tmp_path / "whole.tsv").read_text(), order


@pytest.mark.parametrize("tables, expected", [
    (["s0", "s0", "s2"], "{d}/s0.tsv: line 2: record 1, allele 1 is also in {d}/s0.tsv: line 2; give each shard's "
     "table once"),
    (["s0", "s1", "whole"], "{d}/whole.tsv: line 2: record 1, allele 1 is also in {d}/s"),
    (["s0", "s1", "header"], "{t}/m.vcf.gz: the 3 shard VCFs hold 12 records but their tables 9 rows (one per "
     "record); give the tables of these shards"),
])
def test_merge_rejects_tables_that_are_not_the_shards_of_its_vcfs(scored_shards, tmp_path, capsys, tables, expected):
    """The tables were only checked for their columns: a shard's table given twice, or the whole run's next to
    two shards', merged into a table of 13 or 21 rows for the 12 records, and one of a shard that scored nothing
    in place of shard 2's into 9, without a word. Now nothing is written."""
    (tmp_path / "header.tsv").write_text((scored_shards / "s2.tsv").read_text().splitlines()[0] + "\n")
    paths = [str(tmp_path / "header.tsv") if name == "header" else str(scored_shards / f"{name}.tsv")
             for name in tables]
    out = tmp_path / "m.vcf.gz"
    assert main(["-q", "merge-vcf", "--vcfs", *(str(scored_shards / f"s{i}.vcf.gz") for i in range(3)), "--out",
                 str(out), "--tables", *paths, "--table-out", str(tmp_path / "m.tsv")]) == 2
    err = capsys.readouterr().err
    assert expected.format(d=scored_shards, t=tmp_path) in err and err.count("\n") == 1, err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["header.tsv"]


def test_shards_of_two_vcfs_do_not_merge(human_q, checkpoint, tmp_path, capsys):
    """Shard 0/2 of the freebayes calls' first half and shard 1/2 of their second half, with one checkpoint and
    window: their headers agreed but for the shard line, so they merged into a VCF of neither, without a word."""
    with pysam.VariantFile(str(human_q / "q.vcf.gz")) as calls:
        header, records = calls.header, [str(record) for record in calls]
    halves = []
    for number, part in enumerate((records[:8], records[8:])):
        halves.append(tmp_path / f"half{number}.vcf")
        halves[-1].write_text(str(header) + "".join(part))
        assert main(["-q", "score-variants", "--reference", str(human_q / "q.fa"), "--vcf", str(halves[-1]),
                     "--checkpoint", str(checkpoint), "--window", "256", "--no-embeddings", "--shard",
                     f"{number}/2", "--out", str(tmp_path / f"s{number}.vcf.gz")]) == 0
    assert main(["-q", "merge-vcf", "--vcfs", str(tmp_path / "s0.vcf.gz"), str(tmp_path / "s1.vcf.gz"), "--out",
                 str(tmp_path / "m.vcf.gz")]) == 2
    err = capsys.readouterr().err
    assert (f"s1.vcf.gz: ##genoformer_vcf={halves[1]},records=8 but {tmp_path / 's0.vcf.gz'} has "
            f"##genoformer_vcf={halves[0]},records=8; only shards of one scoring run can be merged") in err
    assert err.count("\n") == 1 and not (tmp_path / "m.vcf.gz").exists()


def freebayes_calls(human_q) -> tuple[str, list[str]]:
    """The bundled freebayes calls on q as text: the header and one line per record."""
    with pysam.VariantFile(str(human_q / "q.vcf.gz")) as calls:
        return str(calls.header), [str(record) for record in calls]


def score_edited_calls(human_q, checkpoint, vcf: Path, header: str, records: list[str]) -> Path:
    """Write ``header`` and ``records`` to ``vcf``, score it with the tiny checkpoint (window 256, no embeddings)
    and return the scored VCF's path."""
    vcf.write_text(header + "".join(records))
    out = vcf.with_name(f"{vcf.stem}.scored.vcf.gz")
    assert main(["-q", "score-variants", "--reference", str(human_q / "q.fa"), "--vcf", str(vcf), "--checkpoint",
                 str(checkpoint), "--window", "256", "--no-embeddings", "--out", str(out)]) == 0
    return out


def test_info_values_of_another_count_than_declared_are_written_whole(human_q, checkpoint, tmp_path):
    """The freebayes calls with AF (Number=A) of three values on a one-ALT record and DP (Number=1) of two: read,
    such values are kept whole, but the scored VCF declared them as the input did and pysam raised a TypeError
    writing it, after all the scoring. Now such a field is declared Number=. and its values kept."""
    header, records = freebayes_calls(human_q)
    records[0] = records[0].replace("AF=0.5;", "AF=0.5,0.25,0.25;").replace(";DP=41;", ";DP=41,40;")
    out = score_edited_calls(human_q, checkpoint, tmp_path / "calls.vcf", header, records)
    with pysam.VariantFile(str(out)) as scored:
        numbers = {key: scored.header.info[key].number for key in ("AF", "DP", "AO")}
        rows = [(record.pos, record.info["AF"], record.info["DP"]) for record in scored]
    assert numbers == {"AF": ".", "DP": ".", "AO": "A"} and len(rows) == 16
    assert rows[0] == (186, pytest.approx((0.5, 0.25, 0.25)), (41, 40)) and rows[1] == (1008, (0.5,), (39,))


def test_input_gf_fields_give_way_to_the_scores_with_a_warning(human_q, checkpoint, tmp_path, caplog):
    """The freebayes calls carrying a GF_LLR of their own (say from an earlier genoformer run): the output holds
    this run's LLR, not the input's, and the log names the field that was left out."""
    header, records = freebayes_calls(human_q)
    header = header.replace("#CHROM", '##INFO=<ID=GF_LLR,Number=1,Type=Float,Description="an earlier run">\n#CHROM')
    vcf = tmp_path / "rescored.vcf"
    with caplog.at_level(logging.WARNING, logger="genoformer"):
        out = score_edited_calls(human_q, checkpoint, vcf, header,
                                 [record.replace("\tAB=", "\tGF_LLR=99;AB=", 1) for record in records])
    with pysam.VariantFile(str(out)) as scored:
        llrs = [record.info["GF_LLR"] for record in scored]
    assert len(llrs) == 16 and 99 not in llrs and all(abs(llr) < 50 for llr in llrs)
    assert f"{vcf}: its INFO fields GF_LLR are left out of {out}" in caplog.text


def test_a_folder_given_as_the_vcf_is_named_as_such(human_q, checkpoint, tmp_path, capsys):
    assert main(["score-variants", "--reference", str(human_q / "q.fa"), "--vcf", str(tmp_path), "--checkpoint",
                 str(checkpoint), "--out", str(tmp_path / "scored.vcf.gz")]) == 2
    assert capsys.readouterr().err.strip().endswith(f"error: {tmp_path}: a folder, not a VCF file")


def test_an_undeclared_flag_is_kept_as_a_flag(human_q, checkpoint, tmp_path):
    """The freebayes calls with an undeclared bare key (SOMATIC) on their first three records: pysam reads it as
    None, which the writer left out of every record; it is now declared a Flag and kept where it was."""
    header, records = freebayes_calls(human_q)
    records[:3] = [record.replace("\tAB=", "\tSOMATIC;AB=", 1) for record in records[:3]]
    out = score_edited_calls(human_q, checkpoint, tmp_path / "flagged.vcf", header, records)
    with pysam.VariantFile(str(out)) as scored:
        declared = (scored.header.info["SOMATIC"].type, scored.header.info["SOMATIC"].number)
        flagged = [record.pos for record in scored if "SOMATIC" in record.info]
    assert declared == ("Flag", 0) and flagged == [int(record.split("\t")[1]) for record in records[:3]]


def test_an_undeclared_key_bare_on_some_records_and_valued_on_others_keeps_both(human_q, checkpoint, tmp_path,
                                                                                     caplog):
    """The freebayes calls with an undeclared CLUSTER, bare on the first two records and CLUSTER=7 on the next
    two, and a declared Number=. Integer SUPPORT bare on the fifth: CLUSTER was declared Number=. String and only
    its values were written (the bare keys were lost); now the bare keys are written bare, as htslib (so bcftools)
    reads them back: an empty value. The bare SUPPORT, read as an empty tuple, was written SUPPORT=-127 (htslib's
    end-of-vector code); now it is SUPPORT=., present without a value as it was. htslib reads the file back
    without a word (bcftools 1.16 too: view and BCF keep the bare key, query gives 1 for it)."""
    header, records = freebayes_calls(human_q)
    header = header.replace("#CHROM", '##INFO=<ID=SUPPORT,Number=.,Type=Integer,Description="supporting runs">\n'
                                      "#CHROM")
    records[:2] = [record.replace("\tAB=", "\tCLUSTER;AB=", 1) for record in records[:2]]
    records[2:4] = [record.replace("\tAB=", "\tCLUSTER=7;AB=", 1) for record in records[2:4]]
    records[4] = records[4].replace("\tAB=", "\tSUPPORT;AB=", 1)
    out = score_edited_calls(human_q, checkpoint, tmp_path / "mixed.vcf", header, records)
    with pysam.VariantFile(str(out)) as scored:
        declared = (scored.header.info["CLUSTER"].number, scored.header.info["CLUSTER"].type)
        cluster = [(record.pos, record.info["CLUSTER"]) for record in scored if "CLUSTER" in record.info]
    positions = [int(record.split("\t")[1]) for record in records]
    assert declared == (".", "String")
    assert cluster == [(positions[0], ()), (positions[1], ()), (positions[2], ("7",)), (positions[3], ("7",))]
    with gzip.open(out, "rt") as text:
        info = [line.split("\t")[7].split(";") for line in text if not line.startswith("#")]
    assert ["CLUSTER" in items for items in info[:2]] == [True, True]
    assert ["CLUSTER=7" in items for items in info[2:4]] == [True, True]
    assert "SUPPORT=." in info[4] and not any(item.startswith(("CLUSTER", "SUPPORT")) for item in sum(info[5:], []))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="genoformer"), Reference(human_q / "q.fa") as reference:
        again = read_variants(out, reference)
    assert [variant.info.get("CLUSTER") for variant in again.variants[:5]] == [(), (), ("7",), ("7",), None]
    assert not caplog.records
