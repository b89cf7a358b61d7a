"""Conditional denoising diffusion over fixed-size chunks (an F-step action or state sequence): the
cosine noise schedule of Nichol & Dhariwal (2021), epsilon prediction, DDIM sampling (eta 0) with fewer
steps than training, and the denoisers - an MLP over the flattened chunk (CPU scale) and a transformer
over the chunk's steps (the paper's size: tokens of width 256, 5 layers, 8 heads, MLP 2048)."""

from __future__ import annotations

import math

import torch
from torch import nn


def cosine_alphas_cumprod(steps: int, s: float = 0.008) -> torch.Tensor:
    """alpha_bar_t for t = 1..steps (Nichol & Dhariwal, Eq. 17), each beta clipped to 0.999."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    bar = f / f[0]
    betas = (1 - bar[1:] / bar[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0).float()


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (integer or fractional) diffusion steps, [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], -1)


class MLPDenoiser(nn.Module):
    """epsilon(x_t, t, cond) for x of shape [B, F, D]: a residual MLP over [flattened x_t, cond, time
    embedding] (``layers`` pre-LayerNorm blocks h + GELU(W LN(h))). The residual stream keeps a linear path from
    x_t to the output: at high noise epsilon is almost x_t itself, an identity over F x D dimensions that
    a plain GELU stack only approximates (its error, divided by sqrt(alpha_bar), wrecked the x0 estimates)."""

    def __init__(self, horizon: int, dim: int, cond_dim: int, hidden: int = 512, layers: int = 3, t_dim: int = 64):
        super().__init__()
        self.horizon, self.dim, self.t_dim = horizon, dim, t_dim
        self.t_mlp = nn.Sequential(nn.Linear(t_dim, t_dim), nn.GELU(), nn.Linear(t_dim, t_dim))
        self.inp = nn.Linear(horizon * dim + cond_dim + t_dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU())
                                    for _ in range(layers))
        self.out = nn.Linear(hidden, horizon * dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat([x.flatten(1), cond, self.t_mlp(time_embedding(t, self.t_dim))], -1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).view(x.shape)


class TransformerDenoiser(nn.Module):
    """epsilon(x_t, t, cond) with one token per chunk step plus a conditioning token and a time token,
    pre-LayerNorm encoder blocks with GELU, learned positional embeddings."""

    def __init__(self, horizon: int, dim: int, cond_dim: int, width: int = 256, layers: int = 5, heads: int = 8,
                 mlp: int = 2048, t_dim: int = 64):
        super().__init__()
        self.t_dim = t_dim
        self.inp = nn.Linear(dim, width)
        self.cond = nn.Linear(cond_dim, width)
        self.time = nn.Sequential(nn.Linear(t_dim, width), nn.GELU(), nn.Linear(width, width))
        self.pos = nn.Parameter(torch.zeros(1, horizon + 2, width))
        block = nn.TransformerEncoderLayer(width, heads, mlp, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        tokens = torch.cat([self.time(time_embedding(t, self.t_dim))[:, None], self.cond(cond)[:, None],
                            self.inp(x)], 1) + self.pos
        return self.out(self.blocks(tokens)[:, 2:])


def denoiser(kind: str, horizon: int, dim: int, cond_dim: int, **kwargs) -> nn.Module:
    if kind == "mlp":
        return MLPDenoiser(horizon, dim, cond_dim, **kwargs)
    if kind == "transformer":
        return TransformerDenoiser(horizon, dim, cond_dim, **kwargs)
    raise ValueError(f"denoiser must be mlp or transformer, got {kind!r}")


PREDICTIONS = ("epsilon", "v")


class Diffusion(nn.Module):
    """A conditional diffusion model of chunks x [B, F, D] given cond [B, C].

    ``prediction`` is what the network outputs and is regressed on: ``epsilon`` (the noise; Ho et al.
    2020) or ``v`` = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 (Salimans & Ho 2022). With v, eps is
    recovered as sqrt(1 - alpha_bar) x_t + sqrt(alpha_bar) v and x0 as sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v:
    neither divides by sqrt(alpha_bar), which the cosine schedule's last step makes ~5e-4 (100 steps), so the
    first DDIM step's x0 estimate is not the network's error magnified 2000-fold."""

    def __init__(self, net: nn.Module, train_steps: int = 100, sample_steps: int = 10, clip: float | None = None,
                 prediction: str = "epsilon"):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.net = net
        self.train_steps, self.sample_steps, self.clip, self.prediction = train_steps, sample_steps, clip, prediction
        self.register_buffer("bar", cosine_alphas_cumprod(train_steps))

    def loss(self, x0: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b = x0.shape[0]
        t = torch.randint(0, self.train_steps, (b,), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        bar = self.bar[t].view(b, *[1] * (x0.dim() - 1))
        xt = bar.sqrt() * x0 + (1 - bar).sqrt() * noise
        target = noise if self.prediction == "epsilon" else bar.sqrt() * noise - (1 - bar).sqrt() * x0
        return (self.net(xt, t, cond) - target).pow(2).mean()

    def estimates(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) estimated from x_t at the training step t (a 0-d tensor)."""
        bar = self.bar[t]
        out = self.net(x, t.expand(x.shape[0]), cond)
        if self.prediction == "v":
            return bar.sqrt() * x - (1 - bar).sqrt() * out, (1 - bar).sqrt() * x + bar.sqrt() * out
        return (x - (1 - bar).sqrt() * out) / bar.sqrt(), out

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, shape: tuple[int, int], generator: torch.Generator | None = None,
               steps: int | None = None) -> torch.Tensor:
        """DDIM (eta = 0) from pure noise over ``steps`` evenly spaced training steps; [B, *shape]."""
        b = cond.shape[0]
        steps = steps or self.sample_steps
        ts = torch.linspace(self.train_steps - 1, 0, steps, device=cond.device).round().long()
        x = torch.randn((b, *shape), device=cond.device, generator=generator)
        for i, t in enumerate(ts):
            bar = self.bar[t]
            x0, eps = self.estimates(x, t, cond)
            if self.clip is not None:
                x0 = x0.clamp(-self.clip, self.clip)
                eps = (x - bar.sqrt() * x0) / (1 - bar).sqrt()
            bar_next = self.bar[ts[i + 1]] if i + 1 < len(ts) else torch.ones((), device=cond.device)
            x = bar_next.sqrt() * x0 + (1 - bar_next).sqrt() * eps
        return x
