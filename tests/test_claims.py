"""Claim evaluation: t-intervals and statuses against hand-computed values."""

import math

import pytest

from runners.api import Claim, Invariant
from runners.claims import EXIT_CODES, check_invariant, clopper_pearson, evaluate, mean_ci, run_status

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


def test_too_few_units_is_inconclusive_never_pass():
    row = evaluate(Claim("c", "m", "ge", {"small": 0.0}), [1.0, 2.0], "small")
    assert row["status"] == "inconclusive" and row["reason"] == "n = 2 seeds < 3 needed at tier 'small'"
    assert evaluate(Claim("c", "m", "ge", {"smoke": 0.0}), [1.0], "smoke")["status"] == "pass"  # smoke needs 1
    assert evaluate(Claim("c", "m", "ge", {"full": 0.0}), [1.0], "full")["status"] == "inconclusive"
    assert evaluate(Claim("c", "m", "ge", {"full": 9.0}), [1.0], "full")["status"] == "inconclusive"  # nor fail
    more = Claim("c", "m", "ge", {"small": 0.0}, min_units=5, unit="prompts")
    assert evaluate(more, [1.0, 2.0, 3.0, 4.0], "small")["reason"] == "n = 4 prompts < 5 needed at tier 'small'"


def test_missing_or_nan_unit_fails_and_is_named():
    assert evaluate(Claim("c", "m", "ge", {"small": 0.0}), None, "small")["status"] == "fail"
    row = evaluate(Claim("c", "m", "ge", {"small": 0.0}), [0.5, float("nan"), 0.52], "small",
                   labels=["seed 0", "seed 1", "seed 2"])
    assert row["status"] == "fail" and row["n"] == 3
    assert row["reason"] == "metric 'm' missing or not finite at seed 1 (nan)"
    row = evaluate(Claim("c", "m", "le", {"small": 9.0}), [None, float("inf"), 1.0], "small", labels=["a", "b", "c"])
    assert row["status"] == "fail" and row["reason"].endswith("at a (missing), b (inf)")


def test_exact_rule_every_unit_must_hold():
    claim = Claim("x", "match", "ge", {"smoke": 1.0, "small": 1.0}, rule="exact", unit="prompts")
    assert evaluate(claim, [1.0, 1.0, 1.0], "small")["status"] == "pass"
    row = evaluate(claim, [1.0, 1.0, 0.0], "small", labels=["p0", "p1", "p2"])
    assert row["status"] == "fail" and row["reason"] == "1 of 3 prompts do not hold: p2 (0)"
    assert row["value"] == pytest.approx(2 / 3) and row["ci"] is None
    assert evaluate(claim, [1.0, 0.0], "small")["status"] == "fail"  # one failing unit decides, however few
    assert evaluate(claim, [1.0, 1.0], "small")["status"] == "inconclusive"
    band = Claim("x", "m", "approx", {"small": 1.0}, abs_tol=0.1, rule="exact")
    assert evaluate(band, [0.95, 1.05, 1.0], "small")["status"] == "pass"
    assert evaluate(band, [0.95, 1.2, 1.0], "small")["status"] == "fail"


def test_clopper_pearson_matches_closed_forms():
    # k = 0: hi = 1 - (alpha/2)^(1/n); k = n: lo = (alpha/2)^(1/n)
    assert clopper_pearson(0, 3) == pytest.approx((0.0, 0.0, 1 - 0.025 ** (1 / 3)))
    assert clopper_pearson(10, 10) == pytest.approx((1.0, 0.025 ** (1 / 10), 1.0))
    # k = 1, n = 2: lo solves 1 - (1 - p)^2 = 0.025, hi solves p^2 = 0.975
    assert clopper_pearson(1, 2) == pytest.approx((0.5, 1 - math.sqrt(0.975), math.sqrt(0.975)))


def test_rate_rule_pools_trials():
    claim = Claim("r", "success", "ge", {"small": 0.5}, rule="rate", unit="episodes")
    row = evaluate(claim, [1.0] * 10, "small")
    assert row["status"] == "pass" and row["ci"] == pytest.approx([0.025 ** 0.1, 1.0])  # lo 0.69 >= 0.5
    assert evaluate(claim, [1.0, 1.0, 0.0], "small")["status"] == "inconclusive"  # CI [0.09, 0.99]
    assert evaluate(claim, [0.0] * 10, "small")["status"] == "fail"  # hi 0.31 < 0.5
    assert "0/1 outcomes" in evaluate(claim, [0.5, 1.0, 1.0], "small")["reason"]


def test_claim_validation():
    with pytest.raises(ValueError, match="op must be"):
        Claim("c", "m", "gt", {"small": 0.0})
    with pytest.raises(ValueError, match="unknown tier"):
        Claim("c", "m", "ge", {"large": 0.0})
    with pytest.raises(ValueError, match="needs rel_tol or abs_tol"):
        Claim("c", "m", "approx", {"small": 0.0})
    with pytest.raises(ValueError, match="rule must be"):
        Claim("c", "m", "ge", {"small": 0.0}, rule="median")
    with pytest.raises(ValueError, match="needs op ge or le"):
        Claim("c", "m", "approx", {"small": 0.0}, rule="rate", abs_tol=0.1)
    with pytest.raises(ValueError, match="op must be ge or le"):
        Invariant("i", "m", "approx", 0.0)


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


def test_metric_the_suite_cannot_vouch_for_softens_a_pass_never_a_fail():
    claim = Claim("c", "gap", "ge", {"small": 0.0})
    row = evaluate(claim, [5.0, 5.1, 5.2], "small", ["fit moves by 2.3 > gap 0.2", "fit moves by 2.3 > gap 0.2"])
    assert row["status"] == "inconclusive" and row["reason"] == "fit moves by 2.3 > gap 0.2"
    assert row["value"] == pytest.approx(5.1)  # the value is still reported
    row = evaluate(claim, [-5.0, -5.1, -5.2], "small", ["fit moves"])
    assert row["status"] == "fail" and row["reason"] == "the suite adds: fit moves"
    row = evaluate(claim, None, "small", ["no gain to retain"])
    assert row["status"] == "fail" and row["reason"] == "metric 'gap' was not produced; the suite adds: no gain to retain"


def test_invariant_names_the_seeds_that_break_it():
    inv = Invariant("conv", "gain", "ge", 0.0, tol=1e-9)
    assert check_invariant(inv, [0.0, -1e-12, 3.0], ["seed 0", "seed 1", "seed 2"])["status"] == "held"
    row = check_invariant(inv, [0.1, -0.2, None], ["seed 0", "seed 1", "seed 2"])
    assert row["status"] == "violated" and row["reason"] == "gain ge 0 fails at seed 1 (-0.2), seed 2 (missing)"
