"""Run directories: atomic JSON writes, the event log, environment facts, schema checks."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import uuid
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from runners.errors import HarnessError

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO_ROOT / "results" / "schema" / "summary.schema.json"
SUMMARY = "summary.json"
CONFIG = "config.yaml"  # the run's resolved config


def cache_root(override: str | Path = "") -> Path:
    """Where suites keep prepared data between runs: ``override`` (a suite's ``cache_dir``) if given,
    else $PAPERCLUB_CACHE, else ~/.cache/paperclub."""
    return Path(override or os.environ.get("PAPERCLUB_CACHE", Path.home() / ".cache" / "paperclub"))


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_uid() -> str:
    return uuid.uuid4().hex


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    path = Path(path)
    # the name is chosen before anything exists, so a Ctrl-C arriving at any point after it (even
    # inside the call that creates the file) still lets the handler below remove it
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "x", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{what} {path} is not valid JSON: {exc}") from exc


class EventLog:
    """events.jsonl: one json.dumps per line (never hand-formatted), flushed per event. A line the
    disk cannot take is counted in ``lost``, never an error: the results matter more than the log."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lost = 0
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def emit(self, event: str, **fields: Any) -> None:
        record = {"time": utc_now(), "event": event, **fields}
        try:
            self._fh.write(json.dumps(record, default=str) + "\n")
            self._fh.flush()
        except OSError:
            self.lost += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()


@cache
def git_sha(short: bool = True) -> str:
    """The source tree's commit ("+dirty" when it has uncommitted changes); "unknown" outside git."""
    git = shutil.which("git")
    if not git:
        return "unknown"
    try:
        args = [git, "-C", str(REPO_ROOT), "rev-parse"] + (["--short=10"] if short else []) + ["HEAD"]
        sha = subprocess.run(args, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run([git, "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


@cache
def gpu_names() -> tuple[str, ...]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return ()
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return ()
    return tuple(line.strip() for line in out.splitlines() if line.strip())


def hw_class() -> str:
    """A short, stable, human-meaningful hardware class; baselines compare only within one.

    PAPERCLUB_HW_CLASS overrides it (e.g. a team's name for its runner pool).
    """
    if os.environ.get("PAPERCLUB_HW_CLASS"):
        return os.environ["PAPERCLUB_HW_CLASS"]
    gpus = gpu_names()
    if gpus:
        name = gpus[0].lower().replace("nvidia", "").strip().split()
        model = next((w for w in name if any(c.isdigit() for c in w)), name[0] if name else "gpu")
        return f"{model}-x{len(gpus)}"
    return f"cpu-{os.cpu_count()}c"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


# Instruction-set extensions that change floating-point results (fused multiply-add, vector width,
# bf16 and int8 dot products): two CPUs that differ in them need not give bit-identical numbers.
NUMERIC_ISA = ("fma", "avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


@cache
def cpu_identity() -> dict[str, Any]:
    """The CPU's model name and its numerically relevant instruction-set extensions (Linux)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first processor's
    flags = set(fields.get("flags", "").split())
    return {"cpu_model": fields.get("model name") or platform.processor() or platform.machine(),
            "cpu_isa": [f for f in NUMERIC_ISA if f in flags]}


def env_info(device: str = "cpu") -> dict[str, Any]:
    info = {
        "git_sha": git_sha(),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "device": device,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count() or 0,
        **cpu_identity(),
        "gpus": list(gpu_names()),
        "image": os.environ.get("PAPERCLUB_IMAGE", ""),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "argv": sys.argv[1:],
    }
    for pkg in ("jax", "vllm", "numpy", "mlflow-skinny", "hydra-core"):
        v = package_version(pkg)
        if v:
            info[pkg] = v
    return info


@cache
def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(summary: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in _validator().iter_errors(summary)]


def validate_summary(summary: dict, where: str = "summary") -> None:
    errors = schema_errors(summary)
    if errors:
        raise HarnessError(f"{where} does not match {SCHEMA_PATH.name}: {errors[0]}"
                           + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""))


def load_summary(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HarnessError(f"run directory not found: {run_dir}")
    summary = read_json(run_dir / SUMMARY, "summary")
    validate_summary(summary, where=str(run_dir / SUMMARY))
    return summary


def ensure_writable_dir(path: Path) -> Path:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise HarnessError(f"cannot write to results directory {path}: {exc.strerror or exc}") from exc
    return path
