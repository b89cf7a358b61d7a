from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOY = ("toy=tests.toy_suite:ToySuite,toy_needs=tests.toy_suite:NeedsMissingSuite,"
       "toy_peer=tests.toy_suite:PeerClaimSuite")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_collection_modifyitems(items):
    """The tests marked slow first, each group in its usual order: parallel workers (`-n`, one test handed
    out at a time) take the long tests while the short ones are left to even out the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def harness_env(tmp_path, monkeypatch):
    """A private working dir with its own results/ and sqlite store; toy suites registered."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAPERCLUB_EXTRA_SUITES", TOY)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PAPERCLUB_PROGRESS", "0")
    monkeypatch.setenv("PAPERCLUB_PUBLISH_RETRIES", "1")  # a store the test breaks on purpose stays broken
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return tmp_path


def assert_smoke_contract(run_dir: Path) -> None:
    """The contract between a suite and its smoke tier: every seed of the smoke run produced the metric of
    every claim that applies at smoke and of every invariant (else the claim fails, or the invariant goes
    unchecked, at the tier CI runs)."""
    import json

    from runners import registry

    summary = json.loads((run_dir / "summary.json").read_text())
    suite = registry.load(summary["suite"])
    wanted = {c.metric for c in suite.claims if "smoke" in c.threshold} | {i.metric for i in suite.invariants}
    for seed in sorted(run_dir.glob("seed_*/metrics.json")):
        missing = wanted - set(json.loads(seed.read_text())["metrics"])
        assert not missing, f"{summary['suite']} smoke, {seed.parent.name}: no {sorted(missing)}"


def dinov2_standin(where: Path, registers: int = 0, seed: int = 0) -> Path:
    """A randomly initialised DINOv2 checkpoint of tiny width (8-pixel patches), saved as transformers saves one."""
    import torch
    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    shape = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, patch_size=8,
                 image_size=32)
    torch.manual_seed(seed)
    model = (Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=registers, **shape)) if registers
             else Dinov2Model(Dinov2Config(**shape)))
    model.save_pretrained(where)
    return where
