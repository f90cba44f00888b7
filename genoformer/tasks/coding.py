"""Coding-variant sets from a genome annotation: every SNV of a sample of coding sequences, with its consequence.

The consequence of an SNV is found by translating the reference and the altered codon with Biopython's codon
table (``--table``, 11 = bacterial and plastid by default). Classes, named after Sequence Ontology terms:

- ``synonymous``: same amino acid; ``missense``: another amino acid; ``stop_gained``: a sense codon becomes stop;
- ``stop_lost`` / ``stop_retained``: the stop codon becomes a sense codon / another stop codon;
- ``start_lost`` / ``start_retained``: the start codon becomes a codon the table cannot start with / another
  start codon (a start codon is read as Met whatever it is, so these are kept apart from missense).

Only coding sequences that translate cleanly are used (Biopython ``translate(cds=True)``: a start codon, whole
codons, one stop at the end, no ambiguous bases); the others are counted and logged. Positions covered by more
than one CDS of the annotation (overlapping genes) are left out, so each SNV has one unambiguous consequence.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from Bio.Data import CodonTable
from Bio.Seq import Seq

from genoformer.errors import InputError, MissingFileError
from genoformer.io.text import text_lines
from genoformer.tasks.vcf_writer import InfoField, write_sites_vcf

log = logging.getLogger(__name__)

COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")
CONSEQUENCES = ("synonymous", "missense", "stop_gained", "stop_lost", "stop_retained", "start_lost",
                "start_retained")


@dataclass(frozen=True)
class CodingSequence:
    """One CDS: its segments (0-based half-open, ascending genome order) on one contig and strand."""

    name: str
    contig: str
    strand: str
    segments: tuple[tuple[int, int], ...]
    line: int  # 1-based GFF3 line of its first CDS feature

    def positions(self) -> np.ndarray:
        """Genome positions (0-based) of the coding bases, in coding order (5' to 3' of the mRNA)."""
        forward = np.concatenate([np.arange(start, end) for start, end in self.segments])
        return forward if self.strand == "+" else forward[::-1]

    def sequence(self, reference) -> str:
        """The spliced coding sequence (upper case, coding strand) read from ``reference``."""
        forward = "".join(reference.fetch(self.contig, start, end) for start, end in self.segments).upper()
        return forward if self.strand == "+" else forward.translate(COMPLEMENT)[::-1]


@dataclass(frozen=True)
class CodingSnv:
    """One SNV inside a CDS; ``ref``/``alt`` are forward-strand bases, codons and ``cds_pos`` on the coding strand."""

    contig: str
    pos: int  # 1-based
    ref: str
    alt: str
    gene: str
    strand: str
    consequence: str
    cds_pos: int  # 1-based position in the coding sequence
    codon_ref: str
    codon_alt: str
    aa_ref: str
    aa_alt: str


def _attributes(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.strip().split(";") if "=" in item)
    return {key.strip(): urllib.parse.unquote(value.strip()) for key, value in pairs}


def read_cds(path: str | os.PathLike, contigs: dict[str, int] | None = None) -> list[CodingSequence]:
    """Read the CDS features of a GFF3 file (plain or gzip/bgzip-compressed), grouped into coding sequences.

    Segments of one CDS are joined by their ``Parent`` attribute, else their shared ``ID``; in GenBank-derived
    GFF3 without either, CDS lines with the same ``Name`` inside one block of lines (a block starts at a ``gene``
    line) form one CDS. A CDS whose segments lie on different contigs or strands (trans-splicing) is skipped and
    logged. Malformed lines (and, given the reference's ``contigs`` as name -> length, a CDS ending past its
    contig) raise :class:`InputError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: annotation file does not exist")
    groups: dict[tuple, list[tuple[str, str, int, int, int, str]]] = {}
    block, previous_type = 0, None
    for number, line in text_lines(path, "GFF3"):
        if line.startswith("##FASTA"):
            break
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 9:
            raise InputError(f"{path}: line {number}: expected 9 tab-separated GFF3 columns, found {len(fields)}")
        contig, _, feature, start, end, _, strand, phase, attributes = fields
        if feature == "gene" and previous_type != "gene":
            block += 1
        previous_type = feature
        if feature != "CDS":
            continue
        if not (start.isascii() and start.isdigit() and end.isascii() and end.isdigit()):
            raise InputError(f"{path}: line {number}: start/end {fields[3]!r}/{fields[4]!r} are not integers "
                             "(GFF3 coordinates are plain digits 0-9)")
        start, end = int(start), int(end)
        if not 1 <= start <= end:
            raise InputError(f"{path}: line {number}: CDS start {start} and end {end} are not 1 <= start <= end")
        if strand not in "+-" or len(strand) != 1:
            raise InputError(f"{path}: line {number}: CDS strand {strand!r} is not + or -")
        if phase not in ("0", "1", "2", "."):
            raise InputError(f"{path}: line {number}: CDS phase {phase!r} is not 0, 1, 2 or .")
        if contigs is not None and contig in contigs and end > contigs[contig]:
            raise InputError(f"{path}: line {number}: CDS end {end} is past the end of contig {contig} "
                             f"(length {contigs[contig]})")
        attrs = _attributes(attributes)
        if "Parent" in attrs:
            key = ("parent", attrs["Parent"])
        elif "ID" in attrs:
            key = ("id", attrs["ID"])
        else:
            key = ("block", block, attrs.get("Name", f"line{number}"))
        name = attrs.get("Name") or attrs.get("gene") or attrs.get("ID") or attrs.get("Parent") or f"cds_line{number}"
        groups.setdefault(key, []).append((name, contig, start - 1, end, number, strand))
    cds_list, trans_spliced = [], 0
    for parts in groups.values():
        if len({(contig, strand) for _, contig, _, _, _, strand in parts}) > 1:
            trans_spliced += 1
            continue
        name, contig, _, _, line, strand = parts[0]
        first_line: dict[tuple[int, int], int] = {}
        for _, _, start, end, number, _ in parts:
            if (start, end) in first_line:  # a repeated line would splice the segment in twice: untranslatable
                log.warning("%s: line %d repeats the CDS segment %s:%d-%d of line %d; counted once", path, number,
                            contig, start + 1, end, first_line[start, end])
            first_line.setdefault((start, end), number)
        segments = tuple(sorted(first_line))
        cds_list.append(CodingSequence(name, contig, strand, segments, line))
    if trans_spliced:
        log.info("%s: skipped %d CDS with segments on different strands or contigs (trans-spliced)", path, trans_spliced)
    if not cds_list:
        raise InputError(f"{path}: no CDS features found")
    return sorted(cds_list, key=lambda cds: (cds.line, cds.segments))


def untranslatable_reason(sequence: str, table: int) -> str | None:
    """Why ``sequence`` is not a clean CDS under codon table ``table`` (Biopython's check), or None if it is."""
    if set(sequence) - set("ACGT"):
        return "ambiguous bases"
    try:
        Seq(sequence).translate(table=table, cds=True)
    except CodonTable.TranslationError as err:
        return str(err)
    return None


def codon_consequence(codon_ref: str, codon_alt: str, codon_index: int, n_codons: int, table: int) -> str:
    """The consequence class of replacing ``codon_ref`` by ``codon_alt`` at ``codon_index`` (0-based) of a CDS."""
    codons = CodonTable.unambiguous_dna_by_id[table]
    if codon_index == 0:
        return "start_retained" if codon_alt in codons.start_codons else "start_lost"
    if codon_index == n_codons - 1:
        return "stop_retained" if codon_alt in codons.stop_codons else "stop_lost"
    if codon_alt in codons.stop_codons:
        return "stop_gained"
    same = codons.forward_table[codon_ref] == codons.forward_table[codon_alt]
    return "synonymous" if same else "missense"


def amino_acid(codon: str, starts: bool, table: int) -> str:
    """One-letter amino acid of ``codon`` under codon table ``table`` (``*``: stop); ``M`` when it ``starts`` the
    protein, whatever start codon it is (GTG, TTG ...)."""
    return "M" if starts else CodonTable.unambiguous_dna_by_id[table].forward_table.get(codon, "*")


def _multiply_covered(cds_list: list[CodingSequence], lengths: dict[str, int]) -> dict[str, np.ndarray]:
    coverage = {contig: np.zeros(length, dtype=np.uint8) for contig, length in lengths.items()}
    for cds in cds_list:
        for start, end in cds.segments:
            coverage[cds.contig][start:end] += 1
    return {contig: depth > 1 for contig, depth in coverage.items()}


def coding_snvs(reference, gff_path: str | os.PathLike, *, n_genes: int | None = None, table: int = 11,
                seed: int = 0) -> list[CodingSnv]:
    """Every SNV in ``n_genes`` clean coding sequences drawn at random (seeded) from the annotation (all: None).

    Contigs of the annotation must be in ``reference`` (:class:`MismatchError` otherwise). Returns SNVs sorted by
    contig (reference order) and position; :class:`InputError` when no coding sequence translates cleanly.
    """
    cds_list = read_cds(gff_path, reference.contigs)
    for contig in sorted({cds.contig for cds in cds_list}):
        reference.check_contig(contig, source=str(gff_path))
    overlapped = _multiply_covered(cds_list, reference.contigs)
    wanted = len(cds_list) if n_genes is None else n_genes
    usable, rejected = [], []
    for index in np.random.default_rng(seed).permutation(len(cds_list)):
        if len(usable) == wanted:
            break
        reason = untranslatable_reason(cds_list[index].sequence(reference), table)
        if reason is None:
            usable.append(cds_list[index])
        else:
            rejected.append(f"{cds_list[index].name} ({reason})")
    if not usable:
        raise InputError(f"{gff_path}: none of its {len(cds_list)} CDS translates cleanly with codon table {table}, "
                         f"e.g. {'; '.join(rejected[:3])} (a GTF, whose CDS leave out the stop codon, is not GFF3)")
    if rejected:
        log.info("%s: %d CDS left out as they do not translate cleanly, e.g. %s", gff_path, len(rejected),
                 "; ".join(rejected[:3]))
    snvs = []
    for cds in usable:
        snvs.extend(_snvs_of(cds, reference, overlapped[cds.contig], table))
    order = {name: i for i, name in enumerate(reference.contigs)}
    return sorted(snvs, key=lambda snv: (order[snv.contig], snv.pos, snv.alt))


def _snvs_of(cds: CodingSequence, reference, overlapped: np.ndarray, table: int) -> list[CodingSnv]:
    sequence = cds.sequence(reference)
    positions = cds.positions()
    n_codons = len(sequence) // 3
    snvs = []
    for offset, genome_pos in enumerate(positions):
        if overlapped[genome_pos]:
            continue
        codon_index, phase = divmod(offset, 3)
        codon_ref = sequence[3 * codon_index: 3 * codon_index + 3]
        for base in "ACGT":
            if base == sequence[offset]:
                continue
            codon_alt = codon_ref[:phase] + base + codon_ref[phase + 1:]
            forward = (sequence[offset], base) if cds.strand == "+" else \
                (sequence[offset].translate(COMPLEMENT), base.translate(COMPLEMENT))
            consequence = codon_consequence(codon_ref, codon_alt, codon_index, n_codons, table)
            snvs.append(CodingSnv(
                contig=cds.contig, pos=int(genome_pos) + 1, ref=forward[0], alt=forward[1], gene=cds.name,
                strand=cds.strand, consequence=consequence, cds_pos=offset + 1, codon_ref=codon_ref,
                codon_alt=codon_alt, aa_ref=amino_acid(codon_ref, codon_index == 0, table),
                aa_alt=amino_acid(codon_alt, consequence == "start_retained", table),
            ))
    return snvs


CODING_INFO = (
    InfoField("GENE", "1", "String", "Name of the coding sequence (GFF3 Name/ID)"),
    InfoField("CONSEQUENCE", "1", "String", "Consequence on the protein: " + ", ".join(CONSEQUENCES)),
    InfoField("STRAND", "1", "String", "Strand of the coding sequence"),
    InfoField("CDS_POS", "1", "Integer", "1-based position in the spliced coding sequence"),
    InfoField("CODON", "1", "String", "Reference and alternate codon on the coding strand, REF>ALT"),
    InfoField("AA", "1", "String", "Reference and alternate amino acid (one letter, * = stop, a start codon M), "
              "REF>ALT"),
)


def write_coding_vcf(path: str | os.PathLike, snvs: list[CodingSnv], reference, *, source: str,
                     index_kind: str = "auto") -> None:
    """Write ``snvs`` as a bgzipped, indexed sites VCF (INFO: GENE, CONSEQUENCE, CODON, AA, ...)."""
    records = (
        dict(contig=snv.contig, pos=snv.pos, ref=snv.ref, alt=snv.alt,
             info=dict(GENE=snv.gene, CONSEQUENCE=snv.consequence, STRAND=snv.strand, CDS_POS=snv.cds_pos,
                       CODON=f"{snv.codon_ref}>{snv.codon_alt}", AA=f"{snv.aa_ref}>{snv.aa_alt}"))
        for snv in snvs
    )
    write_sites_vcf(path, reference, records, info_fields=CODING_INFO, meta={"source": source}, index_kind=index_kind)



def at_most_per_consequence(snvs: list[CodingSnv], per_class: int, seed: int = 0) -> list[CodingSnv]:
    """At most ``per_class`` SNVs of each consequence (a seeded sample), in the original order."""
    rng = np.random.default_rng(seed)
    keep = []
    for consequence in CONSEQUENCES:
        members = [i for i, snv in enumerate(snvs) if snv.consequence == consequence]
        keep += [members[i] for i in rng.permutation(len(members))[:per_class]]
    return [snvs[i] for i in sorted(keep)]
