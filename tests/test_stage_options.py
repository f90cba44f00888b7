"""The stages' `extra` options read before any job as their commands read them, and the check that a pretraining
run's tokens would be cut into the same windows again (genoformer/stage_options.py, workflow_checks)."""

import json
import shlex

import pytest
import yaml

from genoformer import workflow_checks
from genoformer.cli import build_parser
from genoformer.commands import tokenize
from genoformer.errors import ConfigError, GenoformerError
from genoformer.stage_options import EXTRA_COMMANDS, stage_options, tokenize_arguments, tokenize_options

from conftest import ROOT


def bundled_config() -> dict:
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_every_stage_extra_of_the_bundled_config_reads_and_the_label_column_comes_from_it():
    config = bundled_config()
    for stage in EXTRA_COMMANDS:
        stage_options(config, stage)
    assert stage_options(config, "classify_regions").label_column == "7"
    config["classify_regions"]["extra"] = "--bootstrap 100 --label-column name"
    options = stage_options(config, "classify_regions")
    assert (options.label_column, options.bootstrap, options.kmer) == ("name", 100, 4)


@pytest.mark.parametrize("stage, extra, message", [
    ("tokenize", "--blok 2", "config key tokenize.extra: unrecognized arguments: --blok 2 (genoformer tokenize "
                             "would stop on it; see genoformer tokenize --help)"),
    ("tokenize", "--block two", "config key tokenize.extra: argument --block: invalid int value: 'two'"),
    ("tokenize", "--edge trim", "config key tokenize.extra: argument --edge: invalid choice: 'trim'"),
    ("score_variants", "--mask-spacing", "config key score_variants.extra: argument --mask-spacing: expected one "
                                         "argument"),
    ("classify_variants", "--bootstrap 100 stray", "config key classify_variants.extra: unrecognized arguments: "
                                                   "stray"),
    ("classify_regions", "--label-column 'name", "config key classify_regions.extra: No closing quotation"),
    ("score_variants", "--window 512 -h", "config key score_variants.extra: -h/--help prints the command's help"),
])
def test_a_mistake_in_a_stage_extra_is_one_line_naming_the_config_key(stage, extra, message):
    config = bundled_config()
    config[stage]["extra"] = extra
    with pytest.raises(ConfigError) as err:
        stage_options(config, stage)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("extra", ["", "--block 2 --split-fractions 0.6,0.2,0.2", "--window 64 --edge drop",
                                   "--window-stride 100 --split-by blocks --max-n-fraction 0.5 --softmask"])
def test_tokenize_options_are_those_the_tokenize_command_runs_with(extra):
    """The options the tokenize rules' command line gives (k, stride and window from config tokenize, then its
    extra, which may override them as on the command line), parsed by the genoformer CLI itself."""
    config = bundled_config()
    config["tokenize"].update(k=2, stride=1, window=256, extra=extra)
    command = ["tokenize", "--fasta", "ref.fa", "--k", "2", "--stride", "1", "--window", "256", *shlex.split(extra),
               "--out", "tokens"]
    assert tokenize_options(config) == tokenize.tokenize_options(build_parser().parse_args(command))


@pytest.mark.parametrize("change, message", [
    ({"extra": "--block 0"}, "config key tokenize: --block 0 must be at least 1 window"),
    ({"k": 3, "stride": 4}, "config key tokenize: --stride 4:"),
    ({"extra": "--split-fractions 0.5,0.5"}, "config key tokenize: --split-fractions 0.5,0.5 must be three numbers"),
])
def test_a_tokenize_value_the_command_refuses_names_config_tokenize(change, message):
    config = bundled_config()
    config["tokenize"].update(change)
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
        tokenize_options(config)


@pytest.fixture(scope="module")
def chloroplast_tokens(tmp_path_factory):
    """The chloroplast tokenized as the bundled config would (k 1, window 512; one contig: split by blocks)."""
    out = tmp_path_factory.mktemp("tokens") / "athal_cp"
    args = build_parser().parse_args(["tokenize", "--fasta", str(ROOT / "resources/athal_cp/NC_000932.1.fa"),
                                      "--k", "1", "--window", "512", "--out", str(out)])
    args.func(args)
    return out


@pytest.mark.parametrize("change, named", [
    ({}, []),
    ({"extra": "--max-n-fraction 0.5 --softmask --min-depth 1"}, []),  # may leave the windows as they are
    ({"extra": "--split-by blocks --block 8 --split-fractions 0.8,0.1,0.1"}, []),  # the defaults, spelt out
    ({"window": 1024}, ["tokenize.window 512 -> 1024"]),
    ({"extra": "--block 2"}, ["tokenize.extra --block 8 -> 2"]),
    ({"extra": "--split-by blocks --block 2"}, ["tokenize.extra --block 8 -> 2"]),  # given, as auto chose
    ({"extra": "--window-stride 256 --edge drop"}, ["tokenize.extra --window-stride 512 -> 256",
                                                    "tokenize.extra --edge 'pad' -> 'drop'"]),
    ({"extra": "--split-by contig"}, ["tokenize.extra --split-by 'blocks' -> 'contig'"]),
    ({"extra": "--split-fractions 0.7,0.15,0.15"}, ["tokenize.extra --split-fractions '0.8,0.1,0.1' -> "
                                                    "'0.7,0.15,0.15'"]),
])
def test_changed_windowing_names_the_options_that_cut_other_windows(chloroplast_tokens, change, named):
    from genoformer.tokenize.dataset import Manifest

    config = bundled_config()
    config["tokenize"].update(change)
    assert workflow_checks.changed_windowing(Manifest.load(chloroplast_tokens), tokenize_options(config)) == named


def chloroplast_config() -> dict:
    """The bundled config pretraining on the chloroplast."""
    config = bundled_config()
    config["pretrain"]["config"] = str(ROOT / config["pretrain"]["config"])
    config["references"]["athal_cp"] = {"fasta": str(ROOT / "resources/athal_cp/NC_000932.1.fa")}
    config["pretrain"]["reference"] = "athal_cp"
    return config


def chloroplast_run(tmp_path):
    """A pretraining run's folder with one checkpoint trained with the bundled pretraining config on k 1."""
    saved = yaml.safe_load((ROOT / "config/pretrain/default.yaml").read_text())
    run = tmp_path / "runs" / "athal_cp"
    (run / "checkpoints" / "step-250").mkdir(parents=True)
    (run / "checkpoints" / "step-250" / "trainer_state.json").write_text(
        json.dumps({"config": saved, "data": {"k": 1, "stride": 1}}))
    return run


def test_pretrain_run_check_stops_on_tokens_that_would_be_cut_anew(tmp_path, chloroplast_tokens):
    """A run trained on the chloroplast's tokens, then the config's --block changed: named with the k/stride and
    config changes; the same with no tokens on disk (tokenize writes them anew) or a damaged manifest: not
    compared."""
    config = chloroplast_config()
    run = chloroplast_run(tmp_path)
    workflow_checks.check_pretrain_run(config, run, chloroplast_tokens, tokenize_arguments(config))
    config["tokenize"]["extra"] = "--block 2"
    with pytest.raises(ConfigError, match=r"runs/athal_cp: trained with other values than the workflow would now "
                                          r"train with \(tokenize.extra --block 8 -> 2; from .*delete "):
        workflow_checks.check_pretrain_run(config, run, chloroplast_tokens, tokenize_arguments(config))
    workflow_checks.check_pretrain_run(config, run, tmp_path / "no_tokens", tokenize_arguments(config))
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "manifest.json").write_text('{"window": 512')
    workflow_checks.check_pretrain_run(config, run, damaged, tokenize_arguments(config))


def test_pretrain_run_check_stops_on_other_sequences_chosen(tmp_path, chloroplast_tokens):
    """The chloroplast's run, then config tokenize.extra choosing two BED regions of it (windows and splits as
    before): the resumed run would train on a part of the genome only, so the DAG stops, naming the sequences; the
    contig named with --contigs is what was tokenized: no change; a contig the reference lacks: tokenize's own
    error, naming the config key."""
    config = chloroplast_config()
    run = chloroplast_run(tmp_path)
    bed = tmp_path / "two.bed"
    bed.write_text("NC_000932.1\t0\t60000\nNC_000932.1\t84000\t154478\n")
    config["tokenize"]["extra"] = f"--regions {bed}"
    with pytest.raises(ConfigError, match=r"runs/athal_cp: trained with other values than the workflow would now "
                                          r"train with \(tokenize.extra --regions 'NC_000932.1' -> "
                                          r"'NC_000932.1:1-60000,NC_000932.1:84001-154478'; from "):
        workflow_checks.check_pretrain_run(config, run, chloroplast_tokens, tokenize_arguments(config))
    config["tokenize"]["extra"] = "--contigs NC_000932.1"
    workflow_checks.check_pretrain_run(config, run, chloroplast_tokens, tokenize_arguments(config))
    config["tokenize"]["extra"] = "--contigs NC_000932"
    with pytest.raises(GenoformerError, match=r"^config key tokenize.extra: --contigs: contig 'NC_000932' is not "
                                              r"in reference .*NC_000932.1.fa \(its contigs: NC_000932.1\)$"):
        workflow_checks.check_pretrain_run(config, run, chloroplast_tokens, tokenize_arguments(config))


def test_changed_sequences_names_the_sequences_tokenize_would_choose_now(tmp_path):
    """Three real contigs tokenized whole, then --contigs keeping one of them: the names before and after; the
    chloroplast cut into six BED regions, then a BED that drops one and adds another: a long list is named by its
    counts and what it leaves out and adds; the same BED in another order merges into the same regions: no
    change."""
    fasta = tmp_path / "three.fa"
    fasta.write_text("".join((ROOT / path).read_text() for path in ("resources/athal_cp/NC_000932.1.fa",
                                                                     "resources/sarscov2/NC_045512.2.fasta",
                                                                     "resources/human_chr22_q/q.fa")))
    three = tokenized(tmp_path / "three", fasta)
    config = bundled_config()
    config["tokenize"]["extra"] = "--contigs q,NC_045512.2"
    assert workflow_checks.changed_sequences(three, tokenize_arguments(config), fasta) == \
        ["tokenize.extra --contigs 'NC_000932.1,NC_045512.2,q' -> 'NC_045512.2,q'"]
    config["tokenize"]["extra"] = "--contigs q,NC_045512.2,NC_000932.1"
    assert workflow_checks.changed_sequences(three, tokenize_arguments(config), fasta) == []
    two = tmp_path / "two.fa"  # no --contigs, and the FASTA lost one: the FASTA is named, not an option not given
    two.write_text("".join((ROOT / path).read_text() for path in ("resources/athal_cp/NC_000932.1.fa",
                                                                   "resources/human_chr22_q/q.fa")))
    config["tokenize"]["extra"] = ""
    assert workflow_checks.changed_sequences(three, tokenize_arguments(config), two) == \
        [f"contigs of {two} (tokenize.extra --contigs, or the FASTA) 'NC_000932.1,NC_045512.2,q' -> 'NC_000932.1,q'"]

    chloroplast = ROOT / "resources/athal_cp/NC_000932.1.fa"
    bed = tmp_path / "six.bed"
    bed.write_text("".join(f"NC_000932.1\t{start}\t{start + 20000}\n" for start in range(0, 150000, 25000)))
    six = tokenized(tmp_path / "six", chloroplast, "--regions", str(bed))
    assert len(six["contigs"]) == 6
    moved = tmp_path / "moved.bed"
    moved.write_text("".join(line for line in bed.read_text().splitlines(keepends=True) if "\t100000\t" not in line)
                     + "NC_000932.1\t152000\t154000\n")
    config["tokenize"]["extra"] = f"--regions {moved}"
    assert workflow_checks.changed_sequences(six, tokenize_arguments(config), chloroplast) == \
        ["tokenize.extra --regions 6 -> 6 sequences (1 left out (NC_000932.1:100001-120000); 1 added "
         "(NC_000932.1:152001-154000))"]
    shuffled = tmp_path / "shuffled.bed"
    shuffled.write_text("".join(reversed(bed.read_text().splitlines(keepends=True))))
    config["tokenize"]["extra"] = f"--regions {shuffled}"
    assert workflow_checks.changed_sequences(six, tokenize_arguments(config), chloroplast) == []


def tokenized(out, fasta, *options):
    """The token dataset (k 1, window 512) of ``fasta`` written to ``out``, its manifest."""
    from genoformer.tokenize.dataset import Manifest

    args = build_parser().parse_args(["tokenize", "--fasta", str(fasta), "--k", "1", "--window", "512", *options,
                                      "--out", str(out)])
    args.func(args)
    return Manifest.load(out, check_shards=False)


def test_a_dataset_split_by_contig_is_compared_on_its_split_method_only(tmp_path):
    """Three real contigs (chloroplast, SARS-CoV-2, human q) split by whole contig: another window, stride, edge or
    fractions may leave each contig in its split (a pretraining config that fixes data.window then resumes on the
    same windows), so only a change of method is named."""
    from genoformer.tokenize.dataset import Manifest

    fasta = tmp_path / "three.fa"
    fasta.write_text("".join((ROOT / path).read_text() for path in ("resources/athal_cp/NC_000932.1.fa",
                                                                     "resources/sarscov2/NC_045512.2.fasta",
                                                                     "resources/human_chr22_q/q.fa")))
    args = build_parser().parse_args(["tokenize", "--fasta", str(fasta), "--k", "1", "--window", "512", "--out",
                                      str(tmp_path / "tokens")])
    args.func(args)
    manifest = Manifest.load(tmp_path / "tokens", check_shards=False)
    assert manifest["split"]["method"] == "contig"
    config = bundled_config()
    config["tokenize"].update(window=1024, extra="--edge drop --split-fractions 0.6,0.2,0.2 --block 3")
    assert workflow_checks.changed_windowing(manifest, tokenize_options(config)) == []
    config["tokenize"]["extra"] = "--split-by blocks"
    assert workflow_checks.changed_windowing(manifest, tokenize_options(config)) == \
        ["tokenize.extra --split-by 'contig' -> 'blocks'"]
