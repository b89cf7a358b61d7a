"""Verdicts through the runner on the toy suite: every finished seed counts, one unit never passes,
exactness needs every unit, and a broken invariant is a harness error, not a failed claim."""

from __future__ import annotations

import json

from runners.cli import main


def claims_of(harness_env, capsys, *args):
    rc = main(["run", "toy", "--no-publish", "--out", "v", *args])
    out = capsys.readouterr()
    summary = json.loads((harness_env / "v" / "summary.json").read_text())
    return rc, {c["id"]: c for c in summary["claims"]}, summary, out


def test_a_nan_seed_fails_the_claim_and_is_named(harness_env, capsys, monkeypatch):
    rc, claims, summary, _ = claims_of(harness_env, capsys, "--tier", "small", "nan_at_seed=1")
    assert claims["toy.mean"]["status"] == "fail" and rc == 1
    assert claims["toy.mean"]["reason"] == "metric 'est_mean' missing or not finite at seed 1 (nan)"
    assert summary["samples"]["est_mean"][1] is None and summary["seeds_done"] == [0, 1, 2]  # kept, with its seed


def test_a_run_with_a_nan_seed_metric_still_publishes(harness_env, capsys):
    import mlflow

    assert main(["run", "toy", "--tier", "small", "--out", "p", "nan_at_seed=1"]) == 1
    assert "failed" not in capsys.readouterr().err  # published; before, float(None) stopped the publish
    runs = mlflow.search_runs(experiment_names=["paperclub/toy"], output_format="list")
    seeds = {r.data.tags["seed"]: r.data.metrics for r in runs if "seed" in r.data.tags}
    assert set(seeds) == {"0", "1", "2"} and "est_mean" not in seeds["1"] and "est_mean" in seeds["0"]


def test_a_metric_from_one_of_three_seeds_fails(harness_env, capsys):
    rc, claims, summary, _ = claims_of(harness_env, capsys, "--tier", "small", "drop_at_seed=0")
    assert claims["toy.mean"]["status"] == "fail" and "seed 0 (missing)" in claims["toy.mean"]["reason"]
    assert summary["samples"]["est_mean"][0] is None and rc == 1


def test_one_seed_of_a_small_tier_claim_is_inconclusive(harness_env, capsys):
    rc, claims, _, out = claims_of(harness_env, capsys, "--tier", "small", "--seeds", "1")
    assert claims["toy.mean"]["status"] == "inconclusive"
    assert claims["toy.mean"]["reason"] == "n = 1 seeds < 3 needed at tier 'small'"
    assert claims["toy.draws_above_mean"]["status"] == "pass"  # 20 draws are 20 units
    assert rc == 3 and "1 seeds" in out.out


def test_one_failing_unit_fails_an_exactness_claim(harness_env, capsys):
    rc, claims, _, _ = claims_of(harness_env, capsys, "--tier", "small", "miss_at_seed=2")
    row = claims["toy.every_seed_close"]
    assert row["status"] == "fail" and row["reason"] == "1 of 3 seeds do not hold: seed 2 (0)"
    assert rc == 1


def test_the_suites_own_doubt_cannot_rescue_a_failure(harness_env, capsys):
    rc, claims, _, _ = claims_of(harness_env, capsys, "--tier", "small", "unsure=true", "bias=2")
    assert claims["toy.error"]["status"] == "fail" and rc == 1
    assert claims["toy.error"]["reason"] == "the suite adds: declared unreliable by the test"
    rc, claims, _, _ = claims_of(harness_env, capsys, "--tier", "small", "unsure=true")
    assert claims["toy.error"]["status"] == "inconclusive" and rc == 3  # a pass softened by the suite's doubt


def test_a_broken_invariant_is_a_harness_error_naming_it(harness_env, capsys):
    rc, claims, summary, out = claims_of(harness_env, capsys, "--tier", "small", "break_invariant=true")
    assert rc == 2 and summary["status"] == "error" and summary["seeds_done"] == [0]  # stopped at once
    assert summary["reason"].startswith("invariant toy.error_nonnegative violated: abs_error ge 0 fails at seed 0")
    assert summary["invariants"][0]["status"] == "violated"
    assert "toy.error_nonnegative" not in claims  # never a claim
