"""Claim evaluation over units (seeds, or a declared unit such as prompts or episodes).

Every claim names the unit its interval is over and needs at least ``MIN_UNITS[tier]`` of them
(the claim may ask for more). Three rules turn the units' values into a status:

mean   the mean (geometric mean for scale="log") and its two-sided 95% Student-t interval:
       pass when the whole interval is on the right side of the threshold (inside the band for
       approx), fail when it is entirely on the wrong side, inconclusive when it straddles it
exact  every unit must hold (value op threshold): pass when all hold, fail when any does not
rate   the values are 0/1 outcomes of pooled trials: the Clopper-Pearson 95% interval of the
       success rate is tested like the mean rule's interval

A finished unit whose value is missing or not finite fails the claim, and is named in the reason.
Fewer units than required is inconclusive (an exact claim with a failing unit still fails). A
suite may declare a metric unreliable this time: that softens a pass to inconclusive, never a fail.
``skipped``: not tested at this tier, or a requirement is unmet (reason given).

An invariant (what holds by construction) is checked per seed; a violation is a harness error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from runners.api import Claim, Invariant

RUN_STATUSES = ("pass", "fail", "inconclusive", "skipped", "error", "interrupted")
MIN_UNITS = {"smoke": 1, "small": 3, "full": 3}
LEVEL = 0.95


def mean_ci(samples: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
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


def clopper_pearson(successes: int, trials: int, level: float = LEVEL) -> tuple[float, float, float]:
    """Success rate and its exact (Clopper-Pearson) two-sided binomial interval."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    from scipy.stats import beta

    alpha = 1 - level
    lo = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, trials - successes + 1))
    hi = 1.0 if successes == trials else float(beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return successes / trials, lo, hi


def tolerance(claim: Claim, threshold: float) -> float:
    return max(claim.abs_tol, claim.rel_tol * abs(threshold))


def min_units(claim: Claim, tier: str) -> int:
    return max(claim.min_units or 0, MIN_UNITS.get(tier, 3))


def _interval_status(claim: Claim, threshold: float, lo: float, hi: float) -> str:
    if claim.op == "ge":
        return "pass" if lo >= threshold else "fail" if hi < threshold else "inconclusive"
    if claim.op == "le":
        return "pass" if hi <= threshold else "fail" if lo > threshold else "inconclusive"
    tol = tolerance(claim, threshold)
    band_lo, band_hi = threshold - tol, threshold + tol
    if band_lo <= lo and hi <= band_hi:
        return "pass"
    return "fail" if hi < band_lo or lo > band_hi else "inconclusive"


def holds(claim: Claim, threshold: float, value: float) -> bool:
    """One unit's value on the right side of the threshold (inside the band for approx)."""
    return _interval_status(claim, threshold, value, value) == "pass"


def _invalid(claim: Claim, values: list[float], labels: list[str]) -> str:
    """Why these values cannot be judged by the claim's rule at all ('' when they can)."""
    if claim.scale == "log" and min(values) <= 0:
        bad = [f"{lab} ({v:.4g})" for lab, v in zip(labels, values, strict=True) if v <= 0]
        return f"log-scale claim needs positive values: {', '.join(bad)}"
    if claim.rule == "rate" and any(v not in (0.0, 1.0) for v in values):
        return f"rate claim needs 0/1 outcomes per trial, got {sorted(set(values))[:5]}"
    return ""


def _mean_rule(claim, threshold, values, labels):
    if claim.scale == "log":
        mean, lo, hi = (math.exp(v) for v in mean_ci([math.log(v) for v in values]))
    else:
        mean, lo, hi = mean_ci(values)
    status = _interval_status(claim, threshold, lo, hi)
    return status, mean, [lo, hi], "95% CI straddles the threshold" if status == "inconclusive" else ""


def _exact_rule(claim, threshold, values, labels):
    failing = [f"{lab} ({v:.4g})" for lab, v in zip(labels, values, strict=True) if not holds(claim, threshold, v)]
    value = math.fsum(values) / len(values)
    if failing:
        return "fail", value, None, f"{len(failing)} of {len(values)} {claim.unit} do not hold: {', '.join(failing[:8])}"
    return "pass", value, None, ""


def _rate_rule(claim, threshold, values, labels):
    rate, lo, hi = clopper_pearson(int(sum(values)), len(values))
    status = _interval_status(claim, threshold, lo, hi)
    return status, rate, [lo, hi], "exact 95% CI straddles the threshold" if status == "inconclusive" else ""


RULES = {"mean": _mean_rule, "exact": _exact_rule, "rate": _rate_rule}


def evaluate(claim: Claim, samples: Sequence[float | None] | None, tier: str, unreliable: Sequence[str] = (),
             labels: Sequence[str] | None = None) -> dict:
    """Status of one claim from one value per unit (None: the unit finished without the value).

    ``labels`` name the units in reasons ("seed 2"); ``unreliable`` holds the suite's reasons why
    its metric cannot decide this time: a pass becomes inconclusive, anything else keeps its status
    and carries the reasons.
    """
    row = {
        "id": claim.id, "metric": claim.metric, "op": claim.op, "threshold": claim.threshold.get(tier),
        "value": None, "ci": None, "n": 0, "unit": claim.unit, "rule": claim.rule,
        "paper_value": claim.paper_value, "source": claim.source, "context": claim.context,
        "version": claim.version, "status": "skipped", "reason": "",
    }
    if tier not in claim.threshold:
        row["reason"] = f"not tested at tier {tier!r} (tested at: {', '.join(claim.threshold) or 'none'})"
        return row
    row.update(_judge(claim, tier, list(samples or []), labels))
    if unreliable:
        why = "; ".join(dict.fromkeys(unreliable))
        if row["status"] == "pass":
            row.update(status="inconclusive", reason=why)
        else:
            row["reason"] = "; ".join(filter(None, [row["reason"], f"the suite adds: {why}"]))
    return row


def _judge(claim: Claim, tier: str, samples: list, labels: Sequence[str] | None) -> dict:
    """status, value, ci, n and reason of a claim tested at ``tier``."""
    labels = list(labels) if labels is not None else [f"unit {i}" for i in range(len(samples))]
    if all(v is None for v in samples):
        return {"n": len(samples), "status": "fail", "reason": f"metric {claim.metric!r} was not produced"}
    bad = [f"{lab} ({'missing' if v is None else v})" for lab, v in zip(labels, samples, strict=True)
           if v is None or not math.isfinite(v)]
    if bad:
        return {"n": len(samples), "status": "fail",
                "reason": f"metric {claim.metric!r} missing or not finite at {', '.join(bad)}"}
    values = [float(v) for v in samples]
    if invalid := _invalid(claim, values, labels):
        return {"n": len(values), "status": "fail", "reason": invalid}
    status, value, ci, reason = RULES[claim.rule](claim, claim.threshold[tier], values, labels)
    need = min_units(claim, tier)
    if len(values) < need and not (status == "fail" and claim.rule == "exact"):
        status, reason = "inconclusive", f"n = {len(values)} {claim.unit} < {need} needed at tier {tier!r}"
    return {"n": len(values), "status": status, "value": value, "ci": ci, "reason": reason}


def n_label(row: dict) -> str:
    """'3 seeds', '24 prompts': what a claim's interval is over."""
    return f"{row.get('n', 0)} {row.get('unit', 'seeds')}"


def check_invariant(inv: Invariant, samples: Sequence[float | None], labels: Sequence[str]) -> dict:
    """'held' when every seed's value is within the bound (up to ``tol``), else 'violated' naming them."""
    bad = []
    for lab, v in zip(labels, samples, strict=True):
        ok = v is not None and math.isfinite(v) and (v >= inv.bound - inv.tol if inv.op == "ge"
                                                     else v <= inv.bound + inv.tol)
        if not ok:
            bad.append(f"{lab} ({'missing' if v is None else f'{v:.6g}'})")
    return {"id": inv.id, "metric": inv.metric, "op": inv.op, "bound": inv.bound, "source": inv.source,
            "values": [None if v is None or not math.isfinite(v) else float(v) for v in samples],
            "status": "violated" if bad or not samples else "held",
            "reason": f"{inv.metric} {inv.op} {inv.bound:g} fails at {', '.join(bad)}" if bad else
            ("" if samples else "no finished seed")}


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
