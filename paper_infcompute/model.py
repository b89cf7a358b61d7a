"""A small Llama-style decoder: RMSNorm, rotary position embeddings, SwiGLU, no biases,
untied input and output embeddings (the paper's levanter LlamaConfig, scaled down)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 256
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 0  # 0: the Llama default, 8/3 d_model rounded up to a multiple of 16
    seq_len: int = 64
    n_kv_heads: int = 0  # grouped-query attention; 0: as many key/value heads as query heads

    @property
    def ff(self) -> int:
        return self.d_ff or 16 * math.ceil(8 * self.d_model / 3 / 16)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(seq_len: int, head_dim: int, base: float = 10_000.0) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim)
    ang = torch.outer(torch.arange(seq_len).float(), inv)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (x[..., ::2], x[..., 1::2]) by position-dependent angles."""
    x1, x2 = x[..., ::2], x[..., 1::2]
    t = x.shape[-2]
    c, s = (cos[:t], sin[:t]) if cos.dim() == 2 else (cos, sin)  # per-row tables are already [b, 1, t, .]
    return torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.n_kv = cfg.n_kv_heads or cfg.n_heads
        if cfg.n_heads % self.n_kv:
            raise ValueError(f"n_heads {cfg.n_heads} is not a multiple of n_kv_heads {self.n_kv}")
        self.head_dim = cfg.d_model // cfg.n_heads
        self.attn_norm = RMSNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, cfg.d_model + 2 * self.n_kv * self.head_dim, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.mlp_norm = RMSNorm(cfg.d_model)
        self.gate = nn.Linear(cfg.d_model, cfg.ff, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.ff, bias=False)
        self.down = nn.Linear(cfg.ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: dict | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``cos``/``sin`` are the tables at this call's positions. With ``cache`` (a dict kept by the
        caller) keys and values of earlier calls are reused and the new tokens appended.
        ``key_mask`` [b, past + t] (bool) hides cache slots per row (rows of a batch that advanced by
        different amounts); the new tokens stay causal among themselves."""
        b, t, d = x.shape
        hd = self.head_dim
        q, k, v = self.qkv(self.attn_norm(x)).split([d, self.n_kv * hd, self.n_kv * hd], dim=-1)
        q = q.view(b, t, self.n_heads, hd).transpose(1, 2)
        k, v = (z.view(b, t, self.n_kv, hd).transpose(1, 2) for z in (k, v))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        mask, causal = None, True
        if cache is not None:
            if "k" in cache:
                past = cache["k"].shape[2]
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
                causal = False
                if t > 1:  # new query i sees every cached position and the new ones up to itself
                    mask = torch.arange(past + t, device=x.device)[None, :] <= past + torch.arange(t, device=x.device)[:, None]
            cache["k"], cache["v"] = k, v
        if key_mask is not None:
            past = k.shape[2] - t
            causal_part = torch.arange(past + t, device=x.device)[None, :] <= past + torch.arange(t, device=x.device)[:, None]
            mask, causal = key_mask[:, None, None, :] & causal_part, False
        if self.n_kv != self.n_heads:  # cache the n_kv heads, share each among its query group
            k, v = (z.repeat_interleave(self.n_heads // self.n_kv, dim=1) for z in (k, v))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.d_model % cfg.n_heads or (cfg.d_model // cfg.n_heads) % 2:
            raise ValueError("d_model must split into heads of even size")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg.seq_len, cfg.d_model // cfg.n_heads)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx: torch.Tensor, caches: list[dict] | None = None, positions: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None, *, features: bool = False,
                checkpoint: bool = False) -> torch.Tensor:
        """Logits [b, t, vocab]. ``caches`` (one dict per block, from ``new_caches``) turns on
        incremental decoding: positions continue after what the caches hold, unless ``positions``
        [b, t] gives each row's own (with ``key_mask`` hiding the cache slots a row does not use).
        ``features``: the final normalised hidden states [b, t, d_model] instead, which ``head`` maps
        to logits (so a loss can take the vocabulary in chunks). ``checkpoint``: keep only each
        block's input and recompute its inside in the backward pass (activation checkpointing)."""
        t = idx.shape[1]
        if positions is None:
            pos = caches[0]["k"].shape[2] if caches and "k" in caches[0] else 0
            if pos + t > self.cfg.seq_len:
                raise ValueError(f"positions {pos}..{pos + t - 1} exceed seq_len {self.cfg.seq_len}")
            cos, sin = self.cos[pos:pos + t], self.sin[pos:pos + t]
        else:
            if int(positions.max()) >= self.cfg.seq_len:
                raise ValueError(f"position {int(positions.max())} exceeds seq_len {self.cfg.seq_len}")
            cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]
        x = self.embed(idx)
        for i, block in enumerate(self.blocks):
            if checkpoint and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, cos, sin, None, key_mask, use_reentrant=False)
            else:
                x = block(x, cos, sin, None if caches is None else caches[i], key_mask)
        return self.norm(x) if features else self.head(self.norm(x))

    def new_caches(self) -> list[dict]:
        return [{} for _ in self.blocks]

    def n_params(self, non_embedding: bool = True) -> int:
        total = sum(p.numel() for p in self.parameters())
        return total - (self.embed.weight.numel() + self.head.weight.numel() if non_embedding else 0)


def parameter_count(cfg: ModelConfig, non_embedding: bool = False) -> int:
    """A model's parameters, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        return Decoder(cfg).n_params(non_embedding)
