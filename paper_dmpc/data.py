"""Offline locomotion data in D4RL's form, generated locally on Gymnasium MuJoCo v5 ("Gymnasium v5
local data": no pip package ships D4RL's files, and a model or dataset hub is not assumed).

D4RL's recipe (Fu et al. 2020): train an off-policy learner, stop it early at about a third of expert
performance ("medium"), roll that stochastic policy out for the ``medium`` set, and keep the replay buffer
up to the stopping point as ``medium-replay``. D4RL's learner was SAC; here it is one of sbx's (JAX):

- ``sac`` (Hopper's and HalfCheetah's default): D4RL's own learner, SAC with the standard settings (lr
  3e-4, batch 256, gamma 0.99, automatic entropy, 256 x 256 networks);
- ``crossq`` (Walker2d's default): CrossQ (Bhatt et al., ICLR 2024; SAC without target networks, with
  batch renormalisation in the critic, Adam b1 = 0.5, lr 1e-3, the actor updated every 3rd critic step),
  with 256 x 256 networks for actor and critic (the paper's critic is 2048 wide). On Walker2d it reached
  the medium level in 53k-92k environment steps where SAC took 205k-380k, at about 1.25 times SAC's
  cost per step (``DEFAULT_LEARNER`` says why each robot has its learner).

Either runs in D4RL's training loop (rlkit's: 10k random warm-up steps, then ``update_every`` = 1000
environment steps and as many gradient steps, one jitted call); the deterministic policy is evaluated
on 5 episodes every ``eval_every`` steps (``EVAL_EVERY``) and training stops at the first evaluation
whose D4RL-normalised return reaches the medium target. Every set has D4RL's keys (observations, actions, rewards,
next_observations, terminals, timeouts) and is cached with its metadata (versions, learner, seed, the
stopping step, the evaluation curve, the data's own normalised return, the machine that made them).

The same spec makes the same bytes on CPUs with and without AVX-512: generation runs in a child
process whose kernels are capped at AVX2 (XLA's code generation and oneDNN's dispatch, which
otherwise follow the CPU and change the numerics, and with them the whole learning curve).

Normalisation uses D4RL's reference returns (``d4rl/infos.py``; the same for v0-v2): score =
100 (return - random) / (expert - random). On v5 dynamics it is approximate: report it as
"D4RL-normalised (Gymnasium v5)".
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ENV_IDS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
# (REF_MIN_SCORE: a random policy, REF_MAX_SCORE: expert SAC), d4rl/infos.py
REF_SCORES = {"hopper": (-20.272305, 3234.3), "halfcheetah": (-280.178953, 12135.0), "walker2d": (1.629008, 4592.3)}
# normalised return of D4RL's medium data, the early-stopping target (about a third of expert)
MEDIUM_TARGET = {"hopper": 44.0, "halfcheetah": 40.0, "walker2d": 62.0}
KEYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
LABEL = "Gymnasium v5 local data"
LEARNERS = {"crossq": "CrossQ", "sac": "SAC"}
# each robot's learner by default (measured on 2 cores over learner seeds 0-2, README): SAC, D4RL's own,
# where it reaches the medium level within 15 minutes (Hopper 6-9, HalfCheetah 3.5-7); CrossQ on Walker2d,
# where SAC took up to 19 minutes and CrossQ takes 3.5-6 (on Hopper CrossQ jumped past the level, to a
# policy scoring 92.6 within 1000 steps)
DEFAULT_LEARNER = {"hopper": "sac", "halfcheetah": "sac", "walker2d": "crossq"}
# steps between evaluations: SAC every 5000; CrossQ after every 1000-step epoch (rlkit's), since it can
# rise from below the level to far above it within 5000 steps
EVAL_EVERY = {"sac": 5_000, "crossq": 1_000}


def normalized_score(env: str, returns) -> np.ndarray | float:
    """D4RL's normalised score, x 100 (``env.get_normalized_score(ret) * 100``)."""
    if env not in REF_SCORES:
        raise ValueError(f"unknown environment {env!r}; known: {', '.join(REF_SCORES)}")
    lo, hi = REF_SCORES[env]
    return 100.0 * (np.asarray(returns, dtype=float) - lo) / (hi - lo)


def cache_dir() -> Path:
    return Path(os.environ.get("PAPERCLUB_CACHE", Path.home() / ".cache" / "paperclub")) / "dmpc"


@dataclass(frozen=True)
class DataSpec:
    env: str = "hopper"
    seed: int = 0
    learner: str = ""  # crossq | sac; "": DEFAULT_LEARNER[env]
    max_steps: int = 400_000  # the learner's environment steps at most
    learning_starts: int = 10_000
    eval_every: int = 0  # 0: EVAL_EVERY[learner]
    eval_episodes: int = 5
    target: float = float("nan")  # normalised return to stop at; nan: MEDIUM_TARGET[env]
    medium_transitions: int = 200_000
    rollout_envs: int = 16
    update_every: int = 1000  # environment steps between training phases of as many gradient steps

    def __post_init__(self):
        if self.env not in ENV_IDS:
            raise ValueError(f"unknown environment {self.env!r}; known: {', '.join(ENV_IDS)}")
        if self.learner not in ("", *LEARNERS):
            raise ValueError(f"unknown learner {self.learner!r}; known: {', '.join(LEARNERS)}")
        object.__setattr__(self, "learner", self.learner or DEFAULT_LEARNER[self.env])  # the key names them
        object.__setattr__(self, "eval_every", self.eval_every or EVAL_EVERY[self.learner])

    @property
    def stop_at(self) -> float:
        return MEDIUM_TARGET[self.env] if np.isnan(self.target) else self.target

    def key(self) -> str:
        spec = {**asdict(self), "target": self.stop_at, "env_id": ENV_IDS[self.env], "format": 2}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


# the foot whose torque a "broken ankle" scales: Hopper's only foot, Walker2d's left foot
FOOT_ACTUATOR = {"hopper": 2, "walker2d": 5}


def make_env(env: str, foot_scale: float = 1.0, **kwargs):
    """A Gymnasium v5 environment; ``foot_scale`` < 1 weakens the foot joint's torque (the paper's
    novel-dynamics setting: a walker with a broken ankle) by scaling that action component."""
    import gymnasium as gym

    e = gym.make(ENV_IDS[env], **kwargs)
    if foot_scale != 1.0:
        if env not in FOOT_ACTUATOR:
            raise ValueError(f"no foot to weaken in {env!r}; only in {', '.join(FOOT_ACTUATOR)}")
        scale = np.ones(e.action_space.shape, np.float32)
        scale[FOOT_ACTUATOR[env]] = foot_scale
        e = gym.wrappers.TransformAction(e, lambda a: a * scale, e.action_space)
    return e


def _learner(spec: DataSpec, env):
    """The spec's off-policy learner (sbx) in D4RL's loop; the settings are the module docstring's."""
    from sbx import SAC, CrossQ
    from stable_baselines3.common.logger import Logger

    loop = {"buffer_size": max(spec.max_steps, 1), "batch_size": 256, "gamma": 0.99, "ent_coef": "auto",
            "learning_starts": spec.learning_starts, "train_freq": spec.update_every,
            "gradient_steps": spec.update_every, "seed": spec.seed, "verbose": 0}
    if spec.learner == "sac":
        model = SAC("MlpPolicy", env, learning_rate=3e-4, tau=0.005, policy_kwargs={"net_arch": [256, 256]}, **loop)
    else:
        model = CrossQ("MlpPolicy", env, learning_rate=1e-3, policy_delay=3,
                       policy_kwargs={"net_arch": {"pi": [256, 256], "qf": [256, 256]}}, **loop)
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes an empty folder in /tmp per run
    return model


def rollout(policy, env: str, n: int, seed: int, deterministic: bool, n_envs: int = 16,
            episodes: int | None = None, foot_scale: float = 1.0) -> tuple[dict[str, np.ndarray], list[float]]:
    """``n`` transitions (or ``episodes`` whole episodes) of ``policy(obs [B, d], deterministic) -> actions``
    on ``n_envs`` environments stepped side by side; D4RL's keys in episode order, and the returns of the
    episodes that finished."""
    envs = [make_env(env, foot_scale) for _ in range(n_envs)]
    obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)])
    per_env: list[dict[str, list]] = [{k: [] for k in KEYS} for _ in envs]
    done_eps: list[dict[str, np.ndarray]] = []
    returns: list[float] = []
    ret = np.zeros(n_envs)
    total, started = 0, n_envs
    while (total < n) if episodes is None else (len(returns) < episodes):
        act = np.asarray(policy(obs, deterministic), dtype=np.float32)
        for i, e in enumerate(envs):
            nxt, r, term, trunc, _ = e.step(act[i])
            buf = per_env[i]
            for k, v in zip(KEYS, (obs[i].copy(), act[i], r, nxt, term, trunc), strict=True):  # obs is reused
                buf[k].append(v)
            ret[i] += r
            total += 1
            if term or trunc:
                done_eps.append({k: np.asarray(v) for k, v in buf.items()})
                per_env[i] = {k: [] for k in KEYS}
                returns.append(float(ret[i]))
                ret[i] = 0.0
                nxt, _ = e.reset(seed=seed + started)
                started += 1
            obs[i] = nxt
    if episodes is None:  # unfinished episodes count too, cut by the step budget: a timeout ends each
        for buf in per_env:
            if buf["rewards"]:
                buf["timeouts"][-1] = True
                done_eps.append({k: np.asarray(v) for k, v in buf.items()})
    else:
        done_eps = done_eps[:episodes]
    data = {k: np.concatenate([ep[k] for ep in done_eps]) for k in KEYS}
    if episodes is None:
        data = {k: v[:n] for k, v in data.items()}
    data = {k: v.astype(np.float32) if v.dtype.kind == "f" else v.astype(bool) for k, v in data.items()}
    return data, returns


def generate(spec: DataSpec, wrap=lambda it: it, log=print) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Train the learner to the medium target; return ({"medium": ..., "medium-replay": ...}, metadata)."""
    import gymnasium
    import jax
    import mujoco
    import sbx
    from stable_baselines3.common.callbacks import BaseCallback

    t0 = time.perf_counter()
    env = make_env(spec.env)
    model = _learner(spec, env)
    curve: list[dict] = []

    def evaluate_now() -> float:
        _, rets = rollout(lambda o, d: model.predict(o, deterministic=d)[0], spec.env, 0, 10_000 + len(curve),
                          True, n_envs=spec.eval_episodes, episodes=spec.eval_episodes)
        return float(np.mean(normalized_score(spec.env, rets)))

    class Stop(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % spec.eval_every or self.num_timesteps < spec.learning_starts:
                return True
            score = evaluate_now()
            curve.append({"step": self.num_timesteps, "normalized_return": score,
                          "seconds": round(time.perf_counter() - t0, 1)})
            log(f"{spec.env} {LEARNERS[spec.learner]} step {self.num_timesteps}: normalised return {score:.1f} "
                f"(target {spec.stop_at:.0f})")
            return score < spec.stop_at

    model.learn(total_timesteps=spec.max_steps, callback=Stop())
    stopped = int(model.num_timesteps)
    reached = bool(curve) and curve[-1]["normalized_return"] >= spec.stop_at
    buf = model.replay_buffer
    n = buf.buffer_size if buf.full else buf.pos
    dones = buf.dones[:n, 0].astype(bool)
    timeouts = buf.timeouts[:n, 0].astype(bool)
    replay = {"observations": buf.observations[:n, 0], "actions": buf.actions[:n, 0],
              "rewards": buf.rewards[:n, 0], "next_observations": buf.next_observations[:n, 0],
              "terminals": dones & ~timeouts, "timeouts": timeouts}
    replay = {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in replay.items()}
    t_learn = time.perf_counter() - t0
    medium, med_returns = rollout(lambda o, d: model.predict(o, deterministic=d)[0], spec.env,
                                  spec.medium_transitions, 20_000, False, n_envs=spec.rollout_envs)
    meta = {"label": LABEL, "env_id": ENV_IDS[spec.env], "spec": asdict(spec), "target": spec.stop_at,
            "learner": LEARNERS[spec.learner], "learner_steps": stopped, "target_reached": reached, "eval_curve": curve,
            "medium_episode_return_normalized": float(np.mean(normalized_score(spec.env, med_returns)))
            if med_returns else float("nan"),
            "medium_episodes": len(med_returns), "replay_transitions": int(n),
            "versions": {"gymnasium": gymnasium.__version__, "mujoco": mujoco.__version__, "sbx": sbx.__version__,
                         "jax": jax.__version__},
            "generated_on": {"cpu": cpu_model(), "kernels": pinned_isa() or "as the CPU allows"},
            "seconds": {"learner": round(t_learn, 1), "medium_rollout": round(time.perf_counter() - t0 - t_learn, 1)}}
    return {"medium": medium, "medium-replay": replay}, meta


def _read_cached(folder: Path) -> tuple[dict, dict]:
    """The sets in ``folder``, each file checked against the SHA-256 its metadata recorded."""
    meta = json.loads((folder / "meta.json").read_text())
    sets = {}
    for name in ("medium", "medium-replay"):
        raw = (folder / f"{name}.npz").read_bytes()
        if hashlib.sha256(raw).hexdigest() != meta["sha256"][name]:
            raise ValueError(f"{name}.npz does not match the checksum in meta.json")
        with np.load(io.BytesIO(raw)) as z:
            sets[name] = dict(z)
    return sets, meta


def cpu_model() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pinned_isa() -> dict[str, str]:
    """Environment variables that cap JAX's CPU kernels at AVX2 (x86-64 only; elsewhere nothing)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return {}
    return {"ONEDNN_MAX_CPU_ISA": "AVX2", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}


def generate_isolated(spec: DataSpec, folder: Path, log=print, env: dict | None = None) -> None:
    """``generate`` in a child process with the kernels pinned (``pinned_isa``), writing ``folder``;
    its progress lines go to ``log``. ``env``: the child's environment before pinning (default ours)."""
    child = dict(os.environ if env is None else env)
    for key, value in pinned_isa().items():
        child[key] = f"{child[key]} {value}" if key == "XLA_FLAGS" and child.get(key) else value
    cmd = [sys.executable, "-m", "paper_dmpc.data", json.dumps(asdict(spec)), str(folder)]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=child, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            for line in proc.stdout:
                log(line.rstrip("\n"))
        except BaseException:  # stopped (Ctrl-C, SIGTERM) while it runs: the child stops too
            proc.kill()
            proc.wait()
            raise
        if proc.wait() != 0:
            err.seek(0)
            last = [ln for ln in err.read().splitlines() if ln.strip()][-1:] or ["no message"]
            raise RuntimeError(f"{spec.env} data generation failed (exit {proc.returncode}): {last[0]}")


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of a set's arrays (names, dtypes, shapes, bytes): equal data, equal digest, whichever
    machine or day wrote the file (an npz's own bytes carry its write time)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_sets(folder: Path, sets: dict, meta: dict) -> None:
    """Each set as an npz with the SHA-256 of its file (checked on every load) and of its content (the
    data's identity) in ``meta.json``, which is written last: a folder without it is an unfinished
    generation. Every file goes to its own temporary name first."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, arrays in sets.items():
        tmp = folder / f".{name}.{os.getpid()}.part.npz"
        np.savez_compressed(tmp, **arrays)
        meta.setdefault("sha256", {})[name] = hashlib.sha256(tmp.read_bytes()).hexdigest()
        meta.setdefault("content_sha256", {})[name] = content_sha256(arrays)
        tmp.replace(folder / f"{name}.npz")
    tmp = folder / f".meta.{os.getpid()}.part"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(folder / "meta.json")


def folder_of(spec: DataSpec, cache: Path | None = None) -> Path:
    """Where ``spec``'s sets live in the cache; they are whole once its ``meta.json`` exists."""
    return (cache or cache_dir()) / f"{spec.env}-{spec.key()}"


def load_or_generate(spec: DataSpec, cache: Path | None = None, log=print, isolated: bool = True) -> tuple[dict, dict]:
    """The cached datasets for ``spec``, generating (and caching) them the first time, in a pinned child
    process (``isolated``) or in this one. A cached set that does not match its recorded checksum (torn,
    altered) is said in one line and generated again."""
    folder = folder_of(spec, cache)
    if (folder / "meta.json").is_file():
        try:
            return _read_cached(folder)
        except Exception as exc:  # whatever is wrong with it, it is generated again, never used
            log(f"cached data in {folder} do not load ({type(exc).__name__}: {exc}); generating them again")
    if isolated:
        generate_isolated(spec, folder, log)
    else:
        write_sets(folder, *generate(spec, log=log))
    return _read_cached(folder)


def load_path(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A dataset given by path, in D4RL's keys: a D4RL hdf5 file (flat arrays; where the file lacks
    next_observations they come from the following observation, a timeout's step is dropped since its
    successor is not in the file, and a terminal's next state is itself, the absorbing state), a
    Minari dataset (its folder, or its data/main_data.hdf5: one group per episode with T + 1
    observations, terminations and truncations), or an .npz with D4RL's keys."""
    p = Path(path)
    if p.is_dir():
        p = p / "data" / "main_data.hdf5"
    if not p.is_file():
        raise FileNotFoundError(f"no dataset at {path} (expected a D4RL .hdf5, a Minari dataset folder or an .npz)")
    if p.suffix == ".npz":
        with np.load(p) as z:
            missing = [k for k in KEYS if k not in z]
            if missing:
                raise ValueError(f"{p}: missing {', '.join(missing)}")
            return {k: z[k] for k in KEYS}
    import h5py

    with h5py.File(p, "r") as f:
        groups = sorted((k for k in f if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
        if groups:  # Minari
            parts = []
            for g in groups:
                e = f[g]
                obs = np.asarray(e["observations"])
                parts.append({"observations": obs[:-1], "next_observations": obs[1:],
                              "actions": np.asarray(e["actions"]), "rewards": np.asarray(e["rewards"]),
                              "terminals": np.asarray(e["terminations"]).astype(bool),
                              "timeouts": np.asarray(e["truncations"]).astype(bool)})
            out = {k: np.concatenate([q[k] for q in parts]) for k in KEYS}
        else:  # D4RL
            missing = [k for k in ("observations", "actions", "rewards", "terminals", "timeouts") if k not in f]
            if missing:
                raise ValueError(f"{p}: neither a Minari dataset nor D4RL's format (missing {', '.join(missing)})")
            out = {k: np.asarray(f[k]) for k in KEYS if k in f}
            out["terminals"], out["timeouts"] = out["terminals"].astype(bool), out["timeouts"].astype(bool)
            if "next_observations" not in out:
                term, tout = out["terminals"], out["timeouts"].copy()
                nxt = np.roll(out["observations"], -1, 0)
                nxt[term] = out["observations"][term]  # after a terminal: the absorbing state, itself
                drop = tout & ~term  # a timeout's successor is the next episode's start: unknown
                drop[-1] |= not term[-1]
                before = np.flatnonzero(drop) - 1
                before = before[(before >= 0) & ~drop[np.maximum(before, 0)]]
                tout[before] |= ~term[before]  # the step before a dropped one now ends its episode
                keep = ~drop
                out = {**{k: v[keep] for k, v in out.items()}, "timeouts": tout[keep], "next_observations": nxt[keep]}
    return {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in out.items()}


def episodes(data: dict[str, np.ndarray]) -> list[slice]:
    """Episode boundaries of a D4RL-style set: an episode ends at a terminal or a timeout."""
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    starts = np.concatenate([[0], ends + 1])
    stops = np.concatenate([ends + 1, [len(data["rewards"])]])
    return [slice(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b > a]


def split_episodes(data: dict[str, np.ndarray], held: set[int]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(the episodes not in ``held``, the episodes in it), whole episodes each, in order."""
    eps = episodes(data)
    part = lambda which: {k: np.concatenate([v[e] for i, e in enumerate(eps) if (i in held) == which])  # noqa: E731
                          for k, v in data.items()}
    return part(False), part(True)


if __name__ == "__main__":  # the child of generate_isolated: python -m paper_dmpc.data SPEC_JSON FOLDER
    write_sets(Path(sys.argv[2]), *generate(DataSpec(**json.loads(sys.argv[1])), log=lambda m: print(m, flush=True)))
