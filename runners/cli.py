"""paperclub command line: list, run, plan, compare, accept, calibrate, history, publish, report, ui.

Exit codes: 0 all claims pass (or no regression), 1 a claim failed or a regression,
2 harness error (bad input, crash), 3 only inconclusive/skipped, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from runners.errors import HarnessError

EXIT_ERROR = 2


def _console():
    import shutil

    from rich.console import Console

    # Not a terminal (CI logs, pipes): wide enough that claim tables stay readable.
    width = None if sys.stdout.isatty() else max(160, shutil.get_terminal_size().columns)
    return Console(stderr=False, highlight=False, width=width)


def cmd_list(args) -> int:
    from rich.table import Table

    from runners import registry
    from runners.runner import unmet_requirements

    table = Table(title="paperclub suites", show_lines=True)
    for col in ("suite", "version", "tiers (default seeds)", "requires", "claims (metric op threshold@tier)"):
        table.add_column(col)
    for name in sorted(registry.available()):
        cls = registry.load(name)
        unmet = unmet_requirements(frozenset(cls.requires), device="cpu")  # packages; GPUs are the tier's
        req = ", ".join(sorted(cls.requires)) or "-"
        req += "".join(f"; {t}: {', '.join(sorted(r))}" for t, r in cls.tier_requires.items())
        if unmet:
            req += " (unmet: " + "; ".join(unmet) + ")"
        claims = "\n".join(
            f"{c.id}: {c.metric} {c.op} " + ", ".join(f"{v:g}@{t}" for t, v in c.threshold.items())
            + f" over {c.unit}" + ("" if c.rule == "mean" else f" ({c.rule})")
            + "".join(f" (when {k}={v})" for k, v in c.applies) for c in cls.claims) or "-"
        claims += "".join(f"\ninvariant {i.id}: {i.metric} {i.op} {i.bound:g}" for i in cls.invariants)
        tiers = ", ".join(f"{t} ({cls.default_seeds.get(t, 1)})" for t in cls.tiers)
        table.add_row(name, str(cls.version), tiers, req, claims)
    _console().print(table)
    if not registry.available():
        print("no suites registered")
    return 0


def _print_summary(summary: dict, run_dir: Path) -> None:
    from rich.table import Table

    from runners.report import CLAIM_HEADER, claim_rows

    table = Table(title=f"{summary['suite']} / {summary['tier']}: {summary['status']}")
    for col in CLAIM_HEADER[:-1]:  # the source column is in the report
        table.add_column(col, overflow="fold")
    for row in claim_rows(summary):
        table.add_row(*row[:-1])
    con = _console()
    con.print(table)
    if summary.get("reason"):
        con.print(f"reason: {summary['reason']}")
    con.print(f"run dir: {run_dir}  (wall {summary['wall_s']:.1f} s, seeds done {summary['seeds_done']})")


def _publish(run_dir: Path, enabled: bool) -> None:
    if not enabled:
        print(f"not published (--no-publish); later: paperclub publish {run_dir}")
        return
    from runners.tracking import try_publish

    ok, msg = try_publish(run_dir)
    print(msg, file=sys.stdout if ok else sys.stderr)


def _worst(statuses: list[str]) -> int:
    from runners.claims import EXIT_CODES

    codes = [EXIT_CODES[s] for s in statuses] or [3]
    for code in (130, 2, 1, 3, 0):
        if code in codes:
            return code
    return 0


def _suite_and_seeds(name: str, tier: str, n: int | None):
    from runners import registry

    suite_cls = registry.load(name)
    if tier not in suite_cls.tiers:
        raise HarnessError(f"unknown tier {tier!r}; tiers of {suite_cls.name}: {', '.join(suite_cls.tiers)}")
    n_seeds = n if n is not None else suite_cls.default_seeds.get(tier, 1)
    if n_seeds < 1:
        raise HarnessError(f"--seeds must be >= 1, got {n_seeds}")
    return suite_cls, list(range(n_seeds))


def _execute(suite_cls, tier: str, seeds: list[int], overrides: list[str], out_dir: Path) -> dict:
    from runners.config import compose
    from runners.runner import execute

    cfg, plain = compose(suite_cls, tier, overrides)
    return execute(suite_cls, cfg, plain, tier=tier, seeds=seeds, out_dir=out_dir)


def _print_rehearsal(record: dict, out_dir: Path) -> None:
    from rich.table import Table

    from runners.report import fmt

    table = Table(title=f"{record['suite']} / {record['tier']} rehearsal on {record['hw_class']}")
    for col in ("phase", "seconds", "of them fixed", "steps (here / real)", "s per step", "peak memory (GB)",
                "projected (h)"):
        table.add_column(col, overflow="fold")
    for r in record["phases"]:
        steps = "-" if r["steps_rehearsed"] is None else f"{r['steps_rehearsed']:g} / {r['steps_real']:g}"
        memory = ", ".join(f"{k} {v:.2f}" for k, v in r["peak_memory_gb"].items())
        fixed = r.get("fixed_seconds")
        table.add_row(r["phase"], fmt(r["seconds"]), "-" if fixed is None else fmt(fixed), steps,
                      fmt(r["seconds_per_step"]), memory, f"{r['projected_seconds'] / 3600:.2f}")
    table.caption = (f"outside phases {record['seconds_outside_phases']:.1f} s; projected per seed "
                     f"{record['projected_seconds_per_seed'] / 3600:.2f} h; {record['seeds']} seed(s): "
                     f"{record['projected_hours']:.1f} h, {record['projected_gpu_hours']:.1f} GPU-hours "
                     f"({record['gpus']} GPU(s))")
    _console().print(table)
    for need in record["preflight"]:
        print(f"estimate: {need['what']}: {need['needed']}")
    for line in record["real_run_short"]:
        print(f"the real run would be short: {line}")
    print(f"rehearsal record: {out_dir / 'rehearsal.json'}")


def _preflight(suite_cls, tier: str, overrides: list[str]) -> str:
    """The preflight verdict of one config, printed one line per finding; a shortfall raises."""
    from runners.config import compose
    from runners.preflight import check

    cfg, _ = compose(suite_cls, tier, overrides)
    verdict = check(suite_cls, cfg, tier)
    if verdict.status == "short":
        raise HarnessError(f"preflight of {suite_cls.name}/{tier}: " + " | ".join(n.line() for n in verdict.short))
    for line in verdict.lines():
        print(f"preflight {suite_cls.name}/{tier}: {line}")
    return verdict.status


RESUMABLE = ("interrupted", "error")


def _resume(run_dir: Path, publish: bool) -> int:
    """Continue a cut-off run in its own directory, with the config it was run with."""
    from runners import registry
    from runners.config import from_plain
    from runners.rundir import load_summary
    from runners.runner import execute

    old = load_summary(run_dir)
    if old["status"] not in RESUMABLE:
        raise HarnessError(f"{run_dir} ended {old['status']!r}: only an interrupted or crashed run is resumed")
    suite_cls = registry.load(old["suite"])
    plain = yaml_config(run_dir)
    summary = execute(suite_cls, from_plain(suite_cls, plain), plain, tier=old["tier"], seeds=old["seeds"],
                      out_dir=run_dir, resume=old)
    _print_summary(summary, run_dir)
    _publish(run_dir, publish)
    return _worst([summary["status"]])


def yaml_config(run_dir: Path) -> dict:
    """The config a run was made with (its config.yaml)."""
    import yaml

    from runners.rundir import CONFIG

    return yaml.safe_load((Path(run_dir) / CONFIG).read_text())


def _print_aggregate(rows: list[dict], sweep_dir: Path) -> None:
    """A sweep's headline numbers over its runs, printed and written to aggregate.json."""
    if not rows:
        return
    from rich.table import Table

    from runners.report import fmt
    from runners.rundir import atomic_write_json

    table = Table(title=f"over the sweep's runs ({sweep_dir})")
    for col in ("metric", "mean (95% CI)", "n", "paper", "context"):
        table.add_column(col, overflow="fold")
    for r in rows:
        ci = "" if r["ci"] is None else f" [{fmt(r['ci'][0])}, {fmt(r['ci'][1])}]"
        table.add_row(r["metric"], fmt(r["mean"]) + ci, f"{r['n']} {r['unit']}", fmt(r["paper"]), r["context"])
    _console().print(table)
    atomic_write_json(sweep_dir / "aggregate.json", {"rows": rows})


def cmd_run(args) -> int:
    from runners.config import sweep_argv
    from runners.rundir import ensure_writable_dir
    from runners.runner import default_run_dir

    publish = not args.no_publish and os.environ.get("PAPERCLUB_NO_PUBLISH", "") in ("", "0")
    if args.resume:
        if args.suite or args.overrides or args.multirun or args.preflight or args.rehearse or args.out:
            raise HarnessError("--resume RUN_DIR takes the run's own suite, tier, seeds and config: give nothing else")
        return _resume(Path(args.resume), publish)
    if not args.suite:
        raise HarnessError("run needs a suite name (or --resume RUN_DIR)")
    tier = args.tier
    suite_cls, seeds = _suite_and_seeds(args.suite, tier, args.seeds)
    if (args.preflight or args.rehearse) and args.multirun:
        raise HarnessError("--preflight and --rehearse check one config: leave out -m")
    if args.rehearse:
        from runners.rehearsal import rehearse

        out_dir = Path(args.out) if args.out else Path(f"{default_run_dir(suite_cls.name, tier)}_rehearsal")
        _print_rehearsal(rehearse(suite_cls, tier, args.overrides, out_dir), out_dir)
        return 0
    if args.preflight:
        return {"ok": 0, "skipped": 3}[_preflight(suite_cls, tier, args.overrides)]
    if tier == "full" and not args.multirun:  # before hours of work: what it will need
        _preflight(suite_cls, tier, args.overrides)
    if args.sweep:
        if args.sweep not in suite_cls.sweeps:
            raise HarnessError(f"unknown sweep {args.sweep!r} of suite {suite_cls.name!r}; sweeps: "
                               f"{', '.join(suite_cls.sweeps) or 'none'}")
        args.multirun, args.overrides = True, [*suite_cls.sweeps[args.sweep], *args.overrides]
    if args.multirun:
        from runners.rundir import load_summary
        from runners.sweep import multirun

        hydra_args = sweep_argv(suite_cls, tier, args.overrides)
        sweep_dir = Path(args.out) if args.out else Path(f"{default_run_dir(suite_cls.name, tier)}_sweep")
        ensure_writable_dir(sweep_dir)
        run_dirs = multirun(suite_cls, tier, seeds, hydra_args, sweep_dir)
        if not run_dirs:
            raise HarnessError(f"sweep wrote no run directories under {sweep_dir}")
        statuses, runs = [], []
        for run_dir in run_dirs:
            summary = load_summary(run_dir)
            statuses.append(summary["status"])
            runs.append((yaml_config(run_dir), summary))
            _print_summary(summary, run_dir)
            _publish(run_dir, publish)
        _print_aggregate(suite_cls().aggregate(runs), sweep_dir)
        print(f"sweep: {len(run_dirs)} jobs under {sweep_dir}")
        return _worst(statuses)
    out_dir = Path(args.out) if args.out else default_run_dir(suite_cls.name, tier)
    summary = _execute(suite_cls, tier, seeds, args.overrides, out_dir)
    _print_summary(summary, out_dir)
    _publish(out_dir, publish)
    return _worst([summary["status"]])


def cmd_plan(args) -> int:
    from rich.table import Table

    from runners import registry
    from runners.plan import plan, to_json
    from runners.rundir import hw_class

    names = args.suites or sorted(n for n in registry.available() if args.tier in registry.load(n).tiers)
    unknown = [n for n in names if n not in registry.available()]
    if unknown:
        raise HarnessError(f"unknown suite {unknown[0]!r}; known: {', '.join(sorted(registry.available()))}")
    hw = hw_class()
    steps = plan(names, args.tier, Path(args.runs), hw)
    table = Table(title=f"plan: {args.tier} tier on {hw}, cheapest first")
    for col in ("#", "suite", "run (min)", "from", "to make first", "starts after (min)"):
        table.add_column(col, overflow="fold")
    elapsed = 0.0
    for i, st in enumerate(steps, 1):
        made = "; ".join(f"{p.what}: " + ("cached" if p.cached else f"about {p.minutes:.0f} min")
                         for p in st.preparation) or "-"
        run = "skipped: " + "; ".join(st.unmet) if st.unmet else (f"{st.minutes:.1f}" if st.minutes is not None else "?")
        table.add_row(str(i), st.suite, run, st.source, made, f"{elapsed:.0f}")
        elapsed += st.total if math.isfinite(st.total) else 0.0
    unpriced = [st.suite for st in steps if not math.isfinite(st.total)]
    table.caption = f"about {elapsed:.0f} minutes in all" + (f", plus {', '.join(unpriced)} (no estimate)" if unpriced else "")
    _console().print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(to_json(steps, args.tier, hw), indent=1))
    return 0


def cmd_publish(args) -> int:
    from runners.tracking import publish_run, retrying, tracking_uri

    uri = tracking_uri()
    for run_dir in args.run_dirs:
        try:
            pid, state = retrying(publish_run, Path(run_dir), uri)
        except HarnessError:
            raise
        except Exception as exc:
            raise HarnessError(f"MLflow publish to {uri} failed: {type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:300]}") from exc
        print(f"{run_dir}: {state} (MLflow run {pid}, {uri})")
    return 0


def _compare_one(run_dir: Path, baseline: str | None) -> dict:
    """The verdict of one run against its baseline, with its table printed."""
    from rich.table import Table

    from runners import registry
    from runners.baseline import baseline_path, compare, load_baseline
    from runners.report import fmt
    from runners.rundir import load_summary

    summary = load_summary(run_dir)
    path = Path(baseline) if baseline else baseline_path(summary["suite"], summary["tier"], summary["hw_class"])
    head = {"run_dir": str(run_dir), "suite": summary["suite"], "tier": summary["tier"],
            "hw_class": summary["hw_class"], "baseline": str(path)}
    if not path.exists():
        print(f"no baseline at {path}: verdict inconclusive (accept one with: paperclub accept {run_dir})")
        return {**head, "verdict": "inconclusive", "why": "no baseline", "regressions": []}
    base = load_baseline(path)
    try:
        claims = list(registry.load(summary["suite"]).claims)
    except HarnessError:
        claims = []
    result = compare(summary, base, claims)
    table = Table(title=f"{summary['suite']} / {summary['tier']} / {summary['hw_class']} vs {path}")
    for col in ("metric", "baseline", "new", "change", "verdict"):
        table.add_column(col)
    for r in result["rows"]:
        change = "-" if r["change"] is None else f"{100 * r['change']:+.1f}%"
        verdict = r["verdict"] + (f" ({r['why']})" if r["why"] else "")
        table.add_row(r["metric"], fmt(r["baseline"]), fmt(r["new"]), change, verdict)
    con = _console()
    con.print(table)
    con.print(f"verdict: {result['verdict']}" + (f" — {'; '.join(result['problems'])}" if result["problems"] else ""))
    for note in result["notes"]:
        con.print(f"note: {note}")
    return {**head, "verdict": result["verdict"], "why": "; ".join(result["problems"]),
            "regressions": [r["metric"] for r in result["rows"] if r["verdict"] == "regression"],
            "calibrated": bool(base.get("tolerances"))}


def cmd_compare(args) -> int:
    """Each run against its accepted baseline; with several runs, one regression table across them."""
    from rich.table import Table

    from runners.rundir import atomic_write_json

    if args.baseline and len(args.run_dirs) > 1:
        raise HarnessError("--baseline names one baseline file: compare one run directory with it")
    verdicts = [_compare_one(Path(d), args.baseline) for d in args.run_dirs]
    if len(verdicts) > 1:
        table = Table(title="regression verdicts against the accepted baselines")
        for col in ("suite", "tier", "hw_class", "verdict", "regressions / why", "tolerances"):
            table.add_column(col, overflow="fold")
        for v in verdicts:
            table.add_row(v["suite"], v["tier"], v["hw_class"], v["verdict"],
                          ", ".join(v["regressions"]) or v["why"] or "-",
                          "calibrated" if v.get("calibrated") else "relative" if "calibrated" in v else "-")
        _console().print(table)
    if args.json:
        atomic_write_json(Path(args.json), {"verdicts": verdicts})
    codes = {"ok": 0, "regression": 1, "inconclusive": 3}
    return max((codes[v["verdict"]] for v in verdicts), key=lambda c: (c == 1, c == 3))  # regression first


def cmd_accept(args) -> int:
    from runners.baseline import accept
    from runners.rundir import load_summary

    summary = load_summary(Path(args.run_dir))
    path = accept(summary, Path(args.run_dir), Path(args.baseline) if args.baseline else None, force=args.force)
    print(f"baseline written: {path} (from run {summary['run_uid']}; commit it to make it the reference)")
    return 0


def cmd_calibrate(args) -> int:
    """Regression tolerances from the spread of same-code runs: N stored run directories, or
    ``SUITE --runs N`` to make them. The accepted baseline (made from the first run where none
    exists) stores them with the runs they came from."""
    from runners.baseline import MIN_CALIBRATION_RUNS, accept, baseline_path, calibrate
    from runners.rundir import load_summary
    from runners.runner import default_run_dir

    if args.runs is not None:
        names = [t for t in args.targets if "=" not in t]
        overrides = [t for t in args.targets if "=" in t]
        if len(names) != 1:
            raise HarnessError("calibrate --runs N takes one suite name, e.g. paperclub calibrate toy --runs 3")
        if args.runs < MIN_CALIBRATION_RUNS:
            raise HarnessError(f"--runs must be >= {MIN_CALIBRATION_RUNS}, got {args.runs}")
        suite_cls, seeds = _suite_and_seeds(names[0], args.tier, args.seeds)
        root = default_run_dir(suite_cls.name, args.tier)
        run_dirs = [root.with_name(f"{root.name}_cal{i}") for i in range(args.runs)]
        for run_dir in run_dirs:
            summary = _execute(suite_cls, args.tier, seeds, overrides, run_dir)
            print(f"calibration run {run_dir}: {summary['status']}")
    else:
        run_dirs = [Path(t) for t in args.targets]
    summaries = [load_summary(d) for d in run_dirs]
    first = summaries[0]
    path = Path(args.baseline) if args.baseline else baseline_path(first["suite"], first["tier"], first["hw_class"])
    if not path.exists():
        accept(first, run_dirs[0], path)
        print(f"no baseline at {path}: accepted {run_dirs[0]} as the baseline")
    calibrate(summaries, path)
    print(f"calibrated {path}: tolerances from {len(summaries)} runs at {first['env']['git_sha']} "
          "(99% prediction interval for one run's seed mean; commit the file)")
    return 0


def cmd_history(args) -> int:
    """Each claim metric (or one) over every published run of a suite at one tier and machine class,
    with the steps beyond tolerance, the last good and first bad commit, and a PNG."""
    from rich.table import Table

    from runners import registry
    from runners.history import histories as suite_histories
    from runners.history import plot
    from runners.report import fmt
    from runners.rundir import hw_class
    from runners.tracking import tracking_uri

    suite_cls = registry.load(args.suite)
    hw, uri = args.hw_class or hw_class(), tracking_uri()
    runs, histories = suite_histories(uri, suite_cls, args.tier, hw, args.metric)
    if not runs:
        print(f"no published {suite_cls.name} runs at tier {args.tier!r} on {hw!r} in {uri}")
        return 3
    con = _console()
    if args.metric:
        h = histories[0]
        table = Table(title=f"{suite_cls.name} / {args.tier} / {hw}: {h.metric} (reference {fmt(h.reference)} "
                            f"+- {fmt(h.tolerance)}, from {h.reference_from})")
        for col in ("started", "commit", "value", "status", "flag"):
            table.add_column(col)
        for p in h.points:
            table.add_row(p.started_at, p.git_sha, fmt(p.value), p.status,
                          ", ".join(filter(None, ["beyond tolerance" if p.bad else "", p.step and f"step: {p.step}"])))
    else:
        table = Table(title=f"{suite_cls.name} / {args.tier} / {hw}: {len(runs)} runs")
        for col in ("metric", "newest", "reference +- tolerance", "bad runs", "last good", "first bad"):
            table.add_column(col)
        for h in histories:
            newest = next((p.value for p in reversed(h.points) if p.value is not None), None)
            table.add_row(h.metric, fmt(newest), f"{fmt(h.reference)} +- {fmt(h.tolerance)}",
                          str(sum(p.bad for p in h.points)), h.last_good.git_sha if h.last_good else "-",
                          h.first_bad.git_sha if h.first_bad else "-")
    con.print(table)
    for h in histories:
        if h.first_bad:
            good = f"{h.last_good.git_sha} ({h.last_good.started_at})" if h.last_good else "none"
            con.print(f"{h.metric}: last good {good}, first bad {h.first_bad.git_sha} ({h.first_bad.started_at})")
        con.print(*h.notes) if h.notes else None
    name = f"{suite_cls.name}_{args.tier}" + (f"_{args.metric}" if args.metric else "")
    png = plot(histories, Path(args.out) if args.out else Path("results") / "reports" / "history" / f"{name}.png",
               f"{suite_cls.name} / {args.tier} / {hw}")
    print(f"figure: {png}")
    return 1 if any(h.first_bad for h in histories) else 0


def cmd_report(args) -> int:
    import datetime as dt

    from runners.report import keep_runs, write_report, write_results

    run_dirs = [Path(p) for p in args.run_dirs]
    if args.keep and not args.results:
        raise HarnessError("--keep copies the runs a results page names; give --results PATH too")
    if args.keep:
        run_dirs = keep_runs(run_dirs, Path(args.keep))
    if args.results:
        print(f"results: {write_results(run_dirs, Path(args.results))}")
        return 0
    if args.out:
        prefix = Path(args.out)
    elif len(run_dirs) == 1:
        prefix = run_dirs[0] / "report"
    else:
        prefix = Path("results") / "reports" / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") / "report"
    md, html = write_report(run_dirs, prefix)
    print(f"report: {md}\nreport: {html}")
    return 0


def cmd_ui(args) -> int:
    from runners.tracking import tracking_uri
    from runners.ui import serve

    return serve(tracking_uri(), args.port, args.host)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        self.exit(EXIT_ERROR, f"paperclub: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="paperclub", description="Reproduce and track five ML papers' headline results.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="suites, tiers, claims, requirements").set_defaults(fn=cmd_list)
    r = sub.add_parser("run", help="run one suite at one tier")
    r.add_argument("suite", nargs="?", default=None)
    r.add_argument("--tier", default="small", help="smoke | small | full (default: small)")
    r.add_argument("--seeds", type=int, default=None, help="number of seeds (0..N-1); default per suite and tier")
    r.add_argument("--out", default=None, help="run directory (default results/runs/<utc>_<suite>_<tier>_<sha>)")
    r.add_argument("--no-publish", action="store_true", help="do not log to MLflow at the end")
    r.add_argument("-m", "--multirun", action="store_true", help="Hydra sweep: key=a,b and hydra/launcher=...")
    r.add_argument("--sweep", default=None, metavar="NAME",
                   help="a named sweep of the suite (a multirun), e.g. dmpc's six_datasets; headline numbers over "
                        "its runs in aggregate.json")
    r.add_argument("--preflight", action="store_true",
                   help="only check what the run needs (GPUs, each phase's memory, data, weights, disk); exit 2 if short")
    r.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue a cut-off run (interrupted, crashed, preempted): its finished seeds and phases "
                        "are not run again")
    r.add_argument("--rehearse", action="store_true",
                   help="every phase at its real shapes for a few steps: peak memory, seconds per step, projected "
                        "hours and GPU-hours of the real run")
    r.add_argument("overrides", nargs="*", help="Hydra overrides key=value")
    r.set_defaults(fn=cmd_run)
    c = sub.add_parser("compare", help="regression verdict against the accepted baseline")
    c.add_argument("run_dirs", nargs="+", help="run directories (one table across them when several)")
    c.add_argument("--baseline", default=None, help="compare one run with this baseline file")
    c.add_argument("--json", default=None, help="also write the verdicts to this JSON file")
    c.set_defaults(fn=cmd_compare)
    a = sub.add_parser("accept", help="make a run the baseline for its suite/tier/hw_class")
    a.add_argument("run_dir")
    a.add_argument("--baseline", default=None, help="write here instead of results/baselines/...")
    a.add_argument("--force", action="store_true", help="overwrite an unreadable existing baseline")
    a.set_defaults(fn=cmd_accept)
    cal = sub.add_parser("calibrate", help="regression tolerances from repeated same-code runs")
    cal.add_argument("targets", nargs="+", help="run dirs of one suite/tier/commit, or a suite name (and "
                                                "key=value overrides) with --runs")
    cal.add_argument("--runs", type=int, default=None, help="run the suite N times first")
    cal.add_argument("--tier", default="small", help="with --runs: the tier (default: small)")
    cal.add_argument("--seeds", type=int, default=None, help="with --runs: seeds per run (default per suite)")
    cal.add_argument("--baseline", default=None, help="baseline file (default results/baselines/...)")
    cal.set_defaults(fn=cmd_calibrate)
    his = sub.add_parser("history", help="a metric over every published run, last good and first bad commit")
    his.add_argument("suite")
    his.add_argument("--tier", default="small", help="smoke | small | full (default: small)")
    his.add_argument("--metric", default=None, help="one metric (default: every claim metric of the suite)")
    his.add_argument("--hw-class", default=None, help="machine class (default: this machine's)")
    his.add_argument("--out", default=None, help="PNG path (default results/reports/history/...)")
    his.set_defaults(fn=cmd_history)
    pl = sub.add_parser("plan", help="the main job's order: each suite's expected minutes and what it makes first")
    pl.add_argument("suites", nargs="*", help="suites (default: every suite with the tier)")
    pl.add_argument("--tier", default="small", help="smoke | small | full (default: small)")
    pl.add_argument("--runs", default="results/runs", help="finished runs to take this machine's times from")
    pl.add_argument("--json", default=None, help="also write the plan to this JSON file")
    pl.set_defaults(fn=cmd_plan)
    pub = sub.add_parser("publish", help="log run dirs to MLflow (idempotent)")
    pub.add_argument("run_dirs", nargs="+")
    pub.set_defaults(fn=cmd_publish)
    rep = sub.add_parser("report", help="markdown + HTML report")
    rep.add_argument("run_dirs", nargs="+")
    rep.add_argument("--out", default=None, help="output path prefix (writes PREFIX.md and PREFIX.html)")
    rep.add_argument("--results", default=None, metavar="PATH",
                     help="write only the results page (each run's claims and what was scaled) to PATH, e.g. RESULTS.md")
    rep.add_argument("--keep", default=None, metavar="DIR",
                     help="with --results: first copy each run's summary, config and figures to DIR/<suite>_<tier> "
                          "and write the page from the copies (to commit them with it, e.g. results/published)")
    rep.set_defaults(fn=cmd_report)
    ui = sub.add_parser("ui", help="MLflow UI on 127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--host", default="127.0.0.1", help="listen address (default loopback; anything else is "
                                                       "reachable by others and warns: no authentication)")
    ui.set_defaults(fn=cmd_ui)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come after options (`run toy --tier smoke n=3`); argparse leaves those over.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command == "run" and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.fn(args)
    except HarnessError as exc:
        print(f"paperclub: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # an I/O fault outside a run (a report, a baseline, a cache)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"paperclub: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("paperclub: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
