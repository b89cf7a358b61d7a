"""GitHub workflows, validated offline: the vendored workflow JSON schema (check-jsonschema's copy
of SchemaStore's), zizmor --offline, and what each workflow must do."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runners.registry import available

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is part of the test extra"
    return found


def schema_check(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           *map(str, paths)], capture_output=True, text=True)


def zizmor(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("zizmor"), "--offline", "--persona=pedantic", "--no-progress", str(path)],
                          capture_output=True, text=True)


def test_both_workflows_exist():
    assert {p.name for p in FILES} == {"ci.yml", "nightly-gpu.yml"}


def test_workflows_match_the_vendored_schema():
    out = schema_check(*FILES)
    assert out.returncode == 0, out.stdout + out.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  t:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    assert schema_check(bad).returncode != 0


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_zizmor_offline_finds_nothing(path):
    out = zizmor(path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_zizmor_flags_an_unpinned_action(tmp_path):
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: push\npermissions: {}\njobs:\n  t:\n    runs-on: ubuntu-24.04\n    steps:\n"
                   "      - uses: actions/checkout@v4\n")
    out = zizmor(bad)
    assert out.returncode != 0 and "unpinned-uses" in out.stdout


@pytest.mark.parametrize("name", ["ci.yml", "nightly-gpu.yml"])
def test_least_permissions_and_pinned_actions(name):
    doc = load(name)
    assert doc["permissions"] == {}, "workflow-level permissions must be empty; jobs ask for what they use"
    for job_id, job in doc["jobs"].items():
        assert "permissions" in job, f"{job_id} must declare its permissions"
        assert job["permissions"].get("contents") in (None, "read"), job_id
        for step in job.get("steps", []):
            if "uses" in step:
                assert SHA_PIN.match(step["uses"]), f"{job_id}: {step['uses']} is not pinned by commit SHA"
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_ci_runs_the_readme_test_command():
    doc = load("ci.yml")
    assert set(doc["on"]) >= {"push", "pull_request"}
    runs = [s["run"] for j in doc["jobs"].values() for s in j["steps"] if "run" in s]
    assert any("bash .ci/run" in r for r in runs)
    assert "nox -s tests" in (ROOT / ".ci" / "run").read_text()
    assert "python3.11 -m nox -s tests" in (ROOT / "README.md").read_text()


def test_nightly_gpu_workflow_shape():
    doc = load("nightly-gpu.yml")
    assert doc["on"]["schedule"] and "cron" in doc["on"]["schedule"][0]
    tier = doc["on"]["workflow_dispatch"]["inputs"]["tier"]
    assert tier["type"] == "choice" and set(tier["options"]) == {"smoke", "small", "full"}
    jobs = doc["jobs"]
    assert "nox -s smoke" in " ".join(s.get("run", "") for s in jobs["cpu-smoke"]["steps"])
    gpu = jobs["gpu"]
    assert "self-hosted" in gpu["runs-on"] and "gpu" in gpu["runs-on"]
    assert set(gpu["strategy"]["matrix"]["suite"]) == set(available())
    assert gpu["needs"] == "image" and "needs.image.outputs.ref" in gpu["container"]["image"]
    assert "--gpus all" in gpu["container"]["options"]
    assert gpu["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    assert any(s.get("uses", "").startswith("actions/upload-artifact@") for s in gpu["steps"])
    build = next(s for s in jobs["image"]["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["file"] == "containers/Dockerfile.cuda"
    assert jobs["image"]["permissions"]["packages"] == "write"
    # the preflight first; a run cut off by its box is resumed the next night from the runner's cache
    steps = {s.get("name", ""): s for s in gpu["steps"]}
    assert "--preflight" in steps["preflight"]["run"]
    run = steps["paperclub run (or resume last night's)"]
    assert "paperclub run --resume" in run["run"] and 'timeout --signal=TERM' in run["run"]
    assert run["if"] == "steps.preflight.outputs.rc == '0'"
    assert gpu["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}" and gpu["env"]["HF_HOME"].startswith("/cache")
    boxes = {i["suite"]: i["minutes"] for i in gpu["strategy"]["matrix"]["include"]}
    assert set(boxes) == set(available()) and max(boxes.values()) + 30 <= gpu["timeout-minutes"]  # saves, uploads
    assert doc["on"]["workflow_dispatch"]["inputs"]["infcompute_corpus"]["type"] == "string"
    # the tier input reaches the shell only through the environment (no template injection)
    assert all("inputs." not in s.get("run", "") for j in jobs.values() for s in j.get("steps", []))
