"""Training data (windows of frames and action blocks) and the end-to-end training loop.

A window is history + 1 frames ``frameskip`` env steps apart; the action of each model step is
the concatenation of the ``frameskip`` raw actions between its frames, z-scored with the
dataset's statistics (as the paper's action encoder takes them).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from paper_lewm.model import LeWM, ModelConfig, loss


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    regulariser: str = "sigreg"  # sigreg | none | vicreg
    weight: float = 0.1  # lambda (the paper 0.1; its configs 0.09)
    directions: int = 1024  # SIGReg's M
    frameskip: int = 5
    steps: int = 300
    batch: int = 64
    lr: float = 1e-3  # the paper's 5e-5 is for the 18M model at batch 128
    weight_decay: float = 1e-3
    warmup: float = 0.05
    clip: float = 1.0
    seed: int = 0
    device: str = "cpu"  # cuda: bf16 autocast, as the paper trains

    def key(self, data_key: str) -> str:
        fields = asdict(self)
        if fields["device"] == "cpu":  # added later: the key of a CPU run is what it always was
            del fields["device"]
        blob = json.dumps({**fields, "data": data_key}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass
class Windows:
    frames: np.ndarray | None  # [E, T+1, H, W, 3] uint8; None: rendered on demand from ``states``
    actions: np.ndarray  # [E, T, a] raw
    frameskip: int
    span: int  # frames per window (history + 1)
    mean: np.ndarray  # raw action statistics for z-scoring
    std: np.ndarray
    states: np.ndarray | None = None  # [E, T+1, ...] what ``render`` draws (paper-size data is not stored)
    render: object = None

    @classmethod
    def build(cls, frames: np.ndarray | None, actions: np.ndarray, frameskip: int, span: int,
              stats: tuple[np.ndarray, np.ndarray] | None = None, states: np.ndarray | None = None,
              render=None) -> Windows:
        if frames is None and (states is None or render is None):
            raise ValueError("without stored frames, windows need the states and a renderer")
        mean, std = stats if stats is not None else (actions.reshape(-1, actions.shape[-1]).mean(0),
                                                     actions.reshape(-1, actions.shape[-1]).std(0) + 1e-6)
        return cls(frames, actions, frameskip, span, mean, std, states, render)

    @property
    def episodes(self) -> int:
        return len(self.actions)

    @property
    def starts_per_episode(self) -> int:
        return self.actions.shape[1] + 1 - (self.span - 1) * self.frameskip

    def frames_at(self, ep: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Frames at episode ``ep`` [n, 1] and steps ``idx`` [n, k]: stored, or rendered now."""
        return self.frames[ep, idx] if self.frames is not None else self.render(self.states[ep, idx])

    def block(self, actions: np.ndarray) -> np.ndarray:
        """Raw actions [..., frameskip * k, a] -> z-scored blocks [..., k, frameskip * a]."""
        z = (actions - self.mean) / self.std
        lead = z.shape[:-2]
        return z.reshape(*lead, -1, self.frameskip * z.shape[-1]).astype(np.float32)

    def unblock(self, blocks: np.ndarray) -> np.ndarray:
        """z-scored blocks [..., k, frameskip * a] -> raw actions [..., frameskip * k, a], clipped to [-1, 1]."""
        a = self.actions.shape[-1]
        raw = blocks.reshape(*blocks.shape[:-2], -1, a) * self.std + self.mean
        return np.clip(raw, -1, 1)

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n random windows: the episode and the start step of each."""
        return rng.integers(0, self.episodes, n), rng.integers(0, self.starts_per_episode, n)

    def frame_steps(self, start: np.ndarray) -> np.ndarray:
        """The env steps [n, span] of the windows' frames."""
        return start[:, None] + self.frameskip * np.arange(self.span)

    def window(self, ep: np.ndarray, start: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The windows' frames [n, span, H, W, 3] and action blocks [n, span - 1, frameskip * a]."""
        frames = self.frames_at(ep[:, None], self.frame_steps(start))
        raw = self.actions[ep[:, None], start[:, None] + np.arange((self.span - 1) * self.frameskip)]
        frames = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(frames)  # (rendered on a GPU)
        return frames, torch.from_numpy(self.block(raw))

    def sample(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.window(*self.draw(n, rng))


def loop_state(parts: dict, rng: np.random.Generator, device: torch.device, gen: torch.Generator | None = None) -> dict:
    """A training loop's whole state for a checkpoint: its modules' and optimiser's state dicts (``parts``),
    and every generator the loop draws from (numpy's, its own torch one, torch's global CPU and CUDA ones)."""
    return {**{k: v.state_dict() for k, v in parts.items()}, "rng": rng.bit_generator.state,
            "gen": None if gen is None else gen.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def restore_loop(saved: dict, parts: dict, rng: np.random.Generator, device: torch.device,
                 gen: torch.Generator | None = None) -> None:
    """Put ``loop_state``'s state back: the loop goes on as if it had not stopped."""
    for key, obj in parts.items():
        obj.load_state_dict(saved[key])
    rng.bit_generator.state = saved["rng"]
    if gen is not None:
        gen.set_state(saved["gen"])
    torch.set_rng_state(saved["torch_rng"])
    if saved["cuda_rng"] is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)


def train(cfg: TrainConfig, data: Windows, wrap=iter, checkpoint=None) -> tuple[LeWM, dict]:
    """AdamW with warmup and cosine decay, gradient clipping; returns the model (eval mode) and
    the loss history. ``wrap`` wraps the step iterator (a progress bar). ``checkpoint`` (``load() ->
    state | None``, ``due()``, ``save(state)``): the loop's whole state (weights, optimiser, schedule,
    every generator, step, history) is saved when due; where one was saved, training goes on from it as
    if it had not stopped."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = torch.device(cfg.device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    model = LeWM(cfg.model).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * cfg.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, cfg.steps - warm))))
    history: dict[str, list] = {"loss": [], "pred_mse": [], "reg": []}
    t0, start, before = time.perf_counter(), 0, 0.0

    resumable = {"model": model, "opt": opt, "sched": sched}

    def state(step: int) -> dict:
        return {**loop_state(resumable, rng, device, gen), "history": history, "step": step,
                "seconds": before + time.perf_counter() - t0}

    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        restore_loop(saved, resumable, rng, device, gen)
        history, start, before = saved["history"], saved["step"], saved["seconds"]
    model.train()
    for step in wrap(range(start, cfg.steps)):
        if checkpoint is not None and step > start and checkpoint.due():
            checkpoint.save(state(step))
        frames, actions = data.sample(cfg.batch, rng)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            total, parts = loss(model, frames.to(device), actions.to(device), cfg.regulariser, cfg.weight,
                                cfg.directions, gen)
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        sched.step()
        for k, v in parts.items():
            history[k].append(v)
    history["seconds"] = before + time.perf_counter() - t0
    return model.eval(), history


def load_cached(path: Path, model: torch.nn.Module, device) -> dict | None:
    """A cached model's history, its weights loaded into ``model``; None where there is no entry or it does
    not load (torn, altered, planted: then it is rebuilt, never used). Tensors and plain data only."""
    if not path.is_file():
        return None
    try:
        with zipfile.ZipFile(path) as archive:  # every record against its stored CRC-32 (torch does not check)
            if archive.testzip() is not None:
                raise zipfile.BadZipFile(f"a record of {path} does not match its checksum")
        saved = torch.load(path, weights_only=True, map_location=device)
        model.load_state_dict(saved["state"])
        return saved["history"]
    except Exception as exc:
        print(f"cache entry {path} does not load ({type(exc).__name__}); training it again", file=sys.stderr)
        return None


def save_cached(path: Path, model: torch.nn.Module, history: dict) -> None:
    """A trained model and its history into the cache, whole (concurrent fills: one whole entry wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    torch.save({"state": model.state_dict(), "history": history}, tmp)
    tmp.replace(path)


def cached_train(cfg: TrainConfig, data: Windows, data_key: str, cache: Path, wrap=iter,
                 checkpoint=None) -> tuple[LeWM, dict]:
    path = Path(cache) / f"lewm-{cfg.key(data_key)}.pt"
    model = LeWM(cfg.model).to(cfg.device)
    history = load_cached(path, model, cfg.device)
    if history is not None:
        return model.eval(), history
    model, history = train(cfg, data, wrap, checkpoint)
    save_cached(path, model, history)
    return model, history
