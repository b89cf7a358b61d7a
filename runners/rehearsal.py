"""Rehearsal: every phase of a tier at its real shapes for a few steps, and what the real run will cost.

The rehearsal runs seed 0 of the tier's config with the user's overrides (the real run's) and then
the suite's ``rehearsal`` overrides for it (fewer steps, episodes or prompts; the same model sizes,
batches and candidates). The rehearsal's own config must pass the preflight; what the real run's config would
be short of is reported beside the projection. Each phase (``Laps.done``) is recorded with its seconds,
the part of them that does not grow with its work (time outside the suite's tracked loops, and the
warm-up of loops of equal steps: ``runners.progress.track``), and its peak memory per device
(``runners.phases``). A phase's time in the real run is that fixed part plus the rest projected linearly
in its work (``Suite.phase_steps``: the real config's steps over the rehearsal's); a phase with no
tracked loop is projected linearly as a whole; time outside any phase and phases without a step count
are projected at their measured time. The projection covers the tier's
default seeds, and GPU-hours count every GPU the tier requires. No claim is evaluated.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from runners import phases, progress
from runners.errors import HarnessError
from runners.rundir import atomic_write_json, ensure_writable_dir, env_info, hw_class

REHEARSAL = "rehearsal.json"


def gpu_count(requirements: frozenset[str], device: str) -> int:
    """GPUs a run holds: the ``gpus>=N`` requirement, 1 for ``cuda``, 0 on the CPU."""
    from runners.runner import GPU_REQUIREMENT

    if device.startswith("cpu"):
        return 0
    counts = [int(float(m["n"])) for r in requirements if (m := GPU_REQUIREMENT.match(r)) and m["key"] == "gpus"]
    return max(counts, default=1 if requirements & {"cuda", "gpu"} else 0)


def project(rows: list[dict], steps_here: dict[str, float], steps_real: dict[str, float]) -> list[dict]:
    """Each phase with its projected seconds in the real run: its fixed part as measured, the rest linear in
    its steps (all of it where no fixed part was measured)."""
    out = []
    for row in rows:
        here, real = steps_here.get(row["phase"]), steps_real.get(row["phase"])
        scale = real / here if here and real is not None else 1.0
        fixed = row.get("fixed_seconds") or 0.0
        variable = row["seconds"] - fixed
        out.append({**row, "steps_rehearsed": here, "steps_real": real,
                    "seconds_per_step": variable / here if here else None,
                    "projected_seconds": fixed + variable * scale})
    return out


def rehearse(suite_cls, tier: str, overrides: list[str], out_dir: Path) -> dict:
    """Run the rehearsal of ``suite_cls`` at ``tier`` into ``out_dir``; return (and write) its record."""
    from runners.config import compose
    from runners.preflight import check
    from runners.runner import json_safe, pin_threads, seed_everything

    real, _ = compose(suite_cls, tier, overrides)
    shrink = suite_cls().rehearsal(real)
    cfg, plain = compose(suite_cls, tier, [*overrides, *shrink])
    verdict = check(suite_cls, cfg, tier)  # the rehearsal itself must fit; the real run's shortfalls are reported
    if verdict.status != "ok":
        raise HarnessError(f"{suite_cls.name}/{tier} rehearsal not started: " + " | ".join(verdict.lines()))
    real_short = [n.line() for n in check(suite_cls, real, tier).short]
    out_dir = ensure_writable_dir(out_dir)
    suite, device = suite_cls(), getattr(cfg, "device", "cpu")
    record = {"suite": suite_cls.name, "tier": tier, "overrides": [*overrides, *shrink], "config": plain,
              "hw_class": hw_class(), "env": env_info(device), "complete": False,
              "preflight": [{"what": n.what, "needed": n.needed, "found": n.found} for n in verdict.needs],
              "real_run_short": real_short}
    seed_dir = ensure_writable_dir(out_dir / "seed_0")
    seed_everything(0)
    pin_threads(getattr(cfg, "threads", 1))
    t0 = time.perf_counter()
    try:
        with progress.live(), phases.recording(seed_dir):
            suite.run(cfg, 0, seed_dir)
    finally:
        wall = time.perf_counter() - t0
        rows = project(phases.rows(), suite.phase_steps(cfg), suite.phase_steps(real))
        outside = wall - sum(r["seconds"] for r in rows)
        seeds = suite_cls.default_seeds.get(tier, 1)
        per_seed = sum(r["projected_seconds"] for r in rows) + max(outside, 0.0)
        gpus = gpu_count(suite_cls.requirements(tier), device)
        record.update(phases=rows, seconds=round(wall, 6), seconds_outside_phases=round(outside, 6),
                      projected_seconds_per_seed=per_seed, seeds=seeds, gpus=gpus,
                      projected_hours=per_seed * seeds / 3600, projected_gpu_hours=per_seed * seeds * gpus / 3600)
        atomic_write_json(out_dir / REHEARSAL, json_safe(record))
    shutil.rmtree(seed_dir / phases.KEPT, ignore_errors=True)  # kept for a resume only
    record["complete"] = True
    atomic_write_json(out_dir / REHEARSAL, json_safe(record))
    return record
