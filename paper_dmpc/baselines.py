"""Baselines on the same data: behaviour cloning, an MBOP-style planner (Argenson & Dulac-Arnold 2021:
an ensemble of one-step MLP dynamics models, a behaviour-cloning prior and a value, trajectories scored
and averaged MPPI-style), single-step dynamics rolled out autoregressively, and the paper's Gaussian-MLP
proposal ablation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from paper_dmpc.models import Chunks, ModelConfig, Normalizer, Objective


def mlp(inp: int, out: int, hidden: int, layers: int) -> nn.Sequential:
    dims = [inp] + [hidden] * layers
    blocks = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        blocks += [nn.Linear(a, b), nn.GELU()]
    return nn.Sequential(*blocks, nn.Linear(hidden, out))


class BCPolicy(nn.Module):
    """pi(s_t) -> (a_t, ..., a_{t+k-1}): an MLP regressed (tanh-bounded) on ``chunk`` = k actions. With k = 1
    on the dataset's actions it is behaviour cloning (as a chunk policy it repeats a_t); with k = the
    replanning interval on D-MPC's executed chunks it is the paper's distilled policy."""

    def __init__(self, cfg: ModelConfig, s_dim: int, a_dim: int, norm: Normalizer, chunk: int = 1):
        super().__init__()
        self.norm, self.horizon, self.chunk, self.a_dim = norm, cfg.horizon, chunk, a_dim
        self.net = mlp(s_dim, chunk * a_dim, cfg.hidden, cfg.layers)

    def chunk_act(self, s: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(self.norm.norm(s, "s"))).view(-1, self.chunk, self.a_dim)

    def act(self, s: torch.Tensor) -> torch.Tensor:
        """The first action, [B, A]."""
        return self.chunk_act(s)[:, 0]

    def loss(self, s, a, fut, v, gen=None):
        return (self.chunk_act(s) - a[:, :self.chunk]).pow(2).mean()

    @torch.no_grad()
    def sample(self, s: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """[B, F, A]: the k actions, the last held to the horizon."""
        a = self.chunk_act(s)
        return torch.cat([a, a[:, -1:].expand(-1, self.horizon - self.chunk, -1)], 1) if self.chunk < self.horizon else a


class GaussianProposal(nn.Module):
    """The ablation's proposal: a diagonal Gaussian over the normalised F-step action chunk, mean and
    log-std from an MLP of s_t, trained by maximum likelihood."""

    def __init__(self, cfg: ModelConfig, s_dim: int, a_dim: int, norm: Normalizer):
        super().__init__()
        self.norm, self.shape = norm, (cfg.horizon, a_dim)
        self.net = mlp(s_dim, 2 * cfg.horizon * a_dim, cfg.hidden, cfg.layers)

    def _dist(self, s):
        mean, log_std = self.net(self.norm.norm(s, "s")).chunk(2, -1)
        return mean.view(-1, *self.shape), log_std.clamp(-5, 2).view(-1, *self.shape)

    def loss(self, s, a, fut, v, gen=None):
        mean, log_std = self._dist(s)
        z = (self.norm.norm(a, "a") - mean) / log_std.exp()
        return (0.5 * z.pow(2) + log_std).mean()

    @torch.no_grad()
    def sample(self, s: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        mean, log_std = self._dist(s)
        x = mean + log_std.exp() * torch.randn(mean.shape, generator=gen, device=mean.device)
        return self.norm.unnorm(x, "a").clamp(-1, 1)


class OneStepEnsemble(nn.Module):
    """K one-step MLP dynamics models, each predicting the normalised state change from (s_t, a_t),
    trained on the same batches from different initialisations (MBOP's ensemble); trained together
    (the loss is the members' mean) or apart (``split``, then ``join``)."""

    def __init__(self, cfg: ModelConfig, s_dim: int, a_dim: int, norm: Normalizer,
                 members: int | list[nn.Module] = 5):
        super().__init__()
        self.norm, self.horizon, self._dims = norm, cfg.horizon, (cfg, s_dim, a_dim)
        self.members = nn.ModuleList(members if isinstance(members, list) else
                                     (mlp(s_dim + a_dim, s_dim, cfg.hidden, cfg.layers) for _ in range(members)))

    def split(self) -> list[OneStepEnsemble]:
        """One one-member ensemble per member, to be trained apart (MBOP trains its members
        independently); ``join`` puts the trained members back together."""
        return [OneStepEnsemble(*self._dims, self.norm, [m]) for m in self.members]

    @staticmethod
    def join(parts: list[OneStepEnsemble]) -> OneStepEnsemble:
        return OneStepEnsemble(*parts[0]._dims, parts[0].norm, [m for p in parts for m in p.members])

    def step(self, s: torch.Tensor, a: torch.Tensor, k: torch.Tensor | int) -> torch.Tensor:
        """s_{t+1} for each row with member k (an int, or one index per row)."""
        x = torch.cat([self.norm.norm(s, "s"), self.norm.norm(a, "a")], -1)
        if isinstance(k, int):
            delta = self.members[k](x)
        else:  # each member on its own rows only
            delta = x.new_empty(s.shape)
            for j, m in enumerate(self.members):
                rows = k == j
                delta[rows] = m(x[rows]).to(delta.dtype)  # (bf16 under autocast)
        return s + delta * self.norm.s_std

    def loss(self, s, a, fut, v, gen=None):
        target = (fut[:, 0] - s) / self.norm.s_std
        x = torch.cat([self.norm.norm(s, "s"), self.norm.norm(a[:, 0], "a")], -1)
        return sum((m(x) - target).pow(2).mean() for m in self.members) / len(self.members)

    @torch.no_grad()
    def sample(self, s: torch.Tensor, a: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """The F-step rollout of a chunk, each row with one member (row index mod K)."""
        k = torch.arange(len(s), device=s.device) % len(self.members)
        out = []
        for i in range(a.shape[1]):
            s = self.step(s, a[:, i], k)
            out.append(s)
        return torch.stack(out, 1)


class SingleStepDynamics(nn.Module):
    """Single-step dynamics (the ablation and the compounding-error comparison): any model of
    p(s_{t+1} | s_t, a_t) with a one-step ``.sample(s, a[:, :1])`` rolled out over the chunk."""

    def __init__(self, one_step):
        super().__init__()
        self.one_step = one_step

    @torch.no_grad()
    def sample(self, s: torch.Tensor, a: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        out = []
        for i in range(a.shape[1]):
            s = self.one_step.sample(s, a[:, i:i + 1], gen)[:, 0]
            out.append(s)
        return torch.stack(out, 1)


@dataclass
class Repeated:
    """The single-step-proposal ablation: a one-step proposal's action held for the whole chunk."""

    one_step: object  # .sample(s, gen) -> [B, 1, A]
    horizon: int

    def sample(self, s: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        return self.one_step.sample(s, gen).expand(-1, self.horizon, -1).contiguous()


@dataclass
class MBOP:
    """MBOP-Trajopt, single pass: N trajectories from the BC prior plus Gaussian noise, rolled through
    the one-step ensemble (trajectory n uses member n mod K), scored by the objective; the executed chunk
    is the exp(kappa * normalised score)-weighted average of the candidates."""

    prior: BCPolicy
    ensemble: OneStepEnsemble
    objective: Objective
    samples: int = 64
    noise: float = 0.2
    kappa: float = 3.0

    @torch.no_grad()
    def __call__(self, s: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        b, n = s.shape[0], self.samples
        cur = s.repeat_interleave(n, 0)
        k = torch.arange(len(cur), device=cur.device) % len(self.ensemble.members)
        acts, futs = [], []
        for _ in range(self.ensemble.horizon):
            a = (self.prior.act(cur) + self.noise * torch.randn(cur.shape[0], self.prior.a_dim, generator=gen,
                                                                 device=cur.device)).clamp(-1, 1)
            cur = self.ensemble.step(cur, a, k)
            acts.append(a)
            futs.append(cur)
        a, fut = torch.stack(acts, 1), torch.stack(futs, 1)
        score = self.objective(s.repeat_interleave(n, 0), a, fut).view(b, n)
        z = (score - score.mean(1, keepdim=True)) / (score.std(1, keepdim=True) + 1e-6)
        w = torch.softmax(self.kappa * z, 1)
        return (w[:, :, None, None] * a.view(b, n, *a.shape[1:])).sum(1)


def chunks_for(chunks: Chunks, horizon: int) -> Chunks:
    """The first ``horizon`` steps of every chunk (one-step models train on horizon 1)."""
    return Chunks(chunks.states, chunks.actions[:, :horizon], chunks.futures[:, :horizon], chunks.values)
