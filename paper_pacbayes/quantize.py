"""Learned quantization of the subspace weights (Lotfi et al. 2022).

1. Codebook init: L centroids at quantiles of w, refined by Lloyd (1-D k-means) steps.
2. Quantization-aware fine-tuning of (w, centroids) with a straight-through estimator:
   forward uses c[argmin_k |w - c_k|]; the gradient reaches w unchanged and centroid c_k
   receives the sum of the gradients of the weights assigned to it.
3. The final codebook is stored as float16, and the model is evaluated with exactly the
   fp16 values that the code describes.
"""

from __future__ import annotations

import torch


def assign(w: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    return torch.argmin((w[:, None] - centroids[None, :]).abs(), dim=1)


def init_codebook(w: torch.Tensor, levels: int, lloyd_steps: int = 30) -> torch.Tensor:
    w = w.detach()
    c = torch.quantile(w, torch.linspace(0, 1, levels + 2, device=w.device)[1:-1])
    for _ in range(lloyd_steps):
        idx = assign(w, c)
        for k in range(levels):
            members = w[idx == k]
            if members.numel():
                c[k] = members.mean()
    return c


def straight_through(w: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    idx = assign(w.detach(), centroids.detach())
    return centroids[idx] + (w - w.detach())


def to_fp16(centroids: torch.Tensor) -> torch.Tensor:
    return centroids.detach().half().float()
