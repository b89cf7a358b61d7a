"""`paperclub list` and importing the harness must not pull in torch, jax or vllm; seeding a run imports
and seeds every installed generator."""

import subprocess
import sys

from conftest import ROOT, TOY

CODE = """
import sys
import runners, runners.api, runners.registry, runners.claims, runners.config, runners.runner
from runners.cli import main
rc = main(["list"])
heavy = sorted({"torch", "jax", "vllm", "mlflow", "tensorflow"} & set(sys.modules))
print("HEAVY", heavy)
sys.exit(rc if not heavy else 9)
"""


def test_list_imports_no_ml_framework():
    env = {"PAPERCLUB_EXTRA_SUITES": TOY, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HEAVY []" in proc.stdout
    assert "toy" in proc.stdout and "toy.mean" in proc.stdout


SEEDING = """
import random, sys
from runners.runner import seed_everything
assert "torch" not in sys.modules  # no suite has imported it yet: the first seed of a process
seed_everything(3)
import numpy, torch
first = (random.random(), numpy.random.rand(), torch.rand(1).item())
seed_everything(3)
print(first == (random.random(), numpy.random.rand(), torch.rand(1).item()))
"""


def test_every_seed_starts_from_the_same_state_even_before_torch_is_imported():
    proc = subprocess.run([sys.executable, "-c", SEEDING], cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stdout + proc.stderr
