"""The dmpc suite end to end at the smoke tier (seconds of SAC, a few training steps, short episodes;
no score claims), its config errors, and the full tier's setup."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("gymnasium")
pytest.importorskip("sbx")

from conftest import assert_smoke_contract  # noqa: E402

from runners.cli import main  # noqa: E402
from runners.config import compose  # noqa: E402
from runners.errors import HarnessError  # noqa: E402
from suites.dmpc import DMPCSuite  # noqa: E402

# The smoke tier on a smaller generated dataset (600 learner steps, 1000 medium transitions; the suite's own
# smoke run is `nox -s smoke`): generating it is most of the tier's time, and every phase after it is the same.
SMALLER_DATA = ["max_learner_steps=600", "learning_starts=200", "learner_eval_every=300", "update_every=200",
                "medium_transitions=1000"]


@pytest.mark.slow
def test_smoke_tier_runs_every_agent_and_the_prediction_curves(harness_env, capsys, monkeypatch):
    monkeypatch.setenv("PAPERCLUB_CACHE", str(harness_env / "cache"))
    rc = main(["run", "dmpc", "--tier", "smoke", "--out", "s", "--no-publish", *SMALLER_DATA])
    assert_smoke_contract(harness_env / "s")
    summary = json.loads((harness_env / "s" / "summary.json").read_text())
    assert rc == 3 and summary["status"] == "skipped"  # no score claims at smoke
    assert {c["status"] for c in summary["claims"]} == {"skipped"}
    assert summary["figures"] == ["fig-dmpc.png"]
    seed = json.loads((harness_env / "s" / "seed_0" / "metrics.json").read_text())
    m = seed["metrics"]
    for agent in ("dmpc", "proposal", "bc", "mbop", "dmpc_jump", "distilled"):
        assert 1 <= m[f"episode_length_{agent}"] <= 30 and m[f"seconds_per_control_step_{agent}"] >= 0
        assert m[f"score_{agent}"] == pytest.approx(100 * (m[f"return_{agent}"] + 20.272305) / 3254.572305)
    assert m["score_dmpc_minus_mbop"] == pytest.approx(m["score_dmpc"] - m["score_mbop"])
    assert m["finetune_gain"] == pytest.approx(m["score_altered_after"] - m["score_altered_before"])
    assert m["play_transitions"] >= 4 * 4  # four play episodes, each at least one F = 4 chunk long or terminal
    assert m["pred_err_ratio_multi_over_single"] == pytest.approx(
        m["pred_err_multistep_diffusion_at_f"] / m["pred_err_singlestep_diffusion_at_f"])
    # the fine-tuned model's error on held-out play from the weakened robot, before and after fine-tuning
    for k in ("before", "after"):
        assert seed["series"][f"pred_err_altered_{k}"][-1] == [4, m[f"pred_err_altered_{k}_at_f"]]
    assert m["pred_err_altered_before_at_f"] != m["pred_err_altered_after_at_f"]
    for name in ("multistep_diffusion", "singlestep_diffusion", "mlp_ensemble"):  # error against steps ahead, F = 4
        assert [k for k, _ in seed["series"][f"pred_err_{name}"]] == [1, 2, 3, 4]
    assert "Gymnasium v5 local data" in " ".join(summary["notes"])
    # one graph of jobs: each agent's evaluation started after the models it plans with had finished training
    jobs = seed["info"]["jobs"]
    assert {k for k in jobs if k.startswith("train/")} == {
        "train/dynamics", "train/proposal", "train/objective", "train/dynamics_1step", "train/bc",
        "train/gaussian_proposal", "train/proposal_1step", "train/ensemble_0", "train/ensemble_1", "train/distilled"}
    assert {k for k in jobs if k.startswith("eval/")} == {
        "eval/dmpc", "eval/proposal", "eval/bc", "eval/mbop", "eval/dmpc_jump", "eval/abl_gaussian_proposal",
        "eval/abl_single_step_proposal", "eval/abl_single_step_dynamics", "eval/altered_before", "eval/altered_after",
        "eval/distilled"}
    end = {k: v["start"] + v["seconds"] for k, v in jobs.items()}
    for agent, models in (("mbop", ("bc", "objective", "ensemble_0", "ensemble_1")),
                          ("altered_after", ("proposal", "dynamics", "objective")),
                          ("abl_single_step_dynamics", ("proposal", "dynamics_1step", "objective")),
                          ("distilled", ("distilled",))):
        assert jobs[f"eval/{agent}"]["start"] >= max(end[f"train/{m}"] for m in models) - 0.1  # rounding
    # the student is taught by D-MPC, so it trains after D-MPC's models
    assert jobs["train/distilled"]["start"] >= max(end[f"train/{m}"] for m in ("proposal", "dynamics", "objective")) - 0.1
    assert m["distilled_over_dmpc"] == pytest.approx(m["score_distilled"] / m["score_dmpc"])
    assert m["distill_pairs"] >= 2 and m["distilled_speedup"] > 0  # two teacher episodes, a plan every 2 steps
    assert len(seed["series"]["train_loss_ensemble"]) > 0
    # the same run on a dataset given by path (here the generated one, as an .npz)
    npz = next((harness_env / "cache" / "dmpc").glob("hopper-*/medium-replay.npz"))
    assert main(["run", "dmpc", "--tier", "smoke", "--out", "p", "--no-publish", f"data_path={npz}"]) == 3
    by_path = json.loads((harness_env / "p" / "seed_0" / "metrics.json").read_text())
    assert by_path["info"]["data"]["label"].endswith("(given by path)")
    # the full tier's rehearsal on a CPU stand-in of it (these data; transformer denoisers at F = 4)
    stand_in = ["device=cpu", f"data_path={npz}", "model.horizon=4", "model.train_steps=20", "model.proposal_steps=2",
                "model.dynamics_steps=2", "batch=32", "episodes=2", "samples=4", "members=2", "pred_chunks=16",
                "max_steps=30", "workers=1", "threads=2"]
    assert main(["run", "dmpc", "--tier", "full", "--rehearse", "--out", "reh", *stand_in]) == 0
    record = json.loads((harness_env / "reh" / "rehearsal.json").read_text())
    rows = {r["phase"]: r for r in record["phases"]}
    assert list(rows) == ["setup", "model_training", "agent_evaluation", "prediction_error"]
    assert (rows["model_training"]["steps_rehearsed"], rows["model_training"]["steps_real"]) == (20, 200_000)
    assert (rows["agent_evaluation"]["steps_rehearsed"], rows["agent_evaluation"]["steps_real"]) == (20, 30)
    assert record["config"]["model"]["denoiser"] == "transformer" and record["seeds"] == 3
    assert by_path["info"]["chunks"] == seed["info"]["chunks"]
    # the data's identity is in every summary: the same data by path are the same dataset
    assert seed["inputs"] == {"dataset": seed["info"]["data"]["content_sha256"]} == by_path["inputs"]
    assert summary["inputs"] == {"dataset": [seed["inputs"]["dataset"]]} and summary["claims"][0]["unit"] == "datasets"
    assert seed["info"]["data"]["generated_on"]["cpu"] and seed["info"]["data"]["data_seed"] == 0
    assert m["data_learner_steps"] == 600 and "data_policy_score" in m  # the data's level, in the report
    assert main(["report", "s"]) == 0
    assert f"dataset per seed: `{seed['inputs']['dataset'][:12]}`" in (harness_env / "s" / "report.md").read_text()
    # data whose learner never reached the medium level are not used as medium data: one line, exit 2
    capsys.readouterr()
    assert main(["run", "dmpc", "--tier", "smoke", "--out", "g", "--no-publish", *SMALLER_DATA, "require_target=true"]) == 2
    gated = json.loads((harness_env / "g" / "summary.json").read_text())
    assert gated["status"] == "error" and "Hopper-v5 data are not medium: SAC stopped at 600 steps" in gated["reason"]
    assert "max_learner_steps=1200" in gated["reason"] and "data_seed=1" in gated["reason"]
    capsys.readouterr()
    assert main(["run", "dmpc", "--tier", "smoke", "--out", "q", "--no-publish", "env=ant"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "env must be hopper, halfcheetah or walker2d, got 'ant'" in err[0]
    # a renamed key is refused in one line naming the new one
    assert main(["run", "dmpc", "--tier", "smoke", "--out", "r", "--no-publish", "max_sac_steps=10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "key 'max_sac_steps' of suite 'dmpc' is now 'max_learner_steps'" in err[0]
    # the models' keys live in paper_dmpc's ModelConfig, nested as `model`
    assert main(["run", "dmpc", "--tier", "smoke", "--out", "r", "--no-publish", "diffusion_steps=10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "key 'diffusion_steps' of suite 'dmpc' is now 'model.train_steps'" in err[0]


def test_full_tier_is_the_papers_setup_and_is_skipped_without_cuda(harness_env):
    cfg, _ = compose(DMPCSuite, "full", [])
    assert (cfg.model.denoiser, cfg.model.horizon, cfg.samples, cfg.replan) == ("transformer", 32, 64, 1)
    assert cfg.medium_transitions == 1_000_000 and cfg.device == "cuda"
    small, _ = compose(DMPCSuite, "small", [])
    assert (small.env, small.dataset, small.model.denoiser, small.model.horizon) == ("hopper", "medium-replay", "mlp", 16)
    assert small.model.hidden == 384  # the suite's width, not paper_dmpc's default
    assert cfg.workers == 1  # the models' CUDA tensors stay in the process that trained them
    with pytest.raises(HarnessError, match="workers must be 1 on a GPU"):
        compose(DMPCSuite, "full", ["workers=2"])
    if torch_cuda():
        return
    assert main(["run", "dmpc", "--tier", "full", "--out", "f", "--no-publish"]) == 3
    summary = json.loads((harness_env / "f" / "summary.json").read_text())
    assert summary["status"] == "skipped" and "cuda" in summary["reason"]


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.slow
def test_gpu_script_trains_and_saves_on_a_cpu_stand_in(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, str(root / "scripts" / "gpu_dmpc.py"), "--tiny", "--device", "cpu",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((tmp_path / "dmpc_gpu.json").read_text())
    assert record["complete"] and set(record["models"]) == {"proposal", "dynamics", "objective", "dynamics_1step"}
    errs = [record["models"][m]["pred_err_by_step"] for m in ("dynamics", "dynamics_1step")]
    assert len(errs[0]) == len(errs[1]) == 4  # the single-step model rolled out over the whole chunk
    assert record["pred_err_ratio_multi_over_single"] == pytest.approx(errs[0][-1] / errs[1][-1])
    assert all((tmp_path / f"dmpc_{m}.pt").is_file() for m in ("proposal", "dynamics", "objective"))
    loop = record["closed_loop"]  # the trained models plan in Hopper: 5 episodes cut at 2 steps
    assert loop["lengths"] == [2] * 5 and len(loop["normalized"]) == 5 and loop["seconds_per_control_step"] > 0
