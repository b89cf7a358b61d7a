"""Push-T: a circular agent pushes a T-shaped block on a table, seen from above (pymunk physics).

The scene follows the Push-T of Diffusion Policy / gym-pusht, which DINO-WM and LeWM use: a 512 x 512
table inside four wall segments, the agent a kinematic disc of radius 15 driven towards a target point
by PD control (kp 100, kv 20, 10 physics steps of 0.01 s per 10 Hz control step), the block a T of two
30-px-thick bars (120 x 30 on top of a 30 x 90 stem), mass 1, space damping 0 so that the block moves
only while it is pushed (quasi-static pushing). As in LeWM's stable-worldmodel, the action is relative:
a in [-1, 1]^2 sets the target agent + 100 a. Success is DINO-WM's criterion: the distance between
(agent xy, block xy) and the goal's below 20 px and the block angle within pi/9.

Like TwoRoom, everything takes a batch of states, so that data generation, planning evaluation and
rendering share one interface. A state is [agent x, agent y, block x, block y, block angle, agent vx,
agent vy] (the block's velocity is zero between control steps, damping 0 removes it), and each step
builds the scene afresh from it, so a step is a function of the state and the action alone. Frames are
drawn from the state with Pillow (4x supersampled polygons, box-filtered down), RGB uint8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATE_DIM = 7
TABLE = 512.0


def _tee(scale: float = 30.0, length: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The T's two bars in block coordinates: the top bar and the stem."""
    top = np.array([(-length * scale / 2, scale), (length * scale / 2, scale), (length * scale / 2, 0),
                    (-length * scale / 2, 0)])
    stem = np.array([(-scale / 2, scale), (-scale / 2, length * scale), (scale / 2, length * scale),
                     (scale / 2, scale)])
    return top, stem


@dataclass(frozen=True)
class PushT:
    size: int = 64  # rendered frame side, pixels
    agent_radius: float = 15.0
    kp: float = 100.0
    kv: float = 20.0
    dt: float = 0.01
    substeps: int = 10
    action_scale: float = 100.0  # the target is agent + action_scale * a
    success_distance: float = 20.0
    success_angle: float = np.pi / 9
    block_rgb: tuple[int, int, int] = (119, 136, 153)
    agent_rgb: tuple[int, int, int] = (65, 105, 225)
    supersample: int = 4

    # ---------------------------------------------------------------- dynamics
    def _scene(self, state: np.ndarray):
        import pymunk

        space = pymunk.Space()
        space.gravity = (0, 0)
        space.damping = 0.0  # a body keeps none of its velocity: the block moves only while pushed
        for a, b in (((5, 506), (5, 5)), ((5, 5), (506, 5)), ((506, 5), (506, 506)), ((5, 506), (506, 506))):
            space.add(pymunk.Segment(space.static_body, a, b, 2))
        agent = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        agent.position = float(state[0]), float(state[1])
        agent.velocity = float(state[5]), float(state[6])
        space.add(agent, pymunk.Circle(agent, self.agent_radius))
        top, stem = _tee()
        block = pymunk.Body(1.0, 2 * pymunk.moment_for_poly(1.0, top.tolist()))
        shapes = [pymunk.Poly(block, top.tolist()), pymunk.Poly(block, stem.tolist())]
        for shape in shapes:
            shape.friction = 1.0
        block.center_of_gravity = tuple((shapes[0].center_of_gravity + shapes[1].center_of_gravity) / 2)
        block.angle = float(state[4])  # the angle first: then the origin lands exactly on the position
        block.position = float(state[2]), float(state[3])
        space.add(block, *shapes)
        return space, agent, block

    def step(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """One control step for a batch: states [..., 7], relative actions [..., 2] clipped to [-1, 1]."""
        lead = states.shape[:-1]
        flat, acts = states.reshape(-1, STATE_DIM), np.clip(actions, -1, 1).reshape(-1, 2)
        out = np.empty_like(flat, dtype=float)
        r = self.agent_radius
        for i, (s, a) in enumerate(zip(flat, acts, strict=True)):
            space, agent, block = self._scene(s)
            target = np.clip(s[:2] + self.action_scale * a, r, TABLE - r)
            for _ in range(self.substeps):
                vel = np.asarray(agent.velocity)
                agent.velocity = tuple(vel + (self.kp * (target - np.asarray(agent.position)) - self.kv * vel) * self.dt)
                space.step(self.dt)
            out[i] = (*agent.position, *block.position, block.angle, *agent.velocity)
        return out.reshape(*lead, STATE_DIM)

    def sample_free(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Random states as gym-pusht resets (agent in [50, 450]^2, block in [100, 400]^2, any angle),
        at rest, with the agent clear of the block."""
        out = np.empty((0, STATE_DIM))
        while len(out) < n:
            s = np.zeros((2 * n, STATE_DIM))
            s[:, :2] = rng.uniform(50, 450, (2 * n, 2))
            s[:, 2:4] = rng.uniform(100, 400, (2 * n, 2))
            s[:, 4] = rng.uniform(-np.pi, np.pi, 2 * n)
            out = np.concatenate([out, s[self._clear(s)]])
        return out[:n]

    def _clear(self, states: np.ndarray) -> np.ndarray:
        """Whether the agent's disc is clear of the block, for states [N, 7]."""
        pts = self.world_polygons(states)  # [N, 2, 4, 2]
        agent = states[:, None, None, :2]
        a, b = pts, np.roll(pts, -1, axis=2)
        ab = b - a
        t = np.clip(((agent - a) * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
        edge = np.linalg.norm(a + t[..., None] * ab - agent, axis=-1).min(axis=(1, 2))
        cross = ab[..., 0] * (agent - a)[..., 1] - ab[..., 1] * (agent - a)[..., 0]
        inside = ((cross >= 0).all(-1) | (cross <= 0).all(-1)).any(-1)
        return (edge > self.agent_radius + 2) & ~inside

    def teleport(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The same states with the block moved to a random pose (the agent stays)."""
        out = states.copy()
        todo = np.arange(len(out))
        while len(todo):
            out[todo, 2:4] = rng.uniform(100, 400, (len(todo), 2))
            out[todo, 4] = rng.uniform(-np.pi, np.pi, len(todo))
            todo = todo[~self._clear(out[todo])]
        return out

    @staticmethod
    def probe_targets(states: np.ndarray) -> np.ndarray:
        """What a linear probe of the embeddings should recover: agent and block xy, the block angle's
        cosine and sine (the agent's velocity is not visible in one frame)."""
        return np.concatenate([states[..., :4], np.cos(states[..., 4:5]), np.sin(states[..., 4:5])], -1)

    @staticmethod
    def angle_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.abs((a - b + np.pi) % (2 * np.pi) - np.pi)

    def distance(self, states: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """DINO-WM's position error: || (agent xy, block xy) - the goal's ||, pixels of the 512 table."""
        return np.linalg.norm(states[..., :4] - goal[..., :4], axis=-1)

    def block_moves(self, states: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Whether reaching the goal needs the block moved: its position or angle differs by more
        than the success tolerance. Evaluation keeps only such start-goal pairs; the scripted data
        leave the block at rest over many 25-step windows, and the agent alone could then score."""
        return (np.linalg.norm(states[..., 2:4] - goal[..., 2:4], axis=-1) >= self.success_distance) | (
            self.angle_error(states[..., 4], goal[..., 4]) >= self.success_angle)

    def success(self, states: np.ndarray, goal: np.ndarray) -> np.ndarray:
        return (self.distance(states, goal) < self.success_distance) & (
            self.angle_error(states[..., 4], goal[..., 4]) < self.success_angle)

    # ---------------------------------------------------------------- rendering
    def world_polygons(self, states: np.ndarray) -> np.ndarray:
        """The T's two bars in table coordinates, [..., 2, 4, 2]."""
        local = np.stack(_tee())  # [2, 4, 2]
        c, s = np.cos(states[..., 4]), np.sin(states[..., 4])
        rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # [..., 2, 2]
        return np.einsum("...ij,bkj->...bki", rot, local) + states[..., None, None, 2:4]

    def render(self, states: np.ndarray, rgb: tuple[int, int, int] | np.ndarray | None = None) -> np.ndarray:
        """Frames [..., size, size, 3] uint8: white table, the block (``rgb`` recolours it), the agent."""
        from PIL import Image, ImageDraw

        lead = states.shape[:-1]
        flat = states.reshape(-1, STATE_DIM)
        colours = np.asarray(self.block_rgb if rgb is None else rgb).reshape(-1, 3)
        if len(colours) == 1:
            colours = np.repeat(colours, len(flat), 0)
        big = self.size * self.supersample
        k = big / TABLE
        polys = self.world_polygons(flat) * k
        r = self.agent_radius * k
        frames = np.empty((len(flat), self.size, self.size, 3), np.uint8)
        for i, s in enumerate(flat):
            img = Image.new("RGB", (big, big), (255, 255, 255))
            draw = ImageDraw.Draw(img)
            for bar in polys[i]:
                draw.polygon([tuple(p) for p in bar], fill=tuple(int(v) for v in colours[i]))
            x, y = s[0] * k, s[1] * k
            draw.ellipse((x - r, y - r, x + r, y + r), fill=self.agent_rgb)
            frames[i] = np.asarray(img.reduce(self.supersample))
        return frames.reshape(*lead, self.size, self.size, 3)


def pusher_action(env: PushT, states: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """A scripted pusher: get behind the block (opposite ``direction``, unit vectors [N, 2]), then
    push through its centre along ``direction``. Relative actions in [-1, 1]^2."""
    agent, block = states[:, :2], states[:, 2:4]
    behind = block - 70 * direction
    at_behind = np.linalg.norm(agent - behind, axis=-1) < 25
    # heading for the spot behind: stay clear of the block by passing around its side
    along = ((agent - block) * direction).sum(-1)
    side = np.stack([-direction[:, 1], direction[:, 0]], -1)
    detour = block + 90 * np.sign(((agent - block) * side).sum(-1, keepdims=True) + 1e-9) * side
    approach = np.where((along > -40)[:, None], detour, behind)
    pushing = at_behind | (along < -20) & (np.abs(((agent - block) * side).sum(-1)) < 20)
    waypoint = np.where(pushing[:, None], block + 40 * direction, approach)
    return np.clip((waypoint - agent) / env.action_scale, -1, 1)


def generate(env: PushT, episodes: int, steps: int, seed: int, noise: float = 0.3,
             retarget_every: int = 20) -> dict[str, np.ndarray]:
    """Seeded episodes of a noisy scripted pusher: each step, with probability ``noise`` a uniform
    random action, else the pusher's along a direction redrawn every ``retarget_every`` steps.
    Returns states [E, T+1, 7] (as ``positions``, the name the Two-Room data use) and actions [E, T, 2]."""
    rng = np.random.default_rng(seed)
    s = env.sample_free(rng, episodes)
    states, actions = [s], []
    direction = None
    for t in range(steps):
        if t % retarget_every == 0:
            ang = rng.uniform(-np.pi, np.pi, episodes)
            toward_centre = np.arctan2(256 - s[:, 3], 256 - s[:, 2])  # keep the block off the walls
            ang = np.where(rng.random(episodes) < 0.5, toward_centre + rng.normal(0, 0.6, episodes), ang)
            direction = np.stack([np.cos(ang), np.sin(ang)], -1)
        act = pusher_action(env, s, direction)
        act = np.where(rng.random((episodes, 1)) < noise, rng.uniform(-1, 1, (episodes, 2)), act)
        s = env.step(s, act)
        states.append(s)
        actions.append(act)
    return {"positions": np.stack(states, 1), "actions": np.stack(actions, 1)}
