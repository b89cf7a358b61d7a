"""D-MPC's learned components and how they are trained from an offline D4RL-style dataset.

- ``Chunks``: every start t of every episode with the F-step action chunk a_{t:t+F}, the state chunk
  s_{t+1:t+F+1} and the discounted reward-to-go from t to the end of the episode, with a termination
  penalty (-100) on the terminal step (Diffuser's value targets). A window that runs past a terminal
  continues in the absorbing terminal state with zero actions; one that would run past a timeout is
  left out (the episode goes on beyond the data).
- ``Normalizer``: per-dimension mean / std of states and actions (Diffuser's Gaussian normaliser).
- The action proposal rho(a_{t:t+F} | s_t) and the dynamics p(s_{t+1:t+F+1} | s_t, a_{t:t+F}) are
  conditional diffusion models over whole chunks; the objective J(s_t, a, s) regresses the
  reward-to-go. Training: AdamW with cosine decay, EMA weights for evaluation.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from paper_dmpc.config import ModelConfig
from paper_dmpc.data import episodes
from paper_dmpc.diffusion import Diffusion, denoiser

TERMINATION_PENALTY = -100.0


@dataclass
class Chunks:
    states: np.ndarray  # [N, S] s_t
    actions: np.ndarray  # [N, F, A] a_{t:t+F}
    futures: np.ndarray  # [N, F, S] s_{t+1:t+F+1}
    values: np.ndarray  # [N] discounted reward-to-go from t, termination penalty included

    @classmethod
    def build(cls, data: dict[str, np.ndarray], horizon: int, gamma: float = 0.99,
              penalty: float = TERMINATION_PENALTY) -> Chunks:
        obs, act, nxt = data["observations"], data["actions"], data["next_observations"]
        rew = data["rewards"].astype(np.float64)
        out = {"states": [], "actions": [], "futures": [], "values": []}
        for ep in episodes(data):
            n = ep.stop - ep.start
            terminal = bool(data["terminals"][ep.stop - 1])
            r = rew[ep].copy()
            if terminal:
                r[-1] += penalty
            values = np.zeros(n)
            acc = 0.0
            for i in range(n - 1, -1, -1):
                acc = r[i] + gamma * acc
                values[i] = acc
            last = n if terminal else n - horizon + 1  # past a timeout the data end, not the episode
            if last <= 0:
                continue
            pad = horizon - 1 if terminal else 0
            a = np.concatenate([act[ep], np.zeros((pad, act.shape[1]), act.dtype)])
            s = np.concatenate([nxt[ep], np.repeat(nxt[ep][-1:], pad, 0)])
            idx = np.arange(last)[:, None] + np.arange(horizon)[None]
            out["states"].append(obs[ep][:last])
            out["actions"].append(a[idx])
            out["futures"].append(s[idx])
            out["values"].append(values[:last])
        if not out["states"]:
            raise ValueError(f"no episode yields an F = {horizon} chunk")
        return cls(*(np.concatenate(out[k]).astype(np.float32) for k in ("states", "actions", "futures", "values")))

    def __len__(self) -> int:
        return len(self.states)

    def subset(self, n: int, rng: np.random.Generator) -> Chunks:
        """At most ``n`` of these chunks, drawn without replacement."""
        idx = rng.choice(len(self), min(n, len(self)), replace=False)
        return Chunks(*(getattr(self, k)[idx] for k in ("states", "actions", "futures", "values")))

    def mixed_with(self, other: Chunks, rng: np.random.Generator) -> Chunks:
        """These chunks plus as many drawn at random from ``other`` (fine-tuning on new data while
        replaying the old, so that the model does not forget the states the new data lack)."""
        old = other.subset(len(self), rng)
        return Chunks(*(np.concatenate([getattr(self, k), getattr(old, k)])
                        for k in ("states", "actions", "futures", "values")))


def rollout_error(dynamics, s0: torch.Tensor, a: torch.Tensor, fut: torch.Tensor, s_std: torch.Tensor,
                  gen: torch.Generator | None = None) -> torch.Tensor:
    """Open-loop state RMSE (per-dimension std units) per step ahead, [F]: ``dynamics``' sampled futures
    from s0 [B, S] under the true actions a [B, F, A], against the true futures [B, F, S]."""
    return ((dynamics.sample(s0, a, gen) - fut) / s_std).pow(2).mean(-1).mean(0).sqrt()


class Normalizer(nn.Module):
    """Per-dimension standardisation of states and actions (and of the value targets)."""

    def __init__(self, chunks: Chunks):
        super().__init__()
        s = np.concatenate([chunks.states, chunks.futures.reshape(-1, chunks.states.shape[1])])
        a = chunks.actions.reshape(-1, chunks.actions.shape[-1])
        for name, arr in (("s", s), ("a", a), ("v", chunks.values[:, None])):
            self.register_buffer(f"{name}_mean", torch.tensor(arr.mean(0), dtype=torch.float32))
            self.register_buffer(f"{name}_std", torch.tensor(arr.std(0) + 1e-6, dtype=torch.float32))

    def norm(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        return (x - getattr(self, f"{kind}_mean")) / getattr(self, f"{kind}_std")

    def unnorm(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        return x * getattr(self, f"{kind}_std") + getattr(self, f"{kind}_mean")


def _net(cfg: ModelConfig, dim: int, cond: int) -> nn.Module:
    kw = {"hidden": cfg.hidden, "layers": cfg.layers} if cfg.denoiser == "mlp" else {}
    return denoiser(cfg.denoiser, cfg.horizon, dim, cond, **kw)


class ActionProposal(nn.Module):
    """rho(a_{t:t+F} | s_t): diffusion over the normalised action chunk, sampled actions clipped to [-1, 1]."""

    def __init__(self, cfg: ModelConfig, s_dim: int, a_dim: int, norm: Normalizer):
        super().__init__()
        self.cfg, self.norm, self.a_dim = cfg, norm, a_dim
        self.diffusion = Diffusion(_net(cfg, a_dim, s_dim), cfg.train_steps, cfg.proposal_steps, cfg.clip,
                                   cfg.prediction)

    def loss(self, s, a, fut, v, gen=None):
        return self.diffusion.loss(self.norm.norm(a, "a"), self.norm.norm(s, "s"), gen)

    def sample(self, s: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        x = self.diffusion.sample(self.norm.norm(s, "s"), (self.cfg.horizon, self.a_dim), gen)
        return self.norm.unnorm(x, "a").clamp(-1, 1)


class Dynamics(nn.Module):
    """p(s_{t+1:t+F+1} | s_t, a_{t:t+F}): diffusion over the normalised future-state chunk, all F steps jointly."""

    def __init__(self, cfg: ModelConfig, s_dim: int, a_dim: int, norm: Normalizer):
        super().__init__()
        self.cfg, self.norm, self.s_dim = cfg, norm, s_dim
        self.diffusion = Diffusion(_net(cfg, s_dim, s_dim + cfg.horizon * a_dim), cfg.train_steps, cfg.dynamics_steps,
                                   cfg.clip, cfg.prediction)

    def _cond(self, s, a):
        return torch.cat([self.norm.norm(s, "s"), self.norm.norm(a, "a").flatten(1)], -1)

    def loss(self, s, a, fut, v, gen=None):
        return self.diffusion.loss(self.norm.norm(fut, "s"), self._cond(s, a), gen)

    def sample(self, s: torch.Tensor, a: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        x = self.diffusion.sample(self._cond(s, a), (self.cfg.horizon, self.s_dim), gen)
        return self.norm.unnorm(x, "s")


class Objective(nn.Module):
    """J(s_t, a_{t:t+F}, s_{t+1:t+F+1}): an MLP regressing the (normalised) discounted reward-to-go."""

    def __init__(self, cfg: ModelConfig, s_dim: int, a_dim: int, norm: Normalizer):
        super().__init__()
        self.norm = norm
        width = s_dim + cfg.horizon * (a_dim + s_dim)
        self.net = nn.Sequential(nn.Linear(width, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(),
                                 nn.Linear(cfg.hidden, 1))

    def _x(self, s, a, fut):
        n = self.norm
        return torch.cat([n.norm(s, "s"), n.norm(a, "a").flatten(1), n.norm(fut, "s").flatten(1)], -1)

    def loss(self, s, a, fut, v, gen=None):
        return (self.net(self._x(s, a, fut))[:, 0] - self.norm.norm(v[:, None], "v")[:, 0]).pow(2).mean()

    def forward(self, s: torch.Tensor, a: torch.Tensor, fut: torch.Tensor) -> torch.Tensor:
        """The predicted reward-to-go, in return units."""
        return self.norm.unnorm(self.net(self._x(s, a, fut)), "v")[:, 0]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20_000
    batch: int = 256
    lr: float = 3e-4
    weight_decay: float = 1e-4
    ema: float = 0.995
    seed: int = 0


def train(model: nn.Module, chunks: Chunks, cfg: TrainConfig, wrap=lambda it: it,
          checkpoint=None) -> tuple[nn.Module, list[float]]:
    """AdamW with cosine decay on ``model.loss`` over random chunk batches; returns (EMA copy, losses).
    The batches and the generator live on the model's device; on a GPU the losses run under bf16 autocast.
    ``checkpoint`` (``load() -> state | None``, ``due()``, ``save(state)``): the loop's whole state is saved
    when due and at the end; where one was saved, training goes on from it as if it had not stopped."""
    device = next(model.parameters()).device
    gen = torch.Generator(device).manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    tensors = [torch.from_numpy(x).to(device) for x in (chunks.states, chunks.actions, chunks.futures, chunks.values)]
    params = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel for every parameter (a tenth of a CPU training step went to the unfused update)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / cfg.steps)))
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    ema_params, model_params = list(ema.parameters()), [p.detach() for p in model.parameters()]
    def state(step: int) -> dict:
        return {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "gen": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "losses": losses, "step": step}

    losses, start = [], 0
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        for obj, key in ((model, "model"), (ema, "ema"), (opt, "opt"), (sched, "sched")):
            obj.load_state_dict(saved[key])
        gen.set_state(saved["gen"])
        torch.set_rng_state(saved["torch_rng"])
        losses, start = saved["losses"], saved["step"]
    model.train()
    for step in wrap(range(start, cfg.steps)):
        if checkpoint is not None and step > start and checkpoint.due():
            checkpoint.save(state(step))
        idx = torch.randint(0, len(chunks), (cfg.batch,), generator=gen, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model.loss(*(x[idx] for x in tensors), gen=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, model_params, 1 - cfg.ema)
        losses.append(loss.item())
    if checkpoint is not None and start < cfg.steps:  # finished: a resumed run takes it as it is
        checkpoint.save(state(cfg.steps))
    return ema, losses
