"""Token datasets on disk: one shard per sequence, a manifest, train/val/test splits, windows, a PyTorch dataset.

A dataset folder ``DIR`` (written whole by ``write_token_dataset`` through ``atomic_dir``: a killed run leaves
only a hidden ``.DIR.*.tmp`` folder, never ``DIR``, and the next run writing ``DIR`` removes it) holds:

- ``manifest.json``: source file and sha256, k, stride, vocabulary, dtype, the sequences, windowing, splits.
- ``shards/<i>.npy``: the tokens of sequence ``i`` (a whole contig, or one merged BED region), ``uint16``
  (``uint32`` for k = 8); token t is the k-mer at base ``start + t * stride`` of the contig.
- ``softmask/<i>.npy`` (with ``softmask=True``): ``bool`` per token, True when its k-mer touches a
  soft-masked (lowercase) base.

Windows are ``window`` tokens starting every ``window_stride`` tokens inside an interval of one sequence. At the
end of a sequence the last partial window is padded with PAD (``edge="pad"``, attention mask False there) or
dropped (``edge="drop"``). A window whose UNK (N) fraction over its real tokens exceeds ``max_n_fraction`` is
left out.

Splits: ``contig`` puts whole sequences in train/val/test (largest first, each to the split furthest below its
share of windows; every split with a non-zero fraction gets at least one sequence). ``blocks`` cuts every
sequence into blocks of ``block`` windows (``(block - 1) * window_stride + window`` tokens) separated by a gap
of ``max(window, ceil(k / stride) - 1)`` tokens, so no window and no base is shared between splits, and deals
the blocks to the splits in genome order, evenly interleaved, in proportion to the fractions (each split with a
non-zero fraction gets at least one block with windows; blocks without a window count for none and stay
"train").
``auto`` is ``contig`` when at least 3 sequences have a window, else ``blocks``. A sample's consensus is split as
its reference is (the reference's windows decide, the consensus's own are counted), so a model pretrained on the
reference is never scored on the sample where it trained; a split that then keeps no window of the sample is an
error. Everything is deterministic. The manifest's ``intervals`` hold, per sequence (``contig`` is the sequence
name), the token ranges ``[start, end)`` of each split and their window counts. Gaps separate blocks of one
sequence; separate sequences (e.g. two BED regions) share no bases but need not be a window apart in the genome.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from genoformer import __version__
from genoformer.atomic import atomic_dir, write_json
from genoformer.errors import ConfigError, GenoformerError, InputError, MissingFileError
from genoformer.tokenize.encode import check_stride, encode_into, kmer_any, n_tokens, span_bp
from genoformer.tokenize.limits import MAX_WINDOW
from genoformer.tokenize.vocab import PAD, UNK, KmerVocab

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
EDGES = ("pad", "drop")
SPLIT_METHODS = ("auto", "contig", "blocks")
SOURCE_KINDS = ("fasta", "bam-consensus")
CHUNK_TOKENS = 1 << 22  # tokens written per read of the source (a few MB of bases in memory at a time)

BaseReader = Callable[[str, int, int], "tuple[np.ndarray, np.ndarray]"]


@dataclass(frozen=True)
class Stretch:
    """One stretch of a contig that becomes one shard: 0-based half-open ``contig[start:end]``."""

    name: str
    contig: str
    start: int
    end: int


@dataclass(frozen=True)
class TokenizeOptions:
    """How to tokenize, window and split; checked on creation (``ConfigError`` naming the option)."""

    k: int = 6
    stride: int = 1
    window: int = 65536
    window_stride: int | None = None  # None: the window length (windows side by side)
    edge: str = "pad"
    max_n_fraction: float = 0.1
    split_by: str = "auto"
    block: int = 8
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    softmask: bool = False

    def __post_init__(self):
        vocab = KmerVocab(self.k)
        try:
            check_stride(self.stride, vocab)
        except ValueError as err:
            raise ConfigError(f"--stride {self.stride}: {err}") from err
        if not 1 <= self.window <= MAX_WINDOW:
            raise ConfigError(f"--window {self.window} is out of range: must be 1 to {MAX_WINDOW} tokens")
        if self.window_stride is None:
            object.__setattr__(self, "window_stride", self.window)
        if self.window_stride < 1:
            raise ConfigError(f"--window-stride {self.window_stride} must be at least 1 token")
        if self.edge not in EDGES:
            raise ConfigError(f"--edge {self.edge!r} must be one of {', '.join(EDGES)}")
        if not 0.0 <= self.max_n_fraction <= 1.0:
            raise ConfigError(f"--max-n-fraction {self.max_n_fraction} must be between 0 and 1")
        if self.split_by not in SPLIT_METHODS:
            raise ConfigError(f"--split-by {self.split_by!r} must be one of {', '.join(SPLIT_METHODS)}")
        if self.block < 1:
            raise ConfigError(f"--block {self.block} must be at least 1 window")
        fractions = tuple(float(f) for f in self.fractions)
        if len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0 or not math.isclose(sum(fractions), 1.0):
            raise ConfigError(f"--split-fractions {','.join(map(str, self.fractions))} must be three numbers "
                              "train,val,test >= 0 (train > 0) that sum to 1")
        object.__setattr__(self, "fractions", fractions)

    @property
    def gap(self) -> int:
        """Tokens left out between two blocks: at least a window, and enough that no base is shared."""
        return max(self.window, -(-self.k // self.stride) - 1)


# ---------------------------------------------------------------------------------------------- writing


def write_token_dataset(out: str | os.PathLike, stretches: list[Stretch], read_bases: BaseReader,
                        options: TokenizeOptions, source: dict, split_bases: BaseReader | None = None) -> dict:
    """Tokenize ``stretches`` into the dataset folder ``out`` (atomically) and return its manifest.

    ``read_bases(contig, start, end) -> (codes uint8, softmask bool)`` supplies the bases (reference or sample
    consensus); it is called on chunks of ``CHUNK_TOKENS`` tokens (plus the k-1 overlap), so memory stays
    bounded whatever the genome size. ``source`` is the manifest's ``source`` entry (``path``, ``sha256``,
    ``kind``). A sequence shorter than k gets an empty shard. ``split_bases`` (a sample consensus's reference)
    supplies the bases whose windows decide the train/val/test split, tokenized into a scratch folder that is
    removed again; by default ``read_bases``.
    """
    if source.get("kind") not in SOURCE_KINDS:
        raise ValueError(f"source kind must be one of {SOURCE_KINDS}, got {source.get('kind')!r}")
    vocab = KmerVocab(options.k)
    out = Path(out)
    with atomic_dir(out, marker="manifest.json") as tmp:
        (tmp / "shards").mkdir()
        if options.softmask:
            (tmp / "softmask").mkdir()
        contigs = []
        for index, stretch in enumerate(stretches):
            contigs.append(_write_shard(tmp, index, stretch, read_bases, vocab, options))
            log.info("tokenized %s (%d/%d): %d bp -> %d tokens", stretch.name, index + 1, len(stretches),
                     stretch.end - stretch.start, contigs[-1]["n_tokens"])
        shards = [ShardFile(tmp / entry["shard"]) for entry in contigs]
        split_shards = None
        if split_bases is not None:
            scratch = tmp / "split-reference"
            (scratch / "shards").mkdir(parents=True)
            plain = dataclasses.replace(options, softmask=False)
            split_shards = [ShardFile(scratch / _write_shard(scratch, i, stretch, split_bases, vocab, plain)["shard"])
                            for i, stretch in enumerate(stretches)]
        split, intervals = plan_splits(shards, options, source["path"], [entry["name"] for entry in contigs],
                                       split_shards)
        if split_bases is not None:
            shutil.rmtree(tmp / "split-reference")
        manifest = {
            "format_version": FORMAT_VERSION,
            "created_by": f"genoformer {__version__} tokenize",
            "source": source,
            "k": options.k,
            "stride": options.stride,
            "vocab": vocab.to_json(),
            "dtype": vocab.dtype.name,
            "contigs": contigs,
            "window": options.window,
            "window_stride": options.window_stride,
            "edge": options.edge,
            "max_n_fraction": options.max_n_fraction,
            "softmask": options.softmask,
            "split": split,
            "intervals": intervals,
            "windows": {name: sum(iv["windows"] for iv in intervals if iv["split"] == name) for name in SPLITS},
        }
        write_json(tmp / "manifest.json", manifest)
    log.info("wrote %s: %d sequences, %d tokens, windows %s; %s", out, len(contigs),
             sum(entry["n_tokens"] for entry in contigs), manifest["windows"], _split_text(split, intervals))
    return manifest


def _split_text(split: dict, intervals: list[dict]) -> str:
    """How the windows were split, in words: by whole sequences or by blocks, and how many of them (with a
    window) each split holds: the held-out groups that evaluation's intervals resample."""
    held = {name: sum(1 for iv in intervals if iv["split"] == name and iv["windows"]) for name in SPLITS}
    unit = "sequences" if split["method"] == "contig" else "blocks"
    how = "by whole sequence" if split["method"] == "contig" else f"by blocks of {split['block']} windows"
    return f"split {how}: " + ", ".join(f"{held[name]} {name}" for name in SPLITS) + f" {unit} with windows"


def _write_shard(folder: Path, index: int, stretch: Stretch, read_bases: BaseReader, vocab: KmerVocab,
                 options: TokenizeOptions) -> dict:
    """Stream one stretch into ``shards/<index>.npy`` (and ``softmask/<index>.npy``); its manifest entry.

    The ``.npy`` header is written first and the tokens appended chunk by chunk with plain writes (a memory
    map would keep every written page in the process's resident memory, growing with the contig).
    """
    k, stride = vocab.k, options.stride
    length_bp = stretch.end - stretch.start
    count = n_tokens(length_bp, k, stride)
    entry = {"name": stretch.name, "contig": stretch.contig, "start": stretch.start, "length_bp": length_bp,
             "n_tokens": count, "shard": f"shards/{index}.npy"}
    if options.softmask:
        entry["softmask"] = f"softmask/{index}.npy"
    with contextlib.ExitStack() as stack:
        token_file = stack.enter_context(open(folder / entry["shard"], "wb"))
        _write_npy_header(token_file, vocab.dtype, count)
        mask_file = None
        if options.softmask:
            mask_file = stack.enter_context(open(folder / entry["softmask"], "wb"))
            _write_npy_header(mask_file, np.dtype(bool), count)
        bar = stack.enter_context(tqdm(total=length_bp, unit="bp", unit_scale=True, desc=stretch.name,
                                       disable=None, leave=False))
        tokens = np.empty(min(count, CHUNK_TOKENS), dtype=vocab.dtype)  # reused for every chunk
        for first in range(0, count, CHUNK_TOKENS):
            last = min(count, first + CHUNK_TOKENS)
            start = stretch.start + first * stride
            end = stretch.start + (last - 1) * stride + k
            codes, softmask = read_bases(stretch.contig, start, end)
            encode_into(codes, vocab, stride, tokens[:last - first])
            tokens[:last - first].tofile(token_file)
            if mask_file is not None:
                kmer_any(softmask, k, stride).tofile(mask_file)
            bar.update((last - first) * stride)
    return entry


def _write_npy_header(handle, dtype: np.dtype, count: int) -> None:
    """Start a 1-D ``.npy`` file of ``count`` items; the data is then appended raw (C order)."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (count,)}
    np.lib.format.write_array_header_1_0(handle, header)


class ShardFile:
    """Slices of a 1-D ``.npy`` shard read with plain file reads: unlike a memory map, nothing read stays in
    the process's resident memory, so scanning a whole genome's shards keeps the footprint at one chunk."""

    def __init__(self, path: Path):
        header = np.load(path, mmap_mode="r")
        self.path, self.dtype, self.offset, self.size = path, header.dtype, header.offset, len(header)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, part: slice) -> np.ndarray:
        start, stop, step = part.indices(self.size)
        if step != 1:
            raise ValueError("ShardFile reads contiguous slices only")
        return np.fromfile(self.path, dtype=self.dtype, count=max(0, stop - start),
                           offset=self.offset + start * self.dtype.itemsize)


# ---------------------------------------------------------------------------------------------- windows


def interval_windows(tokens: "np.ndarray | ShardFile", start: int, end: int, *, window: int, window_stride: int,
                     pad_tail: bool, max_n_fraction: float) -> np.ndarray:
    """Windows inside ``tokens[start:end]`` as int64 rows ``(start, length)``.

    Windows start every ``window_stride`` tokens from ``start`` and must end by ``end``; with ``pad_tail``
    (the interval ends at its sequence's end and edge is "pad") the first window that would run past ``end``
    is kept shortened (to be padded) when it holds tokens no full window covers. Windows whose UNK count
    exceeds ``max_n_fraction`` of their length are left out.
    """
    grid = np.arange(start, end, window_stride, dtype=np.int64)
    fits = grid + window <= end
    starts = grid[fits]
    lengths = np.full(starts.size, window, dtype=np.int64)
    covered_to = starts[-1] + window if starts.size else start
    overhanging = grid[~fits]
    if pad_tail and overhanging.size and covered_to < end:
        starts = np.append(starts, overhanging[0])
        lengths = np.append(lengths, end - overhanging[0])
    unk = _unk_counts(tokens, starts, starts + lengths)
    keep = unk / lengths <= max_n_fraction  # not unk <= fraction * length: 0.29 * 100 is 28.999999999999996
    return np.stack([starts[keep], lengths[keep]], axis=1)


def _unk_counts(tokens: "np.ndarray | ShardFile", starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """UNK tokens in ``tokens[s:e]`` for each (s, e), reading the (memory-mapped) tokens once, in chunks."""
    points = np.concatenate([starts, ends])
    order = np.argsort(points, kind="stable")
    sorted_points = points[order]
    unk_before = np.zeros(points.size, dtype=np.int64)  # UNK count in tokens[lowest point:point]
    if points.size:
        lowest, highest = int(sorted_points[0]), int(sorted_points[-1])
        total = 0
        for chunk_start in range(lowest, highest, CHUNK_TOKENS):
            chunk_end = min(highest, chunk_start + CHUNK_TOKENS)
            unk_at = np.flatnonzero(tokens[chunk_start:chunk_end] == UNK) + chunk_start
            first, last = np.searchsorted(sorted_points, [chunk_start, chunk_end])
            unk_before[first:last] = total + np.searchsorted(unk_at, sorted_points[first:last])
            total += unk_at.size
        unk_before[np.searchsorted(sorted_points, highest):] = total
    at_point = np.empty_like(unk_before)
    at_point[order] = unk_before
    return at_point[starts.size:] - at_point[:starts.size]


# ---------------------------------------------------------------------------------------------- splits


def plan_splits(shards: list[ShardFile], options: TokenizeOptions, source: str, names: list[str],
                split_shards: list[ShardFile] | None = None) -> tuple[dict, list[dict]]:
    """The manifest's ``split`` description and ``intervals`` (each with its window count) for these shards.

    ``split_shards`` (default: ``shards``) are the tokens whose windows decide the split: a sample's consensus is
    split as its reference is, on the reference's tokens, and only its window counts come from its own.
    """
    deciding = shards if split_shards is None else split_shards

    def windows_in(index: int, start: int, end: int, max_n_fraction: float = options.max_n_fraction,
                   tokens: list[ShardFile] = shards) -> int:
        return len(interval_windows(tokens[index], start, end, window=options.window,
                                    window_stride=options.window_stride, max_n_fraction=max_n_fraction,
                                    pad_tail=options.edge == "pad" and end == len(tokens[index])))

    def n_filter_advice() -> str:
        """For an error that the N filter causes: how many windows it dropped, and what to change."""
        n_rich = sum(windows_in(i, 0, len(shard), 1.0) for i, shard in enumerate(shards)) - sum(whole)
        return (f"; {n_rich} of {n_rich + sum(whole)} windows hold more than {options.max_n_fraction:.0%} N (N "
                "bases, or bases a BAM does not cover deeply enough): raise --max-n-fraction, or lower --min-depth "
                "(or --min-mapq) for a BAM")

    whole = [windows_in(i, 0, len(shard)) for i, shard in enumerate(shards)]
    if sum(whole) == 0:
        without_n_filter = any(windows_in(i, 0, len(shard), 1.0) for i, shard in enumerate(shards))
        raise ConfigError(f"{source}: no window of {options.window} tokens passes (edge {options.edge}, "
                          f"max N fraction {options.max_n_fraction})"
                          f"{n_filter_advice() if without_n_filter else '; lower --window or use --edge pad'}")
    deciding_whole = whole if split_shards is None else [
        windows_in(i, 0, len(shard), tokens=deciding) for i, shard in enumerate(deciding)]
    method = options.split_by
    if method == "auto":
        method = "contig" if sum(count > 0 for count in deciding_whole) >= 3 else "blocks"
    fractions = dict(zip(SPLITS, options.fractions))
    needed = [name for name in SPLITS if fractions[name] > 0]
    if method == "contig":
        with_windows = sum(count > 0 for count in deciding_whole)
        if with_windows < len(needed):
            raise ConfigError(f"{source}: only {with_windows} sequence(s) have a window of {options.window} "
                              f"tokens, --split-by contig needs {len(needed)}; use --split-by blocks")
        assigned = _assign_by_contig(deciding_whole, fractions)
        intervals = [{"contig": names[i], "start": 0, "end": len(shards[i]), "split": assigned[i],
                      "windows": whole[i]} for i in range(len(shards))]
        _check_every_split_has_windows(intervals, needed, source, n_filter_advice)
        return {"method": "contig", "block": None, "gap": None, "fractions": fractions}, intervals

    block_tokens = (options.block - 1) * options.window_stride + options.window
    period = block_tokens + options.gap
    blocks = [(i, start, min(start + block_tokens, len(shard)))
              for i, shard in enumerate(shards) for start in range(0, len(shard), period)]
    intervals = [{"contig": names[i], "start": start, "end": end, "split": "train",
                  "windows": windows_in(i, start, end)} for i, start, end in blocks]
    eligible = [interval for interval, (i, start, end) in zip(intervals, blocks)
                if windows_in(i, start, end, tokens=deciding) > 0]
    targets = _block_targets(len(eligible), fractions)
    if targets is None:
        without_n_filter = sum(windows_in(i, start, end, 1.0) > 0 for i, start, end in blocks)
        advice = (n_filter_advice() if split_shards is None and _block_targets(without_n_filter, fractions)
                  is not None else "; lower --block or --window")
        raise ConfigError(f"{source}: only {len(eligible)} block(s) of {options.block} windows of "
                          f"{options.window} tokens have windows, splits {', '.join(needed)} need one each{advice}")
    for interval, name in zip(eligible, _interleave(targets)):
        interval["split"] = name
    _check_every_split_has_windows(intervals, needed, source, n_filter_advice, options.block)
    split = {"method": "blocks", "block": options.block, "gap": options.gap, "fractions": fractions}
    return split, intervals


def _check_every_split_has_windows(intervals: list[dict], needed: list[str], source: str,
                                   n_filter_advice: Callable[[], str], block: int | None = None) -> None:
    """ConfigError when a split with a non-zero fraction got no window that passes the N filter (possible only
    for a consensus split on its reference's windows, where the reference has bases and the sample N).

    With ``block`` (split by blocks of that many windows) and windows enough for every split, the error also
    advises smaller blocks: the sample's windows are there, only none lies in that split's few blocks.
    """
    empty = [name for name in needed if not any(iv["windows"] for iv in intervals if iv["split"] == name)]
    if empty:
        smaller_blocks = (f", or lower --block ({block} windows: smaller blocks put each split in more places)"
                          if block and block > 1 and sum(iv["windows"] for iv in intervals) >= len(needed) else "")
        raise ConfigError(f"{source}: the {empty[0]} split, which follows the reference's (so that a model "
                          "pretrained on the reference is never scored where it trained), has no window of this "
                          f"sample once N-rich windows are left out{n_filter_advice()}{smaller_blocks}")


def _assign_by_contig(window_counts: list[int], fractions: dict) -> list[str]:
    """Split of each sequence: largest first, each to the split furthest below its share of windows.

    When only as many sequences with windows remain as splits are still empty, those splits are filled first.
    """
    needed = [name for name in SPLITS if fractions[name] > 0]
    total = sum(window_counts)
    order = sorted(range(len(window_counts)), key=lambda i: (-window_counts[i], i))
    remaining = sum(count > 0 for count in window_counts)
    got = dict.fromkeys(SPLITS, 0)
    filled: set[str] = set()
    assigned = [""] * len(window_counts)
    for i in order:
        empty = [name for name in needed if name not in filled]
        choices = empty if window_counts[i] > 0 and len(empty) >= remaining else needed
        name = max(choices, key=lambda s: fractions[s] * total - got[s])
        assigned[i] = name
        got[name] += window_counts[i]
        if window_counts[i] > 0:
            filled.add(name)
            remaining -= 1
    return assigned


def _block_targets(n_blocks: int, fractions: dict) -> dict | None:
    """How many blocks each split gets (val/test at least one when their fraction is > 0); None if too few."""
    targets = {name: (max(1, round(fractions[name] * n_blocks)) if fractions[name] > 0 else 0)
               for name in SPLITS[1:]}
    targets["train"] = n_blocks - sum(targets.values())
    return targets if targets["train"] >= 1 else None


def _interleave(targets: dict) -> list[str]:
    """Split names, exactly ``targets[name]`` of each, spread evenly (the one furthest behind its pace next)."""
    n = sum(targets.values())
    got = dict.fromkeys(SPLITS, 0)
    order = []
    for position in range(1, n + 1):
        name = max((s for s in SPLITS if got[s] < targets[s]), key=lambda s: targets[s] * position / n - got[s])
        got[name] += 1
        order.append(name)
    return order


# ---------------------------------------------------------------------------------------------- reading


class Manifest:
    """A token dataset's validated ``manifest.json``; dict-like (``manifest["k"]``), with lazy shard access."""

    REQUIRED = ("format_version", "source", "k", "stride", "vocab", "dtype", "contigs", "window", "window_stride",
                "edge", "max_n_fraction", "split", "intervals", "windows")

    def __init__(self, root: Path, data: dict):
        self.root = root
        self.data = data
        self.vocab = KmerVocab.from_json(data["vocab"])
        self._shards: dict[int, np.ndarray] = {}

    @classmethod
    def load(cls, root: str | os.PathLike, check_shards: bool = True) -> "Manifest":
        """Read and check ``root/manifest.json`` and (unless ``check_shards`` is False) its shards' shapes;
        ``InputError`` on a broken dataset."""
        root = Path(root)
        path = root / "manifest.json"
        if not path.is_file():
            raise MissingFileError(f"{path}: not found; is {root} a token dataset from `genoformer tokenize`?")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: not valid JSON: {err}") from err
        try:
            _check_structure(data)
        except (KeyError, TypeError, ValueError, GenoformerError) as err:
            detail = f"missing key {err}" if isinstance(err, KeyError) else " ".join(str(err).split())
            raise InputError(f"{path}: broken token dataset manifest: {detail}") from err
        manifest = cls(root, data)
        for entry in data["contigs"] if check_shards else ():
            manifest._check_array(entry["shard"], entry["n_tokens"], manifest.vocab.dtype, entry["name"])
            if data.get("softmask"):
                manifest._check_array(entry["softmask"], entry["n_tokens"], np.dtype(bool), entry["name"])
        return manifest

    def _check_array(self, relative: str, count: int, dtype: np.dtype, name: str) -> None:
        path = self.root / relative
        if not path.is_file():
            raise MissingFileError(f"{path}: missing (sequence {name} of {self.root / 'manifest.json'})")
        try:
            array = np.load(path, mmap_mode="r")
        except (ValueError, OSError) as err:
            raise InputError(f"{path}: not a readable .npy file (sequence {name}): {err}") from err
        if array.shape != (count,) or array.dtype != dtype:
            raise InputError(f"{path}: holds {array.dtype}{list(array.shape)}, manifest says {dtype}[{count}] "
                             f"for sequence {name}")

    def __getitem__(self, key: str):
        return self.data[key]

    def shard(self, index: int) -> np.ndarray:
        """Tokens of sequence ``index``, memory-mapped read-only (opened on first use)."""
        if index not in self._shards:
            self._shards[index] = np.load(self.root / self.data["contigs"][index]["shard"], mmap_mode="r")
        return self._shards[index]

    def tokens(self, index: int, start: int, end: int) -> np.ndarray:
        """Tokens ``[start, end)`` of sequence ``index``, checked to be ids of the vocabulary: a damaged shard (a
        flipped bit, another dataset's file) is an ``InputError`` naming it and the token, not a crash in the
        model's embedding."""
        tokens = self.shard(index)[start:end]
        if tokens.size and int(tokens.max()) >= self.vocab.size:
            bad = start + int(np.flatnonzero(tokens >= self.vocab.size)[0])
            entry = self.data["contigs"][index]
            raise InputError(f"{self.root / entry['shard']}: token {bad} of sequence {entry['name']} is id "
                             f"{int(self.shard(index)[bad])}, not in the vocabulary of {self.vocab.size} tokens "
                             f"(k={self.vocab.k}); the shard is damaged: tokenize again")
        return tokens

    def softmask(self, index: int) -> np.ndarray:
        """Soft-mask track of sequence ``index`` (bool per token), memory-mapped; KeyError if not written."""
        return np.load(self.root / self.data["contigs"][index]["softmask"], mmap_mode="r")

    def windows(self, split: str, window: int | None = None, window_stride: int | None = None) -> np.ndarray:
        """Windows of ``split`` as int64 rows ``(sequence index, start token, length)``, in genome order.

        ``window`` and ``window_stride`` default to the dataset's; a different window is cut inside the same
        intervals (so splits stay disjoint) with the same edge rule and N filter.
        """
        if split not in SPLITS:
            raise ConfigError(f"split {split!r} must be one of {', '.join(SPLITS)}")
        window = self.data["window"] if window is None else window
        if window_stride is None:
            window_stride = self.data["window_stride"] if window == self.data["window"] else window
        index_of = {entry["name"]: i for i, entry in enumerate(self.data["contigs"])}
        rows = [np.empty((0, 3), dtype=np.int64)]
        for interval in self.data["intervals"]:
            if interval["split"] != split:
                continue
            index = index_of[interval["contig"]]
            shard = ShardFile(self.root / self.data["contigs"][index]["shard"])
            found = interval_windows(shard, interval["start"], interval["end"], window=window,
                                     window_stride=window_stride, max_n_fraction=self.data["max_n_fraction"],
                                     pad_tail=self.data["edge"] == "pad" and interval["end"] == len(shard))
            rows.append(np.column_stack([np.full(len(found), index, dtype=np.int64), found]))
        return np.concatenate(rows)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_shards": {}}  # memory maps are reopened, never pickled (DataLoader workers)


def _check_structure(data) -> None:
    """Raise ValueError/KeyError/TypeError (or a vocabulary error) naming what is wrong with a manifest dict."""
    if not isinstance(data, dict):
        raise ValueError("top level is not a JSON object")
    missing = [key for key in Manifest.REQUIRED if key not in data]
    if missing:
        raise ValueError(f"missing keys {', '.join(missing)}")
    if data["format_version"] != FORMAT_VERSION:
        raise ValueError(f"format_version {data['format_version']!r}, this genoformer reads {FORMAT_VERSION}")
    vocab = KmerVocab.from_json(data["vocab"])
    if data["k"] != vocab.k or data["dtype"] != vocab.dtype.name:
        raise ValueError(f"k {data['k']} / dtype {data['dtype']} disagree with the vocabulary")
    check_stride(data["stride"], vocab)
    if not 1 <= data["window"] <= MAX_WINDOW or data["window_stride"] < 1 or data["edge"] not in EDGES:
        raise ValueError("window, window_stride or edge out of range")
    names = [entry["name"] for entry in data["contigs"]]
    if len(set(names)) != len(names):
        raise ValueError("duplicate sequence names")
    length_of = {entry["name"]: entry["n_tokens"] for entry in data["contigs"]}
    for entry in data["contigs"]:
        if data.get("softmask") and "softmask" not in entry:
            raise ValueError(f"sequence {entry['name']}: soft-mask track not listed")
        if entry["n_tokens"] != n_tokens(entry["length_bp"], vocab.k, data["stride"]):
            raise ValueError(f"sequence {entry['name']}: n_tokens {entry['n_tokens']} does not fit "
                             f"length_bp {entry['length_bp']}")
    for interval in data["intervals"]:
        if interval["split"] not in SPLITS or interval["contig"] not in length_of \
                or not 0 <= interval["start"] <= interval["end"] <= length_of[interval["contig"]]:
            raise ValueError(f"interval {interval} is not inside a sequence or has an unknown split")


class TokenDataset:
    """The windows of one split as a map-style PyTorch dataset (``torch.utils.data.DataLoader`` takes it).

    ``dataset[i]`` is ``dict(input_ids=LongTensor[window], attention_mask=BoolTensor[window])``: the window's
    tokens, PAD after a padded contig end (mask False there). Shards are memory-mapped and read per item.
    ``window`` (and ``window_stride``, default: the window) re-cut the same split intervals at another length.
    ``epoch_order(epoch)`` is the seeded shuffled order of the items for that epoch, so a resumed run
    continues exactly where it stopped. torch is imported on first use, so ``genoformer tokenize`` starts fast.
    """

    def __init__(self, root: str | os.PathLike, split: str, window: int | None = None, seed: int = 0,
                 window_stride: int | None = None):
        self.manifest = Manifest.load(root)
        self.vocab = self.manifest.vocab
        self.split = split
        self.window = self.manifest["window"] if window is None else int(window)
        if not 1 <= self.window <= MAX_WINDOW:
            raise ConfigError(f"window {self.window} is out of range: must be 1 to {MAX_WINDOW} tokens")
        self.seed = seed
        self.windows = self.manifest.windows(split, self.window, window_stride)
        if len(self.windows) == 0:
            raise InputError(f"{self.manifest.root}: split '{split}' has no windows of {self.window} tokens")

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, item: int) -> dict:
        import torch

        index, start, length = (int(value) for value in self.windows[item])
        tokens = self.manifest.tokens(index, start, start + length)
        input_ids = torch.full((self.window,), PAD, dtype=torch.long)
        input_ids[:length] = torch.from_numpy(tokens.astype(np.int64))
        attention_mask = torch.zeros(self.window, dtype=torch.bool)
        attention_mask[:length] = True
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Item indices in the shuffled order of ``epoch``: a pure function of (seed, epoch)."""
        return np.random.default_rng([self.seed, epoch]).permutation(len(self))

    def region(self, item: int) -> tuple[str, int, int]:
        """Genome coordinates ``(contig, start, end)`` (0-based half-open) of the bases under window ``item``."""
        index, start, length = (int(value) for value in self.windows[item])
        entry = self.manifest["contigs"][index]
        first = entry["start"] + start * self.manifest["stride"]
        return entry["contig"], first, first + span_bp(length, self.vocab.k, self.manifest["stride"])
