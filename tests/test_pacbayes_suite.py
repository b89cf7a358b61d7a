"""The pacbayes suite's smoke tier end to end through the CLI (sklearn digits, about 10 s)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from conftest import assert_smoke_contract  # noqa: E402

from runners.cli import main  # noqa: E402


@pytest.mark.slow
def test_smoke_tier_passes_with_every_metric(harness_env, capsys):
    rc = main(["run", "pacbayes", "--tier", "smoke", "--out", "pb", "--no-publish"])
    assert_smoke_contract(harness_env / "pb")
    out = capsys.readouterr().out
    summary = json.loads((harness_env / "pb" / "summary.json").read_text())
    assert rc == 0, out
    from suites.pacbayes import PacBayesSuite

    statuses = {c["id"]: c["status"] for c in summary["claims"]}
    assert statuses["bound.fmnist_nonvacuous"] == "skipped"  # FashionMNIST claims are small tier only
    for claim in PacBayesSuite.claims:
        assert statuses[claim.id] == ("pass" if "smoke" in claim.threshold else "skipped"), claim.id
    m = summary["metrics"]
    for name in ("bits", "train_error_quantized", "test_error_quantized", "n_train", "delta", "subspace_dim",
                 "levels", "bound_digits", "bound_random_labels", "bits_width_spread", "dd_peak_width"):
        assert name in m, name
    # the reported pieces recompute the bound
    from paper_pacbayes.bounds import catoni_opt, kl_from_bits

    assert catoni_opt(m["train_error_quantized"], kl_from_bits(m["bits"]), int(m["n_train"]), m["delta"]) == \
        pytest.approx(m["bound_digits"], rel=1e-9)
    assert sorted(summary["figures"]) == ["fig1abc-benign-overfitting.png", "fig1d-altered-labels.png",
                                          "fig1g-double-descent.png", "lotfi-compression-bounds.png",
                                          "width-compressibility.png"]
    assert any("digits" in n for n in summary["notes"])


@pytest.mark.slow
def test_gpu_script_runs_on_cpu_stand_in(tmp_path):
    """The prepared single-GPU script, exercised with its tiny CPU stand-in (digits, 1 epoch)."""
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_pacbayes.py"), "--device", "cpu", "--tiny",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "pacbayes_gpu.json").read_text())
    names = [r["name"] for r in record["runs"]]
    assert names[0] == "mlp_d1024" and "cnn16_d250_ddp" in names
    ddp = next(r for r in record["runs"] if r["name"] == "cnn16_d250_ddp")
    # half the points train the prior (the suite's split, paper_pacbayes.compression.prior_split): the bound uses the rest
    assert ddp["data_dependent_prior"] and ddp["n_train"] == 1347 - round(0.5 * 1347)
    assert all(0 <= r["bound"] <= 1 and r["bound_recomputed_check"] for r in record["runs"])
