"""A metric's history across the runs in the MLflow store, and where it went wrong.

Each published parent run gives one point: the metric's seed mean, with the run's commit and
start time. The reference is the accepted baseline's mean where one exists for that suite, tier
and machine class (else the oldest run), and the tolerance is the baseline's calibrated one
(else the claim's relative ``regression_tol``). A run is *bad* when it is worse than the
reference by more than the tolerance (for an ``approx`` claim: off it either way; a metric no
claim is about is never bad); a *step* is flagged when it moves more than the tolerance
from the run before. Where the newest run is bad, the last good and first bad commits bracket
the change: the run just before the newest unbroken streak of bad runs, and that streak's first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Point:
    git_sha: str
    started_at: str
    value: float | None
    status: str = ""
    bad: bool = False
    step: str = ""  # "worse" / "better" / "changed" when it moved beyond the tolerance from the run before


@dataclass
class History:
    metric: str
    points: list[Point]
    reference: float | None
    tolerance: float | None
    direction: int | None  # +1 higher is better, -1 lower is better, 0 off either way is bad, None: no verdict
    reference_from: str = ""
    last_good: Point | None = None
    first_bad: Point | None = None
    notes: list[str] = field(default_factory=list)


def parent_runs(uri: str, suite: str, tier: str, hw: str) -> list[dict]:
    """Every completely published parent run of ``suite`` at ``tier`` on ``hw``, oldest first
    (none where a local store does not exist yet: reading never creates one)."""
    from runners.tracking import STATE_TAG, _client, _sqlite_path, experiment_name

    db = _sqlite_path(uri)
    if db is not None and not db.is_file():
        return []
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment_name(suite))
    if exp is None:
        return []
    found = client.search_runs([exp.experiment_id], max_results=50_000, filter_string=(
        f"tags.tier = '{tier}' and tags.hw_class = '{hw}' and tags.`{STATE_TAG}` = 'complete'"))
    runs = []
    for r in found:
        if "mlflow.parentRunId" in r.data.tags:
            continue
        started = r.data.tags.get("started_at") or dt.datetime.fromtimestamp(
            r.info.start_time / 1000, dt.UTC).isoformat(timespec="seconds")
        runs.append({"git_sha": r.data.tags.get("git_sha", "?"), "started_at": started,
                     "status": r.data.tags.get("status", ""), "metrics": dict(r.data.metrics),
                     "published_ms": r.info.start_time})
    return sorted(runs, key=lambda r: (r["started_at"], r["published_ms"]))  # runs started in one second


def direction(claim) -> int | None:
    """+1 / -1 / 0 (approx) for a claim's metric; None without a claim."""
    return None if claim is None else {"ge": 1, "le": -1, "approx": 0}[claim.op]


def analyse(metric: str, runs: list[dict], sign: int | None, reference: float | None,
            tolerance: float | None, rel_tol: float, reference_from: str = "") -> History:
    """Flag bad runs and steps, and name the last good and first bad commits (see the module doc)."""
    points = [Point(r["git_sha"], r["started_at"], r["metrics"].get(metric), r.get("status", "")) for r in runs]
    measured = [p for p in points if p.value is not None]
    if reference is None and measured:
        reference, reference_from = measured[0].value, f"the oldest run ({measured[0].git_sha})"
    tol = tolerance if tolerance is not None else (rel_tol * abs(reference) if reference is not None else None)
    hist = History(metric, points, reference, tol, sign, reference_from)
    if tol is None:
        return hist
    previous = None
    for p in measured:
        if sign is not None:
            off = p.value - reference
            p.bad = (sign * off if sign else -abs(off)) < -tol - 1e-12
        if previous is not None and abs(p.value - previous.value) > tol + 1e-12:
            p.step = "changed" if not sign else ("better" if sign * (p.value - previous.value) > 0 else "worse")
        previous = p
    if measured and measured[-1].bad:
        i = len(measured) - 1
        while i > 0 and measured[i - 1].bad:
            i -= 1
        hist.first_bad = measured[i]
        hist.last_good = measured[i - 1] if i > 0 else None
        if hist.last_good is None:
            hist.notes.append("every stored run is worse than the reference: no good run to start from")
    return hist


def histories(uri: str, suite_cls, tier: str, hw: str, metric: str | None = None) -> tuple[list[dict], list[History]]:
    """The published runs of a suite at a tier and machine class, and the history of one metric or of
    every claim metric the store holds (per-unit claims have no seed mean there), each against the
    accepted baseline of that suite, tier and class where one exists."""
    from runners.baseline import baseline_path, load_baseline

    runs = parent_runs(uri, suite_cls.name, tier, hw)
    claims = {c.metric: c for c in suite_cls.claims}
    measured = {m for r in runs for m in r["metrics"]}
    metrics = [metric] if metric else [m for m in claims if m in measured]
    path = baseline_path(suite_cls.name, tier, hw)
    base = load_baseline(path) if path.exists() else {}
    out = []
    for m in metrics:
        c = claims.get(m)
        ref = base.get("summary", {}).get(m, {}).get("mean")
        tol = base.get("tolerances", {}).get(m, {}).get("abs")
        out.append(analyse(m, runs, direction(c), ref, tol, c.regression_tol if c else 0.10,
                           f"the baseline {path}" if ref is not None else ""))
    return runs, out


def plot(histories: list[History], path: Path, title: str) -> Path:
    """One panel per metric: its value per run (bad runs red), the reference and its tolerance band."""
    from runners.plotting import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(len(histories), 1, figsize=(8, 2.4 * len(histories)), squeeze=False)
    for ax, h in zip(axes[:, 0], histories, strict=True):
        xs = list(range(len(h.points)))
        ys = [p.value if p.value is not None else float("nan") for p in h.points]
        ax.plot(xs, ys, "-", color="0.6", lw=1)
        ax.scatter(xs, ys, c=["C3" if p.bad else "C0" for p in h.points], zorder=3, s=18)
        if h.reference is not None:
            ax.axhline(h.reference, color="k", lw=0.8, ls="--")
            if h.tolerance:
                ax.axhspan(h.reference - h.tolerance, h.reference + h.tolerance, color="0.9", zorder=0)
        ax.set_xticks(xs, [p.git_sha[:7] for p in h.points], rotation=60, fontsize=7)
        ax.set_ylabel(h.metric, fontsize=8)
    axes[0, 0].set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
