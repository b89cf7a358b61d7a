"""SIGReg: the sketched isotropic Gaussian regulariser (LeJEPA; LeWorldModel's only anti-collapse
term), and the VICReg-style alternative used as an ablation.

For embeddings Z [N, D] (one timestep, N = batch): M random unit directions u_m (redrawn at every
call), projections h = Z u_m, and the Epps-Pulley statistic of each projection against N(0, 1),

    EP(h) = N * integral_{-3}^{3} |phi_h(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt,
    phi_h(t) = mean_j exp(i t h_j),  |.|^2 = (mean cos(t h) - exp(-t^2/2))^2 + (mean sin(t h))^2,

by the trapezoid rule on 17 knots over [0, 3] doubled by symmetry (weights 2*dt inside and dt at
both ends, dt = 3/16), each times the window exp(-t^2/2). SIGReg is the mean over directions and
timesteps. The statistic scales with N: near O(1) for Gaussian samples, O(N) for collapsed ones.
"""

from __future__ import annotations

import torch

KNOTS = 17
T_MAX = 3.0


def knots_and_weights(n: int = KNOTS, t_max: float = T_MAX, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Quadrature knots on [0, t_max] and weights (trapezoid, doubled for [-t_max, t_max], times
    the Gaussian window)."""
    t = torch.linspace(0, t_max, n, device=device)
    dt = t_max / (n - 1)
    w = torch.full((n,), 2 * dt, device=device)
    w[0] = w[-1] = dt
    return t, w * torch.exp(-t ** 2 / 2)


def epps_pulley(h: torch.Tensor, n_knots: int = KNOTS, t_max: float = T_MAX) -> torch.Tensor:
    """The statistic of each column of h [N, M] (samples in rows): [M]."""
    t, w = knots_and_weights(n_knots, t_max, h.device)
    th = h[..., None] * t  # [N, M, K]
    err = (th.cos().mean(0) - torch.exp(-t ** 2 / 2)) ** 2 + th.sin().mean(0) ** 2  # [M, K]
    return h.shape[0] * (err * w).sum(-1)


def sigreg(z: torch.Tensor, n_directions: int = 1024, generator: torch.Generator | None = None,
           n_knots: int = KNOTS, t_max: float = T_MAX) -> torch.Tensor:
    """z [T, N, D] (or [N, D]): the mean Epps-Pulley statistic over M fresh random unit directions
    and over timesteps, each timestep's batch a sample."""
    if z.dim() == 2:
        z = z[None]
    a = torch.randn(z.shape[-1], n_directions, generator=generator, device=z.device, dtype=z.dtype)
    a = a / a.norm(dim=0, keepdim=True)
    h = z @ a  # [T, N, M]
    return torch.stack([epps_pulley(h_t, n_knots, t_max) for h_t in h]).mean()


def vicreg_terms(z: torch.Tensor, eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """VICReg's variance hinge (std of every dimension pushed to >= 1) and covariance penalty (the
    off-diagonal covariance squared, over D) on z [N, D]: the regulariser PLDM builds on."""
    z = z - z.mean(0)
    std = torch.sqrt(z.var(0) + eps)
    variance = torch.relu(1 - std).mean()
    cov = (z.T @ z) / (z.shape[0] - 1)
    off = cov - torch.diag(torch.diag(cov))
    return variance, off.pow(2).sum() / z.shape[-1]


def vicreg(z: torch.Tensor, cov_weight: float = 0.04) -> torch.Tensor:
    """z [T, N, D]: mean over timesteps of variance + cov_weight x covariance."""
    if z.dim() == 2:
        z = z[None]
    total = []
    for z_t in z:
        v, c = vicreg_terms(z_t)
        total.append(v + cov_weight * c)
    return torch.stack(total).mean()
