"""Two-Room: a point agent in a square split by a wall with one door, seen from above.

The layout follows the paper's environment (stable-worldmodel's TwoRoom, scaled to unit
coordinates): a vertical wall at x = 0.5 of thickness 10/224, one door of half-height 14/224
centred at y = 49/224 from the top, a border of 14/224, the agent a Gaussian dot (sigma 7/224) on a
white background, actions 2-D velocities in [-1, 1]^2 times a speed of 5/224 per step, a move
into the wall or border reverted axis by axis, success within 16/224 of the goal. Everything is
vectorised over a batch of states, so data generation, the oracle planner and rendering run as
array operations. Rendering is to ``size`` x ``size`` RGB uint8.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SCALE = 224.0


@dataclass(frozen=True)
class TwoRoom:
    size: int = 64  # rendered frame side, pixels
    wall_half: float = 5 / SCALE
    door_center: float = 49 / SCALE
    door_half: float = 14 / SCALE
    border: float = 14 / SCALE
    speed: float = 5 / SCALE
    sigma: float = 7 / SCALE
    success_radius: float = 16 / SCALE
    agent_rgb: tuple[int, int, int] = (220, 30, 30)

    # ---------------------------------------------------------------- dynamics
    def valid(self, xy: np.ndarray) -> np.ndarray:
        """Whether positions [..., 2] are free (inside the border, not in the wall unless in the door)."""
        x, y = xy[..., 0], xy[..., 1]
        inside = (x >= self.border) & (x <= 1 - self.border) & (y >= self.border) & (y <= 1 - self.border)
        in_wall = np.abs(x - 0.5) <= self.wall_half
        in_door = np.abs(y - self.door_center) <= self.door_half
        return inside & (~in_wall | in_door)

    def step(self, xy: np.ndarray, action: np.ndarray) -> np.ndarray:
        """One step for a batch: positions [..., 2], actions [..., 2] clipped to [-1, 1]."""
        move = np.clip(action, -1, 1) * self.speed
        out = xy.copy()
        for axis in (0, 1):  # axis-separable collision: a blocked component is reverted
            trial = out.copy()
            trial[..., axis] += move[..., axis]
            ok = self.valid(trial)
            out[..., axis] = np.where(ok, trial[..., axis], out[..., axis])
        return out

    def sample_free(self, rng: np.random.Generator, n: int) -> np.ndarray:
        out = np.empty((0, 2))
        while len(out) < n:
            xy = rng.uniform(self.border, 1 - self.border, (2 * n, 2))
            out = np.concatenate([out, xy[self.valid(xy)]])
        return out[:n]

    def distance(self, xy: np.ndarray, goal: np.ndarray) -> np.ndarray:
        return np.linalg.norm(xy - goal, axis=-1)

    def success(self, xy: np.ndarray, goal: np.ndarray) -> np.ndarray:
        return self.distance(xy, goal) < self.success_radius

    def probe_targets(self, xy: np.ndarray) -> np.ndarray:
        """What a linear probe of the embeddings should recover: the agent's position."""
        return xy

    def teleport(self, xy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The agent moved to random free spots."""
        return self.sample_free(rng, len(xy))

    def room(self, xy: np.ndarray) -> np.ndarray:
        return (xy[..., 0] > 0.5).astype(int)

    # ---------------------------------------------------------------- rendering
    def render(self, xy: np.ndarray, rgb: tuple[int, int, int] | np.ndarray | None = None) -> np.ndarray:
        """Frames [..., size, size, 3] uint8 for positions [..., 2] (walls grey, agent a Gaussian dot)."""
        s = self.size
        centers = (np.arange(s) + 0.5) / s
        background = np.full((s, s, 3), 255.0)
        gx, gy = np.meshgrid(centers, centers)  # image rows are y
        grid = np.stack([gx, gy], -1)
        background[~self.valid(grid)] = 90.0
        lead = xy.shape[:-1]
        flat = xy.reshape(-1, 2)
        colour = np.asarray(self.agent_rgb if rgb is None else rgb, dtype=float).reshape(-1, 3)
        if len(colour) == 1:
            colour = np.repeat(colour, len(flat), 0)
        colour = colour.reshape(-1, 3)
        dx = centers[None, None, :] - flat[:, 0, None, None]
        dy = centers[None, :, None] - flat[:, 1, None, None]
        blob = np.exp(-(dx ** 2 + dy ** 2) / (2 * self.sigma ** 2))[..., None]  # [n, s, s, 1]
        frames = background[None] * (1 - blob) + colour[:, None, None, :] * blob
        return frames.round().astype(np.uint8).reshape(*lead, s, s, 3)

    def render_torch(self, xy: np.ndarray, device) -> torch.Tensor:
        """``render``'s frames (the agent's own colour) made on ``device`` in float32, the Gaussian dot as
        the outer product of its two 1-D factors: the same picture, pixels within one intensity level
        of ``render``'s (its float64 rounding), at a fraction of the time for training windows drawn on
        demand on a GPU."""
        import torch

        s = self.size
        centers = (torch.arange(s, device=device, dtype=torch.float32) + 0.5) / s
        flat = torch.as_tensor(xy.reshape(-1, 2), dtype=torch.float32, device=device)
        gx = torch.exp(-(centers[None, :] - flat[:, :1]) ** 2 / (2 * self.sigma ** 2))  # [n, s] along x
        gy = torch.exp(-(centers[None, :] - flat[:, 1:]) ** 2 / (2 * self.sigma ** 2))  # [n, s] along y
        blob = (gy[:, :, None] * gx[:, None, :])[..., None]  # [n, s (rows: y), s, 1]
        colour = torch.tensor(self.agent_rgb, dtype=torch.float32, device=device)
        frames = _floor(self, str(device))[None] * (1 - blob) + colour * blob
        return frames.round().to(torch.uint8).reshape(*xy.shape[:-1], s, s, 3)


@functools.cache
def _floor(env: TwoRoom, device: str):
    """``env``'s walls and floor without the agent (it far outside), float32 on ``device``."""
    import torch

    return torch.from_numpy(env.render(np.full((1, 2), -10.0))[0]).to(device, torch.float32)


def expert_action(env: TwoRoom, xy: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Head for the door when the target is in the other room, else for the target (unit speed)."""
    other = env.room(xy) != env.room(target)
    side = np.sign(0.5 - xy[:, 0])  # +1 in the left room
    aligned = np.abs(xy[:, 1] - env.door_center) < env.door_half * 0.5
    near_door = np.abs(xy[:, 0] - 0.5) < 0.1
    door_y = np.full(len(xy), env.door_center)
    approach = np.stack([0.5 - side * 0.08, door_y], -1)  # in front of the door, this side
    through = np.stack([0.5 + side * 0.08, door_y], -1)  # just past it
    waypoint = np.where((other & aligned & near_door)[:, None], through, np.where(other[:, None], approach, target))
    direction = waypoint - xy
    norm = np.linalg.norm(direction, axis=-1, keepdims=True)
    return direction / np.maximum(norm, 1e-9) * np.minimum(1.0, norm / env.speed)


def generate(env: TwoRoom, episodes: int, steps: int, seed: int, noise: float = 0.3,
             retarget_every: int = 30) -> dict[str, np.ndarray]:
    """Seeded episodes of a noisy door-seeking expert: each step, with probability ``noise`` a
    uniform random action, else the expert's toward a target redrawn every ``retarget_every``
    steps. Returns positions [E, T+1, 2] and actions [E, T, 2] (frames are rendered on demand)."""
    rng = np.random.default_rng(seed)
    xy = env.sample_free(rng, episodes)
    positions = [xy]
    actions = []
    target = env.sample_free(rng, episodes)
    for t in range(steps):
        if t and t % retarget_every == 0:
            target = env.sample_free(rng, episodes)
        act = expert_action(env, xy, target)
        random = rng.uniform(-1, 1, (episodes, 2))
        act = np.where(rng.random((episodes, 1)) < noise, random, act)
        xy = env.step(xy, act)
        positions.append(xy)
        actions.append(act)
    return {"positions": np.stack(positions, 1), "actions": np.stack(actions, 1).astype(np.float32)}
