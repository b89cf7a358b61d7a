"""The ssd suite's smoke tier end to end (about 25 s on 2 cores)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from conftest import assert_smoke_contract  # noqa: E402

from runners.cli import main  # noqa: E402


@pytest.mark.slow
def test_smoke_tier_is_exact_and_reports_speed_beside_the_model(harness_env, capsys, monkeypatch):
    monkeypatch.setenv("PAPERCLUB_CACHE", str(harness_env / "cache"))
    assert main(["run", "ssd", "--tier", "smoke", "--out", "s", "--no-publish"]) == 0
    assert_smoke_contract(harness_env / "s")
    summary = json.loads((harness_env / "s" / "summary.json").read_text())
    statuses = {c["id"]: c["status"] for c in summary["claims"]}
    assert statuses["greedy_exact_match"] == "pass" and statuses["sampling_tv_pass"] == "pass"
    assert statuses["ssd_over_sd"] == "skipped"  # speed is not claimed on the tiny pair
    assert sorted(summary["figures"]) == ["fig-batch.png", "fig-decode-speed.png", "fig-outcome-prediction.png"]
    seed = json.loads((harness_env / "s" / "seed_0" / "metrics.json").read_text())
    m = seed["metrics"]
    for mode in ("ar", "sd", "ssd_jit", "ssd_fast"):
        assert m[f"{mode}_tokens_per_s"] > 0
    assert 0 <= m["ssd_jit_hit_rate"] <= 1 and m["ssd_model_tokens_per_s"] > 0
    # the batch of 2: every mode ran, and a step is all-hit no more often than its rows hit
    for mode in ("ar", "sd", "ssd_jit", "ssd_fast"):
        assert m[f"b2_{mode}_tokens_per_s"] > 0
    assert 0 <= m["b2_ssd_jit_all_hit_step_rate"] <= m["b2_ssd_jit_hit_rate"] <= 1
    # nested candidate sets: the hit rate can only grow with the fan-out
    hits = [m[f"bonus_hit_f{f}_t0"] for f in (1, 2, 4, 8, 16)]
    assert hits == sorted(hits)
    assert seed["info"]["sampling"]["toy_cases_passed"] == seed["info"]["sampling"]["toy_cases"] == 9
    capsys.readouterr()
