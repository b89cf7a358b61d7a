"""`paperclub list` and importing the harness must not pull in torch, jax or vllm."""

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
