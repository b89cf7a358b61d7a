"""Regression verdicts on hand-made samples, and tolerances calibrated from same-code runs."""

import math

import pytest

from runners.api import Claim
from runners.baseline import compare
from runners.errors import HarnessError

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


def run_summary(uid: str, metrics: dict, sha: str = "abc1234", **over) -> dict:
    return dict({"suite": "s", "tier": "small", "hw_class": "cpu-2c", "suite_version": 1, "status": "pass",
                 "run_uid": uid, "env": {"git_sha": sha}, "metrics": metrics, "seeds": [0], "seeds_done": [0]},
                **over)


def test_calibrated_tolerance_is_a_99_percent_prediction_interval():
    from runners.baseline import calibration

    runs = [run_summary(str(i), {"accuracy": m, "only_some": 1.0} if i else {"accuracy": m})
            for i, m in enumerate([1.0, 2.0, 3.0])]
    tol = calibration(runs)
    # t_{0.995, 2} = 9.924843 (tables); sd 1; sqrt(1 + 1/3)
    assert tol["accuracy"]["abs"] == pytest.approx(9.924843 * math.sqrt(4 / 3), rel=1e-6)
    assert tol["accuracy"]["runs"] == 3 and "only_some" not in tol  # not every run measured it
    # three equal means do not vary, though fsum(3 x) / 3 misses x by an ulp for this one (infcompute's value)
    x = 1.977643098727905
    same = calibration([run_summary(str(i), {"spread": x}) for i in range(3)])["spread"]
    assert same["std"] == 0.0 and same["abs"] == 0.0 and same["mean"] == x


@pytest.mark.parametrize(("runs", "message"), [
    ([run_summary("a", {}), run_summary("b", {})], "at least 3 runs"),
    ([run_summary("a", {}), run_summary("b", {}), run_summary("c", {}, sha="def5678")], "different code"),
    ([run_summary("a", {}), run_summary("b", {}), run_summary("c", {}, tier="smoke")], "differ in tier"),
    ([run_summary("a", {}), run_summary("b", {}), run_summary("c", {}, status="error")], "did not finish"),
])
def test_calibration_refuses_runs_that_are_not_the_same_code(runs, message):
    from runners.baseline import calibration

    with pytest.raises(HarnessError, match=message):
        calibration(runs)


def test_calibrated_tolerance_replaces_the_relative_one():
    s, b = summaries({"accuracy": [0.90, 0.90, 0.90]}, {"accuracy": [0.92, 0.92, 0.92]})  # -2%: ok by 10%
    b["tolerances"] = {"accuracy": {"abs": 0.01, "runs": 3, "level": 0.99}}
    row = compare(s, b, CLAIMS)["rows"][0]
    assert row["verdict"] == "regression" and "calibrated tolerance +-0.01 (3 runs)" in row["why"]
    b["tolerances"]["accuracy"]["abs"] = 0.05
    assert verdicts(compare(s, b, CLAIMS))["accuracy"] == "ok"


def test_a_claim_that_passed_and_now_fails_is_a_regression():
    s, b = summaries({"accuracy": [0.9]}, {"accuracy": [0.9]})
    b["claims"]["acc"]["status"] = "pass"
    s["claims"] = [{"id": "acc", "status": "fail", "value": 0.4, "n": 3, "version": 1, "reason": "CI below 0.5"}]
    result = compare(s, b, CLAIMS)
    assert result["verdict"] == "regression" and verdicts(result)["claim acc"] == "regression"


def test_a_tier_without_claims_is_accepted_but_a_run_that_never_ran_is_not():
    from runners.baseline import finished

    assert finished(run_summary("a", {}, status="skipped"))  # smoke: every seed measured, no claim judged
    assert not finished(run_summary("a", {}, status="skipped", seeds_done=[]))  # a requirement unmet
    assert not finished(run_summary("a", {}, status="interrupted", seeds=[0, 1]))


def test_calibrated_tolerance_holds_only_on_the_cpu_it_came_from():
    s, b = summaries({"accuracy": [0.90, 0.90, 0.90]}, {"accuracy": [0.92, 0.92, 0.92]})
    b["tolerances"] = {"accuracy": {"abs": 0.01, "runs": 3, "level": 0.99}}
    b["env"] = {"cpu_model": "AMD EPYC", "cpu_isa": ["avx2", "avx512f"]}
    s["env"] = {"cpu_model": "AMD EPYC", "cpu_isa": ["avx2"]}
    result = compare(s, b, CLAIMS)
    assert verdicts(result)["accuracy"] == "ok"  # -2%, within the relative 10%
    assert "calibrated on another CPU" in result["notes"][0]
    s["env"]["cpu_isa"] = ["avx2", "avx512f"]
    assert verdicts(compare(s, b, CLAIMS))["accuracy"] == "regression"


def test_a_metric_never_finite_on_either_side_decides_nothing():
    s, b = summaries({"accuracy": [0.9, 0.9], "error": [None, None]}, {"accuracy": [0.9, 0.9], "error": [None]})
    result = compare(s, b, CLAIMS)
    assert verdicts(result) == {"accuracy": "ok", "error": "info"} and result["verdict"] == "ok"
    s, b = summaries({"accuracy": [0.9, 0.9], "error": [None]}, {"accuracy": [0.9, 0.9], "error": [0.1]})
    assert compare(s, b, CLAIMS)["verdict"] == "inconclusive"  # measured before, not now


def test_a_run_on_other_data_is_another_experiment_unless_the_tolerances_cover_it():
    s, b = summaries({"accuracy": [0.5, 0.5]}, {"accuracy": [0.9, 0.9]}, inputs={"dataset": ["aa11", "bb22"]})
    b["inputs"] = {"dataset": ["aa11", "cc33"]}
    result = compare(s, b, CLAIMS)
    assert result["verdict"] == "inconclusive" and set(verdicts(result).values()) == {"inconclusive"}
    assert "run on other inputs (dataset: run aa11,bb22, baseline aa11,cc33)" in result["problems"][0]
    b["inputs"] = {"dataset": ["aa11", "bb22"]}  # the same data: judged as usual
    assert verdicts(compare(s, b, CLAIMS))["accuracy"] == "regression"
    b["inputs"] = {"dataset": ["aa11", "cc33"]}
    b.update(tolerances={"accuracy": {"abs": 0.01, "runs": 3, "level": 0.99}}, calibrated_over_inputs=True)
    assert verdicts(compare(s, b, CLAIMS))["accuracy"] == "regression"  # calibrated across datasets: covered
    b["env"], s["env"] = {"cpu_model": "A"}, {"cpu_model": "B"}  # ...but only on the CPU it was calibrated on
    assert compare(s, b, CLAIMS)["verdict"] == "inconclusive"


def test_calibration_says_whether_its_runs_had_different_inputs(tmp_path):
    import json

    from runners.baseline import calibrate

    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema_version": 1, "suite": "s", "suite_version": 1, "tier": "small",
                                "hw_class": "cpu-2c", "claims": {}, "samples": {}, "summary": {}, "env": {},
                                "accepted_at": "x", "accepted_from": "y"}))
    same = [run_summary(str(i), {"accuracy": 0.9 + i / 100}, inputs={"dataset": ["d0"]}) for i in range(3)]
    calibrate(same, path)
    assert json.loads(path.read_text())["calibrated_over_inputs"] is False
    calibrate([dict(r, inputs={"dataset": [f"d{i}"]}) for i, r in enumerate(same)], path)
    assert json.loads(path.read_text())["calibrated_over_inputs"] is True


def test_a_new_metric_is_information_but_a_vanished_one_is_not():
    s, b = summaries({"accuracy": [0.9, 0.9], "plan_latency": [0.5, 0.6]}, {"accuracy": [0.9, 0.9]})
    result = compare(s, b, CLAIMS)
    row = next(r for r in result["rows"] if r["metric"] == "plan_latency")
    assert (row["verdict"], row["why"]) == ("info", "new metric (not in the baseline)") and result["verdict"] == "ok"
    s, b = summaries({"accuracy": [0.9, 0.9]}, {"accuracy": [0.9, 0.9], "plan_latency": [0.5]})
    assert compare(s, b, CLAIMS)["verdict"] == "inconclusive"  # measured before, not now
