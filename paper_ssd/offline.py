"""How predictable is the verification outcome? Teacher-forced statistics over real text: at each
position, the chance that the draft's token is rejected, and, given a rejection, that the bonus
token lands among the F candidates the speculation cache holds for it - the draft's top-F tokens
by its logits, leaving out the token it speculated (which a rejection rules out), exactly as the
engine builds them.

With p the target's and q the draft's distribution at a position (temperature applied, q
optionally Saguaro-rescaled: the law the speculated token x is drawn from), x is rejected with
probability 1 - min(1, p(x)/q(x)), so a rejection of x has mass e(x) = max(q(x) - p(x), 0) and in
all w = sum e = 1 - sum min(p, q); the bonus then follows r = max(p - q, 0) / w whatever x was.
The candidates are T_F (the top F) when x is outside it, else T_{F+1} without x; since e(x) r(x)
= 0 for every token, P(hit, rejection) = r(T_F) (w - e(T_F)) + r(T_{F+1}) e(T_F), exactly, with
no sampling. Positions are weighted by w. Greedy (temperature 0): p and q are one-hot and x is
the draft's top-1, so this is P(bonus among the draft's ranks 2..F+1 | rejection).
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
    excess = (q - p).clamp(min=0)  # e(x): the mass of proposing x and having it rejected
    order = q_logits.topk(max(fan_outs) + 1, dim=-1).indices  # the draft's ranking, as the cache uses it
    r_top = residual.gather(-1, order).cumsum(-1)  # r(T_n) for n = 1..F_max+1
    e_top = excess.gather(-1, order).cumsum(-1)
    hits = {}
    for f in fan_outs:
        mass = r_top[:, f - 1] * (w - e_top[:, f - 1]) + r_top[:, f] * e_top[:, f - 1]  # P(hit, rejection)
        hits[f] = float(mass.sum() / w.sum()) if float(w.sum()) > 0 else float("nan")
    return {"acceptance": float(overlap.mean()), "rejection": float(w.mean()), "hit": hits}


def pooled(parts: list[dict], sizes: list[int]) -> dict:
    """``outcome_prediction`` over the union of disjoint position sets, exactly, from each set's
    result and its number of positions: acceptance and rejection are position means, hit rates are
    rejection-weighted."""
    n = sum(sizes)
    weights = [r["rejection"] * s for r, s in zip(parts, sizes, strict=True)]
    total_w = sum(weights)
    hits = {f: (sum(r["hit"][f] * w for r, w in zip(parts, weights, strict=True) if w > 0) / total_w
                if total_w > 0 else float("nan")) for f in parts[0]["hit"]}
    return {"acceptance": sum(r["acceptance"] * s for r, s in zip(parts, sizes, strict=True)) / n,
            "rejection": total_w / n, "hit": hits}


def jackknife(statistic, parts: list[dict], sizes: list[int]) -> list[float]:
    """Tukey's jackknife pseudo-values of ``statistic(pooled(...))`` over the position sets
    (held-out chunks): n s(all) - (n - 1) s(all but set i). Their mean is the jackknife estimate and
    their t-interval its confidence interval, with the sets as the units."""
    n = len(parts)
    full = statistic(pooled(parts, sizes))
    return [n * full - (n - 1) * statistic(pooled(parts[:i] + parts[i + 1:], sizes[:i] + sizes[i + 1:]))
            for i in range(n)]


def miss_exponent(fan_outs: list[int], hits: dict[int, float]) -> tuple[float, float]:
    """(r, a) in the paper's power law for the miss rate, 1 - p_hit(F) = a F^-r (Definition 11
    writes a = 1), by least squares on log(miss) against log F."""
    x = np.log(np.asarray(fan_outs, dtype=float))
    y = np.log(np.clip([1 - hits[f] for f in fan_outs], 1e-12, None))
    slope, intercept = np.polyfit(x, y, 1)
    return float(-slope), float(np.exp(intercept))
