"""Exact verification of a speculated chain, batched.

A round proposes K tokens x_1..x_K, each drawn from a known proposal distribution q_i; the
target gives p_1..p_{K+1} in one pass. Token i is accepted with probability
min(1, p_i(x_i) / q_i(x_i)) while all before it were; at the first rejection the bonus token is
drawn from the residual norm(max(p_i - q_i, 0)), and if all K are accepted from p_{K+1}. The
emitted tokens then follow p exactly (Leviathan et al. 2023; Chen et al. 2023), whatever q is,
provided q is the distribution the token was really drawn from:

- temperature / Saguaro rescaling: q is the rescaled distribution that was sampled;
- greedy (temperature 0): p and q are one-hot, and the test reduces to "accept iff x_i is the
  target's argmax, bonus = argmax";
- a deterministic proposal (SSD's random-token backup, a cached chain whose q is unknown) is
  a draw from q = delta_x: accepted with probability p(x), residual = p without x, renormalised.
  (The official engine instead greedy-matches such rows at temperature > 0, a bias of order 1/V.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Sampling distribution of logits at a temperature; temperature 0 is the one-hot argmax."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(torch.float32)
    return F.softmax(logits.float() / temperature, dim=-1)


def saguaro(q: torch.Tensor, fan_out: int, c: float) -> torch.Tensor:
    """Saguaro sampling (the paper's Definition 14): the draft's mass on its top-F tokens, the ones
    the speculation cache will hold as bonus candidates, is scaled by C in [0, 1] and the rest
    renormalised, so the residual max(p - q, 0) after a rejection lands in the cache more often."""
    if not 0 <= c <= 1:
        raise ValueError(f"Saguaro C must be in [0, 1], got {c}")
    if c == 1 or fan_out <= 0:
        return q
    top = q.topk(min(fan_out, q.shape[-1]), dim=-1).indices
    scale = torch.ones_like(q).scatter(-1, top, c)
    out = q * scale
    return out / out.sum(-1, keepdim=True)


def one_hot_proposal(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    """q = delta_x for deterministic proposals."""
    return F.one_hot(tokens, vocab).to(torch.float32)


@dataclass
class Verdict:
    accepted: torch.Tensor  # [B] number of draft tokens accepted, 0..K
    bonus: torch.Tensor  # [B] the bonus (recovery) token

    def emitted(self, draft: torch.Tensor) -> list[list[int]]:
        """Per sequence: the accepted draft tokens followed by the bonus token."""
        return [draft[b, : int(self.accepted[b])].tolist() + [int(self.bonus[b])] for b in range(len(draft))]


def verify(draft: torch.Tensor, q: torch.Tensor | None, p: torch.Tensor,
           generator: torch.Generator | None = None) -> Verdict:
    """draft [B, K] tokens, q [B, K, V] their proposal distributions, p [B, K+1, V] the target's.
    ``q=None`` means every token was proposed deterministically (q = delta_x; greedy drafting at
    temperature 0 is such a proposal), without materialising B x K x V one-hot rows."""
    b, k = draft.shape
    draft = draft.to(p.device)
    if p.shape[:2] != (b, k + 1) or (q is not None and (q.shape[:2] != (b, k) or q.shape[-1] != p.shape[-1])):
        shape_q = None if q is None else tuple(q.shape)
        raise ValueError(f"shapes disagree: draft {tuple(draft.shape)}, q {shape_q}, p {tuple(p.shape)}")
    p = p.float()
    px = p[:, :k].gather(-1, draft[..., None]).squeeze(-1)
    if q is None:
        qx = torch.ones_like(px)
    else:
        q = q.to(p.device).float()
        qx = q.gather(-1, draft[..., None]).squeeze(-1)
    if bool((qx <= 0).any()):
        raise ValueError("a draft token has zero probability under its own proposal q: q is not what it was drawn from")
    u = torch.rand(b, k, generator=generator, device=p.device)
    ok = u < (px / qx).clamp(max=1.0)
    accepted = ok.long().cumprod(-1).sum(-1)  # length of the accepted prefix
    rows = torch.arange(b, device=p.device)
    p_at = p[rows, accepted]
    if q is None:  # residual of delta_x: p without the rejected token (nothing removed past K)
        rejected = draft.gather(1, accepted.clamp(max=k - 1)[:, None]).squeeze(1)
        q_at = torch.zeros_like(p_at).scatter(1, rejected[:, None], (accepted < k).float()[:, None])
    else:
        q_at = torch.cat([q, torch.zeros_like(q[:, :1])], dim=1)[rows, accepted]  # q = 0 past K: residual = p_{K+1}
    residual = (p_at - q_at).clamp(min=0)
    mass = residual.sum(-1, keepdim=True)
    residual = torch.where(mass > 0, residual / mass.clamp(min=1e-30), p_at)
    bonus = torch.multinomial(residual, 1, generator=generator).squeeze(-1)
    return Verdict(accepted, bonus)
