"""The infcompute suite's smoke tier end to end, and its cache."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from conftest import assert_smoke_contract  # noqa: E402

from runners.cli import main  # noqa: E402

# The smoke tier at half its epochs (the suite's own smoke run is `nox -s smoke`): the same runs, searches,
# ensembles, students, fits and figures, and both invariants still checked.
FEWER_EPOCHS = ["standard_epochs=[4,8]", "standard_start_epochs=4", "epochs_grid=[4,8,16]", "search_start_epochs=8",
                "distill_epochs=4", "distill_tokens=10000"]


@pytest.mark.slow
def test_smoke_tier_runs_resumes_from_cache_and_is_deterministic(harness_env, capsys, monkeypatch):
    monkeypatch.setenv("PAPERCLUB_CACHE", str(harness_env / "cache"))
    assert main(["run", "infcompute", "--tier", "smoke", "--out", "a", "--no-publish", *FEWER_EPOCHS]) == 3  # no claim
    assert_smoke_contract(harness_env / "a")
    first = json.loads((harness_env / "a" / "summary.json").read_text())
    assert {c["status"] for c in first["claims"]} == {"skipped"}  # directional claims are small tier only
    assert {i["id"]: i["status"] for i in first["invariants"]} == {
        "ensemble.never_worse_than_members": "held", "fit.asymptote_in_range": "held"}  # checked, not claimed
    assert sorted(first["figures"]) == ["fig-data-efficiency.png", "fig-distillation.png", "fig-ensemble-scaling.png",
                                       "fig-recipes-vs-size.png"]
    seed = json.loads((harness_env / "a" / "seed_0" / "metrics.json").read_text())
    assert len(seed["info"]["corpus_sha256"]) == 64
    units = seed["units"]  # one replicate at smoke: the per-run claims' units are there, one each
    assert units["standard_overfit_gap"] == [seed["metrics"]["standard_overfit_gap"]]
    assert {len(units[m]) for m in ("distill_retention", "self_distill_real_margin", "self_distill_no_real_margin")
            if m in units} == {1}
    assert not set(seed["info"]["train_files"]) & set(seed["info"]["val_files"])
    runs = list((harness_env / "cache" / "infcompute").glob("run-*.pt"))
    assert runs, "runs are cached by config hash"

    # a second run finds every training run in the cache and reproduces the numbers exactly
    assert main(["run", "infcompute", "--tier", "smoke", "--out", "b", "--no-publish", *FEWER_EPOCHS]) == 3
    second = json.loads((harness_env / "b" / "summary.json").read_text())
    assert second["samples"] == first["samples"]
    assert sorted((harness_env / "cache" / "infcompute").glob("run-*.pt")) == sorted(runs)
    capsys.readouterr()
