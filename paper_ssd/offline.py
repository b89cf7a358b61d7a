"""How predictable is the verification outcome? Teacher-forced statistics over real text, as the
authors' offline sweep computes them: at each position, the chance that the draft's token is
rejected, and, given a rejection, that the bonus token lands among the draft's next F candidates
(its top-(F+1) minus the top-1, which is the token it would have speculated).

With p the target's and q the draft's distribution at a position (temperature applied, q
optionally Saguaro-rescaled), a rejection happens with probability w = 1 - sum min(p, q) and the
bonus follows r = max(p - q, 0) / w; the hit probability is the mass r puts on the candidates.
Positions are weighted by w. Greedy (temperature 0): p and q are one-hot.
"""

from __future__ import annotations

import numpy as np
import torch

from paper_ssd.verify import probs, saguaro


def outcome_prediction(p_logits: torch.Tensor, q_logits: torch.Tensor, temperature: float, fan_outs: list[int],
                       c: float = 1.0, saguaro_fan: int | None = None) -> dict:
    """p_logits, q_logits: [N, V] at the same N positions. Returns the acceptance rate (mean
    sum min(p, q)) and, per F, P(bonus among the draft's F candidates | rejection)."""
    p = probs(p_logits, temperature).double()
    q = probs(q_logits, temperature).double()
    if c < 1:
        q = saguaro(q, (saguaro_fan or max(fan_outs)) + 1, c)
    overlap = torch.minimum(p, q).sum(-1)
    w = (1 - overlap).clamp(min=0)
    residual = (p - q).clamp(min=0)
    residual = residual / residual.sum(-1, keepdim=True).clamp(min=1e-30)
    order = q_logits.topk(max(fan_outs) + 1, dim=-1).indices  # the draft's ranking; top-1 is the speculated token
    hits = {}
    for f in fan_outs:
        candidates = order[:, 1:f + 1]
        hit = residual.gather(-1, candidates).sum(-1)
        hits[f] = float((w * hit).sum() / w.sum()) if float(w.sum()) > 0 else float("nan")
    return {"acceptance": float(overlap.mean()), "rejection": float(w.mean()), "hit": hits}


def miss_exponent(fan_outs: list[int], hits: dict[int, float]) -> tuple[float, float]:
    """(r, a) in the paper's power law for the miss rate, 1 - p_hit(F) = a F^-r (Definition 11
    writes a = 1), by least squares on log(miss) against log F."""
    x = np.log(np.asarray(fan_outs, dtype=float))
    y = np.log(np.clip([1 - hits[f] for f in fan_outs], 1e-12, None))
    slope, intercept = np.polyfit(x, y, 1)
    return float(-slope), float(np.exp(intercept))
