"""Span masking for masked-LM pretraining on k-mer tokens, and the bases it hides.

Why spans. Token ``i`` of a window is the k-mer starting at base ``i * stride``, so with overlapping k-mers
(stride < k) every base sits in ``ceil(k / stride)`` tokens. Masking one token hides nothing: its bases are all
visible in its unmasked neighbours. A base is *hidden* only when every token of the window that contains it is
masked, so we mask contiguous runs of tokens long enough to hide ``span_bases`` whole bases each.

The scheme, per window of ``N`` tokens (vectorized over the batch, drawn from a seeded ``torch.Generator``):

1. A span is ``L = ceil((span_bases + k) / stride) - 1`` tokens. A run of ``L`` masked tokens hides
   ``(L + 1) * stride - k >= span_bases`` bases; for stride 1 that is ``L = span_bases + k - 1 >= k`` tokens
   hiding ``L - k + 1`` bases, so every masked token holds at least one hidden base. For k = 1 it is plain
   (span) masking of bases; for non-overlapping k-mers (stride = k) spans are whole tokens.
2. ``n = round(mask_ratio * N * stride / hidden_per_span)`` spans (at least one) are placed uniformly at random
   with at least one unmasked token between any two (touching spans would merge and hide more), so about
   ``mask_ratio`` (default 15%) of the bases are hidden. Settings whose spans and gaps would need more than a
   whole window (short spans of long k-mers: k = 6 with ``span_bases`` 1 hides one base per 6 tokens) are a
   ``ConfigError`` naming the ``span_bases`` that would do, not a silently lower ratio.
3. Tokens that are padding or special (``UNK``: a k-mer with an N) are never masked.
4. Each span, as a whole, is replaced by ``MASK`` (80%), by random k-mers (10%) or kept (10%). Replacing per span
   rather than per token keeps a kept token from revealing the hidden bases of a masked span around it.

The loss is computed on masked tokens only (``labels`` is ``IGNORE_INDEX`` elsewhere). Evaluation masks the same
way with ``p_mask=1.0`` and scores hidden bases only (see :mod:`genoformer.train.evaluate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from genoformer.errors import ConfigError
from genoformer.tokenize.vocab import MASK, N_SPECIAL

IGNORE_INDEX = -100


@dataclass
class MaskedBatch:
    """A corrupted batch: ``input_ids`` to feed the model, ``labels`` (original ids at masked tokens,
    ``IGNORE_INDEX`` elsewhere) and ``masked`` (bool, the tokens the loss is computed on)."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    masked: torch.Tensor


def mixed_seed(*parts: int) -> int:
    """A 63-bit seed mixed from a tuple of integers (e.g. seed, step, slot): distinct tuples, unrelated seeds."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def seeded_generator(device: torch.device | str, *parts: int) -> torch.Generator:
    """A torch generator on ``device`` seeded from a tuple of integers (e.g. seed, step, slot), well mixed."""
    return torch.Generator(device).manual_seed(mixed_seed(*parts))


def span_tokens(k: int, stride: int, span_bases: int) -> int:
    """Tokens per masked span so that a span hides at least ``span_bases`` whole bases."""
    return math.ceil((span_bases + k) / stride) - 1


class SpanMasker:
    """Draws span masks for batches of k-mer token windows (see the module docstring for the scheme)."""

    def __init__(self, k: int, stride: int, vocab_size: int, *, mask_ratio: float = 0.15, span_bases: int = 1,
                 p_mask: float = 0.8, p_random: float = 0.1):
        if not 1 <= stride <= k:
            raise ConfigError(f"span masking needs 1 <= stride <= k, got k={k} stride={stride}")
        if not 0.0 < mask_ratio < 1.0:
            raise ConfigError(f"data.mask_ratio must be in (0, 1), got {mask_ratio}")
        if span_bases < 1:
            raise ConfigError(f"data.span_bases must be >= 1, got {span_bases}")
        if p_mask < 0 or p_random < 0 or p_mask + p_random > 1:
            raise ConfigError(f"data.p_mask + data.p_random must be within [0, 1], got {p_mask} + {p_random}")
        self.k, self.stride, self.vocab_size = k, stride, vocab_size
        self.mask_ratio, self.p_mask, self.p_random = mask_ratio, p_mask, p_random
        self.span = span_tokens(k, stride, span_bases)
        self.hidden_per_span = (self.span + 1) * stride - k
        needed = self.window_share(mask_ratio, span_bases)
        if needed > 1:
            fits = next(bases for bases in range(span_bases, span_bases + 1000)
                        if self.window_share(mask_ratio, bases) <= 1)
            raise ConfigError(
                f"data.mask_ratio {mask_ratio} cannot be reached with k={k}, stride={stride}, data.span_bases="
                f"{span_bases}: each span of {self.span} tokens hides {self.hidden_per_span} base(s), so hiding "
                f"{mask_ratio:.0%} of the bases needs spans and the gaps between them over {needed:.0%} of every "
                f"window; raise data.span_bases (to {fits} or more) or lower data.mask_ratio")

    def window_share(self, mask_ratio: float, span_bases: int) -> float:
        """The share of a window that the spans hiding ``mask_ratio`` of its bases take, with one gap token each."""
        span = span_tokens(self.k, self.stride, span_bases)
        return mask_ratio * self.stride * (span + 1) / ((span + 1) * self.stride - self.k)

    def n_spans(self, n_tokens: int) -> int:
        """How many spans a window of ``n_tokens`` gets."""
        wanted = round(self.mask_ratio * n_tokens * self.stride / self.hidden_per_span)
        return max(1, min(wanted, (n_tokens + 1) // (self.span + 1)))

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                 generator: torch.Generator) -> MaskedBatch:
        """Mask a batch ``input_ids [B, N]``; ``attention_mask`` (True = real token) keeps padding unmasked."""
        batch, n_tokens = input_ids.shape
        if n_tokens < self.span:
            raise ConfigError(f"windows of {n_tokens} tokens are shorter than one masked span ({self.span} tokens)")
        device = input_ids.device
        n = self.n_spans(n_tokens)
        # n sorted distinct slots among N - n*L + 1, the j-th shifted by j*L: n spans, uniformly placed, none
        # overlapping or touching.
        slots = torch.rand(batch, n_tokens - n * self.span + 1, generator=generator, device=device)
        chosen = slots.argsort(dim=1)[:, :n].sort(dim=1).values
        starts = chosen + torch.arange(n, device=device) * self.span
        span_kind = torch.rand(batch, n, generator=generator, device=device)
        random_ids = torch.randint(N_SPECIAL, self.vocab_size, (batch, n_tokens), generator=generator,
                                   device=device)

        positions = (starts[:, :, None] + torch.arange(self.span, device=device)).reshape(batch, -1)
        masked = torch.zeros(batch, n_tokens, dtype=torch.bool, device=device)
        masked.scatter_(1, positions, True)
        maskable = input_ids >= N_SPECIAL
        if attention_mask is not None:
            maskable &= attention_mask
        masked &= maskable

        kind = span_kind[:, :, None].expand(-1, -1, self.span).reshape(batch, -1)
        token_kind = torch.ones(batch, n_tokens, device=device)  # 1.0 = keep, for tokens outside spans
        token_kind.scatter_(1, positions, kind)
        to_mask = masked & (token_kind < self.p_mask)
        to_random = masked & (token_kind >= self.p_mask) & (token_kind < self.p_mask + self.p_random)

        # where(), not boolean indexing: indexing by a mask waits for the device to count its True values
        corrupted = torch.where(to_random, random_ids, input_ids).masked_fill(to_mask, MASK)
        labels = torch.where(masked, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        return MaskedBatch(input_ids=corrupted, labels=labels, masked=masked)


def masker_for(data, vocab, stride: int, evaluation: bool = False) -> SpanMasker:
    """The masker of a config's ``data`` section (``genoformer.train.config.DataConfig``) for a k-mer
    vocabulary; ``evaluation`` replaces every masked token by MASK (no random or kept tokens)."""
    return SpanMasker(vocab.k, stride, vocab.size, mask_ratio=data.mask_ratio, span_bases=data.span_bases,
                      p_mask=1.0 if evaluation else data.p_mask, p_random=0.0 if evaluation else data.p_random)


def n_window_bases(n_tokens: int, k: int, stride: int) -> int:
    """Bases spanned by a window of ``n_tokens`` k-mer tokens."""
    return (n_tokens - 1) * stride + k


def hidden_bases(masked: torch.Tensor, k: int, stride: int, present: torch.Tensor | None = None) -> torch.Tensor:
    """Bool ``[B, n_window_bases]``: bases whose every covering token in the window is masked.

    ``present`` (bool ``[B, N]``, default all) marks the real tokens; padding covers nothing.
    """
    batch, n_tokens = masked.shape
    present = torch.ones_like(masked) if present is None else present
    n_bases = n_window_bases(n_tokens, k, stride)
    covering = torch.zeros(batch, n_bases, dtype=torch.int32, device=masked.device)
    covering_masked = torch.zeros_like(covering)
    starts = torch.arange(n_tokens, device=masked.device) * stride
    for offset in range(k):
        covering.index_add_(1, starts + offset, present.int())
        covering_masked.index_add_(1, starts + offset, (masked & present).int())
    return (covering > 0) & (covering_masked == covering)


def scoring_tokens(bases: torch.Tensor, k: int, stride: int,
                   last_token: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
    """For base offsets ``bases`` in a window, the token that scores each (the covering token that holds it
    nearest its centre, the earlier one on a tie: for stride 1, the k-mer whose central base it is) and the
    base's offset in that k-mer. ``last_token``: index of the window's last real token (per base, or one int)."""
    first = torch.clamp(torch.div(bases - k + 1 + stride - 1, stride, rounding_mode="floor"), min=0)
    last = torch.minimum(torch.div(bases, stride, rounding_mode="floor"), torch.as_tensor(last_token))
    centred = torch.div(bases - k // 2, stride, rounding_mode="floor")
    token = torch.minimum(torch.maximum(centred, first), last)
    return token, bases - token * stride
