"""The run loop: seeds -> per-seed metrics -> claims -> figures -> summary.json.

Results are never lost: after every seed, summary.json is rewritten (atomically) with what
has finished and status "interrupted"; the final write replaces it with the real status.
A crash in a seed stops the run with status "error" (traceback in events.jsonl and the
seed's error.txt); Ctrl-C or SIGTERM stops it with status "interrupted". The suite's invariants
are checked after every seed: a violation stops the run with status "error" naming it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import math
import os
import random
import re
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from runners import phases, progress
from runners.api import RunResult, Suite
from runners.claims import check_invariant, evaluate, run_status
from runners.errors import HarnessError
from runners.rundir import (
    CONFIG,
    SUMMARY,
    EventLog,
    atomic_write_json,
    atomic_write_text,
    ensure_writable_dir,
    env_info,
    git_sha,
    hw_class,
    new_run_uid,
    utc_now,
    validate_summary,
)

METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def default_run_dir(suite: str, tier: str, root: Path | None = None) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    sha = git_sha().replace("+dirty", "d")
    return (root or Path("results") / "runs") / f"{stamp}_{suite}_{tier}_{sha}"


GPU_REQUIREMENT = re.compile(r"^(?P<key>gpus|gpu_mem)>=(?P<n>\d+(?:\.\d+)?)(?P<unit>GB)?$")


def _gpu_reasons(requires: frozenset[str]) -> list[str]:
    """Why the visible GPUs do not meet ``cuda``, ``gpus>=N`` (N visible devices) or ``gpu_mem>=XGB`` (each of
    the devices used has at least X GB, 1e9 bytes)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    want = {m["key"]: float(m["n"]) for r in requires if (m := GPU_REQUIREMENT.match(r))}
    n = int(want.get("gpus", 1))
    if count < n:
        return [f"gpus>={n}: {count} cuda device(s) visible"]
    if "gpu_mem" in want:
        small = [(i, torch.cuda.get_device_properties(i).total_memory / 1e9) for i in range(n)]
        small = [(i, gb) for i, gb in small if gb < want["gpu_mem"]]
        if small:
            return [f"gpu_mem>={want['gpu_mem']:g}GB: " + ", ".join(f"cuda:{i} has {gb:.0f} GB" for i, gb in small)]
    return []


def unmet_requirements(requires: frozenset[str], device: str | None = None) -> list[str]:
    """Human-readable reasons for every requirement this environment does not meet.

    GPU requirements (``cuda``, ``gpu``, ``gpus>=N``, ``gpu_mem>=XGB``) are checked together, and not
    at all where the config's ``device`` is the CPU (a CPU stand-in of a GPU tier); any other
    requirement names a Python package that must be importable."""
    bad = [r for r in requires if r not in ("cuda", "gpu") and "=" in r and not GPU_REQUIREMENT.match(r)]
    if bad:
        raise HarnessError(f"unknown requirement(s) {sorted(bad)}: use gpus>=N or gpu_mem>=XGB")
    gpu = frozenset(r for r in requires if r in ("cuda", "gpu") or GPU_REQUIREMENT.match(r))
    reasons = []
    if gpu and not (device or "").startswith("cpu"):
        if importlib.util.find_spec("torch") is None:
            reasons.append(f"{', '.join(sorted(gpu))}: torch is not installed")
        else:
            reasons += _gpu_reasons(gpu)
    for req in sorted(requires - gpu):
        if importlib.util.find_spec(req) is None:
            reasons.append(f"{req}: Python package {req!r} is not installed")
    return reasons


def pin_threads(n: int) -> None:
    """Fix intra-op threads (env for BLAS/OpenMP started later, torch if already loaded)."""
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


# each library's global generator, seeded; jax has none (its keys are explicit)
SEEDERS = {"numpy": lambda numpy, seed: numpy.random.seed(seed), "torch": lambda torch, seed: torch.manual_seed(seed)}


def seed_everything(seed: int) -> None:
    """Seed Python's ``random`` and the global generators of numpy and torch, importing each that is
    installed and not yet imported: a seed's run starts from the same state whether it is the first of
    its process (before any suite imported torch) or not."""
    random.seed(seed)
    for name, seed_library in SEEDERS.items():
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            seed_library(importlib.import_module(name), seed)


def _check_result(result: Any, suite: str) -> RunResult:
    if not isinstance(result, RunResult):
        raise HarnessError(f"suite {suite!r}: run() returned {type(result).__name__}, not RunResult")
    for name, value in result.metrics.items():
        if not METRIC_NAME.match(name):
            raise HarnessError(f"suite {suite!r}: metric name {name!r} is not snake_case")
        result.metrics[name] = float(value)
    for name, values in result.units.items():
        if not METRIC_NAME.match(name):
            raise HarnessError(f"suite {suite!r}: unit metric name {name!r} is not snake_case")
        result.units[name] = [None if v is None else float(v) for v in values]
    return result


def claim_samples(claim, results: list[RunResult], seeds: list[int]) -> tuple[list | None, list[str]]:
    """One value per unit of ``claim`` with a label each, from the finished seeds' results.

    Seeds: the seed's metric (None where the seed finished without it). Another unit: the
    seed's per-unit values, pooled (a seed without them counts as one missing unit). None when
    no seed produced the metric at all.
    """
    if claim.unit == "seeds":
        if not any(claim.metric in r.metrics for r in results):
            return None, []
        return [r.metrics.get(claim.metric) for r in results], [f"seed {s}" for s in seeds]
    if not any(claim.metric in r.units for r in results):
        return None, []
    values, labels = [], []
    for seed, r in zip(seeds, results, strict=True):
        unit_values = r.units.get(claim.metric)
        if unit_values is None:
            values.append(None)
            labels.append(f"seed {seed} (no per-{claim.unit} values)")
            continue
        values += unit_values
        labels += [f"seed {seed} {claim.unit} #{i}" for i in range(len(unit_values))]
    return values, labels


def _jsonable(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None


def json_safe(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become null, tuples and numpy scalars plain values."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float):
        return _jsonable(obj)
    return obj


class _SigtermAsInterrupt:
    """SIGTERM (SLURM preemption, `kill`) saves like Ctrl-C does."""

    def __enter__(self):
        self._old = None
        with contextlib.suppress(ValueError):  # not the main thread (e.g. some launchers)
            self._old = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False


def execute(suite_cls: type[Suite], cfg: Any, cfg_plain: dict, *, tier: str, seeds: list[int],
            out_dir: Path, resume: dict | None = None) -> dict:
    """Run every seed of one suite at one tier into ``out_dir``; return the summary written.

    An I/O fault of the run directory (disk full, read-only, removed) is a harness error in one
    line naming the path, the error and what finished (each seed's metrics.json is written as it
    ends, summary.json after it). ``resume``: the summary of a cut-off run in ``out_dir``, continued
    under its run id: its finished seeds are read back, not run, and a seed it left unfinished runs
    again in its folder, where its finished phases are loaded (``Laps.run``)."""
    try:
        return _execute(suite_cls, cfg, cfg_plain, tier=tier, seeds=seeds, out_dir=out_dir, resume=resume)
    except OSError as exc:
        done = sorted(Path(out_dir).glob("seed_*/metrics.json"))  # an empty list where the folder is gone
        kept = f"finished seeds' results: {', '.join(map(str, done))}" if done else "no seed had finished"
        raise HarnessError(f"cannot write {exc.filename or out_dir}: {exc.strerror or exc}; {kept}") from exc


def finished_seed(seed_dir: Path) -> RunResult:
    """A finished seed's result, read back from its metrics.json (a null metric was not finite)."""
    from runners.rundir import read_json

    saved = read_json(Path(seed_dir) / "metrics.json", "seed results")
    metrics = {k: math.nan if v is None else float(v) for k, v in saved["metrics"].items()}
    series = {k: [tuple(p) for p in v] for k, v in saved["series"].items()}
    return RunResult(metrics=metrics, series=series, artifacts=saved["artifacts"], info=saved["info"],
                     inconclusive=saved["inconclusive"], units=saved.get("units", {}), inputs=saved.get("inputs", {}))


def _execute(suite_cls: type[Suite], cfg: Any, cfg_plain: dict, *, tier: str, seeds: list[int],
             out_dir: Path, resume: dict | None = None) -> dict:
    import yaml

    out_dir = ensure_writable_dir(out_dir)
    started, t0 = utc_now(), time.perf_counter()
    suite = suite_cls()
    device = getattr(cfg, "device", "cpu")
    summary: dict[str, Any] = {
        "schema_version": 1, "run_uid": resume["run_uid"] if resume else new_run_uid(), "suite": suite_cls.name,
        "suite_version": suite_cls.version, "tier": tier, "hw_class": hw_class(),
        "status": "interrupted", "reason": "run in progress (or killed before it finished)",
        "seeds": list(seeds), "seeds_done": [], "metrics": {}, "samples": {}, "unit_samples": {}, "claims": [],
        "invariants": [],
        "figures": [], "notes": list(suite.notes(cfg, tier)), "env": env_info(device),
        "started_at": resume["started_at"] if resume else started, "wall_s": 0.0,
    }
    atomic_write_text(out_dir / CONFIG, yaml.safe_dump(cfg_plain, sort_keys=False))
    events = EventLog(out_dir / "events.jsonl")
    events.emit("run_start", suite=suite_cls.name, tier=tier, seeds=list(seeds), run_uid=summary["run_uid"],
                hw_class=summary["hw_class"], git_sha=summary["env"]["git_sha"])
    results: list[RunResult] = []
    status: str | None = None
    reason = ""
    if resume:  # the cut-off run goes on under its own id; its finished seeds are read back
        t0 -= float(resume.get("wall_s") or 0.0)
        for seed in resume["seeds_done"]:
            results.append(finished_seed(out_dir / f"seed_{seed}"))
            summary["seeds_done"].append(seed)
        then = resume["env"].get("git_sha")
        summary["notes"].append(f"resumed at {started} after {resume['status']} ({resume.get('reason', '')}); seeds "
                                f"{resume['seeds_done']} were read back" + ("" if then == summary["env"]["git_sha"] else
                                f"; the run began at commit {then}, it was resumed at {summary['env']['git_sha']}"))
        events.emit("resumed", seeds_done=resume["seeds_done"], status_then=resume["status"])

    def _claim_row(c) -> dict:
        samples, labels = claim_samples(c, results, summary["seeds_done"])
        row = evaluate(c, samples, tier, [r.inconclusive[c.metric] for r in results if c.metric in r.inconclusive],
                       labels)
        if c.unit == "seeds":
            row["unit"] = suite.seed_unit(cfg)
        unmet_here = unmet_requirements(frozenset(c.requires), device) if tier in c.threshold else []
        if unmet_here:
            row.update(status="skipped", reason="requirement unmet: " + "; ".join(unmet_here))
        other = [f"{k}={v!r} (this run: {getattr(cfg, k, None)!r})" for k, v in c.applies if getattr(cfg, k, None) != v]
        if other and tier in c.threshold:
            row.update(status="skipped", reason="applies when " + ", ".join(other))
        return row

    def write(final: bool) -> None:
        summary["wall_s"] = round(time.perf_counter() - t0, 3)
        names = sorted({k for r in results for k in r.metrics})
        summary["samples"] = {k: [_jsonable(r.metrics.get(k)) for r in results] for k in names}
        summary["unit_samples"] = {k: [json_safe(r.units.get(k)) for r in results]
                                   for k in sorted({k for r in results for k in r.units})}
        summary["inputs"] = {k: [r.inputs.get(k) for r in results] for k in sorted({k for r in results for k in r.inputs})}
        summary["invariants"] = invariant_rows()
        summary["metrics"] = {}
        for k, vals in summary["samples"].items():
            finite = [v for v in vals if v is not None]
            summary["metrics"][k] = math.fsum(finite) / len(finite) if finite else None
        if final and status == "skipped":  # nothing ran: every claim is skipped for the same reason
            summary["claims"] = [dict(evaluate(c, None, tier), status="skipped", reason=reason)
                                 for c in suite_cls.claims]
        elif final:
            summary["claims"] = [_claim_row(c) for c in suite_cls.claims]
        if final:
            summary["status"] = status or run_status(c["status"] for c in summary["claims"])
            summary["reason"] = reason
            if events.lost:
                summary["notes"].append(f"{events.lost} line(s) of events.jsonl could not be written (disk)")
        validate_summary(summary)
        atomic_write_json(out_dir / SUMMARY, summary)

    def invariant_rows() -> list[dict]:
        done = summary["seeds_done"]
        return [check_invariant(inv, [r.metrics.get(inv.metric) for r in results], [f"seed {s}" for s in done])
                for inv in suite_cls.invariants] if results else []

    unmet = unmet_requirements(suite_cls.requirements(tier), device)
    if unmet:
        status, reason = "skipped", "requirement unmet: " + "; ".join(unmet)
        seeds = []
    write(final=False)
    pin_threads(getattr(cfg, "threads", 1))
    with _SigtermAsInterrupt(), progress.live():
        try:
            for seed in progress.track([s for s in seeds if s not in summary["seeds_done"]],
                                       f"{suite_cls.name}/{tier} seeds"):
                seed_dir = ensure_writable_dir(out_dir / f"seed_{seed}")
                events.emit("seed_start", seed=seed)
                ts = time.perf_counter()
                seed_everything(seed)
                try:
                    with phases.recording(seed_dir):
                        result = _check_result(suite.run(cfg, seed, seed_dir), suite_cls.name)
                except Exception as exc:  # a suite's crash (or a malformed result) ends the run as "error"
                    tb = traceback.format_exc()
                    with contextlib.suppress(OSError):  # a full disk may be why it crashed
                        atomic_write_text(seed_dir / "error.txt", tb)
                    events.emit("seed_error", seed=seed, error=repr(exc), traceback=tb)
                    status, reason = "error", f"seed {seed} crashed: {type(exc).__name__}: {exc}".split("\n")[0]
                    break
                wall = time.perf_counter() - ts
                try:
                    atomic_write_json(seed_dir / "metrics.json", json_safe({
                        "seed": seed, "wall_s": round(wall, 3), "metrics": result.metrics,
                        "series": {k: [list(map(float, p)) for p in v] for k, v in result.series.items()},
                        "artifacts": result.artifacts, "info": result.info, "inconclusive": result.inconclusive,
                        "units": result.units, "inputs": result.inputs}))
                except (TypeError, ValueError) as exc:
                    events.emit("seed_error", seed=seed, error=repr(exc))
                    status, reason = "error", f"seed {seed} returned results that are not JSON: {exc}"
                    break
                shutil.rmtree(seed_dir / phases.KEPT, ignore_errors=True)  # finished: metrics.json is what resumes
                results.append(result)
                summary["seeds_done"].append(seed)
                events.emit("seed_end", seed=seed, wall_s=round(wall, 3), metrics=result.metrics)
                write(final=False)
                broken = [i for i in summary["invariants"] if i["status"] == "violated"]
                if broken:  # what holds by construction did not: the code is wrong, not the paper
                    events.emit("invariant_violated", seed=seed, invariants=broken)
                    status = "error"
                    reason = "; ".join(f"invariant {i['id']} violated: {i['reason']}" for i in broken)
                    break
        except KeyboardInterrupt as exc:
            status, reason = "interrupted", f"interrupted ({exc or 'Ctrl-C'}) after seeds {summary['seeds_done']}"
            events.emit("interrupted", seeds_done=summary["seeds_done"])

    if results and status not in ("interrupted", "skipped"):
        try:
            paths = suite.figures(results, cfg, out_dir)
            summary["figures"] = sorted(os.path.relpath(p, out_dir) for p in paths)
        except KeyboardInterrupt:
            status, reason = "interrupted", "interrupted while drawing figures"
        except Exception as exc:
            events.emit("figures_error", error=repr(exc), traceback=traceback.format_exc())
            status = status or "error"
            reason = reason or f"figures crashed: {type(exc).__name__}: {exc}".split("\n")[0]
    write(final=True)
    events.emit("run_end", status=summary["status"], reason=reason, wall_s=summary["wall_s"])
    events.close()
    return summary
