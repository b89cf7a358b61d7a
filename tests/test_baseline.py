"""Regression verdicts on hand-made samples."""

from runners.api import Claim
from runners.baseline import compare

CLAIMS = [Claim("acc", "accuracy", "ge", {"small": 0.5}), Claim("err", "error", "le", {"small": 0.5})]


def summaries(new: dict, old: dict, **diff):
    common = {"suite": "s", "tier": "small", "hw_class": "cpu-2c", "suite_version": 1}
    base = dict(common, samples=old, claims={"acc": {"metric": "accuracy", "op": "ge", "version": 1},
                                                   "err": {"metric": "error", "op": "le", "version": 1}})
    return dict(common, samples=new, **diff), base


def verdicts(result):
    return {r["metric"]: r["verdict"] for r in result["rows"]}


def test_clear_regression_and_improvement():
    s, b = summaries({"accuracy": [0.70, 0.71, 0.72], "error": [0.10, 0.11, 0.12], "wall": [1.0]},
                     {"accuracy": [0.90, 0.91, 0.92], "error": [0.20, 0.21, 0.22], "wall": [2.0]})
    result = compare(s, b, CLAIMS)
    assert verdicts(result) == {"accuracy": "regression", "error": "improved", "wall": "info"}
    assert result["verdict"] == "regression"
    row = next(r for r in result["rows"] if r["metric"] == "accuracy")
    assert row["change"] == (0.71 - 0.91) / 0.91


def test_within_tolerance_is_ok():
    s, b = summaries({"accuracy": [0.90, 0.91]}, {"accuracy": [0.92, 0.93]})  # -2% < 10%
    assert compare(s, b, CLAIMS)["verdict"] == "ok"


def test_noisy_difference_is_not_a_regression():
    s, b = summaries({"accuracy": [0.2, 0.9, 0.5]}, {"accuracy": [0.9, 0.3, 0.95]})
    result = compare(s, b, CLAIMS)
    assert verdicts(result)["accuracy"] == "ok" and "not significant" in result["rows"][0]["why"]


def test_single_seed_beyond_tolerance_is_inconclusive():
    s, b = summaries({"accuracy": [0.5]}, {"accuracy": [0.9]})
    assert compare(s, b, CLAIMS)["verdict"] == "inconclusive"


def test_deterministic_metrics_differing_beyond_tolerance():
    s, b = summaries({"accuracy": [0.5, 0.5]}, {"accuracy": [0.9, 0.9]})
    assert verdicts(compare(s, b, CLAIMS))["accuracy"] == "regression"


def test_other_hardware_or_version_is_inconclusive():
    s, b = summaries({"accuracy": [0.5, 0.5]}, {"accuracy": [0.9, 0.9]}, )
    s["hw_class"] = "h100-x1"
    result = compare(s, b, CLAIMS)
    assert result["verdict"] == "inconclusive" and "hw_class differs" in result["problems"][0]
    s, b = summaries({"accuracy": [0.5, 0.5]}, {"accuracy": [0.9, 0.9]})
    b["claims"]["acc"]["version"] = 0
    assert verdicts(compare(s, b, CLAIMS))["accuracy"] == "inconclusive"
