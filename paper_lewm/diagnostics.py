"""Collapse diagnostics and surprise.

Collapse is measured with scale-aware quantities: the mean per-dimension standard deviation of
the embeddings, their effective rank (participation ratio of the covariance spectrum), and the
normalised prediction error (one-step prediction MSE over the targets' variance: 1 means no better
than predicting the mean). A linear probe's R^2 is reported too, but it is scale-invariant and a
collapsed (tiny but still structured) embedding can probe well, so it is not a collapse test.

Surprise: the one-step prediction error at a frame that was perturbed - the agent teleported
(physically implausible) or recoloured (visual only) - against the same step unperturbed.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from paper_lewm.sigreg import sigreg


def effective_rank(z: torch.Tensor) -> float:
    """(sum lambda)^2 / sum lambda^2 of the covariance of z [N, D]."""
    ev = torch.linalg.eigvalsh(torch.cov(z.T.double())).clamp(min=0)
    return float(ev.sum() ** 2 / ev.pow(2).sum()) if float(ev.sum()) > 0 else 0.0


def probe_r2(z: np.ndarray, y: np.ndarray, ridge: float = 1e-3, split: float = 0.5) -> float:
    """Held-out R^2 (averaged over targets) of a ridge regression from z to y."""
    n = int(len(z) * split)
    x = np.c_[z, np.ones(len(z))]
    a = x[:n]
    w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ y[:n])
    resid = y[n:] - x[n:] @ w
    return float(np.mean(1 - resid.var(0) / y[n:].var(0)))


@torch.no_grad()
def collapse(model, frames: torch.Tensor, actions: torch.Tensor, positions: np.ndarray, seed: int = 0) -> dict:
    """frames [B, T+1, H, W, 3], actions [B, T, A] (held-out windows), positions [B, T+1, K]: what a
    linear probe on the embeddings should recover (Two-Room: the agent's xy; Push-T: agent and block xy
    and the block angle's cosine and sine)."""
    device = next(model.parameters()).device
    emb = model.encode(frames.to(device)).float()
    pred = model.predict(emb[:, :-1], actions.to(device)).float()
    target = emb[:, 1:]
    flat = emb.reshape(-1, emb.shape[-1])
    var = target.reshape(-1, target.shape[-1]).var(0).mean()
    return {
        "embedding_std": float(flat.std(0).mean()),
        "effective_rank": effective_rank(flat),
        "pred_mse": float((pred - target).pow(2).mean()),
        "norm_pred_err": float((pred - target).pow(2).mean() / var.clamp(min=1e-12)),
        "sigreg_stat": float(sigreg(emb.transpose(0, 1).cpu(), 1024, torch.Generator().manual_seed(seed))),
        "probe_r2": probe_r2(flat.cpu().double().numpy(), positions.reshape(-1, positions.shape[-1])),
    }


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties halved (the Mann-Whitney U over n+ n-)."""
    u = stats.mannwhitneyu(positive, negative, alternative="two-sided").statistic
    return float(u / (len(positive) * len(negative)))


@torch.no_grad()
def surprise(model, env, positions: np.ndarray, actions: np.ndarray, block, frameskip: int,
             n: int, seed: int) -> dict:
    """Surprise ||z_hat_{t+1} - z_{t+1}||^2 at a random step of held-out trajectories, with frame
    t+1 unperturbed (control), teleported (Two-Room: the agent to a random free spot; Push-T: the
    block to a random pose) or recoloured (the agent; Push-T: the block).
    AUROC against the control and a paired t-test."""
    rng = np.random.default_rng(seed)
    ep = rng.integers(0, len(positions), n)
    t = rng.integers(0, positions.shape[1] - frameskip, n)
    now, nxt = positions[ep, t], positions[ep, t + frameskip]
    device = next(model.parameters()).device
    act = torch.from_numpy(block(actions[ep[:, None], t[:, None] + np.arange(frameskip)])).to(device)  # [n, 1, A]
    z_now = model.encode(torch.from_numpy(env.render(now)).to(device)[:, None])
    z_hat = model.predict(z_now, act)[:, -1]
    teleport = env.teleport(nxt, rng)
    colours = rng.choice([(30, 30, 220), (30, 170, 30), (230, 160, 0)], n)
    variants = {"control": env.render(nxt), "teleport": env.render(teleport), "colour": env.render(nxt, colours)}
    err = {}
    for name, frames in variants.items():
        z = model.encode(torch.from_numpy(frames).to(device)[:, None])[:, 0]
        err[name] = (z_hat - z).float().pow(2).sum(-1).cpu().numpy()
    out = {}
    for name in ("teleport", "colour"):
        out[f"auroc_{name}"] = auroc(err[name], err["control"])
        out[f"ttest_p_{name}"] = float(stats.ttest_rel(err[name], err["control"]).pvalue)
        out[f"mean_{name}"] = float(err[name].mean())
    out["mean_control"] = float(err["control"].mean())
    return out
