"""Running a pretrained model over windows of sequence for the downstream tasks.

:class:`Encoder` holds a frozen :class:`~genoformer.model.ReformerForMaskedLM` with its k-mer vocabulary and
stride. Work is queued as *jobs*, each a token sequence plus a function that reads what it needs from the
sequence's hidden states; :meth:`Encoder.run` batches the jobs, runs each batch once and hands each job its own
hidden states, so nothing but the readouts outlives a batch (a 131 kbp window's hidden states are large).
Every sequence through the encoder counts as one forward pass in :attr:`Encoder.forwards`, by kind.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from genoformer.errors import ConfigError, InputError, MismatchError, MissingFileError
from genoformer.io.fasta import N_CODE
from genoformer.model.reformer import WEIGHTS_FILE
from genoformer.tokenize.encode import encode, n_tokens
from genoformer.tokenize.vocab import N_SPECIAL, PAD, KmerVocab
from genoformer.train.evaluate import load_run_model

log = logging.getLogger(__name__)


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when there is one, else the CPU; otherwise the named torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a torch device (auto, cpu, cuda, cuda:1, ...)") from None


def token_range(start: int, end: int, k: int, stride: int, count: int) -> range:
    """Indices of the tokens (k-mer at ``i * stride``) that overlap bases ``[start, end)``, among ``count``."""
    first = max(0, math.ceil((start - k + 1) / stride))
    last = min(count - 1, (end - 1) // stride)
    return range(first, last + 1)


@dataclass
class Job:
    """One sequence for the encoder: ``tokens`` (int64), its ``kind`` (for counting forwards), and ``readout``,
    called with the sequence's hidden states ``[N, dim]``."""

    tokens: np.ndarray
    kind: str
    readout: Callable[[torch.Tensor], None]


class Encoder:
    """A frozen masked-LM with its vocabulary and stride, run in batches of ``batch_size`` sequences."""

    def __init__(self, model, vocab: KmerVocab, stride: int, device: torch.device, batch_size: int = 4):
        if model.config.vocab_size != vocab.size:
            raise MismatchError(f"the model's vocabulary has {model.config.vocab_size} tokens, its vocab.json "
                                f"(k={vocab.k}) has {vocab.size}")
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        self.model = model.to(device).eval()
        self.vocab, self.stride, self.device, self.batch_size = vocab, stride, device, batch_size
        self.k = vocab.k
        self.forwards: Counter = Counter()
        self._kmer_bases = torch.tensor(
            (np.arange(vocab.n_kmers)[:, None] >> (2 * np.arange(self.k - 1, -1, -1))) & 3, device=device)

    def check_window(self, window_bp: int) -> None:
        """Raise :class:`ConfigError` when a window of ``window_bp`` bases has more tokens than the model takes."""
        count = n_tokens(window_bp, self.k, self.stride)
        if count < 1:
            raise ConfigError(f"a window of {window_bp} bp holds no {self.k}-mer token")
        if count > self.model.config.max_seq_len:
            raise ConfigError(f"a window of {window_bp} bp is {count} tokens (k={self.k}, stride {self.stride}); "
                              f"the checkpoint takes at most max_seq_len={self.model.config.max_seq_len}")

    def encode(self, codes: np.ndarray) -> np.ndarray:
        """Token ids (int64) of base codes."""
        return encode(codes, self.vocab, self.stride).astype(np.int64)

    def token_range(self, start: int, end: int, count: int) -> range:
        """Tokens overlapping bases ``[start, end)`` of a sequence with ``count`` tokens."""
        return token_range(start, end, self.k, self.stride, count)

    @torch.inference_mode()
    def run(self, jobs: Iterable[Job]) -> None:
        """Run every job's sequence through the encoder (batched, padded) and call its readout, in job order.

        ``jobs`` may be a generator: only one batch of sequences exists at a time.
        """
        jobs = iter(jobs)
        while batch := list(itertools.islice(jobs, self.batch_size)):
            hidden = self.model.reformer(*self.pad([job.tokens for job in batch]))
            for row, job in enumerate(batch):
                self.forwards[job.kind] += 1
                job.readout(hidden[row, :job.tokens.size].float())

    def pad(self, sequences: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids`` (PAD after each sequence's end) and ``attention_mask`` of a batch, on the device."""
        length = max(tokens.size for tokens in sequences)
        ids = torch.full((len(sequences), length), PAD, dtype=torch.long)
        valid = torch.zeros((len(sequences), length), dtype=torch.bool)
        for row, tokens in enumerate(sequences):
            ids[row, :tokens.size] = torch.from_numpy(tokens)
            valid[row, :tokens.size] = True
        return ids.to(self.device), valid.to(self.device)

    @torch.inference_mode()
    def kmer_log_probs(self, hidden: torch.Tensor, positions: list[int], kmers: list[np.ndarray]) -> torch.Tensor:
        """log P(token at each of ``positions`` is a k-mer consistent with its base codes in ``kmers``).

        A k-mer over ACGT is one token; an N in it is a wildcard, so its probability is summed over every k-mer
        that agrees with the known bases. Returns a float tensor (on the CPU) of one value per position.
        """
        if not positions:
            return torch.zeros(0)
        log_probs = torch.log_softmax(self.model.lm_head(hidden[positions]).float(), dim=-1)
        codes = torch.as_tensor(np.stack(kmers), dtype=torch.long, device=log_probs.device)
        known = codes < N_CODE
        exact = known.all(dim=1)
        weights = 4 ** torch.arange(self.k - 1, -1, -1, device=codes.device)
        ids = N_SPECIAL + ((codes.clamp(max=3) * weights).sum(dim=1))
        result = log_probs.gather(1, ids[:, None])[:, 0]
        for row in torch.nonzero(~exact).flatten().tolist():
            agrees = ((self._kmer_bases == codes[row]) | ~known[row]).all(dim=1)
            result[row] = torch.logsumexp(log_probs[row, N_SPECIAL:][agrees], dim=0)
        return result.cpu()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_encoder(checkpoint: str | Path, *, device: str = "auto", batch_size: int = 4,
                 stride: int | None = None) -> tuple[Encoder, dict]:
    """The masked-LM of a run directory or ``step-<N>`` folder as an :class:`Encoder`, and a description of it
    (``checkpoint``, ``sha256`` of its weights, ``k``, ``stride``) for output headers.

    The vocabulary comes from the checkpoint's ``vocab.json``, the stride from its ``trainer_state.json``
    (``stride`` overrides it, and is needed for a bare ``save_pretrained`` folder without trainer state).
    """
    checkpoint = Path(checkpoint)
    model, vocab_json, trainer_state = load_run_model(checkpoint)
    if vocab_json is None:
        raise MissingFileError(f"{checkpoint / 'vocab.json'}: not found; the checkpoint's k-mer vocabulary is needed")
    vocab = KmerVocab.from_json(vocab_json)
    if model.config.vocab_size != vocab.size:
        raise MismatchError(f"{checkpoint / 'vocab.json'}: vocabulary of {vocab.size} tokens (k={vocab.k}), but the "
                            f"model in {checkpoint / 'config.json'} has vocab_size {model.config.vocab_size}")
    trained_stride = None
    if trainer_state is not None:
        try:
            trained_stride = int(trainer_state["data"]["stride"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{checkpoint / 'trainer_state.json'}: no data.stride entry") from None
    if stride is None and trained_stride is None:
        raise ConfigError(f"{checkpoint}: no trainer_state.json tells the tokenization stride; pass --stride")
    if stride is not None and trained_stride is not None and stride != trained_stride:
        log.warning("%s was trained with stride %d; using stride %d as asked", checkpoint, trained_stride, stride)
    stride = trained_stride if stride is None else stride
    if not 1 <= stride <= vocab.k:
        source = "--stride" if trained_stride is None or stride != trained_stride else \
            f"{checkpoint / 'trainer_state.json'}: data.stride"
        raise ConfigError(f"{source} {stride} must be from 1 to k={vocab.k} (the k of {checkpoint / 'vocab.json'})")
    encoder = Encoder(model, vocab, stride, pick_device(device), batch_size)
    info = {"checkpoint": str(checkpoint), "sha256": file_sha256(checkpoint / WEIGHTS_FILE), "k": vocab.k,
            "stride": stride}
    log.info("loaded %s (k=%d, stride %d, %d parameters) on %s", checkpoint, vocab.k, stride,
             sum(p.numel() for p in model.parameters()), encoder.device)
    return encoder, info
