"""Claim evaluation over seeds: seed mean, 95% t-interval, and a status.

pass          the whole 95% CI is on the right side of the threshold (inside the band for approx)
fail          the whole CI is on the wrong side (outside the band)
inconclusive  the CI straddles the threshold, or fewer seeds than the claim's min_seeds
skipped       the claim is not tested at this tier, or a requirement is unmet (reason given)

A claim with scale="log" (ratios) is evaluated on log(values): its value is the geometric mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from runners.api import Claim

RUN_STATUSES = ("pass", "fail", "inconclusive", "skipped", "error", "interrupted")


def mean_ci(samples: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval. One sample gives a point interval."""
    n = len(samples)
    if n == 0:
        raise ValueError("no samples")
    mean = math.fsum(samples) / n
    if n == 1:
        return mean, mean, mean
    var = math.fsum((x - mean) ** 2 for x in samples) / (n - 1)
    from scipy.stats import t  # lazy: keeps `paperclub list` light

    half = float(t.ppf(0.5 + level / 2, n - 1)) * math.sqrt(var / n)
    return mean, mean - half, mean + half


def tolerance(claim: Claim, threshold: float) -> float:
    return max(claim.abs_tol, claim.rel_tol * abs(threshold))


def evaluate(claim: Claim, samples: Sequence[float] | None, tier: str, unreliable: Sequence[str] = ()) -> dict:
    """Status of one claim; ``unreliable`` holds the suite's reasons why its metric cannot decide."""
    row = {
        "id": claim.id,
        "metric": claim.metric,
        "op": claim.op,
        "threshold": claim.threshold.get(tier),
        "value": None,
        "ci": None,
        "n": 0,
        "paper_value": claim.paper_value,
        "source": claim.source,
        "version": claim.version,
        "status": "skipped",
        "reason": "",
    }
    if tier not in claim.threshold:
        row["reason"] = f"not tested at tier {tier!r} (tested at: {', '.join(claim.threshold) or 'none'})"
        return row
    threshold = claim.threshold[tier]
    values = [float(v) for v in (samples or [])]
    if not values:
        row.update(status="fail", reason=f"metric {claim.metric!r} was not produced")
        return row
    if any(not math.isfinite(v) for v in values):
        row.update(status="fail", n=len(values), reason=f"metric {claim.metric!r} is not finite: {values}")
        return row
    if claim.scale == "log":
        if min(values) <= 0:
            row.update(status="fail", n=len(values), reason=f"log-scale claim needs positive values: {values}")
            return row
        mean, lo, hi = (math.exp(v) for v in mean_ci([math.log(v) for v in values]))
    else:
        mean, lo, hi = mean_ci(values)
    row.update(value=mean, ci=[lo, hi], n=len(values))
    if unreliable:
        row.update(status="inconclusive", reason="; ".join(dict.fromkeys(unreliable)))
        return row
    if len(values) < claim.min_seeds:
        row.update(status="inconclusive", reason=f"{len(values)} seed(s) < min_seeds {claim.min_seeds}")
        return row
    if claim.op == "ge":
        status = "pass" if lo >= threshold else "fail" if hi < threshold else "inconclusive"
    elif claim.op == "le":
        status = "pass" if hi <= threshold else "fail" if lo > threshold else "inconclusive"
    else:
        tol = tolerance(claim, threshold)
        band_lo, band_hi = threshold - tol, threshold + tol
        if band_lo <= lo and hi <= band_hi:
            status = "pass"
        elif hi < band_lo or lo > band_hi:
            status = "fail"
        else:
            status = "inconclusive"
    row["status"] = status
    if status == "inconclusive":
        row["reason"] = "95% CI straddles the threshold"
    return row


def run_status(claim_statuses: Iterable[str]) -> str:
    """Overall status from claim statuses (not counting harness errors or interrupts)."""
    statuses = list(claim_statuses)
    if "fail" in statuses:
        return "fail"
    if "inconclusive" in statuses:
        return "inconclusive"
    if "pass" in statuses:
        return "pass"
    return "skipped"


EXIT_CODES = {"pass": 0, "fail": 1, "error": 2, "inconclusive": 3, "skipped": 3, "interrupted": 130}
