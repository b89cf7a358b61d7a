"""Hydra multirun: one job per swept config, each a complete run directory.

Jobs only write files; the parent publishes every finished job to MLflow afterwards, from
one process (parallel first writes to a fresh sqlite store race). The job object holds
plain data only, so joblib, submitit (SLURM) and Ray can pickle it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from runners.errors import HarnessError

# hydra/launcher=cluster_slurm and =cluster_ray: presets over submitit_slurm and ray (runners/launchers)
LAUNCHER_PRESETS = "pkg://runners.launchers"


@dataclass
class SweepJob:
    suite: str
    tier: str
    seeds: list[int]

    def __call__(self, cfg) -> str:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        from runners import registry
        from runners.runner import execute

        suite_cls = registry.load(self.suite)
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        summary = execute(suite_cls, OmegaConf.to_object(cfg), OmegaConf.to_container(cfg, resolve=True),
                          tier=self.tier, seeds=self.seeds, out_dir=out_dir)
        return summary["status"]


def multirun(suite_cls, tier: str, seeds: list[int], hydra_overrides: list[str], sweep_dir: Path) -> list[Path]:
    """Run the sweep with the launcher the overrides select; return the job run dirs."""
    import hydra

    from runners.config import register

    register(suite_cls)
    argv = ["paperclub", "--multirun", f"hydra.sweep.dir={sweep_dir}", "hydra.sweep.subdir=${hydra.job.num}",
            "hydra.job.chdir=False", f"hydra.searchpath=[{LAUNCHER_PRESETS}]", *hydra_overrides]
    job = SweepJob(suite_cls.name, tier, seeds)
    saved = sys.argv
    sys.argv = argv
    try:
        hydra.main(version_base="1.3", config_path=None, config_name=suite_cls.name)(job)()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise HarnessError(f"sweep failed in Hydra (exit {exc.code}); see the messages above") from exc
    finally:
        sys.argv = saved
    return sorted((p.parent for p in Path(sweep_dir).glob("*/summary.json")), key=lambda p: int(p.name)
                  if p.name.isdigit() else 0)
