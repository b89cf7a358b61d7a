"""D-MPC's planner, Sample-Score-Rank (SSR), and the closed-loop evaluation of any chunk policy.

SSR, per control step and for every environment at once: draw N action chunks from the proposal,
predict each chunk's future states with the dynamics model, score each (state, action) trajectory with
the objective, and execute the best chunk's first action (or its first ``replan`` actions) before
planning again. The objective is the learned J by default; a novel objective (e.g. torso height) is
swapped in at run time with no retraining.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from paper_dmpc.data import make_env, normalized_score

Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (s [B,S], a [B,F,A], fut [B,F,S]) -> [B]


@dataclass
class SSR:
    proposal: object  # .sample(s [B, S], gen) -> [B, F, A]
    dynamics: object  # .sample(s [B, S], a [B, F, A], gen) -> [B, F, S]
    objective: Objective
    samples: int = 64

    @torch.no_grad()
    def __call__(self, s: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """The best of ``samples`` candidate chunks for each row of s, [B, F, A]."""
        b, n = s.shape[0], self.samples
        rep = s.repeat_interleave(n, 0)
        a = self.proposal.sample(rep, gen)
        fut = self.dynamics.sample(rep, a, gen)
        score = self.objective(rep, a, fut).view(b, n)
        best = score.argmax(1)
        return a.view(b, n, *a.shape[1:])[torch.arange(b), best]


@dataclass
class ChunkPolicy:
    """Any model with ``.sample(s, gen) -> chunks`` as a policy (the proposal alone, BC): no planning."""

    model: object

    @torch.no_grad()
    def __call__(self, s: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        return self.model.sample(s, gen)


def torso_height(s: torch.Tensor, a: torch.Tensor, fut: torch.Tensor) -> torch.Tensor:
    """The novel "jump" objective: the predicted torso height (observation index 0) summed over the chunk."""
    return fut[..., 0].sum(1)


@torch.no_grad()
def evaluate(policy: Callable[[torch.Tensor, torch.Generator], torch.Tensor], env: str, episodes: int, seed: int,
             replan: int = 1, max_steps: int = 1000, foot_scale: float = 1.0, record: bool = False,
             wrap=lambda it: it, device: str = "cpu") -> dict:
    """Run ``episodes`` episodes side by side; ``policy(s [B, S], gen) -> chunks [B, F, A]`` is called for
    the live environments every ``replan`` steps and its chunks are executed open loop in between;
    ``foot_scale`` < 1 weakens the foot (novel dynamics). Returns per-episode returns, D4RL-normalised
    scores, lengths, the torso height trace (index 0 of the observation for Hopper and Walker2d: z of
    the torso), and seconds per control step; with ``record``, also every planning state and the
    ``replan`` actions then executed from it (``plan_states`` [M, S], ``plan_actions`` [M, replan, A]),
    the data a policy is distilled from. The policy runs on ``device`` (its models' device; the states go
    there and the generator lives there), under bf16 autocast on a GPU."""
    envs = [make_env(env, foot_scale, max_episode_steps=max_steps) for _ in range(episodes)]
    obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]).astype(np.float32)
    live = np.ones(episodes, bool)
    returns, lengths = np.zeros(episodes), np.zeros(episodes, int)
    heights = [[] for _ in range(episodes)]
    dev = torch.device(device)
    gen = torch.Generator(dev).manual_seed(seed)
    plan_s, steps = 0.0, 0
    plans: list[tuple[np.ndarray, np.ndarray]] = []
    for t in wrap(range(max_steps)):
        if not live.any():
            break
        if t % replan == 0:
            t0 = time.perf_counter()
            chunk = np.zeros((episodes, replan, envs[0].action_space.shape[0]), np.float32)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                planned = policy(torch.from_numpy(obs[live]).to(dev), gen)[:, :replan]
            chunk[live] = planned.float().cpu().numpy()
            plan_s += time.perf_counter() - t0
            if record:
                plans.append((obs[live].copy(), chunk[live].copy()))
        for i in np.flatnonzero(live):
            nxt, r, term, trunc, _ = envs[i].step(chunk[i, t % replan])
            returns[i] += r
            lengths[i] += 1
            heights[i].append(float(nxt[0]))
            obs[i] = nxt
            if term or trunc:
                live[i] = False
        steps += 1
    out = {"returns": returns, "normalized": np.asarray(normalized_score(env, returns)), "lengths": lengths,
           "mean_height": np.array([np.mean(h) for h in heights]), "max_height": np.array([np.max(h) for h in heights]),
           "seconds_per_step": plan_s / max(steps, 1)}
    if record:
        out["plan_states"], out["plan_actions"] = (np.concatenate(x) for x in zip(*plans, strict=True))
    return out
