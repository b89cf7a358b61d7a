"""Claim evaluation: t-intervals and statuses against hand-computed values."""

import math

import pytest

from runners.api import Claim
from runners.claims import EXIT_CODES, evaluate, mean_ci, run_status

# t_{0.975, 2} = 4.302652729911275 (tables); samples 1, 2, 3: mean 2, sd 1, se 1/sqrt(3)
HALF_123 = 4.302652729911275 / math.sqrt(3)


def test_mean_ci_matches_hand_computation():
    mean, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert lo == pytest.approx(2.0 - HALF_123, abs=1e-9)
    assert hi == pytest.approx(2.0 + HALF_123, abs=1e-9)
    assert mean_ci([5.0]) == (5.0, 5.0, 5.0)


@pytest.mark.parametrize(("op", "threshold", "status"), [
    ("ge", -0.5, "pass"),     # lo = -0.484 >= -0.5
    ("ge", 0.0, "inconclusive"),
    ("ge", 4.5, "fail"),      # hi = 4.484 < 4.5
    ("le", 4.5, "pass"),
    ("le", 3.0, "inconclusive"),
    ("le", -0.5, "fail"),
])
def test_directional_claims(op, threshold, status):
    claim = Claim("c", "m", op, {"small": threshold})
    row = evaluate(claim, [1.0, 2.0, 3.0], "small")
    assert row["status"] == status
    assert row["value"] == 2.0 and row["n"] == 3


def test_approx_band():
    claim = Claim("c", "m", "approx", {"small": 2.0}, abs_tol=2.5)
    assert evaluate(claim, [1.0, 2.0, 3.0], "small")["status"] == "pass"
    tight = Claim("c", "m", "approx", {"small": 2.0}, abs_tol=1.0)
    assert evaluate(tight, [1.0, 2.0, 3.0], "small")["status"] == "inconclusive"
    far = Claim("c", "m", "approx", {"small": 20.0}, rel_tol=0.1)  # band [18, 22]
    assert evaluate(far, [1.0, 2.0, 3.0], "small")["status"] == "fail"


def test_untested_tier_is_skipped_never_passed():
    row = evaluate(Claim("c", "m", "ge", {"full": 0.0}), [1.0, 2.0], "small")
    assert row["status"] == "skipped" and "not tested at tier 'small'" in row["reason"]


def test_too_few_seeds_is_inconclusive():
    row = evaluate(Claim("c", "m", "ge", {"small": 0.0}, min_seeds=3), [1.0, 2.0], "small")
    assert row["status"] == "inconclusive" and "min_seeds 3" in row["reason"]


def test_missing_or_nan_metric_fails():
    assert evaluate(Claim("c", "m", "ge", {"small": 0.0}), None, "small")["status"] == "fail"
    assert evaluate(Claim("c", "m", "ge", {"small": 0.0}), [float("nan")], "small")["status"] == "fail"


def test_claim_validation():
    with pytest.raises(ValueError, match="op must be"):
        Claim("c", "m", "gt", {"small": 0.0})
    with pytest.raises(ValueError, match="unknown tier"):
        Claim("c", "m", "ge", {"medium": 0.0})
    with pytest.raises(ValueError, match="needs rel_tol or abs_tol"):
        Claim("c", "m", "approx", {"small": 0.0})


def test_run_status_and_exit_codes():
    assert run_status(["pass", "skipped"]) == "pass"
    assert run_status(["pass", "inconclusive"]) == "inconclusive"
    assert run_status(["pass", "fail", "inconclusive"]) == "fail"
    assert run_status(["skipped"]) == "skipped"
    assert [EXIT_CODES[s] for s in ("pass", "fail", "error", "inconclusive", "skipped")] == [0, 1, 2, 3, 3]


def test_log_scale_claim_uses_geometric_mean_and_log_ci():
    values = [8.0, 8.0, 32.0]  # logs 3 ln2, 3 ln2, 5 ln2: mean 11/3 ln2, sd (2/sqrt3) ln2
    claim = Claim("r", "ratio", "ge", {"small": 5.0}, scale="log")
    row = evaluate(claim, values, "small")
    mean_log = 11 / 3 * math.log(2)
    half = 4.302652729911275 * (2 / math.sqrt(3)) * math.log(2) / math.sqrt(3)
    assert row["value"] == pytest.approx(2 ** (11 / 3))
    assert row["ci"] == pytest.approx([math.exp(mean_log - half), math.exp(mean_log + half)])
    assert row["status"] == "inconclusive"  # lo = 2.5 < 5 < hi
    assert evaluate(claim, [8.0, 9.0, 10.0], "small")["status"] == "pass"
    assert evaluate(claim, [8.0, 0.0], "small")["status"] == "fail"


def test_metric_the_suite_cannot_vouch_for_is_inconclusive():
    claim = Claim("c", "gap", "ge", {"small": 0.0})
    row = evaluate(claim, [5.0], "small", ["fit moves by 2.3 > gap 0.2", "fit moves by 2.3 > gap 0.2"])
    assert row["status"] == "inconclusive" and row["reason"] == "fit moves by 2.3 > gap 0.2"
    assert row["value"] == 5.0  # the value is still reported
