"""Unconditional sampling at temperature 1 from a model or a logit-averaged ensemble (the
paper's distillation teacher). Each stream starts from one byte drawn from the training
unigram distribution (byte models have no BOS token) and is extended token by token to
``seq_len + 1`` tokens (one training window) with a key/value cache per member.

Samples are stored as shards (``save_shard``: one ``.npy`` file each, written by its own job) and an
index of the finished shards with their checksums (``finish``); ``load_samples`` memory-maps them."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from paper_infcompute.corpus import file_sha256


@torch.no_grad()
def sample(models: Sequence[torch.nn.Module], n_tokens: int, seq_len: int, unigram: np.ndarray, seed: int,
           streams: int = 512, temperature: float = 1.0, device: str = "cpu", progress=None,
           precision: str = "fp32") -> np.ndarray:
    """About ``n_tokens`` sampled tokens, as one array of concatenated streams (models on ``device``;
    ``precision`` bf16: the forward passes, and so the key/value caches, in bfloat16)."""
    for m in models:
        m.eval()
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")
    gen = torch.Generator(device=device).manual_seed(seed)
    probs = torch.as_tensor(unigram, dtype=torch.float64, device=device)
    per_batch = streams * (seq_len + 1)
    batches = range(-(-n_tokens // per_batch))
    out = []
    for _ in batches if progress is None else progress(batches, "sampling teacher"):
        x = torch.multinomial(probs, streams, replacement=True, generator=gen)[:, None]
        caches = [m.new_caches() for m in models]
        nxt = x
        while x.shape[1] < seq_len + 1:
            # logit averaging (the paper's ensemble); a single model is an ensemble of one
            with autocast:
                logits = torch.stack([m(nxt, c)[:, -1].float() for m, c in zip(models, caches, strict=True)]).mean(0)
            nxt = torch.multinomial(F.softmax(logits / temperature, dim=-1), 1, generator=gen)
            x = torch.cat([x, nxt], dim=1)
        out.append(x.reshape(-1).cpu().numpy())
    return np.concatenate(out)[:n_tokens]


def shard_dir(cache: Path, key: str) -> Path:
    return Path(cache) / f"synth-{key}"


def save_shard(cache: Path, key: str, index: int, tokens: np.ndarray, vocab: int) -> dict:
    """Write one shard (unsigned ids, as narrow as the vocabulary allows) and return its record."""
    folder = shard_dir(cache, key)
    folder.mkdir(parents=True, exist_ok=True)
    ids = tokens.astype(np.uint16 if vocab <= 1 << 16 else np.uint32)
    name = f"shard-{index:05d}.npy"
    tmp = folder / f".{name}.{os.getpid()}.part"
    with open(tmp, "wb") as fh:
        np.save(fh, ids)
    tmp.replace(folder / name)
    return {"name": name, "count": len(ids), "sha256": file_sha256(folder / name)}


def finish(cache: Path, key: str, shards: list[dict]) -> None:
    """Record the finished shards, in order: the samples exist once this index does."""
    folder = shard_dir(cache, key)
    tmp = folder / f".index.json.{os.getpid()}.part"
    tmp.write_text(json.dumps({"shards": shards}, indent=1))
    tmp.replace(folder / "index.json")


def load_samples(cache: Path, key: str) -> list[np.ndarray] | None:
    """The samples under ``key``, each shard memory-mapped; None when there are none yet, or a shard is
    missing or does not match its checksum (said in one line: they are sampled again)."""
    folder = shard_dir(cache, key)
    try:
        shards = json.loads((folder / "index.json").read_text())["shards"]
    except (OSError, ValueError, KeyError):
        return None
    for shard in shards:
        path = folder / shard["name"]
        if not path.is_file() or file_sha256(path) != shard["sha256"]:
            print(f"teacher samples {path} are missing or do not match their checksum; sampling them again",
                  file=sys.stderr)
            return None
    return [np.load(folder / shard["name"], mmap_mode="r", allow_pickle=False) for shard in shards]
