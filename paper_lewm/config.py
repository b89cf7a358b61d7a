"""The world model's and the planner's settings, kept free of torch so that a suite's config can
nest them (and be listed) without importing it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    image_size: int = 64
    encoder: str = "cnn"  # cnn | vit
    channels: tuple[int, ...] = (32, 64, 128, 128)
    vit_patch: int = 8
    vit_layers: int = 4
    vit_heads: int = 4
    dim: int = 128  # embedding width (the paper: 192)
    projector_hidden: int = 512  # the paper: 2048
    action_dim: int = 10  # frameskip x raw action dim
    layers: int = 4  # predictor depth (the paper: 6)
    heads: int = 4  # (the paper: 16 x 64)
    head_dim: int = 32
    mlp: int = 512  # (the paper: 2048)
    dropout: float = 0.1
    history: int = 3


@dataclass
class CEMConfig:
    samples: int = 300
    iterations: int = 10  # the paper: 30 for Push-T, 10 for the others
    elites: int = 30
    horizon: int = 5  # action blocks (each ``frameskip`` env steps)
    replan: int = 1  # blocks executed before replanning (the paper: all 5)
    init_std: float = 1.0  # in z-scored action space
    chunk: int = 0  # candidate rollouts per predictor call (0: every episode's at once); bounds the memory
