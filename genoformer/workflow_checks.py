"""Checks the Snakemake workflow runs while it builds its DAG, before any job starts.

The configuration's shape is checked against JSON schemas (:func:`check_schema`, one line per problem; the Snakefile
then lets snakemake fill in the schemas' defaults); this module also checks what a schema cannot: no stage picks its
own device (the jobs' `gpu` resources do), each stage's ``extra`` options read as its command reads them
(:mod:`genoformer.stage_options`), the sample table's names are unique, every input path exists, names refer to
configured references, every VCF's contigs are contigs of its reference, every annotation's genes and CDS lie on
contigs of its reference, every sample BAM opens on its reference (not truncated, same contigs; a CRAM's MD5s match
the reference on the contigs tokenized; where indexed, a read counts with the tokenize options), every region task's
BED reads on its reference with two classes at least, every variant task's labels read (its label field declared and
holding values, each class value it names there, two variants per class at least; a contig or label check that
passed, and the reference MD5s a CRAM is compared with, are remembered while their files stay the same:
:mod:`genoformer.check_cache`), and a pretraining run already in ``runs/`` was trained with what the workflow would
now train with, on the sequences and windows tokenization would now give (:func:`check_pretrain_run`).
:func:`vcf_index_kind` picks the index of the workflow's VCFs (.csi where a contig is too long for .tbi);
:func:`merged_references_warning` says when a --configfile's references were merged with the bundled ones.
Each problem raises a :class:`~genoformer.errors.GenoformerError` whose one-line message names the file (or
config key), the record and the problem, so the run stops at once.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import math
from pathlib import Path
from typing import Iterator

import pysam
import yaml

from genoformer.check_cache import cached_check
from genoformer.errors import ConfigError, GenoformerError, InputError, MismatchError, MissingFileError
from genoformer.io.fasta import Reference
from genoformer.io.vcf import check_not_plain_gzip
from genoformer.io.vcf_index import TBI_MAX_CONTIG, needs_csi
from genoformer.stage_options import (EXTRA_COMMANDS, given_options, stage_options, tokenize_arguments,
                                       tokenize_options)

SAMPLE_COLUMNS = ("sample", "reference", "bam", "vcf")


def read_samples(path: str | Path) -> list[dict]:
    """Rows of the tab-separated sample table as dicts (empty cells left out), each with its ``line`` number.

    Raises ``ConfigError`` for an unknown column, a row with the wrong number of cells or a sample name
    given twice (naming both lines), and ``MissingFileError`` when the table does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: sample table not found (config key 'samples')")
    with open(path, newline="") as handle:
        lines = [(number, line) for number, line in enumerate(handle, start=1)
                 if line.strip() and not line.startswith("#")]
    if not lines:
        raise ConfigError(f"{path}: empty sample table (needs a header line: {', '.join(SAMPLE_COLUMNS)})")
    (header_line, header), *body = lines
    columns = next(csv.reader([header], delimiter="\t"))
    unknown = [name for name in columns if name not in SAMPLE_COLUMNS]
    if unknown:
        raise ConfigError(f"{path}: line {header_line}: unknown column(s) {', '.join(unknown)}; "
                          f"the columns are {', '.join(SAMPLE_COLUMNS)}")
    twice = sorted({name for name in columns if columns.count(name) > 1})
    if twice:
        raise ConfigError(f"{path}: line {header_line}: column {', '.join(twice)} is given twice")
    rows, first_line = [], {}
    for number, line in body:
        cells = next(csv.reader([line.rstrip("\r\n")], delimiter="\t"))
        if len(cells) != len(columns):
            raise ConfigError(f"{path}: line {number}: {len(cells)} tab-separated cells, the header has "
                              f"{len(columns)}")
        row = {name: cell.strip() for name, cell in zip(columns, cells) if cell.strip()}
        name = row.get("sample", "")
        if name in first_line:
            raise ConfigError(f"{path}: line {number}: sample name '{name}' is used twice (first on line "
                              f"{first_line[name]}); sample names must be unique")
        first_line[name] = number
        rows.append({**row, "line": number})
    return rows


def check_schema(instance, schema_path: str | Path, where: str) -> None:
    """Raise ``ConfigError`` naming the first violation of the JSON schema at ``schema_path`` in one line:
    ``where`` (the config, or a line of a table), the key, and the problem (instead of a schema dump). An
    ``integer`` is a YAML integer: JSON Schema also takes 2.0, which the rules would pass on as "2.0"."""
    import jsonschema  # snakemake's dependency: this runs inside the workflow
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    base = jsonschema.validators.validator_for(schema)
    strict = base.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool))
    validator = jsonschema.validators.extend(base, type_checker=strict)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        key = ".".join(str(part) for part in error.absolute_path)
        raise ConfigError(f"{where}{f': key {key}' if key else ''}: {error.message}")


def _require_file(path: str, where: str) -> None:
    if not Path(path).exists():
        raise MissingFileError(f"{where}: {path} does not exist")


def _require_reference(name: str, references: dict, where: str) -> None:
    if name not in references:
        raise ConfigError(f"{where}: reference '{name}' is not in config key 'references' "
                          f"(known: {', '.join(references)})")


@contextlib.contextmanager
def _htslib_quiet() -> Iterator[None]:
    """htslib's header warnings off inside the block: the readers' business, not the DAG's."""
    quiet = pysam.set_verbosity(0)
    try:
        yield
    finally:
        pysam.set_verbosity(quiet)


@contextlib.contextmanager
def _open_vcf(path: str | Path) -> Iterator[pysam.VariantFile]:
    """A VCF/BCF opened quietly (:func:`_htslib_quiet`); ``InputError`` when it cannot be read."""
    check_not_plain_gzip(path)
    with _htslib_quiet():
        try:
            with pysam.VariantFile(str(path)) as vcf:
                yield vcf
        except (OSError, ValueError) as err:
            raise InputError(f"{path}: not a readable VCF/BCF ({err})") from None


def vcf_contigs(path: str | Path) -> set[str]:
    """Contig names that carry records in a VCF/BCF: from its index when it has one, else by reading it."""
    with _open_vcf(path) as vcf:
        if vcf.index is not None:
            return set(vcf.index.keys())
        return {record.chrom for record in vcf.fetch()}


def check_vcf_on_reference(vcf: str | Path, fasta: str | Path, where: str) -> None:
    """Raise ``MismatchError`` listing the contigs of ``vcf`` that ``fasta`` does not have, and ``InputError``
    naming ``where`` when ``vcf`` cannot be read."""
    with Reference(fasta) as reference:
        known = reference.contigs
    try:
        contigs = vcf_contigs(vcf)
    except GenoformerError as err:
        raise type(err)(f"{where}: {err}") from None
    missing = sorted(contigs - set(known))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise MismatchError(f"{where}: VCF {vcf} has contig(s) {shown} not in reference {fasta} "
                            f"(which has {', '.join(list(known)[:5])}{'...' if len(known) > 5 else ''}); "
                            "is it called on another reference build?")


def _check_vcf_contigs(vcf: str | Path, fasta: str | Path, where: str, cache_dir: str | Path | None) -> None:
    """:func:`check_vcf_on_reference`, remembered in ``cache_dir`` once passed (an unindexed VCF is read whole)."""
    check = functools.partial(check_vcf_on_reference, vcf, fasta, where)
    if cache_dir is None:
        check()
    else:
        cached_check("vcf-contigs", {"vcf": vcf, "fasta": fasta}, {}, check, cache_dir)


def check_annotation_on_reference(gff: str | Path, fasta: str | Path, where: str) -> None:
    """Raise ``MismatchError`` naming ``where`` when a gene-level line (a CDS, gene, transcript or part of one:
    :func:`~genoformer.io.gff3.is_gene_level`) of the GFF3 ``gff`` lies on a contig that ``fasta`` lacks (the first
    such line, and how many contigs are missing), and ``InputError`` when it has no CDS line: the coding_variants
    (CDS) and region_labels (every gene-level line) jobs would fail on either. Reads only the first and third column
    of each line, so a whole-genome annotation is checked in seconds; the jobs check the rest of each line."""
    from genoformer.io.gff3 import is_gene_level
    from genoformer.io.text import text_lines

    with Reference(fasta) as reference:
        known = reference.contigs
    missing: dict[str, tuple[int, str]] = {}  # contig -> its first gene-level line and that line's type
    cds_lines = 0
    for number, line in text_lines(Path(gff), "GFF3"):
        if line.startswith("##FASTA"):
            break
        if line.startswith("#"):
            continue
        fields = line.split("\t", 3)
        if len(fields) > 2 and is_gene_level(fields[2]):
            cds_lines += fields[2] == "CDS"
            if fields[0] not in known:
                missing.setdefault(fields[0], (number, fields[2]))
    if not cds_lines:
        raise InputError(f"{where}: {gff}: no CDS features found (the coding SNVs and coding vs intergenic regions "
                         "derived from an annotation need CDS lines)")
    if missing:
        (contig, (number, feature)), others = next(iter(missing.items())), len(missing) - 1
        names = ", ".join(list(known)[:5]) + ("..." if len(known) > 5 else "")
        raise MismatchError(f"{where}: {gff} line {number}: {feature} on contig '{contig}'"
                            f"{f' (and {others} more contigs)' if others else ''}, which is not in reference "
                            f"{fasta} (its contigs: {names}); name the contigs in the annotation as the FASTA does")


def check_bam_on_reference(bam: str | Path, fasta: str | Path, where: str,
                           tokenize: argparse.Namespace | None = None, cache_dir: str | Path | None = None) -> None:
    """Open ``bam`` as the tokenizer will (:class:`~genoformer.io.bam.AlignmentFile`): a truncated file or contigs
    that disagree with ``fasta`` raise here, naming ``where``, instead of in the tokenize job; so does a CRAM whose
    ``@SQ M5`` differs from the MD5 of a contig it will be read on (:func:`_check_cram_md5`). Given ``tokenize``
    (config tokenize.extra read by :func:`~genoformer.stage_options.stage_options`) only the contigs tokenized
    (``--contigs``, ``--regions``) are hashed, and, where the file has its index, one none of whose reads counts on
    the sequences tokenized (also ``--min-mapq``) raises too."""
    from genoformer.commands.tokenize import check_reads_count, contig_list, select_stretches
    from genoformer.io.bam import AlignmentFile

    with Reference(fasta) as reference:
        try:
            # a missing index is the tokenizer's to make
            with AlignmentFile(bam, reference, build_index=False) as alignments:
                stretches = None
                if tokenize is not None and (alignments.is_cram or alignments.indexed):
                    stretches = select_stretches(reference, contig_list(tokenize.contigs), tokenize.regions)
                if alignments.is_cram:
                    read = alignments.contigs if stretches is None else [stretch.contig for stretch in stretches]
                    _check_cram_md5(alignments, reference, list(dict.fromkeys(read)), cache_dir)
                if stretches is not None and alignments.indexed:
                    check_reads_count(alignments, tokenize.min_mapq, stretches)
        except GenoformerError as err:
            raise type(err)(f"{where}: {err}") from None


def _check_cram_md5(alignments, reference: Reference, contigs: list[str], cache_dir: str | Path | None) -> None:
    """``MismatchError`` where the CRAM ``alignments`` (:class:`~genoformer.io.bam.AlignmentFile`) has an ``@SQ
    M5`` on one of ``contigs`` that is not the MD5 of ``reference``'s sequence there (another assembly with the same
    names and lengths: a patch release, a masked copy), which the tokenize job would stop on. Hashing costs 1-5 s a
    human chromosome, so with ``cache_dir`` the reference's MD5s are remembered while the FASTA stays the same; the
    comparison with the header is made every time, so a mismatch is never remembered as a pass."""
    from genoformer.io.bam import contig_md5

    hashed = alignments.unchecked_md5(contigs)
    if not hashed:
        return

    def reference_md5s() -> dict[str, str]:
        return {contig: contig_md5(reference, contig) for contig in hashed}

    md5s = reference_md5s() if cache_dir is None else cached_check(
        "reference-md5", {"fasta": reference.path}, {"contigs": hashed}, reference_md5s, cache_dir)
    alignments.check_md5(hashed, md5s)


def check_region_labels(bed: str | Path, fasta: str | Path, column: str, where: str) -> None:
    """Read a region task's BED as ``classify-regions`` will (with the ``--label-column`` that config key
    classify_regions.extra passes it), so a contig the reference lacks, a bad line or a single class stops the run
    before pretraining instead of after it, naming ``where``."""
    from genoformer.commands.classify_regions import label_column
    from genoformer.tasks.regions import read_region_labels

    with Reference(fasta) as reference:
        try:
            read_region_labels(reference, bed=bed, label_column=label_column(column))
        except GenoformerError as err:
            raise type(err)(f"{where}: {err}") from None


def check_variant_labels(task: dict, where: str) -> dict[str, int]:
    """Read a variant task's labels as ``classify-variants`` will (its label field only, without the reference):
    a label field the VCF does not declare, one no variant has a value in, a ``Number=A``/``Number=R`` value whose
    count does not fit its record's ALTs, a named class value no variant has (naming the values there are) or a
    class of fewer than 2 variants stops the run before pretraining instead of after it, in one line naming
    ``where`` (the task's config key). Returns the variants of each class, by class name (negative first)."""
    from genoformer.io.vcf import alt_info
    from genoformer.tasks.variant_labels import class_labels, label_values

    vcf, field = task["vcf"], task["label_field"]
    try:
        with _htslib_quiet():
            header, infos = alt_info(vcf, (field,))
    except GenoformerError as err:
        raise type(err)(f"{where}.vcf: {err}") from None
    if field not in header.info:
        raise ConfigError(f"{where}.label_field: INFO field '{field}' is not declared in {vcf} (declared: "
                          f"{', '.join(header.info) or 'none'})")
    try:
        labels, classes = class_labels(label_values(infos, field, header.info[field].type == "Flag",
                                                    header.info[field].number),
                                       field, task.get("positive"), task.get("negative"), vcf)
    except GenoformerError as err:
        raise type(err)(f"{where}: {err}") from None
    return {name: labels.count(label) for label, name in enumerate(classes)}


def vcf_index_kind(config: dict) -> str:
    """The index (``tbi`` or ``csi``) the workflow writes next to its VCFs: config ``vcf_index``, where ``auto``
    (the default) means ``tbi`` unless a reference has a contig longer than a tabix index addresses (512 Mbp),
    then ``csi`` for every VCF. Raises ``ConfigError`` for ``tbi`` with such a contig."""
    kind = config.get("vcf_index", "auto")
    if kind == "csi":
        return kind
    for name, entry in config["references"].items():
        with Reference(entry["fasta"]) as reference:
            contigs = reference.contigs
        if needs_csi(contigs):
            if kind == "auto":
                return "csi"
            contig, length = max(contigs.items(), key=lambda item: item[1])
            raise ConfigError(f"config key vcf_index: tbi, but contig {contig} of references.{name}.fasta "
                              f"({entry['fasta']}) is {length:,} bp, longer than the {TBI_MAX_CONTIG:,} bp a "
                              "tabix (.tbi) index addresses; set vcf_index to csi or auto")
    return "tbi"


def merged_references_warning(config: dict, command_line: dict, replaced: bool) -> str | None:
    """A one-line warning when a command-line config (``--configfile``) lists its own ``references`` and the run
    still has others: Snakemake merged it into the workflow's config/config.yaml key by key, so the bundled
    references, and the tasks derived from their annotations, stay and are scored by the model pretrained on the
    user's genome. None when it lists none (it only changes other values), or with --replace-workflow-config
    (``replaced``), or when nothing was added."""
    if replaced or "references" not in command_line:
        return None
    kept = [name for name in config["references"] if name not in command_line["references"]]
    if not kept:
        return None
    return (f"references {', '.join(kept)} are not in the --configfile but stay, merged in from config/config.yaml "
            "(snakemake merges a --configfile into it key by key); to run only the references the file lists, add "
            "--replace-workflow-config (README, 'Your own data')")


NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one entry per GPU the NVIDIA driver has found (Linux)


def idle_gpus_warning(config: dict, gpus_dir: Path = NVIDIA_GPUS) -> str | None:
    """A one-line warning when this machine has NVIDIA GPUs (the driver lists each in ``gpus_dir``) but config
    ``pretrain.gpus`` is 0: the jobs of every stage whose ``gpus`` is 0 then run on the CPU (``--device cpu``),
    pretraining too, which a user of a GPU workstation would not expect. None otherwise (no driver, no GPU, or
    pretraining claims one)."""
    try:
        count = sum(1 for _ in gpus_dir.iterdir())
    except OSError:
        return None
    on_cpu = [stage for stage in ("pretrain", *MODEL_STAGES) if config[stage].get("gpus", 0) == 0]
    if not count or "pretrain" not in on_cpu:
        return None
    return (f"this machine has {count} NVIDIA GPU(s), but config gpus is 0 for {', '.join(on_cpu)}: those jobs run "
            "on the CPU; set their gpus to 1 to use one (a profile's set-resources gpu does the same)")


def check_names(config: dict, samples: list[dict], samples_path: str) -> None:
    """Raise ConfigError where two things would share a name in the outputs and the report: a sample named like
    a reference (both label rows of the bits/base tables), a sample named like the coding SNV set derived from
    an annotation (``<reference>_coding``: both are variant sets), or a configured task named like a derived
    task (``<reference>_coding``, ``<reference>_genes``), which would silently replace it."""
    references = config["references"]
    annotated = [name for name, entry in references.items() if "annotation" in entry]
    derived = {f"{ref}_coding": f"the coding SNVs derived from references.{ref}.annotation" for ref in annotated}
    for row in samples:
        where = f"{samples_path}: line {row['line']}: sample name '{row['sample']}'"
        if row["sample"] in references:
            raise ConfigError(f"{where} is also a reference name; samples and references label the same report "
                              "tables, so rename the sample")
        if row["sample"] in derived and "vcf" in row:
            raise ConfigError(f"{where} is also the name of {derived[row['sample']]} (both are variant sets); "
                              "rename the sample")
    derived_tasks = {"variant_tasks": derived,
                     "region_tasks": {f"{ref}_genes": f"the coding vs intergenic regions derived from "
                                                      f"references.{ref}.annotation" for ref in annotated}}
    for key, names in derived_tasks.items():
        for task in config.get(key, {}):
            if task in names:
                raise ConfigError(f"config key {key}.{task}: the name of the task on {names[task]}; choose "
                                  "another name")


MODEL_STAGES = ("evaluate", "score_variants", "classify_variants", "classify_regions")


def check_devices(config: dict) -> None:
    """Raise ConfigError where the configuration picks a device itself (``--device``, or a prefix argparse takes
    for it such as ``--dev``, in a stage's ``extra``; ``run.device`` in ``pretrain.set``): the workflow derives it
    from the job's ``gpu`` resource, so that a job never runs on a GPU it did not claim, nor on the CPU while
    holding one."""
    if "run.device" in config["pretrain"].get("set", {}):
        raise ConfigError("config key pretrain.set: run.device is set by the workflow (auto when the pretrain job "
                          "gets a GPU: config pretrain.gpus or the profile's gpu; else cpu); remove it")
    for stage in MODEL_STAGES:
        # read by the command's own parser: a prefix argparse takes for --device (--dev) picks one too
        if stage in EXTRA_COMMANDS and "device" in given_options(config, stage):
            raise ConfigError(f"config key {stage}.extra: --device is set by the workflow (auto when the job gets "
                              f"a GPU: config {stage}.gpus or the profile's gpu; else cpu); remove it")


def check_pretrain_run(config: dict, run_dir: str | Path, tokens_dir: str | Path | None = None,
                       tokenize: argparse.Namespace | None = None) -> None:
    """Stop before any job when ``run_dir`` holds checkpoints of a run that the workflow could not resume: trained
    with other values of the keys the pretraining config file and ``pretrain.set`` give (``run.device`` aside), on
    tokens of another ``k``/``stride`` (config ``tokenize``), or, where ``tokens_dir`` holds the tokens it trained
    on, when ``tokenize`` (the tokenize rules' command line, :func:`~genoformer.stage_options.tokenize_arguments`)
    would tokenize other sequences of the pretraining reference (:func:`changed_sequences`) or cut them into other
    windows (:func:`changed_windowing`). ``genoformer pretrain --resume`` refuses such a run, but only after
    tokenization has rewritten the tokens, and Snakemake shows just "Error in rule pretrain". Reads the newest
    checkpoint's trainer_state.json; keys left at their defaults are not compared (a resume compares them too),
    nor are tokenize options that may leave the windows as they are (``--max-n-fraction``, ``--softmask``: the
    pretrain job names those where they change the windows)."""
    from genoformer.train.config import WHERE_IT_RUNS
    from genoformer.train.steps import newest_trainer_state

    state = newest_trainer_state(run_dir)
    if state is None:
        return
    source = config["pretrain"]["config"]
    try:
        raw = yaml.safe_load(Path(source).read_text()) or {}
        wanted = {f"{section}.{key}": value for section, values in raw.items() for key, value in values.items()}
    except (OSError, yaml.YAMLError, AttributeError):
        return  # not a mapping of sections: the pretrain job names what is wrong with the config itself
    wanted.update(config["pretrain"].get("set", {}))  # what the rule passes as --set key=value
    saved = state.get("config", {})
    saved_values = {f"{section}.{key}": value for section, values in saved.items() if isinstance(values, dict)
                    for key, value in values.items()}
    # a key the checkpoint does not hold (written by an older version) takes its default on resume: not compared
    changed = [f"{dotted} {saved_values[dotted]!r} -> {value!r}" for dotted, value in wanted.items()
               if dotted not in WHERE_IT_RUNS and dotted in saved_values and saved_values[dotted] != value]
    data = state.get("data", {})
    changed += [f"tokenize.{key} {data[key]!r} -> {config['tokenize'][key]!r}" for key in ("k", "stride")
                if key in data and data[key] != config["tokenize"][key]]
    manifest = _read_manifest(tokens_dir) if tokens_dir is not None and tokenize is not None else None
    if manifest is not None:
        fasta = config["references"][config["pretrain"]["reference"]]["fasta"]
        changed += changed_sequences(manifest, tokenize, fasta)
        changed += changed_windowing(manifest, tokenize_options(config, tokenize))
    if changed:
        raise ConfigError(f"{run_dir}: trained with other values than the workflow would now train with "
                          f"({', '.join(changed)}; from {source}, config pretrain.set and config tokenize), so its "
                          f"checkpoints cannot be resumed: delete {run_dir} to train anew, or restore those values")


def changed_windowing(manifest, tokenize) -> list[str]:
    """The options of ``tokenize`` (:class:`~genoformer.tokenize.dataset.TokenizeOptions`) that would cut a
    genome into other windows or splits than the token dataset of ``manifest`` has, each as ``"<config key>
    <old> -> <new>"``: the window, window stride (unless windows lie side by side before and after), edge, split
    method (when given), block (when split by blocks before and after) and split fractions. A dataset split by whole
    contigs is compared only on the split method: the other options may leave every contig where it was, and a
    pretraining config that fixes ``data.window`` then resumes on the same windows (the pretrain job compares them)."""
    from genoformer.tokenize.dataset import SPLITS

    split = manifest["split"]
    if split["method"] == "contig":
        return [] if tokenize.split_by in ("auto", "contig") else [f"tokenize.extra --split-by 'contig' -> "
                                                                     f"{tokenize.split_by!r}"]
    old_fractions = tuple(split["fractions"][name] for name in SPLITS)
    pairs = [("tokenize.window", manifest["window"], tokenize.window),
             ("tokenize.extra --edge", manifest["edge"], tokenize.edge)]
    if (manifest["window_stride"], tokenize.window_stride) != (manifest["window"], tokenize.window):
        pairs.insert(1, ("tokenize.extra --window-stride", manifest["window_stride"], tokenize.window_stride))
    if tokenize.split_by != "auto":
        pairs.append(("tokenize.extra --split-by", split["method"], tokenize.split_by))
    if split["method"] == "blocks" and tokenize.split_by in ("auto", "blocks"):
        pairs.append(("tokenize.extra --block", split["block"], tokenize.block))
    if not all(math.isclose(old, new) for old, new in zip(old_fractions, tokenize.fractions)):
        pairs.append(("tokenize.extra --split-fractions", ",".join(f"{f:g}" for f in old_fractions),
                      ",".join(f"{f:g}" for f in tokenize.fractions)))
    return [f"{key} {old!r} -> {new!r}" for key, old, new in pairs if old != new]


def changed_sequences(manifest, tokenize: argparse.Namespace, fasta: str | Path) -> list[str]:
    """``["<config key> <old> -> <new>"]`` when the ``--contigs`` and ``--regions`` of ``tokenize`` (the tokenize
    rules' parsed command line) select other sequences of ``fasta`` than the token dataset of ``manifest`` holds
    (its sequence names: a contig, or a merged region ``contig:start-end``), chosen as ``genoformer tokenize`` chooses
    them; else ``[]``. A value that tokenize would refuse (a contig not in ``fasta``, a BED that does not
    read) raises as it would there, naming config key ``tokenize.extra``."""
    from genoformer.commands.tokenize import contig_list, select_stretches

    try:
        with Reference(fasta) as reference:
            stretches = select_stretches(reference, contig_list(tokenize.contigs), tokenize.regions)
    except GenoformerError as err:
        raise type(err)(f"config key tokenize.extra: {err}") from None
    old = [entry["name"] for entry in manifest["contigs"]]
    new = [stretch.name for stretch in stretches]
    if old == new:
        return []
    if tokenize.regions or "regions" in manifest["source"]:
        option = "tokenize.extra --regions"
    elif tokenize.contigs:
        option = "tokenize.extra --contigs"
    else:  # the contigs were chosen before, or the FASTA has others now
        option = f"contigs of {fasta} (tokenize.extra --contigs, or the FASTA)"
    if len(old) <= 4 and len(new) <= 4:
        return [f"{option} {','.join(old)!r} -> {','.join(new)!r}"]
    kept_old, kept_new = set(old), set(new)
    dropped = [name for name in old if name not in kept_new]
    added = [name for name in new if name not in kept_old]
    parts = [f"{len(names)} {what} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
             for what, names in (("left out", dropped), ("added", added)) if names]
    return [f"{option} {len(old)} -> {len(new)} sequences ({'; '.join(parts) or 'in another order'})"]


def _read_manifest(tokens_dir: str | Path):
    """``tokens_dir``'s checked manifest (its shards are not opened: a draft assembly may have 10^5), or None where
    there is none that reads (tokenize writes it anew)."""
    from genoformer.tokenize.dataset import Manifest

    try:
        return Manifest.load(tokens_dir, check_shards=False)
    except GenoformerError:
        return None


def check_inputs(config: dict, samples: list[dict], samples_path: str, cache_dir: str | Path | None = None) -> None:
    """Every check the workflow needs before it builds jobs; raises on the first problem found. With
    ``cache_dir``, a VCF's contigs and a variant task's labels are read again, and the reference contigs a CRAM is
    read on hashed again, only when the files or the label settings changed since they last passed
    (:mod:`genoformer.check_cache`)."""
    from Bio.Data.CodonTable import unambiguous_dna_by_id

    check_devices(config)
    tokenize_args = tokenize_arguments(config)
    tokenize_options(config, tokenize_args)  # a value tokenize refuses stops the run here
    stage_extras = {stage: stage_options(config, stage) for stage in EXTRA_COMMANDS if stage != "tokenize"}
    check_names(config, samples, samples_path)
    references = config["references"]
    for name, entry in references.items():
        for key in ("fasta", "annotation"):
            if key in entry:
                _require_file(entry[key], f"config key references.{name}.{key}")
        if entry.get("genetic_code", 11) not in unambiguous_dna_by_id:
            raise ConfigError(f"config key references.{name}.genetic_code: {entry['genetic_code']} is not an NCBI "
                              f"genetic code; known codes: {', '.join(map(str, sorted(unambiguous_dna_by_id)))}")
        if "annotation" in entry:
            check_annotation_on_reference(entry["annotation"], entry["fasta"],
                                          f"config key references.{name}.annotation")
    _require_reference(config["pretrain"]["reference"], references, "config key pretrain.reference")
    _require_file(config["pretrain"]["config"], "config key pretrain.config")
    for row in samples:
        where = f"{samples_path}: line {row['line']} (sample {row['sample']})"
        _require_reference(row["reference"], references, where)
        for key in ("bam", "vcf"):
            if key in row:
                _require_file(row[key], f"{where}: {key}")
        if "vcf" in row:
            _check_vcf_contigs(row["vcf"], references[row["reference"]]["fasta"], f"{where}: vcf", cache_dir)
        if "bam" in row:
            check_bam_on_reference(row["bam"], references[row["reference"]]["fasta"], f"{where}: bam",
                                   tokenize_args, cache_dir)
    for task, entry in config.get("region_tasks", {}).items():
        where = f"config key region_tasks.{task}"
        _require_reference(entry["reference"], references, where)
        _require_file(entry["bed"], f"{where}.bed")
        check_region_labels(entry["bed"], references[entry["reference"]]["fasta"],
                            stage_extras["classify_regions"].label_column, f"{where}.bed")
    for task, entry in config.get("variant_tasks", {}).items():
        where = f"config key variant_tasks.{task}"
        _require_reference(entry["reference"], references, where)
        _require_file(entry["vcf"], f"{where}.vcf")
        _check_vcf_contigs(entry["vcf"], references[entry["reference"]]["fasta"], f"{where}.vcf", cache_dir)
        check = functools.partial(check_variant_labels, entry, where)
        if cache_dir is None:
            check()
        else:
            labels = {key: entry.get(key) for key in ("label_field", "positive", "negative")}
            cached_check("variant-labels", {"vcf": entry["vcf"]}, labels, check, cache_dir)
    reference = config["pretrain"]["reference"]
    check_pretrain_run(config, Path("runs") / reference, Path("tokens") / reference, tokenize_args)
