"""lewm at paper scale: the GPU planning-time script on a CPU stand-in, the full tier's config, and
DINO-WM's pretrained patch encoder on a stand-in checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import dinov2_standin  # noqa: E402

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
    assert cfg.patch_encoder == "facebook/dinov2-small"  # DINO-WM's encoder: DINOv2 ViT-S/14
    if torch.cuda.is_available():
        return
    assert main(["run", "lewm", "--tier", "full", "--out", "f", "--no-publish"]) == 3
    summary = json.loads((harness_env / "f" / "summary.json").read_text())
    assert summary["status"] == "skipped" and "cuda" in summary["reason"]


@pytest.mark.parametrize("registers", [0, 2])
def test_pretrained_patch_encoder_gives_the_normalised_patch_tokens(tmp_path, registers):
    """DINO-WM's frozen encoder: DINOv2's final layer-normed tokens, CLS (and registers) dropped, from frames in
    [-1, 1] taken to [0, 1] and normalised with ImageNet's mean and std."""
    from transformers import AutoModel

    from paper_lewm.patch_wm import pretrained_patches

    where = dinov2_standin(tmp_path / "dino", registers)
    encoder = pretrained_patches(str(where), 32)
    assert (encoder.width, encoder.patch, encoder.commit) == (32, 8, None)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        want = AutoModel.from_pretrained(where)(pixel_values=((x + 1) / 2 - mean) / std).last_hidden_state
        got = encoder.patches(x)
    assert want.shape == (3, 1 + registers + 16, 32) and got.shape == (3, 16, 32)
    torch.testing.assert_close(got, want[:, 1 + registers:])
    with pytest.raises(ValueError, match="model.image_size must be a multiple of 8, got 36"):
        pretrained_patches(str(where), 36)


def test_a_local_patch_encoder_is_cached_by_its_contents(tmp_path):
    from suites.lewm import _directory_digest

    a, b, c = (dinov2_standin(tmp_path / n, seed=s) for n, s in (("a", 0), ("b", 0), ("c", 1)))
    assert _directory_digest(str(a)) == _directory_digest(str(b)) != _directory_digest(str(c))
