"""Unconditional sampling at temperature 1 from a model or a logit-averaged ensemble (the
paper's distillation teacher). Each stream starts from one byte drawn from the training
unigram distribution (byte models have no BOS token) and is extended token by token to
``seq_len + 1`` tokens (one training window) with a key/value cache per member."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def sample(models: Sequence[torch.nn.Module], n_tokens: int, seq_len: int, unigram: np.ndarray, seed: int,
           streams: int = 512, temperature: float = 1.0, device: str = "cpu", progress=None) -> np.ndarray:
    """About ``n_tokens`` sampled tokens, as one array of concatenated streams (models on ``device``)."""
    for m in models:
        m.eval()
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
            logits = torch.stack([m(nxt, c)[:, -1].float() for m, c in zip(models, caches, strict=True)]).mean(0)
            nxt = torch.multinomial(F.softmax(logits / temperature, dim=-1), 1, generator=gen)
            x = torch.cat([x, nxt], dim=1)
        out.append(x.reshape(-1).cpu().numpy())
    return np.concatenate(out)[:n_tokens]
