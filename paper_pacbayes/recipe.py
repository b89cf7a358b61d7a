"""The compression-bound recipe: every choice fixed before the data is seen (part of the prior).

Kept free of torch so configs can be built and listed without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Recipe:
    arch: str = "mlp"  # mlp | cnn; `hidden` is the hidden width (mlp) or base channel count (cnn)
    hidden: int = 128
    subspace_dim: int = 1024
    levels: int = 9
    epochs: int = 4
    lr: float = 0.05
    batch_size: int = 256
    qat_epochs: int = 1
    qat_lr: float = 5e-3
    lloyd_steps: int = 30
    misc_bits: float = 7.0
    delta: float = 0.05
