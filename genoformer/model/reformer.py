"""The Reformer model: configuration, encoder, task heads, and safetensors + JSON checkpoints.

The encoder embeds tokens, runs them through ``depth`` pre-LayerNorm blocks (LSH self-attention, then a
chunked feed-forward) as a reversible stack over the two halves ``[x, x]``, averages the halves and applies
a final LayerNorm. Positions enter through rotary embeddings inside attention (see positional.py), so any
sequence length up to ``max_seq_len`` works. See docs/model.md for what each hyperparameter trades.

Hashing seeds. Each forward pass hashes with one seed (block i uses ``seed · depth + i``). Pass ``seed=``
to choose it; otherwise a model in training mode uses its ``hash_step`` buffer and advances it by one (so
successive training steps hash differently, and a checkpoint, which stores the buffer, resumes the same
sequence), and a model in eval mode uses seed 0 (so inference is deterministic). The same seed and input
always give the same output (with dropout off, or with the same RNG state).

Dropout. ``dropout`` is hidden dropout (embeddings, each sublayer's output, the feed-forward's hidden layer, the
classification heads' input); ``attention_dropout`` drops attention weights. A model in training mode with
``dropout > 0`` draws one dropout seed per forward pass from the CPU random number generator, and the stack draws
its masks from keys derived from it (genoformer.model.dropout): replayed exactly by the reversible backward and
compiled without the generator. Attention dropout draws from the generator inside the attention kernel, which
then is the reference kernel, and keeps the sublayers eager in training (genoformer.train.compiling). The
classification heads' dropout (outside the stack) is ``nn.Dropout``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from genoformer.atomic import atomic_path, write_json
from genoformer.errors import ConfigError, InputError, MismatchError, MissingFileError
from genoformer.model.dropout import derive, draw_seed, dropout
from genoformer.model.feedforward import FeedForward
from genoformer.model.lsh_attention import KeyPadding, LSHSelfAttention, key_padding
from genoformer.model.reversible import Block, plain_stack, reversible_stack

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class ReformerConfig:
    """Hyperparameters of a Reformer (docs/model.md explains each). Invalid values raise ConfigError."""

    vocab_size: int
    dim: int = 256
    depth: int = 4
    heads: int = 4
    n_hashes: int = 2
    bucket_size: int = 64
    ff_mult: int = 4
    ff_chunks: int = 1
    max_seq_len: int = 1_048_576
    dropout: float = 0.0
    attention_dropout: float = 0.0
    causal: bool = False
    full_attention: bool = False
    reversible: bool = True
    pad_token_id: int = 0
    rotary_base: float = 10_000.0
    init_std: float = 0.02

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "bool" and not isinstance(value, bool):
                raise ConfigError(f"model config: '{field.name}' must be true or false, got {value!r}")
            if field.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"model config: '{field.name}' must be an integer, got {value!r}")
            if field.type == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"model config: '{field.name}' must be a number, got {value!r}")
                setattr(self, field.name, float(value))
        for name in ("vocab_size", "dim", "depth", "heads", "n_hashes", "bucket_size", "ff_mult", "ff_chunks",
                     "max_seq_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model config: '{name}' must be at least 1, got {getattr(self, name)}")
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ConfigError(f"model config: 'dim' = {self.dim} must be 'heads' = {self.heads} times an even "
                              "head size (rotary embeddings rotate channel pairs)")
        for name in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model config: '{name}' must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"model config: 'pad_token_id' = {self.pad_token_id} is not a token id "
                              f"(vocab_size {self.vocab_size})")
        if self.rotary_base <= 1.0 or self.init_std <= 0.0:
            raise ConfigError("model config: 'rotary_base' must be > 1 and 'init_std' > 0, got "
                              f"{self.rotary_base} and {self.init_std}")

    def to_dict(self) -> dict:
        """The config as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "model config") -> "ReformerConfig":
        """Build from a dict; an unknown or missing key raises ConfigError naming it and ``source``."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown model config key '{unknown[0]}' (known: {', '.join(sorted(known))})")
        if "vocab_size" not in values:
            raise ConfigError(f"{source}: model config key 'vocab_size' is missing")
        try:
            return cls(**values)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None


class AttentionSublayer(nn.Module):
    """Pre-LayerNorm LSH self-attention with (keyed) dropout on its output: ``f`` of a reversible block."""

    def __init__(self, config: ReformerConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.dim)
        self.attention = LSHSelfAttention(
            config.dim, config.heads, n_hashes=config.n_hashes, bucket_size=config.bucket_size,
            causal=config.causal, dropout=config.attention_dropout, full_attention=config.full_attention,
            rotary_base=config.rotary_base,
        )
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | KeyPadding | None, seed: int,
                dropout_key: int | None = None) -> torch.Tensor:
        """Attention output for ``x [B, N, dim]`` (``key_padding_mask``: see :class:`LSHSelfAttention`), its dropout
        mask drawn from ``dropout_key`` (None: no dropout)."""
        return dropout(self.attention(self.norm(x), key_padding_mask, seed), self.dropout, dropout_key)


class Reformer(nn.Module):
    """The encoder: ``forward(input_ids [B, N], attention_mask [B, N] (True = real token) | None, seed=None)
    -> hidden [B, N, dim]``. Any N from 1 to ``max_seq_len``."""

    def __init__(self, config: ReformerConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.dim)
        self.blocks = nn.ModuleList(
            Block(AttentionSublayer(config), FeedForward(config.dim, config.ff_mult, config.dropout, config.ff_chunks))
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.dim)
        self.register_buffer("hash_step", torch.zeros((), dtype=torch.long))
        self.apply(lambda module: init_weights(module, config.init_std))

    def next_seed(self) -> int:
        """The hashing seed of a forward pass without ``seed=``: see the module docstring."""
        if not self.training:
            return 0
        seed = int(self.hash_step)
        self.hash_step += 1
        return seed

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                seed: int | None = None, check_ids: bool = True) -> torch.Tensor:
        """Hidden states ``[B, N, dim]``; padded positions (``attention_mask`` False) never affect the others.

        ``check_ids=False`` skips the token-id range check, which reads the ids' extremes back from the device
        (a host sync): for callers whose ids come from a vocabulary already checked against the model's.
        """
        check_inputs(input_ids, attention_mask, self.config, check_ids)
        # The rows' real lengths are read back from the device here, once for every layer (None: no padding).
        key_padding_mask = None if attention_mask is None else key_padding(~attention_mask.bool(),
                                                                           self.config.bucket_size)
        seed = self.next_seed() if seed is None else seed
        seeds = [seed * self.config.depth + i for i in range(self.config.depth)]
        dropout_seed = draw_seed() if self.training and self.config.dropout > 0 else None
        # the embedding's key: a site id after the blocks' (reversible.sublayer_keys)
        x = dropout(self.embedding(input_ids), self.config.dropout, derive(dropout_seed, self.config.depth))
        stack = reversible_stack if self.config.reversible else plain_stack
        y1, y2 = stack(self.blocks, x, x, key_padding_mask, seeds, dropout_seed)
        return self.norm((y1 + y2) / 2)


def init_weights(module: nn.Module, std: float) -> None:
    """Normal(0, std) weights and zero biases for linear and embedding layers."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def check_inputs(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, config: ReformerConfig,
                 check_ids: bool = True) -> None:
    """Raise InputError for a batch the model cannot take: wrong shape, too long, token ids out of range
    (the last only with ``check_ids``)."""
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise InputError(f"model input: input_ids must have shape [batch, length>0], got {list(input_ids.shape)}")
    if input_ids.shape[1] > config.max_seq_len:
        raise InputError(f"model input: sequence of {input_ids.shape[1]} tokens is longer than the model's "
                         f"max_seq_len {config.max_seq_len}")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise InputError(f"model input: attention_mask shape {list(attention_mask.shape)} differs from "
                         f"input_ids shape {list(input_ids.shape)}")
    if not check_ids:
        return
    low, high = torch.aminmax(input_ids)
    if low < 0 or high >= config.vocab_size:
        raise InputError(f"model input: token id {int(low if low < 0 else high)} is outside the model's "
                         f"vocabulary of {config.vocab_size} tokens")


class ReformerForMaskedLM(nn.Module):
    """Encoder + tied-embedding output layer with a bias: ``forward(...) -> logits [B, N, vocab_size]``."""

    def __init__(self, config: ReformerConfig):
        super().__init__()
        self.config = config
        self.reformer = Reformer(config)
        self.lm_bias = nn.Parameter(torch.zeros(config.vocab_size))

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Token logits for hidden states ``[..., dim]`` (call it on masked positions only to save memory)."""
        return F.linear(hidden, self.reformer.embedding.weight, self.lm_bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                seed: int | None = None, check_ids: bool = True) -> torch.Tensor:
        """Logits ``[B, N, vocab_size]`` (``check_ids``: see :meth:`Reformer.forward`)."""
        return self.lm_head(self.reformer(input_ids, attention_mask, seed, check_ids))


class ReformerForSequenceClassification(nn.Module):
    """Encoder + mean of the hidden states over real tokens + linear: ``forward(...) -> logits [B, num_labels]``."""

    def __init__(self, config: ReformerConfig, num_labels: int):
        super().__init__()
        self.config = config
        self.num_labels = num_labels
        self.reformer = Reformer(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.dim, num_labels)
        init_weights(self.classifier, config.init_std)

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
             seed: int | None = None) -> torch.Tensor:
        """The mean hidden state over the real tokens, ``[B, dim]``: what the classifier reads."""
        hidden = self.reformer(input_ids, attention_mask, seed)
        if attention_mask is None:
            return hidden.mean(dim=1)
        weights = attention_mask.to(hidden.dtype)[..., None]
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_labels]`` of pooled states (e.g. the mean of :meth:`pool` over both strands)."""
        return self.classifier(self.dropout(pooled))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                seed: int | None = None) -> torch.Tensor:
        """Logits ``[B, num_labels]`` from the masked mean of the hidden states."""
        return self.classify(self.pool(input_ids, attention_mask, seed))


class ReformerForTokenClassification(nn.Module):
    """Encoder + per-position linear layer: ``forward(...) -> logits [B, N, num_labels]``."""

    def __init__(self, config: ReformerConfig, num_labels: int):
        super().__init__()
        self.config = config
        self.num_labels = num_labels
        self.reformer = Reformer(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.dim, num_labels)
        init_weights(self.classifier, config.init_std)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                seed: int | None = None) -> torch.Tensor:
        """Logits ``[B, N, num_labels]``."""
        return self.classifier(self.dropout(self.reformer(input_ids, attention_mask, seed)))


MODEL_CLASSES = {cls.__name__: cls for cls in (
    Reformer, ReformerForMaskedLM, ReformerForSequenceClassification, ReformerForTokenClassification)}
HEAD_CLASSES = (ReformerForSequenceClassification, ReformerForTokenClassification)


def save_pretrained(model: nn.Module, directory: str | Path) -> None:
    """Write ``config.json`` (config + ``model_class`` [+ ``num_labels``]) and ``model.safetensors``.

    Each file is replaced atomically; other files in ``directory`` (a run's vocab.json, metrics, checkpoints)
    are left alone. The weights are written first, so a run killed in between keeps a loadable pair when the
    shapes did not change.
    """
    directory = Path(directory)
    if type(model).__name__ not in MODEL_CLASSES:
        raise TypeError(f"save_pretrained: not a Reformer model: {type(model).__name__}")
    meta = {"model_class": type(model).__name__}
    if isinstance(model, HEAD_CLASSES):
        meta["num_labels"] = model.num_labels
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    write_json(directory / CONFIG_FILE, {**meta, **model.config.to_dict()})


def load_pretrained(directory: str | Path, cls: type | None = None, *, num_labels: int | None = None,
                    config_overrides: dict | None = None) -> nn.Module:
    """Load a model written by :func:`save_pretrained` (on CPU, in eval mode).

    ``cls`` defaults to the saved class. A different class (e.g. a classifier from a masked-LM checkpoint)
    gets the saved encoder weights and a freshly initialized head, which needs ``num_labels``.
    ``config_overrides`` changes config keys that do not change weight shapes (e.g. ``n_hashes`` or
    ``dropout``). A config.json without ``attention_dropout`` (written before that key existed, when ``dropout``
    dropped attention weights too) gets ``attention_dropout`` = its ``dropout``. Missing files raise
    MissingFileError; unreadable ones InputError; config keys or tensor names/shapes that do not match the weights
    MismatchError, each one line naming the file.
    """
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise MissingFileError(f"{path}: no such file (a model directory needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        values = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{config_path}: not valid JSON ({err})") from None
    if not isinstance(values, dict):
        raise InputError(f"{config_path}: expected a JSON object")
    saved_class = values.pop("model_class", None)
    saved_labels = values.pop("num_labels", None)
    if "dropout" in values and "attention_dropout" not in values:
        values["attention_dropout"] = values["dropout"]  # what an earlier version's 'dropout' did
    if saved_class not in MODEL_CLASSES:
        raise InputError(f"{config_path}: 'model_class' is {saved_class!r}, expected one of {', '.join(MODEL_CLASSES)}")
    config = ReformerConfig.from_dict({**values, **(config_overrides or {})}, source=str(config_path))
    cls = cls or MODEL_CLASSES[saved_class]
    same_class = cls.__name__ == saved_class
    if cls in HEAD_CLASSES:
        if same_class and num_labels not in (None, saved_labels):
            raise MismatchError(f"{config_path}: model has {saved_labels} labels, {num_labels} were asked for")
        num_labels = saved_labels if same_class else num_labels
        if num_labels is None:
            raise ConfigError(f"{config_path}: num_labels is needed to put a {cls.__name__} head on a {saved_class}")
        model = cls(config, num_labels)
    else:
        model = cls(config)

    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError) as err:
        raise InputError(f"{weights_path}: cannot read weights ({err})") from None
    expected = model.state_dict()
    if not same_class:  # carry over the encoder only: "reformer.*" in a head model, everything in a Reformer
        source_prefix = "" if saved_class == "Reformer" else "reformer."
        target_prefix = "" if cls is Reformer else "reformer."
        tensors = {target_prefix + name[len(source_prefix):]: tensor
                   for name, tensor in tensors.items() if name.startswith(source_prefix)}
        expected = {name: tensor for name, tensor in expected.items() if name.startswith(target_prefix)}
    check_tensors(tensors, expected, weights_path, config_path)
    for name in expected:  # a diverged run saves NaN weights: every score from them would be NaN
        if tensors[name].is_floating_point() and not bool(torch.isfinite(tensors[name]).all()):
            raise InputError(f"{weights_path}: tensor '{name}' holds NaN or infinite values (the weights of a run "
                             "whose training diverged?); use an earlier checkpoint or train again with a lower lr")
    model.load_state_dict(tensors, strict=same_class)
    if not same_class:
        log.info("%s: loaded the %s encoder into a %s; its head is newly initialized", directory, saved_class,
                 cls.__name__)
    return model.eval()


def check_tensors(found: dict, expected: dict, weights_path: Path, config_path: Path) -> None:
    """Raise MismatchError unless ``found`` has exactly the names and shapes of ``expected``."""
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        name = (missing or unexpected)[0]
        what = "is missing from" if missing else "is not expected in"
        raise MismatchError(f"{weights_path}: tensor '{name}' {what} the weights for the config in {config_path} "
                            f"({len(missing)} missing, {len(unexpected)} unexpected)")
    for name, tensor in expected.items():
        if found[name].shape != tensor.shape:
            raise MismatchError(f"{weights_path}: tensor '{name}' has shape {list(found[name].shape)} but the "
                                f"config in {config_path} needs {list(tensor.shape)}")
