"""The diffusion models' settings, kept free of torch so that a suite's config can nest them (and be
listed) without importing it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    horizon: int = 16  # F
    denoiser: str = "mlp"  # mlp | transformer
    hidden: int = 512
    layers: int = 3
    train_steps: int = 100  # diffusion steps in training
    proposal_steps: int = 10  # DDIM steps when sampling actions
    dynamics_steps: int = 10  # ... and states
    gamma: float = 0.99
    prediction: str = "v"  # what the denoiser outputs: v (default) or epsilon (see Diffusion)
    clip: float = 5.0  # each DDIM step's x0 estimate clipped to +-clip (data standardised per dimension)
