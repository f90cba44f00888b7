"""Pretraining configuration: a YAML file with four sections, overridable from the command line.

```yaml
model: {dim: 128, depth: 4, ...}   # ReformerConfig fields; vocab_size comes from the token dataset
optim: {lr: 1e-3, ...}             # AdamW, warmup + cosine schedule, clipping, accumulation
data: {window: 1024, ...}          # windows, batch size, span masking
run: {steps: 2000, ...}            # length, seed, logging, evaluation, checkpoints, device
```

Every key is optional (the defaults below apply); an unknown key or a value of the wrong type raises
:class:`~genoformer.errors.ConfigError` naming the file and the key. ``--set section.key=value`` overrides one key;
the value is parsed with ``yaml.safe_load`` (``--set optim.lr=3e-4``, ``--set optim.betas=[0.9,0.95]``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from genoformer.errors import ConfigError, MissingFileError

SECTIONS = ("model", "optim", "data", "run")
# Config keys a resume may change: where the run trains, not what it trains (the workflow sets run.device from the
# GPUs a job holds, so a run started under one profile can go on under another).
WHERE_IT_RUNS = ("run.device",)


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay to ``min_lr_ratio * lr``; ``accumulation`` micro-batches per
    optimizer step; gradients clipped to global norm ``grad_clip`` (0 = no clipping)."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-8
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    accumulation: int = 1


@dataclass
class DataConfig:
    """``window`` tokens per window (null: the dataset's window); training windows start every
    ``window_stride`` tokens (null: the dataset's ``--window-stride`` when the window is the dataset's,
    else the window, side by side; smaller than the window: overlapping windows, more distinct offsets from
    a small genome; held-out windows always lie side by side); ``batch_size`` windows per micro-batch and
    process; span masking settings (see :mod:`genoformer.train.masking`)."""

    window: int | None = None
    window_stride: int | None = None
    batch_size: int = 8
    mask_ratio: float = 0.15
    span_bases: int = 1
    p_mask: float = 0.8
    p_random: float = 0.1


@dataclass
class RunConfig:
    """``steps`` optimizer steps; ``seed`` for weights, data order, masking and dropout; metrics every
    ``log_every`` steps; validation bits/base on ``eval_windows`` windows every ``eval_every`` steps (0 = only at
    the end); a checkpoint every ``checkpoint_every`` steps and at the end, keeping the last
    ``keep_checkpoints``; ``device`` auto|cpu|cuda; ``precision`` auto (bf16 autocast on CUDA, fp32 on CPU)|
    fp32|bf16; ``compile``: on CUDA, compile each block's sublayers with torch.compile
    (:func:`genoformer.model.fast.compile_sublayers`; where it cannot build, training goes on eagerly with a
    warning: :mod:`genoformer.train.compiling`). Ignored on CPU: on 2 cores the default config's 1,500 steps
    ran 1.3x faster compiled, but compiling (training, padded and evaluation variants) took most of the gain."""

    steps: int = 1000
    seed: int = 0
    log_every: int = 10
    eval_every: int = 0
    eval_windows: int = 32
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    device: str = "auto"
    precision: str = "auto"
    compile: bool = True


@dataclass
class PretrainConfig:
    """The whole pretraining configuration; ``model`` holds ReformerConfig fields (without vocab_size)."""

    model: dict = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        """Plain nested dict (YAML/JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict, source: str) -> "PretrainConfig":
        """Validate ``raw`` (from ``source``, named in errors) against the sections and their fields."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: a pretraining config is a mapping with sections {SECTIONS}")
        unknown = [key for key in raw if key not in SECTIONS]
        if unknown:
            raise ConfigError(f"{source}: unknown config section '{unknown[0]}' (known: {', '.join(SECTIONS)})")
        model = _check_section(raw.get("model") or {}, "model", _model_fields(), source)
        sections = {"model": model}
        for name, section_class in (("optim", OptimConfig), ("data", DataConfig), ("run", RunConfig)):
            values = _check_section(raw.get(name) or {}, name, _fields_of(section_class), source)
            sections[name] = section_class(**values)
        config = cls(**sections)
        config.validate(source)
        return config

    def validate(self, source: str) -> None:
        """Range checks that types alone do not catch."""
        positive = {"optim.lr": self.optim.lr, "optim.accumulation": self.optim.accumulation,
                    "data.batch_size": self.data.batch_size, "run.steps": self.run.steps,
                    "run.log_every": self.run.log_every, "run.checkpoint_every": self.run.checkpoint_every,
                    "run.keep_checkpoints": self.run.keep_checkpoints, "run.eval_windows": self.run.eval_windows}
        for key in ("window", "window_stride"):
            if getattr(self.data, key) is not None:
                positive[f"data.{key}"] = getattr(self.data, key)
        positive["optim.eps"] = self.optim.eps
        for key, value in positive.items():
            if not 0 < value < math.inf:  # NaN and inf too: torch's AdamW would raise a bare ValueError
                raise ConfigError(f"{source}: {key} must be > 0, got {value}")
        non_negative = {"optim.weight_decay": self.optim.weight_decay, "run.eval_every": self.run.eval_every}
        for key, value in non_negative.items():
            if not 0 <= value < math.inf:
                raise ConfigError(f"{source}: {key} must be >= 0, got {value}")
        if not 0 <= self.optim.grad_clip <= math.inf:  # 0 and .inf: no clipping
            raise ConfigError(f"{source}: optim.grad_clip must be >= 0 (0 or .inf: no clipping), got "
                              f"{self.optim.grad_clip}")
        for key, value, allowed in (("run.device", self.run.device, ("auto", "cpu", "cuda")),
                                    ("run.precision", self.run.precision, ("auto", "fp32", "bf16"))):
            if value not in allowed:
                raise ConfigError(f"{source}: {key} must be one of {', '.join(allowed)}, got {value!r}")
        if len(self.optim.betas) != 2 or not all(0 <= beta < 1 for beta in self.optim.betas):
            raise ConfigError(f"{source}: optim.betas must be two numbers in [0, 1), got {self.optim.betas}")
        if self.optim.warmup_steps < 0 or not 0 <= self.optim.min_lr_ratio <= 1:
            raise ConfigError(f"{source}: optim.warmup_steps must be >= 0 and optim.min_lr_ratio in [0, 1]")
        if not 0 <= self.run.seed < 2**64:  # what torch.manual_seed and numpy's seeding accept
            raise ConfigError(f"{source}: run.seed must be in [0, 2**64), got {self.run.seed}")
        self._validate_masking(source)
        if "vocab_size" in self.model:
            raise ConfigError(f"{source}: model.vocab_size is taken from the token dataset; remove it")
        from genoformer.model import ReformerConfig

        # the model section's own checks, here so that they name the file; vocab_size comes from the token dataset
        # when the model is built (a stand-in larger than any vocabulary until then)
        ReformerConfig.from_dict({**self.model, "vocab_size": 2**62}, source)

    def _validate_masking(self, source: str) -> None:
        """The span-masking values on their own (whether the ratio fits a window depends on the data's k)."""
        data = self.data
        if not 0 < data.mask_ratio < 1:
            raise ConfigError(f"{source}: data.mask_ratio must be in (0, 1), got {data.mask_ratio}")
        if data.span_bases < 1:
            raise ConfigError(f"{source}: data.span_bases must be >= 1, got {data.span_bases}")
        if not (data.p_mask >= 0 and data.p_random >= 0 and data.p_mask + data.p_random <= 1):
            raise ConfigError(f"{source}: data.p_mask + data.p_random must be within [0, 1], got {data.p_mask} + "
                              f"{data.p_random}")


def load_config(path: str | Path | None, overrides: list[str] = ()) -> PretrainConfig:
    """Read the YAML config at ``path`` (None: all defaults) and apply ``section.key=value`` overrides."""
    raw: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise MissingFileError(f"{path}: config file not found")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from err
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a pretraining config is a mapping with sections {SECTIONS}")
    raw = apply_overrides(raw, overrides)
    return PretrainConfig.from_dict(raw, source if not overrides else f"{source} with --set")


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """A copy of ``raw`` with each ``section.key=value`` set (value parsed as YAML); bad syntax or an unknown
    key raises ConfigError naming it."""
    raw = {name: dict(value) if isinstance(value, dict) else value for name, value in raw.items()}
    for override in overrides:
        key, sep, text = override.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ConfigError(f"--set {override!r}: expected section.key=value, e.g. optim.lr=3e-4")
        known = {"model": _model_fields(), "optim": _fields_of(OptimConfig), "data": _fields_of(DataConfig),
                 "run": _fields_of(RunConfig)}
        if section not in known or name not in known[section]:
            raise ConfigError(f"--set {override!r}: unknown config key '{key.strip()}'")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {override!r}: value is not valid YAML") from err
        if not isinstance(raw.get(section), dict):
            raw[section] = {}
        raw[section][name] = value
    return raw


def differences(first: PretrainConfig, second: PretrainConfig) -> list[str]:
    """``section.key`` of every value that differs between two configs."""
    a, b = first.to_dict(), second.to_dict()
    return [f"{section}.{key}" for section in SECTIONS for key in sorted(set(a[section]) | set(b[section]))
            if a[section].get(key) != b[section].get(key)]


def _fields_of(section_class) -> dict[str, typing.Any]:
    """Field name -> type hint of a dataclass."""
    hints = typing.get_type_hints(section_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_class)}


def _model_fields() -> dict[str, typing.Any]:
    """ReformerConfig fields a config may set (all but vocab_size, which the data decides)."""
    from genoformer.model import ReformerConfig

    return {name: hint for name, hint in _fields_of(ReformerConfig).items() if name != "vocab_size"}


def _check_section(values: dict, section: str, fields: dict, source: str) -> dict:
    """Check each key is a known field and each value has its type; ints are accepted for floats."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section '{section}' must be a mapping of keys to values")
    checked = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{source}: unknown config key '{section}.{key}' (known: {', '.join(fields)})")
        checked[key] = _coerce(value, fields[key], f"{source}: {section}.{key}")
    return checked


def _coerce(value, hint, where: str):
    """``value`` converted to the type ``hint`` (int -> float allowed), else ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is not type(None):
                return _coerce(value, option, where)
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item = args[0] if args else typing.Any
        return [_coerce(v, item, where) for v in value]
    if hint is typing.Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {getattr(hint, '__name__', hint)}, got {value!r}")
    return value
