"""A DINO-WM-like patch-token world model: the baseline LeWM's planning-speed claim is made against.

DINO-WM encodes each frame with a frozen pretrained encoder into one token per image patch (DINOv2
ViT-S/14 at 224 px: 256 tokens of width 384) and trains a frame-causal transformer to predict the
next frame's patch tokens; planning uses the same CEM, with the cost on the predicted final frame's
tokens against the goal frame's. LeWM carries one token per frame instead, which is where its
planning speed comes from. The frozen encoder is either DINO-WM's own (``PretrainedPatches``: a
transformers DINOv2 by hub id or directory, its final layer-normed patch tokens) or, where no
pretrained weights are at hand, the trained SIGReg model's own encoder, cut after ``depth``
stride-2 layers (an 8 x 8 grid at 32 px, one token per 4 x 4 patch) or a ViT's patch outputs; the
predictor matches LeWM's (AdaLN-zero action conditioning per frame).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from paper_lewm.model import ActionEncoder, ConditionalBlock, ModelConfig, rollout
from paper_lewm.train import loop_state, restore_loop

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # DINOv2's input normalisation (its image processor's)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PretrainedPatches(nn.Module):
    """A pretrained vision transformer's patch tokens, as DINO-WM takes DINOv2's: the final layer-normed
    outputs with the CLS (and any register) tokens dropped, from frames in [-1, 1] rescaled to [0, 1] and
    normalised with ImageNet's statistics. ``depth`` is ignored (the whole network is kept)."""

    def __init__(self, vit: nn.Module, source: str, commit: str | None):
        super().__init__()
        self.vit = vit.eval()
        self.source, self.commit = source, commit
        self.width, self.patch = vit.config.hidden_size, vit.config.patch_size
        self.skip = 1 + getattr(vit.config, "num_register_tokens", 0)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def patches(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """Frames [N, 3, H, W] in [-1, 1] -> tokens [N, (H / patch) x (W / patch), width]."""
        pixels = ((x + 1) / 2 - self.mean) / self.std
        return self.vit(pixel_values=pixels).last_hidden_state[:, self.skip:]


def pretrained_patches(where: str, image_size: int) -> PretrainedPatches:
    """DINO-WM's frozen encoder from a transformers checkpoint (a hub id such as ``facebook/dinov2-small``,
    from the local hub cache when offline, or a directory), for frames of ``image_size`` pixels, which
    its patch size must divide. ``commit`` is the hub snapshot's (None for a directory)."""
    from transformers import AutoModel

    vit = AutoModel.from_pretrained(where)
    patch = vit.config.patch_size
    if image_size % patch:
        raise ValueError(f"the patch encoder {where} cuts {patch}-pixel patches: model.image_size must be a "
                         f"multiple of {patch}, got {image_size}")
    return PretrainedPatches(vit, where, getattr(vit.config, "_commit_hash", None))


@dataclass
class PatchConfig:
    depth: int = 2  # frozen encoder layers kept (tokens = (image / 2^depth)^2)
    dim: int = 64
    layers: int = 2
    heads: int = 4
    head_dim: int = 16
    mlp: int = 256
    history: int = 3
    action_dim: int = 10


class PatchWM(nn.Module):
    def __init__(self, encoder: nn.Module, cfg: PatchConfig, channels: int, tokens: int):
        super().__init__()
        self.cfg = cfg
        self.frozen = encoder.eval().requires_grad_(False)
        self.tokens = tokens
        self.inp = nn.Linear(channels, cfg.dim)
        self.space = nn.Parameter(torch.randn(1, 1, tokens, cfg.dim) * 0.02)
        self.time = nn.Parameter(torch.randn(1, cfg.history, 1, cfg.dim) * 0.02)
        self.actions = ActionEncoder(ModelConfig(dim=cfg.dim, action_dim=cfg.action_dim))
        self.blocks = nn.ModuleList(ConditionalBlock(cfg.dim, cfg.heads, cfg.head_dim, cfg.mlp, 0.0)
                                    for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, channels)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames [B, T, H, W, 3] -> frozen patch tokens [B, T, P, C]."""
        b, t = frames.shape[:2]
        x = frames.reshape(b * t, *frames.shape[2:]).float().div(127.5).sub(1).movedim(-1, -3)
        feats = self.frozen.patches(x, self.cfg.depth)
        return feats.view(b, t, *feats.shape[1:])

    def predict(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """z [B, T, P, C], actions [B, T, A] -> the predicted next frame's tokens at each step [B, T, P, C].
        Frame-causal: a token sees every token of its own and earlier frames."""
        b, t, p, _ = z.shape
        x = (self.inp(z) + self.space + self.time[:, :t]).reshape(b, t * p, -1)
        c = self.actions(actions)[:, :, None].expand(-1, -1, p, -1).reshape(b, t * p, -1)
        frame = torch.arange(t, device=z.device).repeat_interleave(p)
        mask = frame[None, :] <= frame[:, None]
        for block in self.blocks:
            x = block(x, c, mask)
        return self.out(self.norm(x)).view(b, t, p, -1)

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return rollout(self.predict, self.cfg.history, z0, actions)


def train_patch(model: PatchWM, data, steps: int, batch: int, lr: float, seed: int, wrap=iter,
                checkpoint=None) -> dict:
    """MSE on the frozen encoder's next-frame tokens (the targets carry no gradient: the encoder is frozen).
    ``checkpoint``: as ``paper_lewm.train.train``'s (the loop's whole state, saved when due, resumed from)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-3)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    history, t0, start, before = [], time.perf_counter(), 0, 0.0
    device = model.space.device

    resumable = {"model": model, "opt": opt, "sched": sched}

    def state(step: int) -> dict:
        return {**loop_state(resumable, rng, device), "history": history, "step": step,
                "seconds": before + time.perf_counter() - t0}

    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        restore_loop(saved, resumable, rng, device)
        history, start, before = saved["history"], saved["step"], saved["seconds"]
    model.train()
    model.frozen.eval()
    for step in wrap(range(start, steps)):
        if checkpoint is not None and step > start and checkpoint.due():
            checkpoint.save(state(step))
        frames, actions = data.sample(batch, rng)
        z = model.encode(frames.to(device))
        loss = (model.predict(z[:, :-1], actions.to(device)) - z[:, 1:]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        history.append(loss.item())
    model.eval()
    return {"loss": history, "seconds": before + time.perf_counter() - t0}


def build(encoder: nn.Module, cfg: PatchConfig, image_size: int, seed: int = 0) -> PatchWM:
    """The patch model on a frozen encoder's patch tokens (a CNN cut after ``cfg.depth`` layers,
    or a ViT's patch outputs), initialised from ``seed`` (not from whatever the global generator
    holds, which depends on whether the encoder was trained here or loaded from a cache)."""
    torch.manual_seed(seed)
    device = next(encoder.parameters()).device
    with torch.no_grad():
        probe = encoder.eval().patches(torch.zeros(1, 3, image_size, image_size, device=device), cfg.depth)
    return PatchWM(encoder, cfg, probe.shape[2], probe.shape[1]).to(device)
