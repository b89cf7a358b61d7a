"""lewm at paper scale: the GPU planning-time script on a CPU stand-in, and the full tier's config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from runners.cli import main  # noqa: E402
from runners.config import compose  # noqa: E402
from suites.lewm import LeWMSuite  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_planning_benchmark_runs_on_a_cpu_stand_in(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_lewm.py"), "--tiny", "--device", "cpu",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "lewm_gpu.json").read_text())
    assert result["complete"] and result["tokens_per_frame"] == {"lewm": 1, "patch": 16}
    for dtype in ("bf16", "fp32"):
        row = result["planning"][dtype]
        assert row["planning_speedup"] == pytest.approx(row["seconds_per_plan"]["patch"] / row["seconds_per_plan"]["lewm"])
        assert min(row["all_times"]["lewm"]) == row["seconds_per_plan"]["lewm"] > 0


def test_gpu_suite_run_runs_on_a_cpu_stand_in(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_lewm.py"), "--tiny", "--device", "cpu",
                           "--train", "--out", str(tmp_path), "--cache", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((tmp_path / "lewm_gpu_train.json").read_text())
    assert record["config"]["model"]["encoder"] == "vit" and set(record["train_seconds"]) == {"sigreg", "none", "vicreg", "patch"}
    m = record["metrics"]
    assert 0 <= m["success_lewm"] <= 1 and m["planning_speedup"] == pytest.approx(
        m["seconds_per_plan_patch"] / m["seconds_per_plan_lewm_r5"])


def test_full_tier_is_the_papers_setup_and_is_skipped_without_cuda(harness_env):
    cfg, _ = compose(LeWMSuite, "full", [])
    m, cem = cfg.model, cfg.cem
    assert (m.image_size, m.encoder, m.vit_patch, m.dim) == (224, "vit", 14, 192)
    assert (m.layers, m.heads, m.head_dim, m.mlp, m.projector_hidden) == (6, 16, 64, 2048, 2048)
    assert (cem.samples, cem.iterations, cem.elites, cem.replan) == (300, 10, 30, 5)
    assert cfg.directions == 1024 and cfg.weight == 0.1 and cfg.batch == 128 and cfg.lr == 5e-5
    assert cfg.episodes == 10_000 and cfg.eval_episodes == 50 and cfg.device == "cuda"
    if torch.cuda.is_available():
        return
    assert main(["run", "lewm", "--tier", "full", "--out", "f", "--no-publish"]) == 3
    summary = json.loads((harness_env / "f" / "summary.json").read_text())
    assert summary["status"] == "skipped" and "cuda" in summary["reason"]
