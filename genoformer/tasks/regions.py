"""Region classification from BED labels: a linear probe on frozen embeddings, full fine-tuning, k-mer baseline.

Each region gets a window of ``window`` bp centred on its midpoint (pushed inside the contig; a shorter contig
is one whole window; the start on the tokenization phase: rounded down, or up where the window ends at the
contig's end, so that it keeps the contig's last bases and the regions there). Of a region longer than the window
only that window is read (a warning counts them). A region is its BED interval, chromStart to chromEnd: a BED12
line's blocks are not read (its introns count, :func:`genoformer.io.bed.read_bed` warns), nor is the strand
column (the model's features read both strands; the k-mer spectrum, the reference's). Three classifiers are
trained on the same training regions and evaluated on the same held-out ones (split by contig or interval blocks,
as the token datasets are):

- ``probe``: logistic regression on frozen features, the mean hidden state over the window and over the
  region's own tokens, each averaged over the forward and reverse-complement strands;
- ``finetune``: :class:`~genoformer.model.ReformerForSequenceClassification` initialised from the checkpoint,
  its head from a logistic regression on its own pooled features (the window mean; "linear probe, then
  fine-tune", Kumar et al. 2022), then all weights trained for a few epochs; the epoch kept (0, the starting
  point, included) is the one with the lowest loss on a validation split of the training regions (whole groups,
  20%, not used for fitting). Each window is read on both strands
  and its pooled state averaged before the head, as the probe's features are, so the classifier starts out
  predicting exactly what the probe does (pooling one strand at a time under that head started far below the
  probe: AUROC 0.71 against 0.87 on the workflow's coding vs intergenic task). Starting from a random head, a
  short fine-tuning run on embeddings that separate the classes well ranks by whatever direction the head
  drew (a demo run: AUROC 0.34 on held-out and 0.30 on training regions after an epoch at chance loss);
- ``kmer``: logistic regression on the k-mer spectrum of the window (no model).
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from genoformer.errors import ConfigError, InputError
from genoformer.io.bed import class_order, read_bed
from genoformer.io.fasta import reverse_complement_codes
from genoformer.model import ReformerForSequenceClassification, load_pretrained
from genoformer.tasks.baselines import spectra
from genoformer.tasks.encoder import Encoder, Job
from genoformer.tasks.linear import LinearModel, fit_linear
from genoformer.tasks.metrics import classification_metrics
from genoformer.tasks.homology import repeat_families
from genoformer.tasks.splits import (assign_split, joined, overlap_clusters, split_families, split_groups,
                                     split_names, split_summary)

log = logging.getLogger(__name__)

VALIDATION_FRACTION = 0.2  # of the training regions (whole groups), to choose the fine-tuning epoch on

METHODS = ("probe", "finetune", "kmer")


@dataclass
class RegionLabels:
    """Labelled regions: ``table`` (chrom, start, end, name, label), ``labels`` (0..K-1), ``classes`` and the
    ``source`` file(s) they came from."""

    table: pd.DataFrame
    labels: np.ndarray
    classes: list[str]
    source: str


def read_region_labels(reference, *, bed: str | os.PathLike | None = None, label_column: int | str = 7,
                       class_beds: dict[str, str] | None = None) -> RegionLabels:
    """Regions with their class: from the label column of one BED, or one BED per class (name -> path).

    The same interval twice (in one BED, or in two class BEDs), with two classes or with one, raises
    :class:`InputError` naming both lines.
    """
    if class_beds:
        tables = [read_bed(path, reference, label_column=None).pipe(_with_line_names, path).assign(label=name)
                  for name, path in class_beds.items()]
        table = pd.concat(tables, ignore_index=True)
    else:
        table = read_bed(bed, reference, label_column=label_column)
        if "label" not in table:
            raise InputError(f"{bed}: no label column {label_column} (give labels in BED column 7, choose one with "
                             "--label-column, or pass one BED per class with --class-bed)")
        table = _with_line_names(table, bed)
    if "name" not in table:
        table["name"] = [f"{c}:{s + 1}-{e}" for c, s, e in zip(table.chrom, table.start, table.end)]
    classes = class_order(table["label"])
    table["label"] = table["label"].astype(str)
    _check_each_interval_once(table)
    source = str(bed) if bed else ", ".join(map(str, class_beds.values()))
    if len(classes) < 2:
        raise InputError(f"{source}: every region has label {classes[0]!r}; "
                         "a classifier needs at least 2 classes")
    if len(classes) > 2 and 2 * len(classes) > len(table):  # some class has one region: it cannot be split
        column = "" if class_beds else " in the name column" if label_column == "name" else f" in column {label_column}"
        raise InputError(f"{source}: {len(classes)} classes among {len(table)} regions{column} (e.g. "
                         f"{', '.join(map(repr, classes[:3]))}): a class needs 2 regions at least, one on each side of "
                         "the split" + ("" if class_beds else "; does this column name each region instead of "
                                        "giving its class? (--label-column)"))
    labels = table["label"].map({name: i for i, name in enumerate(classes)}).to_numpy(np.int64)
    return RegionLabels(table[["chrom", "start", "end", "name", "label"]], labels, classes, source)


def _with_line_names(table: pd.DataFrame, path) -> pd.DataFrame:
    """``table`` (from :func:`read_bed`) with a ``line`` column naming each row's place: ``"PATH line N"``."""
    return table.assign(line=[f"{path} line {number}" for number in table.index])


def _check_each_interval_once(table: pd.DataFrame) -> None:
    """Raise InputError when one interval is given twice, naming the two lines: with two classes it has no one
    class, and with one it would count twice (in training, or in the held-out metrics)."""
    first: dict[tuple, tuple[str, str]] = {}
    for chrom, start, end, label, line in zip(table["chrom"], table["start"], table["end"], table["label"],
                                              table["line"]):
        seen = first.get((chrom, start, end))
        if seen is None:
            first[chrom, start, end] = label, line
        elif seen[0] != label:
            raise InputError(f"{seen[1]} and {line}: region {chrom}:{start + 1}-{end} is labelled both "
                             f"{seen[0]!r} and {label!r}; give each region one class")
        else:
            raise InputError(f"{seen[1]} and {line}: region {chrom}:{start + 1}-{end} ({label}) is given twice; "
                             "give each region once")


def region_windows(table: pd.DataFrame, contigs: dict[str, int], window: int,
                   stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Window ``[start, end)`` of each region (see the module docstring); a warning counts the regions longer than
    the window, of which only the middle is read."""
    lengths = table["chrom"].map(contigs).to_numpy(np.int64)
    sizes = table["end"].to_numpy(np.int64) - table["start"].to_numpy(np.int64)
    longer = sizes > np.minimum(window, lengths)
    if longer.any():
        log.warning("%d of %d regions are longer than the %d bp window (the longest %d bp, %s): only the window "
                    "centred on each is read (--window sets it)", int(longer.sum()), len(table), window,
                    int(sizes.max()), table["name"].iloc[int(sizes.argmax())] if "name" in table
                    else f"line {table.index[int(sizes.argmax())]}")
    middle = (table["start"].to_numpy(np.int64) + table["end"].to_numpy(np.int64)) // 2
    starts = np.clip(middle - window // 2, 0, np.maximum(0, lengths - window))
    starts = np.where(starts + window >= lengths, -(-starts // stride), starts // stride) * stride
    return starts, np.minimum(lengths, starts + window)


def window_sequences(reference, table: pd.DataFrame, starts: np.ndarray, ends: np.ndarray) -> list[np.ndarray]:
    """Base codes of every window."""
    return [reference.codes(chrom, int(s), int(e))[0] for chrom, s, e in zip(table["chrom"], starts, ends)]


def frozen_features(encoder: Encoder, sequences: list[np.ndarray], spans: list[tuple[int, int]],
                    progress: bool = True) -> np.ndarray:
    """``[n, 2 * dim]``: mean hidden state over the window and over the tokens that overlap the region span
    (window coordinates; a span in the bases after the last whole k-mer, fewer than ``stride``, has none and
    takes the last token, its nearest), each averaged over both strands."""
    dim = encoder.model.config.dim
    features = np.zeros((len(sequences), 2 * dim))

    def readout(hidden, index, region):
        count = hidden.shape[0]
        positions = list(encoder.token_range(*region, count)) or [count - 1]
        features[index] += 0.5 * torch.cat([hidden.mean(0), hidden[positions].mean(0)]).cpu().numpy()

    def jobs():
        for index, (codes, (start, end)) in enumerate(zip(tqdm(sequences, desc="embedding regions", unit=" regions",
                                                               disable=None if progress else True), spans)):
            size = codes.size
            reverse = (reverse_complement_codes(codes), (size - end, size - start))
            for sequence, region in ((codes, (start, end)), reverse):
                yield Job(encoder.encode(sequence), "region",
                          lambda hidden, i=index, r=region: readout(hidden, i, r))

    encoder.run(jobs())
    return features


def kmer_features(sequences: list[np.ndarray], k: int) -> np.ndarray:
    """The k-mer spectrum baseline's features of every window."""
    return spectra(sequences, k)


def _batch(encoder: Encoder, sequences: list[np.ndarray], strand: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of windows on one strand (0 forward, 1 reverse complement)."""
    return encoder.pad([encoder.encode(codes if strand == 0 else reverse_complement_codes(codes))
                        for codes in sequences])


def both_strand_logits(model: ReformerForSequenceClassification, encoder: Encoder,
                       sequences: list[np.ndarray]) -> torch.Tensor:
    """Logits ``[n, K]`` of the windows from their pooled hidden state averaged over both strands: the same
    feature the probe reads, so a head set from a probe starts out predicting as the probe does."""
    pooled = [model.pool(*_batch(encoder, sequences, strand)) for strand in (0, 1)]
    return model.classify((pooled[0] + pooled[1]) / 2)


def set_head_from_probe(head: torch.nn.Linear, probe: LinearModel) -> None:
    """Make the linear layer ``head`` compute the logits of ``probe`` (standardization folded into the weights;
    for two classes the probe's single logit goes to class 1 and class 0 gets 0, the same probabilities)."""
    weight = probe.coef / probe.scale  # [1 or K, dim]
    bias = probe.intercept - weight @ probe.mean
    if weight.shape[0] == 1:
        weight, bias = np.concatenate([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias])
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))


@dataclass
class FineTuned:
    """A fine-tuned classifier and how its epoch was chosen: ``validation_loss[e]`` is the mean cross-entropy
    on the validation windows after epoch ``e`` (0 = before training), ``epoch`` the one kept (lowest loss)."""

    model: ReformerForSequenceClassification
    epoch: int
    validation_loss: list[float] | None


def finetune(checkpoint, encoder: Encoder, sequences: list[np.ndarray], labels: np.ndarray, n_classes: int, *,
             epochs: int, lr: float, batch_size: int, seed: int, head: LinearModel | None = None,
             validation: tuple[list[np.ndarray], np.ndarray] | None = None) -> FineTuned:
    """Fine-tune every weight of a sequence classifier initialised from ``checkpoint`` on ``sequences``, its head
    from ``head`` (a probe on the pooled hidden states) when given. With ``validation`` (windows and labels), the
    weights of the epoch with the lowest validation loss are kept, epoch 0 (the starting point) included; else
    those of the last epoch."""
    torch.manual_seed(seed)
    model = load_pretrained(checkpoint, ReformerForSequenceClassification, num_labels=n_classes).to(encoder.device)
    if head is not None:
        set_head_from_probe(model.classifier, head)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)

    def validation_loss() -> float:
        probabilities = finetuned_probabilities(model, encoder, validation[0], batch_size)
        return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(validation[1])), validation[1]], 1e-12, 1))))

    history = [validation_loss()] if validation is not None else None
    kept, kept_state = 0, copy.deepcopy(model.state_dict()) if history is not None else None
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(sequences))
        losses = []
        for first in tqdm(range(0, order.size, batch_size), desc=f"fine-tuning epoch {epoch}/{epochs}",
                          unit=" batches", disable=None):
            rows = order[first:first + batch_size]
            loss = F.cross_entropy(both_strand_logits(model, encoder, [sequences[i] for i in rows]),
                                   torch.as_tensor(labels[rows], device=encoder.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
        message = f"fine-tuning epoch {epoch}/{epochs}: mean training loss {np.mean(losses):.4f}"
        if history is not None:
            history.append(validation_loss())
            message += f", validation loss {history[-1]:.4f}"
            if history[-1] < min(history[:-1]):
                kept, kept_state = epoch, copy.deepcopy(model.state_dict())
        log.info(message)
    if history is None:
        kept = epochs
    else:
        model.load_state_dict(kept_state)
        log.info("fine-tuning: kept epoch %d (lowest validation loss, %.4f)", kept, history[kept])
    return FineTuned(model.eval(), kept, history)


@torch.inference_mode()
def finetuned_probabilities(model, encoder: Encoder, sequences: list[np.ndarray], batch_size: int) -> np.ndarray:
    """Class probabilities ``[n, K]`` of a fine-tuned classifier (its pooled state averaged over both strands)."""
    model.eval()
    probabilities = []
    for first in range(0, len(sequences), batch_size):
        logits = both_strand_logits(model, encoder, sequences[first:first + batch_size])
        probabilities.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(probabilities)


def score_columns(probabilities: dict[str, np.ndarray], classes: list[str]) -> dict[str, np.ndarray]:
    """Prediction table columns: ``score_<method>`` (P of the second class) for two classes, else
    ``score_<method>_<class>`` per class."""
    columns = {}
    for method, values in probabilities.items():
        if len(classes) == 2:
            columns[f"score_{method}"] = values[:, 1]
        else:
            columns.update({f"score_{method}_{name}": values[:, i] for i, name in enumerate(classes)})
    return columns


@dataclass
class RegionClassification:
    """What ``classify-regions`` reports and keeps: metrics, per-region predictions and the fitted models."""

    metrics: dict
    predictions: pd.DataFrame
    probe: LinearModel
    baseline: LinearModel
    finetuned: ReformerForSequenceClassification | None


def classify_regions(regions: RegionLabels, reference, encoder: Encoder, checkpoint, *, window: int, split: str,
                     block: int, test_fraction: float, kmer: int, epochs: int, lr: float, n_bootstrap: int,
                     seed: int, keep_copies: bool = False) -> RegionClassification:
    """Train the probe, the fine-tuned model (``epochs`` > 0) and the k-mer baseline; evaluate on held-out regions
    (less those with a near-identical copy in training, unless ``keep_copies``)."""
    table = regions.table
    starts, ends = region_windows(table, reference.contigs, window, encoder.stride)
    sequences = window_sequences(reference, table, starts, ends)
    spans = list(zip(table["start"].to_numpy() - starts, table["end"].to_numpy() - starts))
    contigs = table["chrom"].to_numpy(str)
    method = split if split != "auto" else ("contig" if np.unique(contigs).size >= 3 else "blocks")
    groups = split_groups(contigs, (table["start"].to_numpy() + table["end"].to_numpy()) // 2, method=method,
                          block=block)
    found = repeat_families(reference, contigs, table["start"].to_numpy(), table["end"].to_numpy())
    # a held-out region overlapping a training one (regions straddling a block border) shares its sequence: left
    # out like a repeat copy, even when copies are kept
    overlaps = overlap_clusters(contigs, table["start"].to_numpy(), table["end"].to_numpy())
    families = joined(split_families(found, keep_copies), overlaps)
    names = np.array(regions.classes)[regions.labels]
    try:
        train, is_test = assign_split(groups, names, test_fraction=test_fraction, seed=seed, families=families)
    except ConfigError as err:
        counts = np.bincount(regions.labels, minlength=len(regions.classes))
        per_class = ", ".join(f"{name!r} {count}" for name, count in zip(regions.classes[:10], counts))
        per_class += f" and {len(counts) - 10} more classes" if len(counts) > 10 else ""
        raise ConfigError(f"{regions.source}: {err}; regions per class: {per_class}") from None
    y = regions.labels
    features = {"probe": frozen_features(encoder, sequences, spans), "kmer": kmer_features(sequences, kmer)}
    fitted = {name: fit_linear(x[train], y[train], groups[train], regions.classes, seed, families[train])
              for name, x in features.items()}
    probabilities = {name: fitted[name].predict_proba(x) for name, x in features.items()}
    finetuned, selection = None, None
    if epochs > 0:
        pooled = features["probe"][:, :encoder.model.config.dim]  # the classifier's own input: the window mean
        fit, held = validation_split(groups, names, train, seed, families)
        head = fit_linear(pooled[fit], y[fit], groups[fit], regions.classes, seed, families[fit])
        validation = ([sequences[i] for i in np.flatnonzero(held)], y[held]) if held.any() else None
        tuned = finetune(checkpoint, encoder, [sequences[i] for i in np.flatnonzero(fit)], y[fit],
                         len(regions.classes), epochs=epochs, lr=lr, batch_size=encoder.batch_size, seed=seed,
                         head=head, validation=validation)
        finetuned = tuned.model
        selection = {"validation_examples": int(held.sum()), "validation_loss": tuned.validation_loss,
                     "epoch_kept": tuned.epoch}
        probabilities["finetune"] = finetuned_probabilities(finetuned, encoder, sequences, encoder.batch_size)
    metrics = {
        "classes": regions.classes,
        "window_bp": window,
        "split": split_summary(method, block, test_fraction, seed, groups, train, is_test, found, keep_copies,
                               overlaps),
        "test": {name: classification_metrics(y[is_test], values[is_test], groups=groups[is_test],
                                              n_bootstrap=n_bootstrap, seed=seed)
                 for name, values in probabilities.items()},
        "methods": {"probe": "logistic regression on frozen mean hidden states (window and region, both strands)",
                    "finetune": f"ReformerForSequenceClassification on the window mean averaged over both strands, "
                                f"head from a probe on it, then all weights, {epochs} epochs, lr {lr}, the epoch "
                                f"with the lowest validation loss kept",
                    "kmer": f"logistic regression on the {kmer}-mer spectrum of the window"},
        "C": {name: model.C for name, model in fitted.items()},
    }
    if selection is not None:
        metrics["finetune_selection"] = selection
    predictions = table.assign(split=split_names(train, is_test), window_start=starts, window_end=ends,
                               **score_columns(probabilities, regions.classes))
    return RegionClassification(metrics, predictions, fitted["probe"], fitted["kmer"], finetuned)


def validation_split(groups: np.ndarray, names: np.ndarray, train: np.ndarray, seed: int,
                     families: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fit, validation)`` masks over all examples: the training examples split by whole groups, as
    :func:`~genoformer.tasks.splits.assign_split` splits them, ``VALIDATION_FRACTION`` of them to choose the
    fine-tuning epoch on; all training examples are fit (and the validation mask is empty, with a warning) when
    the groups are too few to give both sides every class."""
    rows = np.flatnonzero(train)
    fit, held = train.copy(), np.zeros(train.size, dtype=bool)
    try:
        fit[rows], held[rows] = assign_split(groups[rows], names[rows], test_fraction=VALIDATION_FRACTION,
                                             seed=seed + 1, families=families[rows],
                                             side_names=("fine-tuning", "validation"))
    except ConfigError as err:
        log.warning("fine-tuning without a validation split (%s): the last epoch is kept", err)
    return fit, held


def predict_regions(table: pd.DataFrame, reference, encoder: Encoder, result: RegionClassification, *, window: int,
                    kmer: int, classes: list[str]) -> pd.DataFrame:
    """Scores of every trained method for new regions (``table``: a BED as
    :func:`~genoformer.io.bed.read_bed` reads it; its columns, a ``label`` among them, are kept)."""
    starts, ends = region_windows(table, reference.contigs, window, encoder.stride)
    sequences = window_sequences(reference, table, starts, ends)
    spans = list(zip(table["start"].to_numpy() - starts, table["end"].to_numpy() - starts))
    probabilities = {"probe": result.probe.predict_proba(frozen_features(encoder, sequences, spans)),
                     "kmer": result.baseline.predict_proba(kmer_features(sequences, kmer))}
    if result.finetuned is not None:
        probabilities["finetune"] = finetuned_probabilities(result.finetuned, encoder, sequences, encoder.batch_size)
    best = "finetune" if result.finetuned is not None else "probe"
    predicted = np.array(classes)[probabilities[best].argmax(axis=1)]
    return table.assign(window_start=starts, window_end=ends, predicted=predicted, predicted_by=best,
                        **score_columns(probabilities, classes))
