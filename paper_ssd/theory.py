"""The paper's closed forms: expected tokens per round, fan-out schedules, and the SSD speedup
model (Theorem 7), so measured runs can be set beside what the theory predicts for them."""

from __future__ import annotations

import numpy as np


def expected_tokens_per_round(accept_rate: float, k: int) -> float:
    """E[accepted + bonus] for K i.i.d. acceptances at rate a: (1 - a^(K+1)) / (1 - a)."""
    if not 0 <= accept_rate <= 1:
        raise ValueError(f"acceptance rate must be in [0, 1], got {accept_rate}")
    if accept_rate == 1:
        return float(k + 1)
    return (1 - accept_rate ** (k + 1)) / (1 - accept_rate)


def uniform_fan_out(k: int, f: int) -> list[int]:
    """F bonus candidates at every accepted length 0..K (the official default, F=3)."""
    return [f] * (k + 1)


def geometric_fan_out(k: int, budget: int, accept_rate: float, r: float) -> list[int]:
    """Theorem 12's budget split: F_j = F_0 a^(j/(1+r)) for j < K and
    F_K = F_0 a^(K/(1+r)) (1-a)^(-1/(1+r)), scaled to sum to ``budget`` and rounded to integers by
    largest remainder (so the sum is exact). ``r`` is the miss-rate exponent, 1 - p_hit(F) = F^-r."""
    if not 0 < accept_rate < 1:
        raise ValueError(f"acceptance rate must be in (0, 1), got {accept_rate}")
    j = np.arange(k + 1, dtype=float)
    shape = accept_rate ** (j / (1 + r))
    shape[k] *= (1 - accept_rate) ** (-1 / (1 + r))
    raw = budget * shape / shape.sum()
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out))[: budget - out.sum()]:
        out[i] += 1
    return out.tolist()


def ssd_speedup(p_hit: float, e_hit: float, e_miss: float, t_primary: float, t_backup: float) -> float:
    """Theorem 7: speedup of SSD over autoregressive decoding.

    E_hit / E_miss: expected tokens per round after a cache hit / miss; t_primary: the draft's
    per-round work (answer + cache build) in units of one target verification; t_backup: the
    backup speculator's latency in the same unit (0 for random tokens)."""
    num = p_hit * e_hit + (1 - p_hit) * e_miss
    den = p_hit * max(1.0, t_primary) + (1 - p_hit) * (1 + t_backup)
    return num / den


def ssd_model_on_measured(stats) -> dict:
    """Theorem 7 on one SSD run's measured quantities (a ``paper_ssd.engine.Stats``): the hit rate,
    tokens per round after a hit and after a miss, and T_p (the draft's busy time per step) and T_b
    (backup time per miss) in units of the measured verification time. Returns the predicted
    tokens/s beside the measured decode tokens/s."""
    s = stats.summary()
    t_verify = stats.verify_s / max(stats.steps, 1)
    misses = max(stats.predicted - stats.hits, 1)
    t_primary = stats.draft_busy_s / max(stats.steps, 1) / t_verify
    t_backup = stats.backup_s / misses / t_verify
    speedup = ssd_speedup(s["hit_rate"], s["tokens_per_round_hit"], s["tokens_per_round_miss"], t_primary, t_backup)
    return {"p_hit": s["hit_rate"], "e_hit": s["tokens_per_round_hit"], "e_miss": s["tokens_per_round_miss"],
            "t_verify_ms": 1000 * t_verify, "t_primary": t_primary, "t_backup": t_backup,
            "speedup_over_one_verify": speedup, "model_tokens_per_s": speedup / t_verify,
            "measured_tokens_per_s": s["tokens_per_s"]}


def sd_speedup(accept_rate: float, k: int, t_draft: float) -> float:
    """Synchronous SD over AR: tokens per round over (K draft steps + one verification), with
    t_draft one draft step in units of one verification."""
    return expected_tokens_per_round(accept_rate, k) / (k * t_draft + 1)
