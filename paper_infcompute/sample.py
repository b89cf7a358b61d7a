"""Unconditional sampling at temperature 1 from a model or a logit-averaged ensemble (the
paper's distillation teacher). Each stream starts from one byte drawn from the training
unigram distribution (byte models have no BOS token) and is extended token by token,
recomputing over the last ``seq_len`` tokens (small models: no KV cache needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def sample(models: Sequence[torch.nn.Module], n_tokens: int, seq_len: int, unigram: np.ndarray, seed: int,
           streams: int = 256, temperature: float = 1.0) -> np.ndarray:
    """About ``n_tokens`` sampled tokens, as one array of concatenated streams."""
    for m in models:
        m.eval()
    gen = torch.Generator().manual_seed(seed)
    probs = torch.as_tensor(unigram, dtype=torch.float64)
    length = seq_len + 1
    out = []
    total = 0
    while total < n_tokens:
        x = torch.multinomial(probs, streams, replacement=True, generator=gen)[:, None]
        while x.shape[1] < length:
            ctx = x[:, -seq_len:]
            logits = torch.stack([m(ctx)[:, -1].float() for m in models]).mean(0)
            nxt = torch.multinomial(F.softmax(logits / temperature, dim=-1), 1, generator=gen)
            x = torch.cat([x, nxt], dim=1)
        out.append(x.reshape(-1).numpy())
        total += x.numel()
    return np.concatenate(out)[:n_tokens]
