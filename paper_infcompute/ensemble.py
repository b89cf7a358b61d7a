"""Ensembles of K independently trained members (different init seed and data order).

logit: average the members' logits, then softmax (the paper's levanter EnsembleModel).
prob:  average the members' probabilities (log-mean-exp of log-probabilities).
Both are never worse than the members' mean NLL: -log softmax(mean z)[y] is convex in z, and
-log(mean p) <= mean(-log p) by Jensen's inequality.

``token_nll`` evaluates every prefix ensemble (members 1..K) on held-out windows batch by batch, so
the members' log-probabilities exist for one batch at a time on the models' device, never for the
whole held-out set ([n, T, V] would be hundreds of GB at the paper's vocabulary and context).
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


@torch.no_grad()
def token_nll(models: Sequence[torch.nn.Module], windows: torch.Tensor, methods: Sequence[str] = ("logit", "prob"),
              batch: int = 256) -> dict[str, torch.Tensor]:
    """Per-token NLL [K, n, T] (on the CPU) of the ensembles of the first 1..K ``models`` on ``windows``
    [n, T + 1] (inputs, then the next-token targets), by each combine rule. The members' log-probabilities
    are [K, batch, T, V] at a time, on the device of the models' parameters."""
    for m in models:
        m.eval()
    device = next(models[0].parameters()).device
    out: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    for i in range(0, len(windows), batch):
        rows = windows[i:i + batch].to(device)
        lps = [F.log_softmax(m(rows[:, :-1]).float(), dim=-1) for m in models]
        targets = rows[:, 1:, None]
        for method in methods:
            out[method].append(torch.stack([-combine(lps[:k], method).gather(-1, targets)[..., 0]
                                            for k in range(1, len(models) + 1)]).cpu())
    return {m: torch.cat(parts, dim=1) for m, parts in out.items()}
