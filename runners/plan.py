"""The main job's plan: the suites of one tier with their expected cost here, cheapest first.

A suite's cost is its run's minutes plus the minutes of what it still has to make before it can
start (``Suite.preparation``: data, converted weights; nothing when cached). The run's minutes are
the fastest of the newest finished runs of that suite and tier on this machine class found under
the runs folder (the fastest, since a run that also made its data took longer than one that found
them cached), else the suite's own measured estimate (``Suite.expected_minutes``). A suite with
neither goes last, as does one whose requirements this machine lacks (it will be skipped).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runners.api import Preparation

FINISHED = ("pass", "fail", "inconclusive")
NEWEST = 5  # finished runs looked at per suite


@dataclass
class Step:
    suite: str
    minutes: float | None  # the run itself, preparation cached
    source: str  # where ``minutes`` came from
    preparation: list[Preparation] = field(default_factory=list)
    unmet: list[str] = field(default_factory=list)

    @property
    def to_prepare(self) -> float:
        return sum(p.minutes for p in self.preparation if not p.cached)

    @property
    def total(self) -> float:
        if self.unmet:
            return 0.0
        return (self.minutes if self.minutes is not None else math.nan) + self.to_prepare


def measured_minutes(suite: str, tier: str, hw: str, runs: Path) -> tuple[float, str] | None:
    """The fastest of the newest finished runs of ``suite`` at ``tier`` on ``hw`` under ``runs``."""
    found = []
    for path in Path(runs).glob("*/summary.json"):
        try:
            s = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (s.get("suite"), s.get("tier"), s.get("hw_class")) == (suite, tier, hw) and s.get("status") in FINISHED:
            found.append((s.get("started_at", ""), float(s.get("wall_s", math.nan)), path.parent.name))
    newest = [f for f in sorted(found, reverse=True)[:NEWEST] if math.isfinite(f[1])]
    if not newest:
        return None
    _, wall, name = min(newest, key=lambda f: f[1])
    return wall / 60, f"measured here ({name}; fastest of {len(newest)})"


def step_for(name: str, tier: str, hw: str, runs: Path) -> Step:
    from runners import registry
    from runners.config import compose
    from runners.runner import unmet_requirements

    cls = registry.load(name)
    cfg, _ = compose(cls, tier, [])
    unmet = unmet_requirements(cls.requirements(tier), getattr(cfg, "device", "cpu"))
    if unmet:
        return Step(name, None, "not run here", unmet=list(unmet))
    got = measured_minutes(name, tier, hw, runs)
    if got is None and tier in cls.expected_minutes:
        got = (cls.expected_minutes[tier], "the suite's estimate (2 cores)")
    minutes, source = got if got else (None, "no estimate")
    return Step(name, minutes, source, cls().preparation(cfg, list(range(cls.default_seeds.get(tier, 1)))))


def plan(names: list[str], tier: str, runs: Path, hw: str) -> list[Step]:
    """``names`` as steps, cheapest first (unknown costs, then suites that cannot run here, last)."""
    steps = [step_for(n, tier, hw, runs) for n in names]
    return sorted(steps, key=lambda s: (bool(s.unmet), math.isnan(s.total), s.total, s.suite))


def to_json(steps: list[Step], tier: str, hw: str) -> dict:
    return {"tier": tier, "hw_class": hw,
            "steps": [{**asdict(s), "to_prepare": s.to_prepare, "total": None if math.isnan(s.total) else s.total}
                      for s in steps]}
