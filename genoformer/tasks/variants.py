"""Zero-shot variant-effect scores from a masked-LM: masked log-likelihood ratio and embedding distances.

Windows. Every variant is scored in a window of ``window`` bp whose start lies on a grid of ``step`` bp (rounded
up to a multiple of the stride, so tokens keep the phase they had in pretraining), chosen so the variant (the
middle of its longer allele, when that fits) is as close to the centre as the grid allows (at most half a grid
step off; near a contig end the window is pushed inside the contig, and a contig shorter than the window is one
window). Variants that fall in the same window share its forward passes.

Scores, per ALT allele and strand (forward, and the reverse complement of the window). A window ends where its
last whole forward token does (with stride > 1 up to ``stride - 1`` bases are cut), so both strands cover the
same bases.

- ``llr``: masked log-likelihood ratio. Every token overlapping the REF allele is masked; at each masked token
  the model's probability of the k-mers consistent with each allele (the window's bases with that allele in
  place; an N is a wildcard summed over) gives ``log P(alt) - log P(ref)``, summed over the tokens and divided
  by the mean number of those tokens that cover a base of the allele (``k / stride`` inside a contig when the
  stride divides k; fewer at a contig's ends), so an SNV gets the mean over its tokens wherever it lies.
  For SNVs and MNVs the masked input is the same for both alleles: one masked pass serves both, and variants
  whose REF spans are at least ``mask_spacing`` bp apart are masked together in one pass. For an indel the ALT
  side is a second masked pass over the alternate window (tokens overlapping the ALT allele masked), and the
  two alleles cover different numbers of bases: a sum would charge every extra base its ~ln 4 nats whatever the
  model thinks (insertions would rank as the least expected variants, deletions as the most), so an indel's
  ``llr`` is the difference of the mean log-probability per masked token, ALT minus REF.
- ``emb_local``: Euclidean distance between the mean hidden state of the tokens overlapping the REF allele in
  the reference window and of those overlapping the ALT allele in the alternate window (unmasked passes).
- ``emb_pooled``: the same between the means over all tokens of the two windows.

Indels keep windows aligned at the start: the alternate window starts at the same reference position and is cut
(insertion) or extended with the following reference bases (deletion; N past the contig end) to the same
length, so the bases before the variant are token-for-token identical. On the reverse strand this is the
reverse complement of the forward alternate window. Alleles with an N get no LLR, nor do alleles longer than
the window leaves room for (REF or ALT running past the window's end: raise ``window``); a variant that the
window's tokens do not see (no whole token covers it: the last bases of a contig with stride > 1, a contig
shorter than k; an insertion at a contig's last base) gets no score at all (NaN, counted in the log).

Cost per window: one unmasked reference pass per strand (embeddings), one masked pass per strand per group of
variants ``mask_spacing`` apart (LLR), and per ALT allele one unmasked alternate pass per strand (embeddings;
an alternate sequence can only be embedded by running it) plus, for indels, one masked alternate pass. With
``embeddings=False`` the many variants of a window cost a few masked passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from genoformer.errors import ConfigError
from genoformer.io.fasta import N_CODE, encode_bases, reverse_complement_codes
from genoformer.tasks.defaults import DEFAULT_MASK_SPACING, DEFAULT_WINDOW
from genoformer.tasks.encoder import Encoder, Job
from genoformer.tokenize.encode import n_tokens, span_bp
from genoformer.tokenize.vocab import MASK

log = logging.getLogger(__name__)

STRANDS = ("fwd", "rev")


@dataclass
class WindowPlan:
    """A window ``contig[start:end]`` (0-based half-open) and the indices of the variants scored in it."""

    contig: str
    start: int
    end: int
    variants: list[int]


@dataclass
class VariantScores:
    """Scores of every variant (NaN where not scored): arrays ``[n_variants, 2]`` over (fwd, rev) strands,
    the window of each variant, and, when asked for, the local hidden-state change ``[n, 2, dim]``."""

    llr: np.ndarray
    emb_local: np.ndarray
    emb_pooled: np.ndarray
    window_start: np.ndarray
    window_end: np.ndarray
    scored: np.ndarray
    local_delta: np.ndarray | None = None


def window_bounds(pos: int, contig_length: int, window: int, step: int, stride: int,
                  span: int = 1) -> tuple[int, int]:
    """The window ``[start, end)`` (0-based) of a variant at 0-based ``pos`` whose longer allele has ``span`` bases
    (see the module docstring).

    Starts lie on a grid of ``step`` rounded up to a multiple of ``stride``, centred on the middle of the span
    when the span fits the window with a grid step to spare (so the whole span is inside), else on ``pos``. A
    window that would leave fewer than ``stride`` bases of the contig after it runs to the contig's end (up to
    ``stride - 1`` bp longer).
    """
    grid = -(-step // stride) * stride
    centre = pos + (span - 1) / 2 if span <= window - grid else pos
    start = int(round((centre - window / 2) / grid)) * grid
    last = max(0, contig_length - window) // stride * stride
    start = min(max(start, 0), last)
    end = contig_length if start + window + stride > contig_length else start + window
    return start, end


def plan_windows(variants, contigs: dict[str, int], *, window: int, step: int, stride: int,
                 k: int) -> list[WindowPlan]:
    """Group variants by window, in contig (``contigs`` order) then position order; each window ends with its
    last whole token of ``k`` bases (tokens every ``stride`` bases from its start)."""
    if window < 1 or not 1 <= step <= window // 2:
        raise ConfigError(f"window ({window} bp) must be positive and the window step ({step} bp) from 1 to half "
                          "the window, so each variant keeps context on both sides")
    plans: dict[tuple[str, int], WindowPlan] = {}
    for index, variant in enumerate(variants):
        start, end = window_bounds(variant.pos - 1, contigs[variant.contig], window, step, stride,
                                   span=max(len(variant.ref), len(variant.alt)))
        if (variant.contig, start) not in plans:
            end = start + span_bp(n_tokens(end - start, k, stride), k, stride)
            plans[variant.contig, start] = WindowPlan(variant.contig, start, end, [])
        plans[variant.contig, start].variants.append(index)
    order = {name: i for i, name in enumerate(contigs)}
    return [plans[key] for key in sorted(plans, key=lambda key: (order[key[0]], key[1]))]


def pack_sites(spans: list[tuple[int, int]], spacing: int) -> list[list[int]]:
    """Greedily group base spans into passes whose spans are at least ``spacing`` bp apart; returns indices."""
    passes: list[list[int]] = []
    ends: list[int] = []
    for index in sorted(range(len(spans)), key=lambda i: spans[i]):
        start, end = spans[index]
        for number, last_end in enumerate(ends):
            if start - last_end >= spacing:
                passes[number].append(index)
                ends[number] = end
                break
        else:
            passes.append([index])
            ends.append(end)
    return passes


def alternate_window(codes: np.ndarray, offset: int, ref: str, alt: str, following: np.ndarray) -> np.ndarray:
    """The window's base codes with ``ref`` at ``offset`` replaced by ``alt``, kept at the window's length:
    cut at the end after an insertion, continued with ``following`` (the reference bases after the window,
    N-padded, at least as many as the deletion removes) after a deletion, also when ``ref`` runs past the
    window's end."""
    extended = np.concatenate([codes, following])
    changed = np.concatenate([extended[:offset], encode_bases(alt.upper()), extended[offset + len(ref):]])
    return changed[:codes.size]


class _WindowScoring:
    """The jobs of one window and what their readouts write into the score arrays."""

    def __init__(self, plan: WindowPlan, variants, reference, encoder: Encoder, scores: VariantScores, *,
                 mask_spacing: int, embeddings: bool):
        self.plan, self.variants, self.encoder, self.scores = plan, variants, encoder, scores
        self.mask_spacing, self.embeddings = mask_spacing, embeddings
        self.codes = reference.codes(plan.contig, plan.start, plan.end)[0]
        longest_deletion = max(len(variants[i].ref) - len(variants[i].alt) for i in plan.variants)
        after_end = min(reference.contigs[plan.contig], plan.end + max(0, longest_deletion))
        following = reference.codes(plan.contig, plan.end, after_end)[0]
        self.following = np.concatenate([following, np.full(max(0, longest_deletion) - following.size, N_CODE,
                                                            dtype=np.uint8)])
        self.ref_pooled: dict[int, torch.Tensor] = {}
        self.ref_local: dict[tuple[int, int], torch.Tensor] = {}
        self.ref_log_prob: dict[tuple[int, int], float] = {}  # per token, of indels

    def span(self, strand: int, offset: int, length: int) -> tuple[int, int]:
        """Bases ``[offset, offset + length)`` of the forward window in the coordinates of ``strand``."""
        size = self.codes.size
        return (offset, offset + length) if strand == 0 else (size - offset - length, size - offset)

    def offset(self, index: int) -> int:
        return self.variants[index].pos - 1 - self.plan.start

    def alt_codes(self, index: int, strand: int) -> np.ndarray:
        variant = self.variants[index]
        forward = alternate_window(self.codes, self.offset(index), variant.ref, variant.alt, self.following)
        return forward if strand == 0 else reverse_complement_codes(forward)

    def kmers(self, sequence: np.ndarray, positions) -> list[np.ndarray]:
        stride, k = self.encoder.stride, self.encoder.k
        return [sequence[t * stride:t * stride + k] for t in positions]

    def patched_kmers(self, sequence: np.ndarray, positions, span: tuple[int, int], allele: np.ndarray):
        """The k-mers at ``positions`` of ``sequence`` with ``span`` replaced by ``allele`` (same length)."""
        stride, k = self.encoder.stride, self.encoder.k
        low, high = positions[0] * stride, positions[-1] * stride + k
        region = sequence[low:high].copy()
        start, end = max(span[0], low), min(span[1], high)
        region[start - low:end - low] = allele[start - span[0]:end - span[0]]
        return [region[t * stride - low:t * stride - low + k] for t in positions]

    def jobs(self) -> Iterator[Job]:
        """Reference and masked passes of both strands first, then the alternate passes of each variant (none in
        a window without a token: a contig shorter than k; no embedding pass for an alternate window whose
        tokens are the reference's: the change lies past the window's last token)."""
        if self.codes.size < self.encoder.k:
            return
        sequences = {strand: self.codes if strand == 0 else reverse_complement_codes(self.codes) for strand in (0, 1)}
        reference_tokens = {}
        for strand, sequence in sequences.items():
            tokens = reference_tokens[strand] = self.encoder.encode(sequence)
            if self.embeddings:
                yield Job(tokens, "reference",
                          lambda hidden, s=strand, n=tokens.size: self.read_reference(hidden, s, n))
            yield from self.masked_reference_jobs(strand, sequence, tokens)
        for index in self.plan.variants:
            masked_alternate = not self.same_length(index) and self.has_llr(index)
            if not (self.embeddings or masked_alternate):
                continue
            for strand in (0, 1):
                alt = self.alt_codes(index, strand)
                tokens = self.encoder.encode(alt)
                if self.embeddings and not np.array_equal(tokens, reference_tokens[strand]):
                    yield Job(tokens, "alternate",
                              lambda hidden, i=index, s=strand, n=tokens.size: self.read_alternate(hidden, i, s, n))
                if masked_alternate and (job := self.masked_alternate_job(index, strand, alt, tokens)):
                    yield job

    def has_llr(self, index: int) -> bool:
        """Both alleles are free of N and lie wholly inside the window (an allele cut by the window's end would
        be compared over part of its tokens only)."""
        variant = self.variants[index]
        inside = self.offset(index) + max(len(variant.ref), len(variant.alt)) <= self.codes.size
        return inside and "N" not in (variant.ref + variant.alt).upper()

    def masked_reference_jobs(self, strand: int, sequence: np.ndarray, tokens: np.ndarray) -> Iterator[Job]:
        sites: dict[tuple[int, int], list[int]] = {}
        for index in self.plan.variants:
            span = self.span(strand, self.offset(index), len(self.variants[index].ref))
            if self.has_llr(index) and self.encoder.token_range(*span, tokens.size):
                sites.setdefault(span, []).append(index)
        spans = list(sites)
        for group in pack_sites(spans, self.mask_spacing):
            masked = tokens.copy()
            for site in group:
                masked[list(self.encoder.token_range(*spans[site], tokens.size))] = MASK
            members = [(spans[site], sites[spans[site]]) for site in group]
            yield Job(masked, "masked", lambda hidden, s=strand, seq=sequence, m=members, n=tokens.size:
                      self.read_masked_reference(hidden, s, seq, m, n))

    def masked_alternate_job(self, index: int, strand: int, alt: np.ndarray, tokens: np.ndarray) -> Job | None:
        """The masked pass over an indel's alternate window (None when no token covers the ALT allele)."""
        span = self.span(strand, self.offset(index), len(self.variants[index].alt))
        positions = list(self.encoder.token_range(*span, tokens.size))
        if not positions:
            return None
        masked = tokens.copy()
        masked[positions] = MASK
        kmers = self.kmers(alt, positions)

        def readout(hidden):
            alt_mean = float(self.encoder.kmer_log_probs(hidden, positions, kmers).mean())
            if (index, strand) in self.ref_log_prob:
                self.scores.llr[index, strand] = alt_mean - self.ref_log_prob[index, strand]
        return Job(masked, "masked_alternate", readout)

    def read_reference(self, hidden: torch.Tensor, strand: int, count: int) -> None:
        self.ref_pooled[strand] = hidden.mean(dim=0)
        for index in self.plan.variants:
            span = self.span(strand, self.offset(index), len(self.variants[index].ref))
            positions = list(self.encoder.token_range(*span, count))
            if positions:
                self.ref_local[index, strand] = hidden[positions].mean(dim=0)

    def read_alternate(self, hidden: torch.Tensor, index: int, strand: int, count: int) -> None:
        pooled = hidden.mean(dim=0)
        self.scores.emb_pooled[index, strand] = float(torch.linalg.vector_norm(pooled - self.ref_pooled[strand]))
        span = self.span(strand, self.offset(index), len(self.variants[index].alt))
        positions = list(self.encoder.token_range(*span, count))
        if positions and (index, strand) in self.ref_local:
            delta = hidden[positions].mean(dim=0) - self.ref_local[index, strand]
            self.scores.emb_local[index, strand] = float(torch.linalg.vector_norm(delta))
            if self.scores.local_delta is not None:
                self.scores.local_delta[index, strand] = delta.cpu().numpy()

    def same_length(self, index: int) -> bool:
        return len(self.variants[index].ref) == len(self.variants[index].alt)

    def alt_allele(self, index: int, strand: int) -> np.ndarray:
        allele = encode_bases(self.variants[index].alt.upper())
        return allele if strand == 0 else reverse_complement_codes(allele)

    def read_masked_reference(self, hidden: torch.Tensor, strand: int, sequence: np.ndarray, members, count: int):
        """LLRs of the SNVs/MNVs of each masked site; for its indels, the REF's mean log-probability per token."""
        positions, kmers, segments = [], [], []
        for span, indices in members:
            tokens = list(self.encoder.token_range(*span, count))
            parts = [self.kmers(sequence, tokens)] + [
                self.patched_kmers(sequence, tokens, span, self.alt_allele(index, strand))
                for index in indices if self.same_length(index)]
            for part in parts:
                segments.append(slice(len(positions), len(positions) + len(tokens)))
                positions.extend(tokens)
                kmers.extend(part)
        log_probs = self.encoder.kmer_log_probs(hidden, positions, kmers)
        sums = iter([(float(log_probs[segment].sum()), segment.stop - segment.start) for segment in segments])
        for span, indices in members:
            ref_log_prob, n_masked = next(sums)
            coverage = self.mean_coverage(span, self.encoder.token_range(*span, count))
            for index in indices:
                if self.same_length(index):
                    self.scores.llr[index, strand] = (next(sums)[0] - ref_log_prob) / coverage
                else:
                    self.ref_log_prob[index, strand] = ref_log_prob / n_masked

    def mean_coverage(self, span: tuple[int, int], tokens: range) -> float:
        """Mean number of ``tokens`` covering a base of ``span``."""
        stride, k = self.encoder.stride, self.encoder.k
        covered = sum(min(t * stride + k, span[1]) - max(t * stride, span[0]) for t in tokens)
        return covered / (span[1] - span[0])


def score_variants(variants, reference, encoder: Encoder, *, window: int = DEFAULT_WINDOW, step: int | None = None,
                   mask_spacing: int = DEFAULT_MASK_SPACING, embeddings: bool = True, keep_deltas: bool = False,
                   shard: tuple[int, int] = (0, 1), progress: bool = True) -> VariantScores:
    """Score ``variants`` (:class:`genoformer.io.vcf.Variant`) against ``reference`` (see the module docstring).

    ``step``: window grid in bp (default ``window // 8``; 1 centres every variant exactly). ``shard=(i, n)``
    scores only windows ``i, i+n, i+2n, ...`` (the others stay NaN, ``scored`` False). ``keep_deltas`` keeps
    the local hidden-state change (ALT minus REF) of each variant and strand, the features of the classifiers.
    """
    step = max(1, window // 8) if step is None else step
    index, count = shard
    if not 0 <= index < count:
        raise ConfigError(f"shard {index}/{count}: the shard index must be from 0 to {count - 1}")
    if mask_spacing < 0:
        raise ConfigError(f"mask spacing must be >= 0 bp, got {mask_spacing}")
    encoder.check_window(min(window + encoder.stride - 1, max(reference.contigs.values())))
    n = len(variants)
    nan = np.full((n, 2), np.nan)
    scores = VariantScores(llr=nan.copy(), emb_local=nan.copy(), emb_pooled=nan.copy(),
                           window_start=np.full(n, -1), window_end=np.full(n, -1), scored=np.zeros(n, dtype=bool),
                           local_delta=np.full((n, 2, encoder.model.config.dim), np.nan) if keep_deltas else None)
    plans = plan_windows(variants, reference.contigs, window=window, step=step, stride=encoder.stride,
                         k=encoder.k)[index::count]
    bar = tqdm(plans, desc="scoring windows", unit=" windows", disable=None if progress else True)
    for plan in bar:
        scoring = _WindowScoring(plan, variants, reference, encoder, scores, mask_spacing=mask_spacing,
                                 embeddings=embeddings)
        encoder.run(scoring.jobs())
        scores.window_start[plan.variants], scores.window_end[plan.variants] = plan.start, plan.end
        scores.scored[plan.variants] = True
        bar.set_postfix(forwards=sum(encoder.forwards.values()))
    unscorable = int(np.isnan(scores.llr[scores.scored]).any(axis=1).sum())
    log.info("scored %d variants in %d windows with %d forward passes (%s); %d without an LLR (N allele, allele "
             "longer than the window allows, or not covered by a token)", int(scores.scored.sum()), len(plans),
             sum(encoder.forwards.values()),
             ", ".join(f"{kind} {number}" for kind, number in encoder.forwards.items()), unscorable)
    return scores
