"""LeWorldModel: an image encoder with a BatchNorm-MLP projector, an action encoder, and a causal
transformer predictor with AdaLN-zero action conditioning, trained end to end on next-embedding
prediction plus a regulariser on the embeddings (SIGReg; none; or VICReg as in PLDM), with no
stop-gradient and no EMA: the prediction targets are not detached.

Encoders: ``cnn`` (4 stride-2 convolutions with GroupNorm, the CPU choice; the paper reports a
ResNet does about as well as its ViT) or ``vit`` (the paper's ViT with a CLS token, ViT-tiny/14 at
224 px in the full tier). The predictor sees up to ``history`` frame embeddings (learned positions)
and predicts each next one (teacher forcing, causal mask).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from paper_lewm.config import ModelConfig
from paper_lewm.sigreg import sigreg, vicreg


def projector(dim: int, hidden: int) -> nn.Sequential:
    """MLP(dim -> hidden, BatchNorm1d, GELU -> dim): lets the regulariser shape the embedding
    (a bare LayerNorm output would fight it)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.GELU(), nn.Linear(hidden, dim))


class CNNEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers, c_in = [], 3
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), nn.GroupNorm(8, c), nn.GELU()]
            c_in = c
        self.body = nn.Sequential(*layers)
        side = cfg.image_size // 2 ** len(cfg.channels)
        self.out = nn.Linear(c_in * side * side, cfg.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x).flatten(1))

    def patches(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """The feature map after ``depth`` stride-2 blocks (default all) as tokens [B, P, C], one per
        spatial cell: the patch tokens of a patch-token world model."""
        return self.body[:3 * (depth or len(self.body) // 3)](x).flatten(2).transpose(1, 2)


class ViTEncoder(nn.Module):
    """A plain ViT: patch embedding, CLS token, learned positions, pre-norm blocks; the CLS output."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.patch = nn.Conv2d(3, cfg.dim, cfg.vit_patch, cfg.vit_patch)
        n = (cfg.image_size // cfg.vit_patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, cfg.dim) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.vit_heads, 4 * cfg.dim, 0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.vit_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1) + self.pos
        return self.norm(self.blocks(t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x)[:, 0]

    def patches(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """One token per image patch (the CLS token dropped); ``depth`` is ignored."""
        return self.tokens(x)[:, 1:]


class ActionEncoder(nn.Module):
    """Per-timestep action vector (frameskip x action dim, z-scored) -> an embedding."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.mix = nn.Conv1d(cfg.action_dim, cfg.action_dim, 1)
        self.mlp = nn.Sequential(nn.Linear(cfg.action_dim, 4 * cfg.dim), nn.SiLU(), nn.Linear(4 * cfg.dim, cfg.dim))

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # [B, T, A]
        return self.mlp(self.mix(a.transpose(1, 2)).transpose(1, 2))


class ConditionalBlock(nn.Module):
    """Pre-norm causal self-attention and MLP, each modulated by the token's action embedding
    through AdaLN-zero: shift, scale and gate from a zero-initialised linear map, so every block
    starts as the identity."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * heads * head_dim)
        self.proj = nn.Linear(heads * head_dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp, dim))
        self.drop = nn.Dropout(dropout)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, -1)
        b, t, _ = x.shape
        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = self.qkv(h).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                             dropout_p=self.drop.p if self.training else 0.0)
        x = x + gate1 * self.drop(self.proj(att.transpose(1, 2).reshape(b, t, -1)))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.mlp(h)


class Predictor(nn.Module):
    """Frame embeddings [B, T, D] and action embeddings [B, T, D] -> predicted next embeddings."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, cfg.history, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(ConditionalBlock(cfg.dim, cfg.heads, cfg.head_dim, cfg.mlp, cfg.dropout)
                                    for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = projector(cfg.dim, cfg.projector_hidden)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        b, t, d = z.shape
        x = z + self.pos[:, :t]
        for block in self.blocks:
            x = block(x, c)
        return self.out(self.norm(x).reshape(b * t, d)).view(b, t, d)


class LeWM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = CNNEncoder(cfg) if cfg.encoder == "cnn" else ViTEncoder(cfg)
        self.project = projector(cfg.dim, cfg.projector_hidden)
        self.actions = ActionEncoder(cfg)
        self.predictor = Predictor(cfg)

    @staticmethod
    def pixels(frames: torch.Tensor) -> torch.Tensor:
        """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [-1, 1]."""
        return frames.float().div(127.5).sub(1).movedim(-1, -3)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames [B, T, H, W, 3] -> embeddings [B, T, D]."""
        b, t = frames.shape[:2]
        x = self.pixels(frames.reshape(b * t, *frames.shape[2:]))
        return self.project(self.encoder(x)).view(b, t, -1)

    def predict(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """z [B, T, D], actions [B, T, A] -> the predicted embedding after each step [B, T, D]."""
        return self.predictor(z, self.actions(actions))

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return rollout(self.predict, self.cfg.history, z0, actions)


@torch.no_grad()
def rollout(predict, history: int, z0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """From the current frame's latent z0 [B, 1, ...], predict through actions [B, H, A]
    autoregressively (``predict`` sees the last ``history`` latents, its own predictions included);
    the final predicted latent [B, ...]. Shared by LeWM and the patch-token model."""
    if z0.shape[1] != 1:  # earlier context frames would need the actions between them
        raise ValueError(f"rollout starts from one frame's latent, got {z0.shape[1]}")
    z = z0
    for h in range(actions.shape[1]):
        ctx = z[:, -history:]
        acts = actions[:, max(0, h + 1 - ctx.shape[1]):h + 1]
        z = torch.cat([z, predict(ctx, acts)[:, -1:]], 1)
    return z[:, -1]


def loss(model: LeWM, frames: torch.Tensor, actions: torch.Tensor, regulariser: str, weight: float,
         directions: int = 1024, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """frames [B, T+1, H, W, 3], actions [B, T, A]: prediction MSE of embeddings 1..T from 0..T-1
    (targets not detached) + weight x the regulariser on all T+1 embeddings."""
    emb = model.encode(frames)
    pred = model.predict(emb[:, :-1], actions)
    mse = (pred - emb[:, 1:]).pow(2).mean()
    z = emb.transpose(0, 1)  # [T+1, B, D]: each timestep's batch is a sample
    if regulariser == "sigreg":
        reg = sigreg(z, directions, generator)
    elif regulariser == "vicreg":
        reg = vicreg(z)
    elif regulariser == "none":
        reg = torch.zeros((), device=frames.device)
    else:
        raise ValueError(f"regulariser must be sigreg, vicreg or none, got {regulariser!r}")
    total = mse + weight * reg
    return total, {"loss": total.item(), "pred_mse": mse.item(), "reg": reg.item()}
