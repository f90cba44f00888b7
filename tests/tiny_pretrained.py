"""A tiny masked-LM pretrained in-process on real sequence, for the downstream-task tests.

It trains on C. diphtheriae 1.0-2.4 Mbp (the tests score genes before 1.0 Mbp, which it never saw) with the
pretraining code's span masking, then is saved as a run directory (weights, vocab.json, trainer_state.json) that
the CLI loads like any checkpoint. Training takes ~10 s on one core, once per test process: tests that use it
share the ``tiny_run`` xdist group so they land in the same process.
"""

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genoformer.io.fasta import Reference
from genoformer.model import ReformerConfig, ReformerForMaskedLM, save_pretrained
from genoformer.tokenize.encode import encode
from genoformer.tokenize.vocab import KmerVocab
from genoformer.train.masking import IGNORE_INDEX, SpanMasker

CDIPH = Path(__file__).resolve().parents[1] / "resources" / "cdiph" / "NZ_LN831026.1.fa.gz"
CONTIG = "NZ_LN831026.1"
TRAIN_START, TRAIN_END = 1_000_000, 2_400_000
K, STRIDE = 3, 1


def pretrain_tiny(steps: int = 100, seed: int = 0) -> ReformerForMaskedLM:
    """A 2-layer, 32-dim Reformer trained ``steps`` steps (batch 16 x 128 tokens) on the training stretch."""
    torch.manual_seed(seed)
    vocab = KmerVocab(K)
    with Reference(CDIPH) as reference:
        tokens = torch.from_numpy(encode(reference.codes(CONTIG, TRAIN_START, TRAIN_END)[0], vocab, STRIDE)
                                  .astype(np.int64))
    config = ReformerConfig(vocab_size=vocab.size, dim=32, depth=2, heads=2, n_hashes=1, bucket_size=32,
                            max_seq_len=8192)
    model = ReformerForMaskedLM(config)
    masker = SpanMasker(K, STRIDE, vocab.size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, tokens.numel() - 128, (16,), generator=generator)
        batch = masker(torch.stack([tokens[s:s + 128] for s in starts]), None, generator)
        logits = model(batch.input_ids)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), ignore_index=IGNORE_INDEX)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def save_run(model, directory: Path, k: int = K, stride: int = STRIDE) -> Path:
    """Write ``model`` as a run directory the CLI loads (config, weights, vocab.json, trainer_state.json)."""
    directory.mkdir(parents=True, exist_ok=True)
    save_pretrained(model, directory)
    (directory / "vocab.json").write_text(json.dumps(KmerVocab(k).to_json()))
    (directory / "trainer_state.json").write_text(json.dumps({"data": {"k": k, "stride": stride}}))
    return directory


@functools.lru_cache(maxsize=None)
def _trained_run(base: str) -> Path:
    return save_run(pretrain_tiny(), Path(base) / "tiny_run")


@pytest.fixture()
def tiny_run(tmp_path_factory) -> Path:
    """The tiny pretrained run directory (trained once per test process)."""
    return _trained_run(str(tmp_path_factory.getbasetemp()))
