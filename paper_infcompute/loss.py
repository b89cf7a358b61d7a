"""Next-token cross-entropy from the final hidden states, the vocabulary projection taken a chunk of
rows at a time:

    loss = sum_i -log softmax(W h_i)[y_i]        (summed over rows i; W the output head)

A chunk's logits, and their fp32 copy for the log-sum-exp, exist only while that chunk is computed:
the forward pass keeps none of them (activation checkpointing per chunk) and the backward pass
recomputes one chunk at a time. Peak extra memory is one chunk's [rows, vocab] instead of the whole
batch's. ``chunk`` <= 0 (or at least the number of rows) is the plain full-logits cross-entropy.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
import torch.utils.checkpoint


def _chunk_loss(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), targets, reduction="sum")


def linear_cross_entropy(hidden: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor,
                         chunk: int = 0) -> torch.Tensor:
    """The summed loss of ``hidden`` [..., d] against ``targets`` [...] through ``head``, in row chunks."""
    h, y = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
    if chunk <= 0 or chunk >= len(h):
        return _chunk_loss(head, h, y)
    step = partial(_chunk_loss, head)
    return sum(torch.utils.checkpoint.checkpoint(step, h[i:i + chunk], y[i:i + chunk], use_reentrant=False)
               for i in range(0, len(h), chunk))
