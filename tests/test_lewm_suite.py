"""The lewm suite's smoke tier end to end."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from runners.cli import main  # noqa: E402


def test_smoke_tier_runs_every_part(harness_env, capsys, monkeypatch):
    monkeypatch.setenv("PAPERCLUB_CACHE", str(harness_env / "cache"))
    rc = main(["run", "lewm", "--tier", "smoke", "--out", "s", "--no-publish"])
    summary = json.loads((harness_env / "s" / "summary.json").read_text())
    statuses = {c["id"]: c["status"] for c in summary["claims"]}
    assert statuses["collapse_prevented"] == "pass" and statuses["sigreg_norm_pred_err"] == "pass"
    assert statuses["success_over_random"] == "skipped"  # planning success is claimed from the small tier
    assert rc == 0
    assert sorted(summary["figures"]) == ["fig-collapse.png", "fig-planning.png", "fig-surprise.png"]
    m = json.loads((harness_env / "s" / "seed_0" / "metrics.json").read_text())["metrics"]
    for p in ("lewm", "none", "vicreg", "oracle", "random"):
        assert 0 <= m[f"success_{p}"] <= 1
    assert m["success_oracle"] >= m["success_random"]
    assert 0 <= m["surprise_auroc_teleport"] <= 1
    capsys.readouterr()
