"""Scale-out proof: a real suite swept through Hydra's submitit_local launcher (each job a separate
submitit process), and the cluster presets (SLURM, Ray) composing into the launchers they name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from runners.cli import main

PRESETS = Path(__file__).resolve().parent.parent / "runners" / "launchers" / "hydra" / "launcher"


@pytest.mark.slow
def test_pacbayes_sweep_through_submitit_local(harness_env, capsys):
    import mlflow

    rc = main(["run", "pacbayes", "--tier", "smoke", "--out", "sweep", "-m", "poly.n=20,30",
               "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"])
    out = capsys.readouterr().out
    assert rc in (0, 3), out
    jobs = sorted(p.parent for p in (harness_env / "sweep").glob("*/summary.json"))
    assert [p.name for p in jobs] == ["0", "1"]
    summaries = [json.loads((p / "summary.json").read_text()) for p in jobs]
    assert [yaml.safe_load((p / "config.yaml").read_text())["poly"]["n"] for p in jobs] == [20, 30]
    assert all(s["status"] in ("pass", "inconclusive") and s["seeds_done"] == [0] for s in summaries)
    # each job ran in its own submitit process, which left its log
    logs = list((harness_env / "sweep" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2
    # the metric the sweep varies really differs between the jobs
    assert summaries[0]["metrics"]["poly_train_rmse"] != summaries[1]["metrics"]["poly_train_rmse"]
    parents = mlflow.search_runs(experiment_names=["paperclub/pacbayes"], output_format="list",
                                 filter_string="tags.suite = 'pacbayes'")
    assert sorted(r.data.params["poly.n"] for r in parents if "mlflow.parentRunId" not in r.data.tags) == ["20", "30"]


def _compose_launcher(suite: str, overrides: list[str]) -> dict:
    from hydra import compose, initialize
    from omegaconf import OmegaConf

    from runners.config import register
    from runners.registry import load
    from runners.sweep import LAUNCHER_PRESETS

    register(load(suite))
    with initialize(version_base="1.3", config_path=None):
        cfg = compose(suite, overrides=[f"hydra.searchpath=[{LAUNCHER_PRESETS}]", *overrides],
                      return_hydra_config=True)
        return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def test_slurm_preset_composes_into_submitit_slurm(monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    monkeypatch.setenv("PAPERCLUB_SLURM_ACCOUNT", "ml-lab")
    launcher = _compose_launcher("pacbayes", ["hydra/launcher=cluster_slurm", "hydra.launcher.timeout_min=600"])
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher["partition"] == "gpu" and launcher["account"] == "ml-lab" and launcher["qos"] is None
    assert launcher["gpus_per_node"] == 1 and launcher["timeout_min"] == 600


def test_ray_preset_names_the_ray_launcher_and_an_existing_cluster():
    # hydra-ray-launcher (and ray) are an extra, not a test dependency: check the file itself
    text = (PRESETS / "cluster_ray.yaml").read_text()
    assert text.startswith("# @package hydra.launcher")
    doc = yaml.safe_load(text)
    assert doc["defaults"] == ["ray"]
    assert doc["ray"]["init"]["address"] == "${oc.env:RAY_ADDRESS,auto}"
    assert doc["ray"]["remote"]["num_gpus"] == 1


def test_slurm_preset_takes_the_gpu_count_of_a_multi_gpu_tier():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from runners.config import launcher_gpus
    from runners.registry import load

    extra = launcher_gpus(load("ssd"), "full", ["hydra/launcher=cluster_slurm"])
    assert extra == ["hydra.launcher.gpus_per_node=5"]
    assert _compose_launcher("ssd", ["hydra/launcher=cluster_slurm", *extra])["gpus_per_node"] == 5
