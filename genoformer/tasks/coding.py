"""Coding-variant sets from a genome annotation: every SNV of a sample of coding sequences, with its consequence.

The consequence of an SNV is found by translating the reference and the altered codon with Biopython's codon
table (``--table``, 11 = bacterial and plastid by default). Classes, named after Sequence Ontology terms:

- ``synonymous``: same amino acid; ``missense``: another amino acid; ``stop_gained``: a sense codon becomes stop;
- ``stop_lost`` / ``stop_retained``: the stop codon becomes a sense codon / another stop codon;
- ``start_lost`` / ``start_retained``: the start codon becomes a codon the table cannot start with / another
  start codon (a start codon is read as Met whatever it is, so these are kept apart from missense).

Only coding sequences that translate cleanly are used (Biopython ``translate(cds=True)``: a start codon, whole
codons, one stop at the end, no ambiguous bases); the others are counted and logged, as are trans-spliced CDS
(e.g. plastid rps12) and CDS crossing the origin of a circular contig, which are not used. Positions covered by
more than one CDS of the annotation (overlapping genes, trans-spliced and origin-crossing ones included) are left
out, so each SNV has one unambiguous consequence.

Partial CDS (a gene cut by the end of its contig or by a gap) are used, read as what they are. A 5'-partial CDS
has no start codon: its first whole codon is an ordinary codon read with the table (GTG is Val, not Met), and never
gives ``start_lost``/``start_retained``; a 3'-partial CDS has no stop codon: its last whole codon is ordinary and
never gives ``stop_lost``/``stop_retained``, and a stop anywhere in it makes the CDS untranslatable. Calling the
first codon of a cut gene its start would class a plain missense change as the loss of the protein; leaving cut
genes out would bias the sample against contig ends, of which draft assemblies have many. The bases of an
incomplete codon at either end (the 5' end's phase, the 3' end's remainder) get no SNV: their codon is not in the
sequence; ``CDS_POS`` still counts from the first annotated base. The cut ends are read from the CDS lines (an mRNA
or gene marked partial may hold a complete CDS), marked in three ways: Prodigal/pyrodigal's ``partial=LR``, a digit
per end in genome order, left (lower coordinate) then right, 1 where the gene runs off the sequence (Prodigal's
gene.c: on the + strand the left end is the start, on the - strand the stop); NCBI's ``partial=true`` with
``start_range=.,N`` (the left end) and/or ``end_range=N,.`` (the right end), also in genome order; and a phase of 1
or 2 on the 5'-most CDS line (the bases before the first whole codon). A CDS marked ``partial=true`` with neither
range does not say which end is cut: it is left out, counted and logged with the untranslatable ones.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from Bio.Data import CodonTable
from Bio.Seq import Seq

from genoformer.errors import InputError
from genoformer.io.gff3 import EndCheck, pieces, read_features
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
    five_prime_partial: bool = False  # no start codon: the 5' end is cut (see the module docstring)
    three_prime_partial: bool = False  # no stop codon: the 3' end is cut
    leading: int = 0  # bases before the first whole codon: the phase of the 5'-most CDS line
    ends_unknown: bool = False  # marked partial=true without start_range/end_range: which end is cut is not said

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


PRODIGAL_PARTIAL = {"00": (False, False), "01": (False, True), "10": (True, False), "11": (True, True)}


def _cut_ends(attrs: dict[str, str], path: Path, number: int) -> tuple[bool, bool, bool]:
    """Whether one CDS line marks its left end (lower coordinate) and its right end incomplete, and whether it
    says ``partial=true`` without saying which end (see the module docstring)."""
    value = attrs.get("partial")
    if value in PRODIGAL_PARTIAL:
        return (*PRODIGAL_PARTIAL[value], False)
    if value is not None and value.lower() not in ("true", "false"):
        raise InputError(f"{path}: line {number}: partial={value!r} is neither Prodigal's 00, 01, 10 or 11 (left and "
                         "right end) nor NCBI's true or false")
    left, right = "start_range" in attrs, "end_range" in attrs
    return left, right, value is not None and value.lower() == "true" and not (left or right)


def _cds_groups(path: Path, contigs: dict[str, int] | None) -> list[list[tuple]]:
    """The CDS lines of a GFF3 file grouped into coding sequences (see :func:`read_cds`), each group in file order
    as (name, contig, start, end, line, strand, phase, cut ends) with 0-based half-open coordinates."""
    groups: dict[tuple, list[tuple[str, str, int, int, int, str, int, tuple[bool, bool, bool]]]] = {}
    block, previous_type = 0, None
    ends = EndCheck(contigs, path)
    for feature in read_features(path):
        ends.note(feature)
        if feature.type == "gene" and previous_type != "gene":
            block += 1
        previous_type = feature.type
        if feature.type != "CDS":
            continue
        number = feature.line
        if feature.strand not in "+-" or len(feature.strand) != 1:
            raise InputError(f"{path}: line {number}: CDS strand {feature.strand!r} is not + or -")
        if feature.phase not in ("0", "1", "2", "."):
            raise InputError(f"{path}: line {number}: CDS phase {feature.phase!r} is not 0, 1, 2 or .")
        ends.check(feature)
        attrs = feature.attributes
        if "Parent" in attrs:
            key = ("parent", attrs["Parent"])
        elif "ID" in attrs:
            key = ("id", attrs["ID"])
        else:
            key = ("block", block, attrs.get("Name", f"line{number}"))
        name = attrs.get("Name") or attrs.get("gene") or attrs.get("ID") or attrs.get("Parent") or f"cds_line{number}"
        groups.setdefault(key, []).append((name, feature.contig, feature.start, feature.end, number, feature.strand,
                                           0 if feature.phase == "." else int(feature.phase),
                                           _cut_ends(attrs, path, number)))
    ends.finish()
    return list(groups.values())


def _trans_spliced(parts: list[tuple]) -> bool:
    """Whether the CDS lines of one coding sequence are trans-spliced: on different contigs or strands, or listed
    in an order that is neither ascending nor descending (a GenBank join of parts far apart, listed 5' to 3')."""
    if len({(part[1], part[5]) for part in parts}) > 1:
        return True
    starts = list(dict.fromkeys(part[2] for part in parts))
    return starts != sorted(starts) and starts != sorted(starts, reverse=True)


def read_cds(path: str | os.PathLike, contigs: dict[str, int] | None = None) -> list[CodingSequence]:
    """Read the CDS features of a GFF3 file (plain or gzip/bgzip-compressed), grouped into coding sequences.

    Segments of one CDS are joined by their ``Parent`` attribute, else their shared ``ID``; in GenBank-derived
    GFF3 without either, CDS lines with the same ``Name`` inside one block of lines (a block starts at a ``gene``
    line) form one CDS. A trans-spliced CDS (segments on different contigs or strands, or listed neither in
    ascending nor in descending order, as GenBank lists the far-apart parts of a join 5' to 3') is skipped and
    logged: its segments would be spliced in the wrong order. Which ends are incomplete (partial CDS) is read from
    ``partial``, ``start_range``/``end_range`` and the 5'-most line's phase (see the module docstring). Malformed
    lines (and, given the reference's ``contigs`` as name -> length, a CDS ending past its contig) raise
    :class:`InputError` naming the file and line. A CDS crossing the origin of a contig the GFF3 declares circular
    (``Is_circular=true``; known only given ``contigs``) is skipped and logged too.
    """
    return _coding_sequences(Path(path), _cds_groups(Path(path), contigs), contigs)


def _coding_sequences(path: Path, groups: list[list[tuple]], contigs: dict[str, int] | None) -> list[CodingSequence]:
    cds_list, trans_spliced, across_origin = [], 0, 0
    for parts in groups:
        if _trans_spliced(parts):
            trans_spliced += 1
            continue
        if contigs is not None and any(part[3] > contigs.get(part[1], part[3]) for part in parts):
            across_origin += 1
            continue
        name, contig, _, _, line, strand, _, _ = parts[0]
        first_line: dict[tuple[int, int], int] = {}
        phases: dict[tuple[int, int], int] = {}
        for _, _, start, end, number, _, phase, _ in parts:
            if (start, end) in first_line:  # a repeated line would splice the segment in twice: untranslatable
                log.warning("%s: line %d repeats the CDS segment %s:%d-%d of line %d; counted once", path, number,
                            contig, start + 1, end, first_line[start, end])
            first_line.setdefault((start, end), number)
            phases.setdefault((start, end), phase)
        segments = tuple(sorted(first_line))
        left, right, unsaid = (any(ends) for ends in zip(*(part[7] for part in parts)))
        five, three = (left, right) if strand == "+" else (right, left)
        leading = phases[segments[0] if strand == "+" else segments[-1]]
        cds_list.append(CodingSequence(name, contig, strand, segments, line, five_prime_partial=five or leading > 0,
                                       three_prime_partial=three, leading=leading,
                                       ends_unknown=unsaid and not (left or right)))
    if trans_spliced:
        log.info("%s: skipped %d trans-spliced CDS (segments on different contigs or strands, or listed out of genome "
                 "order)", path, trans_spliced)
    if across_origin:
        log.info("%s: skipped %d CDS crossing the origin of a circular contig", path, across_origin)
    if not cds_list:
        raise InputError(f"{path}: no CDS features found")
    return sorted(cds_list, key=lambda cds: (cds.line, cds.segments))


def untranslatable_reason(sequence: str, table: int, *, has_start: bool = True, has_stop: bool = True) -> str | None:
    """Why ``sequence`` (from its first whole codon) is not a clean CDS under codon table ``table``, or None if it
    is: Biopython's check (a start codon, whole codons, one stop at the end, no ambiguous bases), and for a partial
    CDS the same less what it lacks: without a start (5'-partial) the first codon is an ordinary one, without a stop
    (3'-partial) an incomplete last codon is allowed and no codon may be a stop."""
    if set(sequence) - set("ACGT"):
        return "ambiguous bases"
    if has_start and has_stop:
        try:
            Seq(sequence).translate(table=table, cds=True)
        except CodonTable.TranslationError as err:
            return str(err)
        return None
    whole = sequence[:len(sequence) - len(sequence) % 3] if not has_stop else sequence
    if len(whole) % 3:
        return f"Sequence length {len(sequence)} is not a multiple of three"
    if not whole:
        return "no whole codon"
    if has_start and whole[:3] not in CodonTable.unambiguous_dna_by_id[table].start_codons:
        return f"First codon '{whole[:3]}' is not a start codon"
    protein = str(Seq(whole).translate(table=table))
    if has_stop and not protein.endswith("*"):
        return f"Final codon '{whole[-3:]}' is not a stop codon"
    stop = protein.find("*", 0, len(protein) - 1 if has_stop else len(protein))
    if stop >= 0 and has_stop:
        return f"Extra in frame stop codon '{whole[3 * stop:3 * stop + 3]}' found"
    if stop >= 0:
        return f"stop codon '{whole[3 * stop:3 * stop + 3]}' at codon {stop + 1} of a CDS marked 3'-partial (no stop)"
    return None


def codon_consequence(codon_ref: str, codon_alt: str, codon_index: int, n_codons: int, table: int, *,
                      has_start: bool = True, has_stop: bool = True) -> str:
    """The consequence class of replacing ``codon_ref`` by ``codon_alt`` at ``codon_index`` (0-based) of a CDS of
    ``n_codons`` whole codons; the first is a start codon only where the CDS ``has_start``, the last a stop codon
    only where it ``has_stop`` (a partial CDS lacks one or both: see the module docstring)."""
    codons = CodonTable.unambiguous_dna_by_id[table]
    if codon_index == 0 and has_start:
        return "start_retained" if codon_alt in codons.start_codons else "start_lost"
    if codon_index == n_codons - 1 and has_stop:
        return "stop_retained" if codon_alt in codons.stop_codons else "stop_lost"
    if codon_alt in codons.stop_codons:
        return "stop_gained"
    same = codons.forward_table[codon_ref] == codons.forward_table[codon_alt]
    return "synonymous" if same else "missense"


def amino_acid(codon: str, starts: bool, table: int) -> str:
    """One-letter amino acid of ``codon`` under codon table ``table`` (``*``: stop); ``M`` when it ``starts`` the
    protein, whatever start codon it is (GTG, TTG ...)."""
    return "M" if starts else CodonTable.unambiguous_dna_by_id[table].forward_table.get(codon, "*")


def _multiply_covered(groups: list[list[tuple]], lengths: dict[str, int]) -> dict[str, np.ndarray]:
    """Per contig, whether each base is covered by more than one coding sequence (the CDS line groups of
    :func:`_cds_groups`, trans-spliced and origin-crossing ones included: they code there too); a repeated line
    counts once."""
    coverage = {contig: np.zeros(length, dtype=np.uint16) for contig, length in lengths.items()}
    for parts in groups:
        for contig, start, end in {(part[1], part[2], part[3]) for part in parts}:
            for piece_start, piece_end in pieces(start, end, lengths[contig]):
                coverage[contig][piece_start:piece_end] += 1
    return {contig: depth > 1 for contig, depth in coverage.items()}


def coding_snvs(reference, gff_path: str | os.PathLike, *, n_genes: int | None = None, table: int = 11,
                seed: int = 0) -> list[CodingSnv]:
    """Every SNV in ``n_genes`` clean coding sequences drawn at random (seeded) from the annotation (all: None).

    Contigs of the annotation must be in ``reference`` (:class:`MismatchError` otherwise). Returns SNVs sorted by
    contig (reference order) and position; :class:`InputError` when no coding sequence translates cleanly.
    """
    groups = _cds_groups(Path(gff_path), reference.contigs)
    for contig in sorted({part[1] for parts in groups for part in parts}):
        reference.check_contig(contig, source=str(gff_path))
    cds_list = _coding_sequences(Path(gff_path), groups, reference.contigs)
    overlapped = _multiply_covered(groups, reference.contigs)
    wanted = len(cds_list) if n_genes is None else n_genes
    usable, rejected = [], []
    for index in np.random.default_rng(seed).permutation(len(cds_list)):
        if len(usable) == wanted:
            break
        cds = cds_list[index]
        reason = "marked partial=true without start_range/end_range: which end is cut is not said" \
            if cds.ends_unknown else untranslatable_reason(
                cds.sequence(reference)[cds.leading:], table, has_start=not cds.five_prime_partial,
                has_stop=not cds.three_prime_partial)
        if reason is None:
            usable.append(cds)
        else:
            rejected.append(f"{cds.name} ({reason})")
    if not usable:
        raise InputError(f"{gff_path}: none of its {len(cds_list)} CDS translates cleanly with codon table {table}, "
                         f"e.g. {'; '.join(rejected[:3])} (a GTF, whose CDS leave out the stop codon, is not GFF3)")
    if rejected:
        log.info("%s: %d CDS left out as they do not translate cleanly, e.g. %s", gff_path, len(rejected),
                 "; ".join(rejected[:3]))
    five, three = (sum(getattr(cds, end) for cds in usable) for end in ("five_prime_partial", "three_prime_partial"))
    if five or three:
        log.info("%s: of the %d CDS used, %d lack their 5' end (no start codon) and %d their 3' end (no stop codon); "
                 "their end codons are read as ordinary codons", gff_path, len(usable), five, three)
    snvs = []
    for cds in usable:
        snvs.extend(_snvs_of(cds, reference, overlapped[cds.contig], table))
    order = {name: i for i, name in enumerate(reference.contigs)}
    return sorted(snvs, key=lambda snv: (order[snv.contig], snv.pos, snv.alt))


def _snvs_of(cds: CodingSequence, reference, overlapped: np.ndarray, table: int) -> list[CodingSnv]:
    sequence = cds.sequence(reference)
    positions = cds.positions()
    first = cds.leading  # the bases of an incomplete codon at either end get no SNV
    n_codons = (len(sequence) - first) // 3
    has_start, has_stop = not cds.five_prime_partial, not cds.three_prime_partial
    snvs = []
    for offset in range(first, first + 3 * n_codons):
        genome_pos = positions[offset]
        if overlapped[genome_pos]:
            continue
        codon_index, phase = divmod(offset - first, 3)
        codon_ref = sequence[first + 3 * codon_index: first + 3 * codon_index + 3]
        for base in "ACGT":
            if base == sequence[offset]:
                continue
            codon_alt = codon_ref[:phase] + base + codon_ref[phase + 1:]
            forward = (sequence[offset], base) if cds.strand == "+" else \
                (sequence[offset].translate(COMPLEMENT), base.translate(COMPLEMENT))
            consequence = codon_consequence(codon_ref, codon_alt, codon_index, n_codons, table, has_start=has_start,
                                            has_stop=has_stop)
            snvs.append(CodingSnv(
                contig=cds.contig, pos=int(genome_pos) + 1, ref=forward[0], alt=forward[1], gene=cds.name,
                strand=cds.strand, consequence=consequence, cds_pos=offset + 1, codon_ref=codon_ref,
                codon_alt=codon_alt, aa_ref=amino_acid(codon_ref, codon_index == 0 and has_start, table),
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
