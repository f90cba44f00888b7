"""Held-out evaluation of a masked-LM: bits per base and accuracy, next to the best order-k Markov chain.

Which bases are scored. Each held-out window is span-masked as in training (``genoformer.train.masking``; every
masked token becomes MASK), ``passes`` times, each pass a fresh draw: pass 0 from a generator seeded with
``(seed, window index)`` (what evaluation drew before it had passes, so ``passes=1`` gives the same figures),
pass ``p`` with ``(seed, window index, p)`` (:func:`pass_generator`), so a window gets the same masks whatever
the batch size. The scored bases are the *hidden* ones: bases that no unmasked token of the window shows, in
that pass. Every figure is a mean over the (pass, hidden base) pairs: ``scored_bases`` counts them,
``distinct_scored_bases`` the bases hidden in at least one pass. One pass hides about ``mask_ratio`` of a
window's bases; on the bundled workflow's C. diphtheriae test split (256 windows of 64 bases) one pass scores
2,560 bases, eight score 20,480 pairs over 12,183 distinct bases (74% of the windows' bases), and each pass
costs one more forward pass over the windows (about 0.5 s per split there on one CPU core).

Bits per base (per-base normalization for k-mers). The model predicts a distribution over k-mers at each masked
token. A hidden base ``b`` is scored by one token: the masked k-mer that holds ``b`` nearest its centre (for
stride 1, the k-mer whose central base, offset ``k // 2``, is ``b``). Its predicted distribution, renormalized
over the 4**k k-mers (special tokens excluded), is marginalized to the base at that offset:
``p(b = x) = sum of p(kmer) over k-mers with x at that offset``, and the base costs ``-log2 p(b = true base)``.
Bits per base is the mean over hidden bases. Every hidden base is scored exactly once per pass, so the figure is
in the same unit for every k; for k = 1 it is the plain masked-LM cross-entropy in bits. It is a per-base
(pseudo-likelihood) figure, not the joint likelihood of a span.

Masked-token accuracy: the share of masked tokens whose arg-max k-mer is the true one. Base accuracy: the share
of hidden bases whose arg-max marginal is the true base.

Held-out windows lie side by side (stride = window), whatever ``--window-stride`` the dataset was cut with for
training: overlapping windows would score the same base several times. Adjacent windows share only the
``k - stride`` bases that their edge k-mers both hold.

Markov baseline (``genoformer.train.markov``): fit on the train split's sequences, order and smoothing chosen on the
validation split's sequences (cross-validated over the train and validation sequences where validation has fewer than
``markov.MIN_UNITS`` units, a sequence or ``markov.UNIT_BASES`` of a longer one: ``markov.selection`` in the JSON says
which), never on the test split, then scored on exactly the (pass, hidden base) pairs above in two ways. One-sided, as
a chain reads: each base from the true bases before it in the same window (hidden ones included, so with spans over
one base it reads the true bases of its own span): not what the masked LM sees. Two-sided: each base given exactly
what the masked LM sees, the visible bases of its window on both sides, every hidden base of the window summed out
jointly (``markov.two_sided_bits``, a forward-backward pass over each cluster of hidden bases within the chain's
order; which bases are hidden differs from pass to pass, and a batch's passes are scored in one call, each (pass,
window) one N after the other). A cluster too big to sum out (``markov.MAX_TRANSITIONS``: a run of over 38 hidden
bases at order 7, 15 at order 8, 9 or 10 at orders 9 to 12) is scored given the true bases of its other hidden runs
instead, and ``markov_two_sided_approximate_bases`` counts its (pass, base) pairs (0 on the bundled workflow). On the
bundled C. diphtheriae test split (64-token windows, single-base spans, order 10, eight passes) the two-sided chain
scores 1.913 bits/base (one-sided 1.957); the order-6 chain chosen before the concentrations tried went past 32
scored 1.921, and 1.906 reading the other hidden bases within its order as their true bases, as it did before.

Novel bases (``genoformer.train.novel``). The splits are position blocks (or whole sequences), so the copies of
a repeat (rRNA operons, insertion sequences) can sit on both sides, and a model that memorised the training copy
scores well on the held-out one without generalising. ``evaluate_run`` therefore also reports each figure over
the *novel* hidden bases only: those that no canonical 31-mer (either strand) also found in the train split
covers, counting only the k-mers wholly inside the window's decoded bases. A split with no novel base reports
its novel figures as None.

Intervals (:func:`bits_intervals`, ``ci95`` per split). Each figure is a ratio, bits summed over the scored
pairs divided by their count, and its 95% interval is a percentile bootstrap of that ratio
(``genoformer.tasks.metrics.ratio_intervals``). Adjacent bases share context, and adjacent windows share a
region of the genome, so resampling bases (or windows) would make the intervals too narrow: the bootstrap
resamples whole split intervals (the manifest's ``intervals``: the position blocks, or whole sequences, held out
together), each window's sums going with the interval it lies in, when the scored windows come from at least
``MIN_BOOTSTRAP_GROUPS`` of them, else windows (a small genome's few blocks, a sample's consensus split into one
block per split), with a warning that these intervals are too narrow and that a smaller tokenize ``--block``
holds out more blocks; the split's ``bootstrap`` says which (``unit`` "interval" or "window") and how many.
The model's and both chains' bits/base get intervals, and so do the paired differences ``model_minus_markov`` and
``model_minus_markov_two_sided``: the
same resamples, each resample's difference, so the shared variation between regions cancels. Only per-window
sums are kept, so memory grows with the windows, not the bases. The novel-base figures and their paired
differences (``novel_model_minus_markov``, ``novel_model_minus_markov_two_sided``) get intervals from the same
resamples, each divided by the resampled novel bases. On the bundled C. diphtheriae test split (54 blocks, eight
passes) the model minus the two-sided chain is +0.054 [+0.043, +0.065] (+0.046 [+0.033, +0.058] for the order-6
chain, +0.061 [+0.041, +0.080] when that one read the other hidden bases), the model minus the one-sided chain
+0.011 [+0.003, +0.017] (0.014 wide with eight passes; the order-6 chain's was 0.025 wide with one pass, 0.014 with
eight): more passes narrow an interval less than their count suggests, since much of its width
is how the blocks differ, not which bases were hidden. Over the novel bases alone (96.7% of them) the model minus
the two-sided chain is +0.056 [+0.044, +0.066].
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from genoformer.errors import ConfigError, InputError, MismatchError, MissingFileError
from genoformer.io.fasta import N_CODE, encode_bases
from genoformer.model import ReformerConfig, ReformerForMaskedLM, load_pretrained
from genoformer.tasks.metrics import MIN_BOOTSTRAP_GROUPS, ratio_intervals
from genoformer.tokenize.dataset import Manifest, TokenDataset
from genoformer.tokenize.encode import decode
from genoformer.tokenize.vocab import N_SPECIAL, KmerVocab
from genoformer.train.config import PretrainConfig
from genoformer.train.distributed import autocast_for
from genoformer.train.markov import MAX_TRANSITIONS, MarkovModel, contexts
from genoformer.train.masking import (SpanMasker, hidden_bases, masker_for, n_window_bases, scoring_tokens,
                                      seeded_generator)
from genoformer.train.novel import CHUNK_BP, REPEAT_K, kmers_found_in, repeat_bases, window_kmers

log = logging.getLogger(__name__)

LN2 = float(np.log(2.0))
# the per-window sums over all passes that masked_lm_scores keeps for its intervals
PER_WINDOW = ("bases", "bits", "markov_bits", "markov_two_sided_bits", "novel_bases", "novel_bits",
              "markov_novel_bits", "markov_two_sided_novel_bits")


def base_log_probs(kmer_log_probs: torch.Tensor, offsets: torch.Tensor, k: int) -> torch.Tensor:
    """Natural-log marginals ``[M, 4]`` of the base at ``offsets[m]`` in k-mer distributions ``[M, 4**k]``."""
    out = torch.empty(kmer_log_probs.shape[0], 4, dtype=kmer_log_probs.dtype, device=kmer_log_probs.device)
    for offset in range(k):
        rows = offsets == offset
        grid = kmer_log_probs[rows].reshape(-1, 4 ** offset, 4, 4 ** (k - 1 - offset))
        out[rows] = torch.logsumexp(grid, dim=(1, 3))
    return out


def evaluation_windows(dataset: TokenDataset, max_windows: int | None) -> np.ndarray:
    """Indices of the windows to score: all, or ``max_windows`` spread evenly over the split."""
    if max_windows is None or max_windows >= len(dataset):
        return np.arange(len(dataset))
    return np.unique(np.linspace(0, len(dataset) - 1, max_windows).round().astype(np.int64))


def window_codes(input_ids: torch.Tensor, vocab: KmerVocab, stride: int) -> np.ndarray:
    """Base codes of a window's tokens (``n_window_bases`` of them; bases under padding only are N)."""
    return encode_bases(decode(input_ids.cpu().numpy(), vocab, stride))


def shared_with_train(manifest: Manifest, datasets: list[TokenDataset], max_windows: int | None,
                      batch_bases: int = CHUNK_BP) -> np.ndarray:
    """The canonical ``REPEAT_K``-mers of the windows :func:`masked_lm_scores` scores in ``datasets`` that also
    occur in the train split (sorted uint64): the windows' k-mers are gathered about ``batch_bases`` bases at a
    time (whole windows, at least one), and the train split is streamed past them in chunks of ``batch_bases``,
    never held whole, so memory does not grow with the window length either."""
    def batches():
        for dataset in datasets:
            chosen = evaluation_windows(dataset, max_windows)
            per_batch = max(1, batch_bases // n_window_bases(dataset.window, dataset.vocab.k, manifest["stride"]))
            for first in range(0, len(chosen), per_batch):
                yield np.stack([window_codes(dataset[int(i)]["input_ids"], dataset.vocab, manifest["stride"])
                                for i in chosen[first:first + per_batch]])

    return kmers_found_in(window_kmers(batches()), iter_split_sequences(manifest, "train"), chunk_bp=batch_bases)


def pass_generator(device: torch.device | str, seed: int, window: int, pass_index: int) -> torch.Generator:
    """The mask generator of window ``window`` (its index in the split) in mask pass ``pass_index``: pass 0 is
    seeded with ``(seed, window)``, as evaluation was before it had passes, pass ``p >= 1`` with ``(seed, window,
    p)``. ``mixed_seed`` reads trailing zeros as absent (``(s, w)`` and ``(s, w, 0)`` mix alike), so no pass
    appends 0; with window indices and passes below 2**32 (one word each) no two (window, pass) pairs share a
    seed's input."""
    parts = (seed, window) if pass_index == 0 else (seed, window, pass_index)
    return seeded_generator(device, *parts)


def window_intervals(dataset: TokenDataset, windows: np.ndarray) -> np.ndarray:
    """For each of ``dataset``'s windows ``windows`` (indices), the index in its manifest's ``intervals`` of the
    split interval it lies in."""
    index_of = {entry["name"]: i for i, entry in enumerate(dataset.manifest["contigs"])}
    intervals = dataset.manifest["intervals"]
    in_split = np.array([n for n, interval in enumerate(intervals) if interval["split"] == dataset.split])
    # (sequence, start token) as one sortable key: a sequence's tokens number below 2**40
    keys = np.array([index_of[intervals[n]["contig"]] << 40 | intervals[n]["start"] for n in in_split],
                    dtype=np.int64)
    order = np.argsort(keys)
    rows = dataset.windows[windows]
    found = np.searchsorted(keys[order], rows[:, 0] << 40 | rows[:, 1], side="right") - 1
    return in_split[order][found]


@torch.no_grad()
def masked_lm_scores(model: ReformerForMaskedLM, dataset: TokenDataset, masker: SpanMasker,
                     device: torch.device | str, *, max_windows: int | None = None, batch_size: int = 8,
                     seed: int = 0, passes: int = 1, precision: str = "auto", markov: MarkovModel | None = None,
                     repeat_kmers: np.ndarray | None = None) -> dict:
    """Score ``model`` on the hidden bases of ``dataset``'s windows, each masked ``passes`` times (see the module
    docstring); every figure is a mean over the (pass, hidden base) pairs.

    Returns ``windows`` (scored) and ``split_windows`` (of the split: more where ``max_windows`` leaves some out),
    ``masked_tokens, scored_bases`` (the pairs), ``distinct_scored_bases`` (bases hidden in at least one pass),
    ``bits_per_base, masked_token_accuracy, base_accuracy`` and, with ``markov``, ``markov_bits_per_base`` (its
    chosen order, one-sided), ``markov_bits_per_base_by_order`` and
    ``markov_two_sided_bits_per_base`` (chosen order, both sides). With ``repeat_kmers`` (sorted canonical
    ``REPEAT_K``-mers found in the train split, :func:`shared_with_train`), also ``novel_bases``,
    ``novel_bits_per_base``, ``novel_base_accuracy`` and, with ``markov``, ``markov_novel_bits_per_base`` and
    ``markov_two_sided_novel_bits_per_base``: the figures over the hidden bases that no such k-mer covers (None
    where there is none). With ``markov``, ``markov_two_sided_approximate_bases`` counts the pairs that the
    two-sided chain could not sum out exactly (see the module docstring). ``ci95`` holds 95% bootstrap intervals
    of ``bits_per_base`` and, with ``markov``, of both chains' figures and of the paired differences
    ``model_minus_markov`` (one-sided) and ``model_minus_markov_two_sided``; with ``repeat_kmers`` and a novel
    base, of the novel figures too; ``bootstrap`` says what was resampled (:func:`bits_intervals`).
    """
    model.eval()
    device = torch.device(device)
    vocab, stride, k = dataset.vocab, dataset.manifest["stride"], dataset.vocab.k
    chosen = evaluation_windows(dataset, max_windows)
    totals = {"masked_tokens": 0, "correct_tokens": 0, "scored_bases": 0, "distinct_scored_bases": 0, "bits": 0.0,
              "correct_bases": 0, "novel_correct_bases": 0, "markov_two_sided_approximate_bases": 0}
    markov_bits = {order: 0.0 for order in range(markov.max_order + 1)} if markov else {}
    # per scored window, summed over its passes, for the bootstrap: memory grows with windows, not bases
    per_window = {name: np.zeros(len(chosen)) for name in PER_WINDOW}
    progress = tqdm(total=len(chosen) * passes, unit="window", desc=f"evaluate {dataset.split}", disable=None,
                    leave=False)
    for first in range(0, len(chosen), batch_size):
        window_ids = chosen[first:first + batch_size]
        in_batch = slice(first, first + len(window_ids))
        items = [dataset[int(i)] for i in window_ids]
        input_ids = torch.stack([item["input_ids"] for item in items]).to(device)
        attention_mask = torch.stack([item["attention_mask"] for item in items]).to(device)
        last_real = attention_mask.sum(dim=1) - 1  # padding only ever follows the real tokens
        if markov or repeat_kmers is not None:
            codes = [window_codes(input_ids[j], vocab, stride) for j in range(len(items))]
        if repeat_kmers is not None:
            is_novel = ~repeat_bases(np.stack(codes), repeat_kmers)
        if markov:  # one-sided bits of every base, per window and order: the same in every pass
            chain_bits = []
            for window in codes:
                context_run = contexts(window, markov.max_order)
                chain_bits.append({order: markov.bits(window, order, context_run) for order in markov_bits})
        ever_hidden = torch.zeros(len(items), n_window_bases(dataset.window, k, stride), dtype=torch.bool,
                                  device=device)
        hidden_by_pass = []
        for pass_index in range(passes):
            masked = [masker(input_ids[j:j + 1], attention_mask[j:j + 1],
                             pass_generator(device, seed, int(i), pass_index))
                      for j, i in enumerate(window_ids)]
            corrupted = torch.cat([m.input_ids for m in masked])
            is_masked = torch.cat([m.masked for m in masked])
            with autocast_for(device, precision):
                hidden_states = model.reformer(corrupted, attention_mask, seed=0)
            kmer_logits = model.lm_head(hidden_states[is_masked]).float()[:, N_SPECIAL:]
            labels = input_ids[is_masked] - N_SPECIAL
            totals["masked_tokens"] += int(labels.numel())
            totals["correct_tokens"] += int((kmer_logits.argmax(dim=1) == labels).sum())

            hidden = hidden_bases(is_masked, k, stride, present=attention_mask)
            ever_hidden |= hidden
            rows, bases = torch.nonzero(hidden, as_tuple=True)
            tokens, offsets = scoring_tokens(bases, k, stride, last_real[rows])
            # position of each scoring token among the masked tokens (row-major order of torch.nonzero)
            masked_index = torch.cumsum(is_masked.flatten(), 0).reshape(is_masked.shape) - 1
            picked = masked_index[rows, tokens]
            log_probs = base_log_probs(torch.log_softmax(kmer_logits[picked], dim=1), offsets, k)
            true_kmer = labels[picked]
            true_base = torch.div(true_kmer, 4 ** (k - 1 - offsets), rounding_mode="floor") % 4
            base_nats = -log_probs.gather(1, true_base[:, None])[:, 0]
            correct = log_probs.argmax(dim=1) == true_base
            totals["bits"] += float(base_nats.sum()) / LN2
            totals["correct_bases"] += int(correct.sum())
            totals["scored_bases"] += int(rows.numel())
            per_window["bases"][in_batch] += torch.bincount(rows, minlength=len(items)).cpu().numpy()
            per_window["bits"][in_batch] += (torch.zeros(len(items), dtype=torch.float64, device=device)
                                             .index_add_(0, rows, base_nats.double()).cpu().numpy() / LN2)

            if repeat_kmers is not None:
                novel = torch.from_numpy(is_novel).to(device)[rows, bases]  # per scored base, in the order of rows
                per_window["novel_bases"][in_batch] += torch.bincount(rows[novel], minlength=len(items)).cpu().numpy()
                per_window["novel_bits"][in_batch] += (
                    torch.zeros(len(items), dtype=torch.float64, device=device)
                    .index_add_(0, rows[novel], base_nats[novel].double()).cpu().numpy() / LN2)
                totals["novel_correct_bases"] += int(correct[novel].sum())
            if markov:
                hidden_by_pass.append(hidden.cpu().numpy())
                markov_pass(markov, chain_bits, hidden_by_pass[-1], is_novel if repeat_kmers is not None else None,
                            markov_bits, per_window, in_batch)
            progress.update(len(items))
        if markov:  # every pass of the batch at once: fewer, larger calls
            totals["markov_two_sided_approximate_bases"] += markov_two_sided(
                markov, codes, np.stack(hidden_by_pass), is_novel if repeat_kmers is not None else None,
                per_window, in_batch)
        totals["distinct_scored_bases"] += int(ever_hidden.sum())
    progress.close()

    scored = max(totals["scored_bases"], 1)
    result = {
        "windows": int(len(chosen)),
        "split_windows": int(len(dataset)),
        "masked_tokens": totals["masked_tokens"],
        "scored_bases": totals["scored_bases"],
        "distinct_scored_bases": totals["distinct_scored_bases"],
        "bits_per_base": totals["bits"] / scored,
        "masked_token_accuracy": totals["correct_tokens"] / max(totals["masked_tokens"], 1),
        "base_accuracy": totals["correct_bases"] / scored,
    }
    if markov:
        result["markov_bits_per_base"] = markov_bits[markov.order] / scored
        result["markov_bits_per_base_by_order"] = {str(o): bits / scored for o, bits in markov_bits.items()}
        result["markov_two_sided_bits_per_base"] = per_window["markov_two_sided_bits"].sum() / scored
        result["markov_two_sided_approximate_bases"] = totals["markov_two_sided_approximate_bases"]
    if repeat_kmers is not None:
        novel = int(per_window["novel_bases"].sum())
        result["novel_bases"] = novel
        result["novel_bits_per_base"] = per_window["novel_bits"].sum() / novel if novel else None
        result["novel_base_accuracy"] = totals["novel_correct_bases"] / novel if novel else None
        if markov:
            for name in ("markov_novel_bits", "markov_two_sided_novel_bits"):
                result[f"{name}_per_base"] = per_window[name].sum() / novel if novel else None
    result["ci95"], result["bootstrap"] = bits_intervals(per_window, window_intervals(dataset, chosen),
                                                         with_markov=markov is not None,
                                                         with_novel=repeat_kmers is not None, seed=seed)
    return result


def markov_pass(markov: MarkovModel, chain_bits: list[dict[int, np.ndarray]], hidden: np.ndarray,
                is_novel: np.ndarray | None, markov_bits: dict[int, float], per_window: dict[str, np.ndarray],
                in_batch: slice) -> None:
    """One mask pass of a batch for the one-sided Markov chain. Adds the bits of the ``hidden`` bases (bool
    ``[B, bases]``; ``chain_bits``: every base's bits, per window and order) to ``markov_bits``, and those of the
    chosen order to the batch's windows (``in_batch``) in ``per_window``, the novel ones too with ``is_novel``."""
    for j, (window_bits, at) in enumerate(zip(chain_bits, hidden)):
        for order in markov_bits:
            markov_bits[order] += float(window_bits[order][at].sum())
        per_window["markov_bits"][in_batch.start + j] += window_bits[markov.order][at].sum()
        if is_novel is not None:
            per_window["markov_novel_bits"][in_batch.start + j] += window_bits[markov.order][at & is_novel[j]].sum()


def markov_two_sided(markov: MarkovModel, codes: list[np.ndarray], hidden: np.ndarray, is_novel: np.ndarray | None,
                     per_window: dict[str, np.ndarray], in_batch: slice) -> int:
    """Every mask pass of a batch for the two-sided Markov chain: adds the bits of the ``hidden`` bases (bool
    ``[passes, B, bases]``), each given its window's visible bases in that pass, to the batch's windows
    (``in_batch``) in ``per_window``, the novel ones too with ``is_novel`` (``[B, bases]``); returns how many
    of them :func:`markov.two_sided_bits` scored by its approximation."""
    # each (pass, window) one N after the other (no context reaches across it), scored in one call
    batch_hidden = np.pad(hidden, ((0, 0), (0, 0), (0, 1))).ravel()
    batch_codes = np.tile(np.concatenate([np.append(window, N_CODE) for window in codes]), hidden.shape[0])
    two_sided, approximate = markov.two_sided_bits(batch_codes, batch_hidden)
    by_window = np.where(batch_hidden, two_sided, 0.0).reshape(hidden.shape[0], len(codes), -1)
    per_window["markov_two_sided_bits"][in_batch] += by_window.sum(axis=(0, 2))
    if is_novel is not None:
        novel = np.pad(is_novel, ((0, 0), (0, 1)))  # laid out as a pass of the batch's codes
        per_window["markov_two_sided_novel_bits"][in_batch] += np.where(novel, by_window, 0.0).sum(axis=(0, 2))
    return int(approximate.sum())


def bits_intervals(per_window: dict[str, np.ndarray], intervals: np.ndarray, *, with_markov: bool,
                   with_novel: bool = False, seed: int) -> tuple[dict[str, list[float]], dict]:
    """95% intervals of a split's bits/base figures from the per-window sums of :func:`masked_lm_scores` (bits
    and scored bases over all passes): ``bits_per_base`` and, ``with_markov``, ``markov_bits_per_base``,
    ``markov_two_sided_bits_per_base``, ``model_minus_markov`` and ``model_minus_markov_two_sided`` (paired: the
    same resamples). ``with_novel``, the same figures over the novel bases (``novel_bits_per_base``,
    ``markov_novel_bits_per_base``, ``markov_two_sided_novel_bits_per_base``, ``novel_model_minus_markov``,
    ``novel_model_minus_markov_two_sided``; none where no base is novel), from the same resamples. Adjacent bases
    and windows are not independent, so the bootstrap resamples whole split intervals (``intervals``: each
    window's; blocks or sequences held out whole) when the windows come from at least ``MIN_BOOTSTRAP_GROUPS`` of
    them, else windows; the second value says which (``unit`` "interval" or "window") and how many."""
    ci95, unit = ratio_intervals(_figures(per_window, "", with_markov), per_window["bases"], groups=intervals,
                                 units=("interval", "window"), seed=seed)
    if with_novel and per_window["novel_bases"].sum() > 0:  # the same seed and groups: the same resamples
        ci95.update(ratio_intervals(_figures(per_window, "novel_", with_markov), per_window["novel_bases"],
                                    groups=intervals, units=("interval", "window"), seed=seed)[0])
    return ci95, unit


def _figures(per_window: dict[str, np.ndarray], novel: str, with_markov: bool) -> dict[str, np.ndarray]:
    """The numerators of :func:`bits_intervals` (``novel``: "" for all scored bases, "novel_" for the novel
    ones), by figure name."""
    bits = per_window[f"{novel}bits"]
    figures = {f"{novel}bits_per_base": bits}
    if with_markov:
        one_sided, two_sided = per_window[f"markov_{novel}bits"], per_window[f"markov_two_sided_{novel}bits"]
        figures.update({f"markov_{novel}bits_per_base": one_sided,
                        f"markov_two_sided_{novel}bits_per_base": two_sided,
                        f"{novel}model_minus_markov": bits - one_sided,
                        f"{novel}model_minus_markov_two_sided": bits - two_sided})
    return figures


def iter_split_sequences(manifest: Manifest, split: str) -> Iterator[np.ndarray]:
    """Base codes of each interval of ``split``, one at a time (decoded from its tokens; bases no k-mer shows
    are N)."""
    index_of = {entry["name"]: i for i, entry in enumerate(manifest["contigs"])}
    for interval in manifest["intervals"]:
        if interval["split"] == split and interval["end"] > interval["start"]:
            tokens = manifest.tokens(index_of[interval["contig"]], interval["start"], interval["end"])
            yield encode_bases(decode(np.asarray(tokens), manifest.vocab, manifest["stride"]))


def split_sequences(manifest: Manifest, split: str) -> list[np.ndarray]:
    """Base codes of each interval of ``split`` (see :func:`iter_split_sequences`)."""
    return list(iter_split_sequences(manifest, split))


def check_data_fits_model(data_dir: Path, vocab: KmerVocab, window: int, model_config: ReformerConfig,
                          model_vocab: dict | None, source: str) -> None:
    """Raise MismatchError when the data's vocabulary or window does not fit the model."""
    if model_vocab is not None and model_vocab != vocab.to_json():
        raise MismatchError(f"{data_dir}: token dataset has k={vocab.k} (vocabulary of {vocab.size} tokens) but "
                            f"the model in {source} was trained on k={model_vocab.get('k')} "
                            f"({model_vocab.get('size')} tokens)")
    if model_config.vocab_size != vocab.size:
        raise MismatchError(f"{data_dir}: vocabulary of {vocab.size} tokens (k={vocab.k}) but the model in "
                            f"{source} has vocab_size {model_config.vocab_size}")
    if window > model_config.max_seq_len:
        raise MismatchError(f"{data_dir}: windows of {window} tokens are longer than the model's max_seq_len "
                            f"{model_config.max_seq_len} ({source}); use shorter windows or raise "
                            "model.max_seq_len")


def load_run_model(checkpoint: str | Path) -> tuple[ReformerForMaskedLM, dict | None, dict | None]:
    """The model of a run directory or ``step-<N>`` folder, with its ``vocab.json`` and ``trainer_state.json``
    (None where absent). Missing or damaged files raise MissingFileError / InputError."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise MissingFileError(f"{checkpoint}: checkpoint not found (expected a run directory or a step-N folder)")
    model = load_pretrained(checkpoint, ReformerForMaskedLM)
    extras = []
    for name in ("vocab.json", "trainer_state.json"):
        path = checkpoint / name
        try:
            extras.append(json.loads(path.read_text()) if path.is_file() else None)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: not valid JSON ({err})") from None
    if extras[0] is not None:
        try:
            KmerVocab.from_json(extras[0])
        except (MismatchError, ConfigError) as err:
            raise InputError(f"{checkpoint / 'vocab.json'}: not a genoformer vocabulary: {err}") from None
    return model, extras[0], extras[1]


def evaluate_run(checkpoint: str | Path, data_dir: str | Path, *, splits: tuple[str, ...] = ("val", "test"),
                 window: int | None = None, max_windows: int | None = None, batch_size: int = 8, seed: int = 0,
                 passes: int = 1, max_markov_order: int = 10, device: str = "auto", precision: str = "auto") -> dict:
    """Evaluate a run (or ``step-<N>`` folder) on the token dataset ``data_dir``: per split, the model's bits/base
    and accuracies next to the Markov baseline on the same bases, with 95% intervals. Windows are ``window`` tokens
    (default: the run's training window, else the dataset's), cut inside the split's intervals, each masked
    ``passes`` times. The masking follows the run's training config (defaults when the checkpoint has no
    trainer_state.json)."""
    from genoformer.tasks.encoder import pick_device  # not at the top: that module imports this one

    checkpoint, data_dir = Path(checkpoint), Path(data_dir)
    torch_device = pick_device(device)  # ConfigError when CUDA is asked for but absent
    model, model_vocab, trainer_state = load_run_model(checkpoint)
    manifest = Manifest.load(data_dir)
    vocab, stride = manifest.vocab, manifest["stride"]
    config, trained_window = PretrainConfig(), None
    if trainer_state is not None:
        try:
            config = PretrainConfig.from_dict(trainer_state["config"], str(checkpoint / "trainer_state.json"))
            trained_stride, trained_window = trainer_state["data"]["stride"], trainer_state["data"]["window"]
        except (KeyError, TypeError) as err:
            raise InputError(f"{checkpoint / 'trainer_state.json'}: missing entry {err}") from None
        if trained_stride != stride:
            raise MismatchError(f"{data_dir}: stride {stride}, but {checkpoint} was trained with stride "
                                f"{trained_stride}")
    window = window or trained_window or manifest["window"]
    check_data_fits_model(data_dir, vocab, window, model.config, model_vocab, str(checkpoint))
    masker = masker_for(config.data, vocab, stride, evaluation=True)
    model.to(torch_device)

    for split in ("train", "val"):
        if not any(interval["split"] == split and interval["end"] > interval["start"]
                   for interval in manifest["intervals"]):
            raise InputError(f"{data_dir}: split '{split}' is empty, and the Markov baseline is fit on train with "
                             f"its order chosen on val; tokenize again with a {split} share in --split-fractions")
    log.info("fitting Markov baselines (orders 0..%d) on the train split of %s", max_markov_order, data_dir)
    markov = MarkovModel.select(iter_split_sequences(manifest, "train"), split_sequences(manifest, "val"),
                                max_order=max_markov_order)  # train streamed: counted once, never held whole
    result = {
        "checkpoint": str(checkpoint),
        "data": str(data_dir),
        "k": vocab.k,
        "stride": stride,
        "window": window,
        "masking": {"mask_ratio": config.data.mask_ratio, "span_bases": config.data.span_bases,
                    "span_tokens": masker.span, "seed": seed, "passes": passes},
        "markov": {"order": markov.order, "concentration": markov.concentration, "selection": markov.selection,
                   "validation_bits_per_base_by_order": {str(o): b for o, b in markov.validation_bits.items()}},
        "repeat_kmer": REPEAT_K,
        "splits": {},
    }
    datasets = [TokenDataset(data_dir, split, window=window, window_stride=window)  # side by side: see above
                for split in splits]
    log.info("finding the scored windows' %d-mers that the train split holds too", REPEAT_K)
    repeat_kmers = shared_with_train(manifest, datasets, max_windows)
    for split, dataset in zip(splits, datasets):
        scores = masked_lm_scores(model, dataset, masker, torch_device, max_windows=max_windows,
                                  batch_size=batch_size, seed=seed, passes=passes, precision=precision, markov=markov,
                                  repeat_kmers=repeat_kmers)
        if scores["scored_bases"] == 0:  # all-N windows (kept by tokenize --max-n-fraction 1): nothing to score
            raise InputError(f"{data_dir}: the {split} split's {scores['windows']} windows hold no base to score "
                             "(all N); tokenize with a lower --max-n-fraction, or a sample's BAM with more coverage")
        if scores["windows"] < scores["split_windows"]:
            log.info("%s: %d of its %d windows scored, spread evenly over the split (--max-windows)", split,
                     scores["windows"], scores["split_windows"])
        ci = scores["ci95"]
        log.info("%s: model %.4f bits/base, Markov order %d %.4f (one-sided) and %.4f (two-sided) bits/base, on "
                 "%d hidden bases (%d passes; %d distinct bases); model - two-sided Markov %+.4f [95%% CI %+.4f, "
                 "%+.4f], resampling %d %ss", split, scores["bits_per_base"], markov.order,
                 scores["markov_bits_per_base"], scores["markov_two_sided_bits_per_base"], scores["scored_bases"],
                 passes, scores["distinct_scored_bases"],
                 scores["bits_per_base"] - scores["markov_two_sided_bits_per_base"],
                 *ci["model_minus_markov_two_sided"], scores["bootstrap"]["units"], scores["bootstrap"]["unit"])
        if scores["bootstrap"]["unit"] == "window":
            log.warning("%s: its windows lie in fewer than %d held-out blocks or contigs, so the intervals resample "
                        "windows, which share stretches of the genome: they are narrower than they should be; "
                        "tokenize with a smaller --block to hold out more blocks (in the workflow: config "
                        "tokenize.extra, and delete runs/<reference>/, as pretraining starts over)", split,
                        MIN_BOOTSTRAP_GROUPS)
        if scores["markov_two_sided_approximate_bases"]:
            log.warning("%s: the two-sided Markov chain read the other hidden bases as their true bases for %d of the "
                        "%d hidden bases (clusters over %d transitions; see markov.two_sided_bits)", split,
                        scores["markov_two_sided_approximate_bases"], scores["scored_bases"], MAX_TRANSITIONS)
        log.info("%s, novel bases only (%d of %d, %.1f%%; no %d-mer shared with train): %s", split,
                 scores["novel_bases"], scores["scored_bases"], 100 * scores["novel_bases"] / scores["scored_bases"],
                 REPEAT_K, _novel_text(scores, markov.order))
        result["splits"][split] = scores
    return result


def _novel_text(scores: dict, markov_order: int) -> str:
    """The log's words for a split's novel-base figures."""
    if not scores["novel_bases"]:
        return "none to score"
    return (f"model {scores['novel_bits_per_base']:.4f} bits/base, Markov order {markov_order} "
            f"{scores['markov_novel_bits_per_base']:.4f} (one-sided) and "
            f"{scores['markov_two_sided_novel_bits_per_base']:.4f} (two-sided) bits/base")
