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
    """epsilon(x_t, t, cond) for x of shape [B, F, D]: an MLP over [flattened x_t, cond, time embedding]."""

    def __init__(self, horizon: int, dim: int, cond_dim: int, hidden: int = 512, layers: int = 3, t_dim: int = 64):
        super().__init__()
        self.horizon, self.dim, self.t_dim = horizon, dim, t_dim
        self.t_mlp = nn.Sequential(nn.Linear(t_dim, t_dim), nn.GELU(), nn.Linear(t_dim, t_dim))
        width = [horizon * dim + cond_dim + t_dim] + [hidden] * layers
        blocks = []
        for a, b in zip(width[:-1], width[1:], strict=True):
            blocks += [nn.Linear(a, b), nn.GELU()]
        self.body = nn.Sequential(*blocks, nn.Linear(hidden, horizon * dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x.flatten(1), cond, self.t_mlp(time_embedding(t, self.t_dim))], -1)
        return self.body(h).view(x.shape)


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


class Diffusion(nn.Module):
    """A conditional diffusion model of chunks x [B, F, D] given cond [B, C]."""

    def __init__(self, net: nn.Module, train_steps: int = 100, sample_steps: int = 10, clip: float | None = None):
        super().__init__()
        self.net = net
        self.train_steps, self.sample_steps, self.clip = train_steps, sample_steps, clip
        self.register_buffer("bar", cosine_alphas_cumprod(train_steps))

    def loss(self, x0: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b = x0.shape[0]
        t = torch.randint(0, self.train_steps, (b,), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        bar = self.bar[t].view(b, *[1] * (x0.dim() - 1))
        xt = bar.sqrt() * x0 + (1 - bar).sqrt() * noise
        return (self.net(xt, t, cond) - noise).pow(2).mean()

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
            eps = self.net(x, t.expand(b), cond)
            x0 = (x - (1 - bar).sqrt() * eps) / bar.sqrt()
            if self.clip is not None:
                x0 = x0.clamp(-self.clip, self.clip)
                eps = (x - bar.sqrt() * x0) / (1 - bar).sqrt()
            bar_next = self.bar[ts[i + 1]] if i + 1 < len(ts) else torch.ones((), device=cond.device)
            x = bar_next.sqrt() * x0 + (1 - bar_next).sqrt() * eps
        return x
