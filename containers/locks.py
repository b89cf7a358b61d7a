"""The hashed lock files the images install from, generated from pyproject.toml.

    python containers/locks.py            # regenerate every lock (uv pip compile --generate-hashes)
    python containers/locks.py --check    # exit 1 if a lock is stale (no network needed)
    python containers/locks.py --verify cuda   # against PyPI: every pin has a wheel for the platform, and
                                               # every hash the lock holds is one PyPI publishes for it

Each lock's first line records a digest of everything it was resolved from (the core
dependencies, the image's extras, the build requirements and the image's overrides), so a test
can tell offline that pyproject.toml moved on without the lock.

The CUDA image takes what vllm pins: vllm 0.33.0 requires torch 2.14.0, transformers below 5.21
and (through mistral-common) numpy below 2.4, where the CPU pins are 2.13.0, 5.24.0 and 2.4.6.
Those overrides are listed below and in the lock header; nothing else differs between images.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
# Where the CPU build of torch lives (the lock records its hash; the image installs it from there).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


# Pure-Python packages PyPI has only as source; the images build them (everything else: wheels only).
SDIST_ONLY = ("antlr4-python3-runtime",)


@dataclass(frozen=True)
class Image:
    name: str
    extras: tuple[str, ...]  # pyproject's extras beside its core dependencies
    overrides: tuple[str, ...] = ()
    # the wheels its base can install (the lock is resolved for PLATFORM, which fixes no glibc floor)
    base_platform: str = PLATFORM
    # a virtualenv of another project inside an image: its requirements instead of pyproject's
    requires: tuple[str, ...] = ()

    @property
    def lock(self) -> Path:
        return HERE / f"requirements-{self.name}.txt"


IMAGES = {
    "cpu": Image("cpu", ("suites", "rl", "ui"), overrides=("torch==2.13.0+cpu",),
                 base_platform="x86_64-manylinux_2_36"),  # Debian bookworm: glibc 2.36
    "cuda": Image("cuda", ("gpu", "llm", "suites", "rl", "ui"),
                  overrides=("torch==2.14.0", "transformers>=5.16.1,<5.21", "numpy>=2.3,<2.4"),
                  base_platform="x86_64-manylinux_2_39"),  # Ubuntu 24.04: glibc 2.39 (llguidance needs > 2.28)
    # The official SSD engine's virtualenv in the CUDA image (paper_ssd.official): the requirements of its
    # pyproject.toml at OFFICIAL_SSD_COMMIT (its pins differ from ours), FlashInfer's prebuilt kernels of the
    # same release, ninja for the kernels FlashInfer still compiles at run time, and its build backend.
    "ssd-official": Image("ssd-official", (), base_platform="x86_64-manylinux_2_39", requires=(
        "torch==2.9.1", "triton", "transformers==4.57.1", "xxhash", "numpy", "safetensors", "tqdm",
        "flashinfer-python==0.6.2", "sgl-kernel==0.3.21", "nvidia-cutlass-dsl>=4.3.4", "wandb==0.22.0",
        "hf_transfer", "tiktoken", "flashinfer-cubin==0.6.2", "ninja", "setuptools>=61")),  # setuptools: its build
}
# tanishqkumar/ssd at the commit the adapter is written against (its LLM arguments, metrics and exit)
OFFICIAL_SSD_COMMIT = "05007c76c7fd1f97b4a26cdd352ac6de44235f1a"


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def inputs(image: Image) -> list[str]:
    """Every requirement the lock is resolved from, in a fixed order."""
    if image.requires:
        return sorted(set(image.requires))
    meta = pyproject()
    project = meta["project"]
    reqs = list(project["dependencies"]) + list(meta["build-system"]["requires"])
    for extra in image.extras:
        reqs += project["optional-dependencies"][extra]
    return sorted(set(reqs))


def input_digest(image: Image) -> str:
    facts = {"inputs": inputs(image), "overrides": list(image.overrides), "python": PYTHON, "platform": PLATFORM}
    if image.requires:
        facts["project"] = f"tanishqkumar/ssd@{OFFICIAL_SSD_COMMIT}"
    blob = json.dumps(facts, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


HEADER = re.compile(r"^# paperclub lock: image=(\S+) inputs-sha256=([0-9a-f]{64})$")


def recorded_digest(lock: Path) -> str | None:
    if not lock.exists():
        return None
    first = lock.read_text(encoding="utf-8").splitlines()[:1]
    m = HEADER.match(first[0]) if first else None
    return m.group(2) if m else None


def pinned(lock: Path) -> dict[str, str]:
    """name -> exact version of every requirement the lock pins."""
    out = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return out


def locked_hashes(lock: Path) -> dict[str, tuple[str, set[str]]]:
    """name -> (version, the sha256 digests the lock accepts for it)."""
    out = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text(encoding="utf-8")):
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", entry)
        if m:
            name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            out[name] = (m.group(2), set(re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)))
    return out


def pypi_hashes(name: str, version: str) -> set[str] | None:
    """The sha256 of every file PyPI's simple index lists for name==version (its JSON form, as pip reads
    it); None where PyPI has no file of that release."""
    req = urllib.request.Request(f"https://pypi.org/simple/{name}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            files = json.load(r)["files"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    ours = [f for f in files if f"-{version}-" in f["filename"] or f["filename"].endswith((f"-{version}.tar.gz",
                                                                                          f"-{version}.zip"))]
    return {f["hashes"]["sha256"] for f in ours if "sha256" in f.get("hashes", {})} or None


def hash_problems(lock: Path, published=pypi_hashes) -> tuple[list[str], list[str], int]:
    """(problems, pins PyPI does not have, pins checked): a lock hash PyPI does not publish for that
    release is a problem; a release PyPI lacks (PyTorch's +cpu builds) cannot be checked here."""
    pins = locked_hashes(lock)
    with ThreadPoolExecutor(8) as pool:
        found = dict(zip(pins, pool.map(lambda kv: published(kv[0], kv[1][0]), pins.items()), strict=True))
    problems, absent = [], []
    for name, (version, hashes) in pins.items():
        if found[name] is None:
            absent.append(f"{name}=={version}")
        elif not hashes or hashes - found[name]:
            problems.append(f"{name}=={version}: {len(hashes - found[name])} of {len(hashes)} hash(es) are not "
                            "among the files PyPI publishes for it")
    return problems, absent, len(pins) - len(absent)


def installable(image: Image) -> subprocess.CompletedProcess:
    """uv's dry run of the image's install on its base's platform: every pin must have a wheel there, but
    for the pure-Python packages PyPI has only as source (SDIST_ONLY)."""
    uv = shutil.which("uv")
    if uv is None:
        sys.exit("locks: needs uv (pip install uv)")
    torch = _torch_cpu_source() if any("+cpu" in o for o in image.overrides) else []
    with tempfile.TemporaryDirectory() as target:
        return subprocess.run([uv, "pip", "install", "--dry-run", "--no-deps", "--only-binary", ":all:",
                               *(a for pkg in SDIST_ONLY for a in ("--no-binary", pkg)), "--require-hashes",
                               "--python-version", PYTHON, "--python-platform", image.base_platform,
                               "--python", sys.executable, "--target", target, *torch, "-r", str(image.lock)],
                              capture_output=True, text=True, cwd=ROOT)


def verify(image: Image) -> int:
    """Check a lock against PyPI without downloading it (what can be checked without the image's registry)."""
    dry = installable(image)
    resolved = re.search(r"Resolved (\d+) packages", dry.stderr + dry.stdout)
    sources = [pkg for pkg in SDIST_ONLY if pkg in pinned(image.lock)]
    print(f"{image.lock.name}: uv's dry run for {image.base_platform}, CPython {PYTHON}: "
          + (f"{resolved[1]} packages resolve, as wheels" + (f" but {', '.join(sources)} (source)" if sources else "")
             if dry.returncode == 0 and resolved
             else "FAILED\n" + (dry.stderr or dry.stdout)[-2000:]))
    problems, absent, checked = hash_problems(image.lock)
    print(f"{image.lock.name}: {checked} pins' hashes are all among PyPI's published files"
          + (f"; not on PyPI, so not checked here: {', '.join(absent)}" if absent else ""))
    for p in problems:
        print(f"{image.lock.name}: {p}")
    return 1 if problems or dry.returncode != 0 else 0


def _torch_cpu_source() -> list[str]:
    """uv reads no pip configuration: point it at a folder holding the CPU wheel when one is set,
    else at PyTorch's CPU index."""
    where = os.environ.get("PAPERCLUB_TORCH_WHEELS") or os.environ.get("PIP_FIND_LINKS")
    return ["--find-links", where] if where else ["--extra-index-url", TORCH_CPU_INDEX,
                                                 "--index-strategy", "unsafe-best-match"]


def compile_lock(image: Image) -> None:
    uv = shutil.which("uv")
    if uv is None:
        sys.exit("locks: needs uv (pip install uv)")
    src = HERE / f".inputs-{image.name}.txt"
    ovr = HERE / f".overrides-{image.name}.txt"
    src.write_text("\n".join(inputs(image)) + "\n", encoding="utf-8")
    ovr.write_text("\n".join(image.overrides) + "\n", encoding="utf-8")
    cmd = [uv, "pip", "compile", str(src), "--override", str(ovr), "--generate-hashes",
           "--python-version", PYTHON, "--python-platform", PLATFORM, "--no-header", "--quiet",
           "-o", str(image.lock)]
    if any(o.startswith("torch==") and "+cpu" in o for o in image.overrides):
        cmd += _torch_cpu_source()
    try:
        subprocess.run(cmd, check=True, cwd=ROOT)
    finally:
        src.unlink(missing_ok=True)
        ovr.unlink(missing_ok=True)
    body = image.lock.read_text(encoding="utf-8")
    # uv writes the input file's name into "# via" lines; the lock must not name a temp file
    body = re.sub(r"-r \S*\.inputs-\w+\.txt", "pyproject.toml", body)
    body = re.sub(r"--override \S*\.overrides-\w+\.txt", "override", body)
    head = [f"# paperclub lock: image={image.name} inputs-sha256={input_digest(image)}",
            f"# python {PYTHON}, {PLATFORM}; "
            + (f"requirements of tanishqkumar/ssd@{OFFICIAL_SSD_COMMIT[:12]} and FlashInfer's kernels" if image.requires
               else f"extras: {', '.join(image.extras)}"),
            f"# overrides: {', '.join(image.overrides) or 'none'}",
            "# regenerate: python containers/locks.py"]
    image.lock.write_text("\n".join(head) + "\n" + body, encoding="utf-8")


def stale() -> list[str]:
    return [f"{img.lock.name} is stale: regenerate with `python containers/locks.py`"
            for img in IMAGES.values() if recorded_digest(img.lock) != input_digest(img)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only say whether the locks are current")
    ap.add_argument("--verify", action="store_true", help="check the locks against PyPI (network; needs uv)")
    ap.add_argument("images", nargs="*", help=f"some of: {', '.join(IMAGES)} (default: all)")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.images) - set(IMAGES))
    if unknown:
        ap.error(f"unknown image {unknown[0]!r}; use {', '.join(IMAGES)}")
    if args.check:
        problems = stale()
        print("\n".join(problems) or "locks are current")
        return 1 if problems else 0
    if args.verify:
        return max(verify(IMAGES[name]) for name in args.images or IMAGES)
    for name in args.images or IMAGES:
        compile_lock(IMAGES[name])
        print(f"wrote {IMAGES[name].lock.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
