"""Ensembles of K independently trained members (different init seed and data order).

logit: average the members' logits, then softmax (the paper's levanter EnsembleModel).
prob:  average the members' probabilities (log-mean-exp of log-probabilities).
Both are never worse than the members' mean NLL: -log softmax(mean z)[y] is convex in z, and
-log(mean p) <= mean(-log p) by Jensen's inequality.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def combine(member_logprobs: Sequence[torch.Tensor], method: str) -> torch.Tensor:
    """Ensemble log-probabilities from the members' log-probabilities [n, T, V]."""
    stack = torch.stack(list(member_logprobs))
    if method == "logit":
        # log-probs are logits up to a per-position constant, which the softmax removes
        return F.log_softmax(stack.mean(0), dim=-1)
    if method == "prob":
        return torch.logsumexp(stack, dim=0) - math.log(len(member_logprobs))
    raise ValueError(f"unknown ensemble combine method {method!r}; use logit or prob")
