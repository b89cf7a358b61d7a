"""Planning: the cross-entropy method over action blocks, batched over every episode's candidates,
inside a receding-horizon loop, with the paper's evaluation protocol (start from a held-out
trajectory, goal the state ``offset`` env steps later, a budget of env steps, success latched).

Costs: LeWM's terminal latent distance to the encoded goal image; an oracle's true final distance
from simulating the environment itself (an upper bound, same CEM); random actions as the floor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from paper_lewm.config import CEMConfig
from paper_lewm.envs import TwoRoom


def cem(cost: Callable[[torch.Tensor], torch.Tensor], problems: int, action_dim: int, cfg: CEMConfig,
        generator: torch.Generator, device=None) -> torch.Tensor:
    """Minimise cost(candidates [P, S, H, A]) -> [P, S] for P problems at once: sample around the
    mean (candidate 0 is the mean itself), refit mean and std to the elites. Returns the means [P, H, A]."""
    mean = torch.zeros(problems, cfg.horizon, action_dim, device=device)
    std = torch.full_like(mean, cfg.init_std)
    for _ in range(cfg.iterations):
        noise = torch.randn(problems, cfg.samples, cfg.horizon, action_dim, generator=generator, device=device)
        cand = mean[:, None] + std[:, None] * noise
        cand[:, 0] = mean
        costs = cost(cand)
        elite = costs.topk(cfg.elites, dim=1, largest=False).indices
        chosen = cand.gather(1, elite[..., None, None].expand(-1, -1, cfg.horizon, action_dim))
        mean, std = chosen.mean(1), chosen.std(1)
    return mean


def latent_cost(model, z_now: torch.Tensor, z_goal: torch.Tensor, chunk: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """The planning cost in a world model's latent space: squared distance of the predicted final
    latent (LeWM: one embedding; a patch-token model: every token) to the goal's, predictor rollouts
    over all P x S candidates, ``chunk`` of them per call (0: all in one)."""
    def cost(cand: torch.Tensor) -> torch.Tensor:
        p, s, h, a = cand.shape
        ctx = z_now[:, None].expand(-1, s, *z_now.shape[1:]).reshape(p * s, *z_now.shape[1:])
        flat, step = cand.reshape(p * s, h, a), chunk or p * s
        final = torch.cat([model.rollout(ctx[i:i + step], flat[i:i + step]) for i in range(0, p * s, step)])
        return (final.reshape(p, s, -1) - z_goal.reshape(p, 1, -1)).pow(2).sum(-1)
    return cost


def seconds_per_plan(model, frames: torch.Tensor, cfg: CEMConfig, action_dim: int, precision: str,
                     repeats: int = 1) -> list[float]:
    """The planning time as the paper measures it: one environment, one CEM plan (the current and the
    goal frame [2, 1, H, W, 3] encoded, then ``cfg.iterations`` rounds of ``cfg.samples`` candidates),
    under bf16 autocast or in fp32, after one warm-up plan of two rounds; the wall times of ``repeats``
    plans, each from the same generator state."""
    device = frames.device

    def one(c: CEMConfig) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            z = model.encode(frames)
            cost = latent_cost(model, z[:1], z[1:, 0], c.chunk)
            cem(cost, 1, action_dim, c, torch.Generator(device=device).manual_seed(0), device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    one(replace(cfg, iterations=min(2, cfg.iterations)))
    return [one(cfg) for _ in range(repeats)]


def oracle_cost(env: TwoRoom, xy: np.ndarray, goal: np.ndarray, unblock) -> Callable[[torch.Tensor], torch.Tensor]:
    """The true final distance after simulating each candidate's raw actions from the true state."""
    def cost(cand: torch.Tensor) -> torch.Tensor:
        p, s = cand.shape[:2]
        raw = unblock(cand.cpu().numpy())  # [P, S, H * frameskip, 2]
        pos = np.repeat(xy[:, None], s, 1)
        for t in range(raw.shape[2]):
            pos = env.step(pos, raw[:, :, t])
        return torch.from_numpy(env.distance(pos, goal[:, None]) ** 2)
    return cost


@dataclass
class Episodes:
    start: np.ndarray  # [P, 2] positions
    goal: np.ndarray  # [P, 2]


def episodes_from(positions: np.ndarray, offset: int, n: int, seed: int, keep=None) -> Episodes:
    """Start at a random step of a held-out trajectory; the goal is the state ``offset`` steps on.
    ``keep(start, goal)``, if given, says which pairs to keep; others are redrawn."""
    rng = np.random.default_rng(seed)
    start, goal = np.empty((0, positions.shape[-1])), np.empty((0, positions.shape[-1]))
    for _ in range(100):
        ep = rng.integers(0, len(positions), n)
        st = rng.integers(0, positions.shape[1] - offset, n)
        s, g = positions[ep, st], positions[ep, st + offset]
        ok = np.ones(n, bool) if keep is None else keep(s, g)
        start, goal = np.concatenate([start, s[ok]]), np.concatenate([goal, g[ok]])
        if len(start) >= n:
            return Episodes(start[:n], goal[:n])
    raise ValueError(f"fewer than {n} start-goal pairs pass the filter in 100 draws")


def evaluate(env, episodes: Episodes, planner: str, cfg: CEMConfig, budget: int, frameskip: int,
             unblock, model=None, seed: int = 0) -> dict:
    """Run every episode for ``budget`` env steps with ``planner`` in {lewm, oracle, random};
    success is latched (reached at any step); ``env`` is a TwoRoom or a PushT (states [P, D]).
    Returns the success vector, the seconds per plan
    and the final distances."""
    device = next(model.parameters()).device if model is not None else torch.device("cpu")
    gen = torch.Generator(device=device).manual_seed(seed)
    rng = np.random.default_rng(seed)
    xy, goal = episodes.start.copy(), episodes.goal
    reached = env.success(xy, goal)
    plan_s = []
    z_goal = None
    if planner == "lewm":
        with torch.no_grad():
            z_goal = model.encode(torch.from_numpy(env.render(goal)).to(device)[:, None])[:, 0]
    steps = 0
    action_dim = frameskip * 2  # both tasks act in 2-D
    while steps < budget:
        t0 = time.perf_counter()
        if planner == "random":
            raw = rng.uniform(-1, 1, (len(xy), cfg.replan * frameskip, 2))
        else:
            if planner == "lewm":
                with torch.no_grad():
                    z_now = model.encode(torch.from_numpy(env.render(xy)).to(device)[:, None])
                cost = latent_cost(model, z_now, z_goal, cfg.chunk)
            elif planner == "oracle":
                cost = oracle_cost(env, xy, goal, unblock)
            else:
                raise ValueError(f"planner must be lewm, oracle or random, got {planner!r}")
            plan = cem(cost, len(xy), action_dim, cfg, gen, device)
            raw = unblock(plan[:, :cfg.replan].cpu().numpy())  # [P, replan x frameskip, 2]
            plan_s.append(time.perf_counter() - t0)
        for t in range(raw.shape[1]):
            if steps >= budget:
                break
            xy = env.step(xy, raw[:, t])
            reached |= env.success(xy, goal)
            steps += 1
    return {"success": reached, "seconds_per_plan": float(np.mean(plan_s)) if plan_s else 0.0,
            "final_distance": env.distance(xy, goal)}
