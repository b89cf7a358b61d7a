"""Accepted baselines and the regression verdict against them.

A baseline is results/baselines/<suite>/<tier>/<hw_class>.json with per-seed samples
(modelled on MLPerf's reference convergence points). It changes only through `accept`.
Comparison happens only within the same suite, tier, hw_class, suite version and claim
version; anything else is ``inconclusive`` and said plainly.

Per metric:
  regression   worse than the baseline mean by more than the claim's regression_tol
               (relative), and, when both sides have >= 2 seeds with spread, Welch's test
               agrees (p < 0.01)
  improved     the same, in the good direction
  ok           within tolerance (or the test does not separate them)
  inconclusive one seed on a side and beyond tolerance, or versions differ
  info         no claim gives the metric a direction: change shown, no verdict

Where the baseline holds a calibrated tolerance for a metric (``calibrate``: the half-width of a
99% prediction interval for one run's seed mean, from the spread of N same-code runs), that
tolerance replaces both the relative tolerance and the Welch test: beyond it is a regression or
an improvement. It holds only on the CPU it was calibrated on (model name and numerically relevant
instruction-set extensions); elsewhere the relative tolerance is used, and the verdict says so.
A claim that passed in the baseline and fails now is a regression whatever its metric did.

A run on other inputs than the baseline's (``RunResult.inputs``: a generated dataset with another
checksum, made on another machine or by other code) is another experiment: every verdict is
``inconclusive``, said plainly, unless the baseline's tolerances were calibrated over runs whose
inputs differed, so that they cover that variation.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

from runners.errors import HarnessError
from runners.rundir import REPO_ROOT, atomic_write_json, ensure_writable_dir, read_json, utc_now

SCHEMA = REPO_ROOT / "results" / "schema" / "baseline.schema.json"
P_VALUE = 0.01
CALIBRATION_LEVEL = 0.99
MIN_CALIBRATION_RUNS = 3


def baseline_path(suite: str, tier: str, hw: str, root: Path | None = None) -> Path:
    return (root or Path("results") / "baselines") / suite / tier / f"{hw}.json"


@cache
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def load_baseline(path: Path) -> dict:
    data = read_json(path, "baseline")
    errors = list(_validator().iter_errors(data)) if isinstance(data, dict) else None
    if errors is None or errors:
        where = "/".join(map(str, errors[0].absolute_path)) if errors else "<root>"
        msg = errors[0].message if errors else "not a JSON object"
        raise HarnessError(f"baseline {path} is not a valid baseline file ({where}: {msg}); "
                           "fix or delete it, then `paperclub accept RUN_DIR`")
    return data


def _stats(values: list) -> dict:
    xs = [v for v in values if v is not None]
    n = len(xs)
    if not n:
        return {"mean": None, "std": None, "n": 0}
    # equal values: that value and no spread (their rounded sum over n can miss the value by an ulp)
    mean = xs[0] if all(x == xs[0] for x in xs) else math.fsum(xs) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def finished(summary: dict) -> bool:
    """Every seed ran: a crash, an interrupt or an unmet requirement leaves nothing to compare with (a
    tier without claims, such as most smoke tiers, is 'skipped' but still measured everything)."""
    return summary["status"] not in ("error", "interrupted") and summary["seeds_done"] == summary["seeds"] \
        and bool(summary["seeds_done"])


def accept(summary: dict, run_dir: Path, path: Path | None = None, force: bool = False) -> Path:
    if not finished(summary):
        raise HarnessError(f"cannot accept a run whose status is {summary['status']!r} ({run_dir})")
    path = Path(path) if path else baseline_path(summary["suite"], summary["tier"], summary["hw_class"])
    if path.exists() and not force:
        load_baseline(path)  # refuse to overwrite a file we cannot read: it may be someone's work
    ensure_writable_dir(path.parent)
    atomic_write_json(path, {
        "schema_version": 1, "suite": summary["suite"], "suite_version": summary["suite_version"],
        "tier": summary["tier"], "hw_class": summary["hw_class"],
        "claims": {c["id"]: {"metric": c["metric"], "op": c["op"], "version": c.get("version", 1),
                             "status": c["status"]} for c in summary["claims"]},
        "samples": summary["samples"], "inputs": summary.get("inputs", {}),
        "summary": {k: _stats(v) for k, v in summary["samples"].items()},
        "env": summary["env"], "accepted_at": utc_now(), "accepted_from": summary["run_uid"],
    })
    return path


def calibration(summaries: list[dict], level: float = CALIBRATION_LEVEL) -> dict:
    """Per metric, the half-width of a ``level`` prediction interval for the seed mean of one more run
    of the same code, from N runs' seed means: t_{(1+level)/2, N-1} * sd * sqrt(1 + 1/N)."""
    if len(summaries) < MIN_CALIBRATION_RUNS:
        raise HarnessError(f"calibration needs at least {MIN_CALIBRATION_RUNS} runs of the same code, got "
                           f"{len(summaries)}")
    first = summaries[0]
    for s in summaries[1:]:
        for key in ("suite", "tier", "hw_class", "suite_version"):
            if s[key] != first[key]:
                raise HarnessError(f"calibration runs differ in {key} ({first[key]!r} vs {s[key]!r})")
        if s["env"]["git_sha"] != first["env"]["git_sha"]:
            raise HarnessError(f"calibration runs come from different code ({first['env']['git_sha']} vs "
                               f"{s['env']['git_sha']}); calibrate from runs of one commit")
    bad = [s["run_uid"] for s in summaries if not finished(s)]
    if bad:
        raise HarnessError(f"cannot calibrate from runs that did not finish: {', '.join(bad)}")
    from scipy.stats import t

    out = {}
    for metric in sorted(set().union(*(s["metrics"] for s in summaries))):
        means = [s["metrics"].get(metric) for s in summaries]
        if any(m is None for m in means):
            continue  # not every run measured it: no tolerance, compare falls back to the relative one
        st, n = _stats(means), len(means)
        half = float(t.ppf((1 + level) / 2, n - 1)) * st["std"] * math.sqrt(1 + 1 / n)
        out[metric] = {"abs": half, "mean": st["mean"], "std": st["std"], "runs": n, "level": level}
    return out


def calibrate(summaries: list[dict], path: Path) -> Path:
    """Store per-metric tolerances from same-code runs in the accepted baseline at ``path``."""
    base = load_baseline(path)
    tolerances = calibration(summaries)
    key = tuple(summaries[0][k] for k in ("suite", "tier", "hw_class", "suite_version"))
    if key != tuple(base[k] for k in ("suite", "tier", "hw_class", "suite_version")):
        raise HarnessError(f"calibration runs are {key}, the baseline {path} is for another suite, tier, class "
                           "or version")
    varied = len({json.dumps(s.get("inputs", {}), sort_keys=True) for s in summaries}) > 1
    base.update(tolerances=tolerances, calibrated_from=[s["run_uid"] for s in summaries],
                calibrated_sha=summaries[0]["env"]["git_sha"], calibrated_at=utc_now(),
                calibrated_over_inputs=varied)
    atomic_write_json(path, base)
    return path


def _welch_p(a: list[float], b: list[float]) -> float | None:
    if len(a) < 2 or len(b) < 2:
        return None
    if _stats(a)["std"] == 0 and _stats(b)["std"] == 0:
        return 0.0 if _stats(a)["mean"] != _stats(b)["mean"] else 1.0
    from scipy.stats import ttest_ind

    return float(ttest_ind(a, b, equal_var=False).pvalue)


def _worse(delta: float, higher_is_better: bool) -> bool:
    return delta < 0 if higher_is_better else delta > 0


def _claim_regressions(summary: dict, base: dict) -> list[dict]:
    """A claim that passed in the baseline and fails now (same claim version) is a regression."""
    rows = []
    for c in summary.get("claims", []):
        old = base["claims"].get(c["id"], {})
        if old.get("status") == "pass" and c["status"] == "fail" and old.get("version") == c.get("version", 1):
            rows.append({"metric": f"claim {c['id']}", "baseline": None, "new": c["value"], "change": None,
                         "n_baseline": 0, "n_new": c.get("n", 0), "p_value": None, "verdict": "regression",
                         "why": f"passed in the baseline, fails now ({c.get('reason', '')})"})
    return rows


def _other_inputs(summary: dict, base: dict, covered: bool) -> list[str]:
    """Why a run on other inputs (a dataset with another checksum) is another experiment, not a regression;
    nothing where the inputs agree, or where they are ``covered``: the tolerances in use were calibrated
    over runs whose inputs differed."""
    ours, theirs = summary.get("inputs", {}), base.get("inputs", {})
    if ours == theirs or covered:
        return []
    differ = [k for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)]
    shown = "; ".join(f"{k}: run {_short(ours.get(k))}, baseline {_short(theirs.get(k))}" for k in differ)
    return [f"run on other inputs ({shown}): a different experiment, not comparable with this baseline"]


def _short(values: list | None) -> str:
    return "none" if not values else ",".join(str(v)[:12] for v in values)


def compare(summary: dict, base: dict, claims: list | None = None) -> dict:
    """Verdict rows for every metric in either side; ``claims`` are the suite's Claim objects."""
    problems = []
    for key in ("suite", "tier", "hw_class", "suite_version"):
        if summary[key] != base[key]:
            problems.append(f"{key} differs (run {summary[key]!r}, baseline {base[key]!r})")
    direction, tol, version = {}, {}, {}
    calibrated, notes = base.get("tolerances", {}), []
    cpu = [(e.get("cpu_model"), e.get("cpu_isa")) for e in (summary.get("env", {}), base.get("env", {}))]
    if calibrated and cpu[0] != cpu[1]:  # same-code spread on one CPU says nothing about another's numerics
        calibrated = {}
        notes.append(f"tolerances were calibrated on another CPU ({cpu[1][0]}, {cpu[1][1]}; this run: {cpu[0][0]}, "
                     f"{cpu[0][1]}): the relative tolerance and Welch's test are used instead")
    problems += _other_inputs(summary, base, covered=bool(calibrated) and base.get("calibrated_over_inputs", False))
    for c in claims or []:
        direction[c.metric] = c.higher_is_better
        tol[c.metric] = c.regression_tol
        version[c.metric] = (c.version, base["claims"].get(c.id, {}).get("version"))
    rows = []
    for metric in sorted(set(summary["samples"]) | set(base["samples"])):
        new = [v for v in summary["samples"].get(metric, []) if v is not None]
        old = [v for v in base["samples"].get(metric, []) if v is not None]
        n_s, o_s = _stats(new), _stats(old)
        row = {"metric": metric, "baseline": o_s["mean"], "new": n_s["mean"], "change": None,
               "n_baseline": o_s["n"], "n_new": n_s["n"], "p_value": None, "verdict": "info", "why": ""}
        if n_s["mean"] is not None and o_s["mean"] is not None and o_s["mean"] != 0:
            row["change"] = (n_s["mean"] - o_s["mean"]) / abs(o_s["mean"])
        if problems:
            row.update(verdict="inconclusive", why="; ".join(problems))
        elif not new and not old:  # e.g. a fit's spread that is infinite every time at this tier
            row.update(why="no finite value in either run")
        elif metric not in base["samples"]:  # measured now, never before: nothing to regress from
            row.update(why="new metric (not in the baseline)")
        elif not new or not old:
            row.update(verdict="inconclusive", why="missing on one side")
        elif metric in version and version[metric][0] != version[metric][1]:
            row.update(verdict="inconclusive", why=f"claim version {version[metric][1]} -> {version[metric][0]}")
        elif direction.get(metric) is not None and metric in calibrated:
            delta = n_s["mean"] - o_s["mean"]
            cal = calibrated[metric]
            row["tolerance"] = cal["abs"]
            if abs(delta) <= cal["abs"] + 1e-12:
                row.update(verdict="ok", why=f"within the calibrated tolerance +-{cal['abs']:.3g}")
            else:
                row.update(verdict="regression" if _worse(delta, direction[metric]) else "improved",
                           why=f"beyond the calibrated tolerance +-{cal['abs']:.3g} ({cal['runs']} runs)")
        elif direction.get(metric) is not None:
            delta = n_s["mean"] - o_s["mean"]
            worse = _worse(delta, direction[metric])
            beyond = abs(delta) > tol[metric] * abs(o_s["mean"]) + 1e-12
            p = _welch_p(new, old)
            row["p_value"] = p
            if not beyond:
                row["verdict"] = "ok"
            elif p is None:
                row.update(verdict="inconclusive", why="beyond tolerance but one seed on a side")
            elif p >= P_VALUE:
                row.update(verdict="ok", why=f"beyond tolerance but not significant (p={p:.3g})")
            else:
                row["verdict"] = "regression" if worse else "improved"
        rows.append(row)
    if not problems:
        rows += _claim_regressions(summary, base)
    verdicts = {r["verdict"] for r in rows}
    if "regression" in verdicts:
        overall = "regression"
    elif problems or "inconclusive" in verdicts or verdicts <= {"info"}:
        overall = "inconclusive"
    else:
        overall = "ok"
    return {"verdict": overall, "problems": problems, "notes": notes, "rows": rows}
