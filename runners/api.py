"""The runner interface every paper suite implements.

A suite is a class with a name, a version, a config dataclass (registered in Hydra's
ConfigStore by the runner), claims, requirements, and two methods: ``run`` (one seed) and
``figures`` (all seeds). Importing this module imports no ML framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

Tier = Literal["smoke", "small", "medium", "full"]
TIERS: tuple[str, ...] = ("smoke", "small", "medium", "full")
ClaimStatus = Literal["pass", "fail", "inconclusive", "skipped"]
Op = Literal["ge", "le", "approx"]
Rule = Literal["mean", "exact", "rate"]


def thinned(values: list, points: int = 100) -> list[tuple[int, float]]:
    """A long curve as (index, value) pairs, every k-th point so that about ``points`` remain."""
    return [(i, values[i]) for i in range(0, len(values), max(1, len(values) // points))]


def at_tiers(value: float, tiers: tuple[str, ...] = TIERS) -> dict[str, float]:
    """One claim threshold for each of ``tiers`` (suites bind their usual tiers with functools.partial)."""
    return dict.fromkeys(tiers, value)


@dataclass(frozen=True)
class Claim:
    """A statement a paper makes that could fail here, checked over units (seeds by default).

    ``threshold`` maps a tier to the number the units are tested against; a tier that is
    missing is not tested there (the claim is ``skipped`` with that reason, never passed).
    For ``approx``, the claim passes when the 95% CI lies inside threshold +- tol, where
    tol = max(abs_tol, rel_tol * |threshold|). ``unit`` names what the interval is over: "seeds"
    (one value per seed, ``RunResult.metrics``) or a declared unit such as "prompts" or
    "episodes" (one value per unit, ``RunResult.units``, pooled over seeds). ``rule``: "mean"
    (t-interval), "exact" (every unit must hold) or "rate" (0/1 outcomes, Clopper-Pearson).
    ``paper_value`` only for the same quantity under the same protocol; a related figure of the
    paper goes in ``context``.
    """

    id: str
    metric: str
    op: Op
    threshold: dict[str, float]
    paper_value: float | None = None
    source: str = ""
    unit: str = "seeds"
    rule: Rule = "mean"
    # at least this many units (never fewer than runners.claims.MIN_UNITS[tier]: 1 at smoke, 3 above)
    min_units: int | None = None
    context: str = ""
    version: int = 1
    rel_tol: float = 0.0
    abs_tol: float = 0.0
    description: str = ""
    # How much worse than the baseline mean a metric may get before `compare` calls it a
    # regression (relative to |baseline mean|).
    regression_tol: float = 0.10
    # "log" for ratios (speedups, x-times-worse): the CI is taken over log(values), so the
    # value is the geometric mean and one large ratio does not swamp the interval.
    scale: Literal["linear", "log"] = "linear"
    # What this one claim needs beyond the suite's own requirements (e.g. {"vllm"} for a peer
    # baseline): where unmet, the claim alone is ``skipped`` with the reason.
    requires: frozenset[str] = frozenset()
    # Config values this claim is about (e.g. {"task": "pusht"}): a run whose config differs in one
    # of them does not test it, and the claim alone is ``skipped`` with the reason.
    applies: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.op not in ("ge", "le", "approx"):
            raise ValueError(f"claim {self.id}: op must be ge, le or approx, not {self.op!r}")
        unknown = set(self.threshold) - set(TIERS)
        if unknown:
            raise ValueError(f"claim {self.id}: unknown tier(s) {sorted(unknown)}; tiers are {TIERS}")
        if self.scale not in ("linear", "log"):
            raise ValueError(f"claim {self.id}: scale must be linear or log, not {self.scale!r}")
        if self.op == "approx" and self.rel_tol <= 0 and self.abs_tol <= 0:
            raise ValueError(f"claim {self.id}: op 'approx' needs rel_tol or abs_tol")
        if self.rule not in ("mean", "exact", "rate"):
            raise ValueError(f"claim {self.id}: rule must be mean, exact or rate, not {self.rule!r}")
        if self.rule != "mean" and self.scale != "linear":
            raise ValueError(f"claim {self.id}: scale 'log' needs rule 'mean'")
        if self.rule == "rate" and self.op == "approx":
            raise ValueError(f"claim {self.id}: a rate claim needs op ge or le")

    @property
    def higher_is_better(self) -> bool | None:
        return {"ge": True, "le": False}.get(self.op)


@dataclass(frozen=True)
class Invariant:
    """What holds by construction (convexity, a fitter's bounds): checked on every seed of every run.

    A violation is a harness error (exit 2) naming the invariant, never a failed claim, and an
    invariant is never counted as a reproduced claim. ``tol`` absorbs floating-point rounding.
    """

    id: str
    metric: str
    op: Literal["ge", "le"]
    bound: float
    source: str = ""
    description: str = ""
    tol: float = 1e-9

    def __post_init__(self) -> None:
        if self.op not in ("ge", "le"):
            raise ValueError(f"invariant {self.id}: op must be ge or le, not {self.op!r}")


@dataclass
class RunResult:
    """What one seed of a suite produced.

    metrics: scalars (claims and regression history read these; snake_case, stable names).
    series: curves, name -> list of (step, value); plotted in figures and logged with steps.
    artifacts: files the seed wrote (paths), copied to MLflow with the run.
    info: free-form, JSON-serialisable facts about the seed (sizes, timings breakdown).
    units: metric -> one value per unit (prompt, episode, ...) for claims whose unit is not seeds.
    inconclusive: metrics the suite itself cannot vouch for this time, with the reason.
    inputs: name -> checksum of what the numbers are conditional on besides code and config (a
      generated dataset); ``compare`` treats a run on other inputs as another experiment.
    """

    metrics: dict[str, float]
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    # metric -> why its value cannot decide a claim this time (e.g. a fit whose asymptote moves
    # more than the gap it would be used to claim); claims on it become "inconclusive".
    inconclusive: dict[str, str] = field(default_factory=dict)
    units: dict[str, list[float]] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Preparation:
    """Something a suite makes once and caches before its runs can start (data, converted weights),
    with whether it is already cached and about how many minutes it takes when it is not."""

    what: str
    cached: bool
    minutes: float


@dataclass
class SuiteConfig:
    """Base for every suite's config. Subclasses add their own fields.

    Nested configs must use ``field(default_factory=...)`` (Python 3.11 dataclass rule).
    """

    # Threads for torch / BLAS inside one worker; pinned explicitly for repeatable timings.
    threads: int = 1
    device: str = "cpu"


class Suite:
    """Base class for a paper suite.

    Subclasses set the class attributes and implement ``run`` and ``figures``. ``tiers``
    maps a tier to Hydra overrides applied before the user's own (the user's win).
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    config: ClassVar[type[SuiteConfig]] = SuiteConfig
    claims: ClassVar[tuple[Claim, ...]] = ()
    invariants: ClassVar[tuple[Invariant, ...]] = ()
    requires: ClassVar[frozenset[str]] = frozenset()
    # Extra requirements of one tier (e.g. {"full": frozenset({"cuda"})}).
    tier_requires: ClassVar[dict[str, frozenset[str]]] = {}
    tiers: ClassVar[dict[str, list[str]]] = {"smoke": [], "small": [], "full": []}
    default_seeds: ClassVar[dict[str, int]] = {"smoke": 1, "small": 3, "full": 3}
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    # Minutes a run of each tier takes on 2 CPU cores once its preparation is cached (measured; the
    # main job's plan prefers this machine class's own finished runs where there are any).
    expected_minutes: ClassVar[dict[str, float]] = {}
    # Config keys that were renamed: {old: new}; an override with an old key is refused in one line
    # naming the new one.
    renamed_keys: ClassVar[dict[str, str]] = {}
    # Named sweeps (``paperclub run SUITE --sweep NAME``): Hydra multirun overrides, e.g. the paper's datasets.
    sweeps: ClassVar[dict[str, list[str]]] = {}

    @classmethod
    def requirements(cls, tier: str) -> frozenset[str]:
        return frozenset(cls.requires) | cls.tier_requires.get(tier, frozenset())

    def run(self, cfg: Any, seed: int, out_dir: Path) -> RunResult:  # pragma: no cover - interface
        raise NotImplementedError

    def figures(self, results: list[RunResult], cfg: Any, out_dir: Path) -> list[Path]:
        """Draw the headline figures from all seeds; return the PNG paths written."""
        return []

    def preparation(self, cfg: Any, seeds: list[int]) -> list[Preparation]:
        """What this config needs made (and cached) before ``seeds`` run; cheap to call: it only looks."""
        return []

    def preflight(self, cfg: Any) -> list:
        """What ``cfg`` needs beyond the tier's requirements, each checked here in seconds
        (``runners.preflight`` helpers: each phase's memory estimate, data, weights, disk)."""
        return []

    def aggregate(self, runs: list[tuple[dict, dict]]) -> list[dict]:
        """Headline numbers over the runs of a sweep, each run given as (its config, its summary): rows of
        {"metric", "mean", "ci" (95%), "n", "unit", "paper", "context"}, where the runs are the units (for
        example one dataset each). Empty: the suite has none."""
        return []

    def rehearsal(self, cfg: Any) -> list[str]:
        """Overrides that turn the run of ``cfg`` into its rehearsal (``paperclub run --rehearse``): every
        phase at its real shapes (model sizes, batches, candidates), a few steps, episodes or prompts each."""
        return []

    def phase_steps(self, cfg: Any) -> dict[str, float]:
        """The work of each phase (a name given to ``Laps.done``) under ``cfg``, in a unit its time grows
        linearly with (training steps, planned episodes, prompts); the rehearsal projects a phase's time
        by the ratio of the real config's to its own. A phase not named is projected at its measured time."""
        return {}

    def seed_unit(self, cfg: Any) -> str:
        """What one seed is, as claims over seeds name it: "seeds", or e.g. "datasets" where each seed
        makes its own data (an interval over them is then over datasets)."""
        return "seeds"

    def notes(self, cfg: Any, tier: str) -> list[str]:
        """Plain sentences for the report: what was scaled down and how, at this tier."""
        return []
