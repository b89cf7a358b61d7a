"""Every developer and CI entry point.

    nox                    -> tests (the default session)
    nox -s reproduce       -> the main job: `small` tier of every suite, then one report
    nox -s reproduce -- pacbayes          one suite (also: -- pacbayes --tier smoke)
    nox -s smoke | lint | bench | lock
    nox -s image           -> build the CPU image, run every suite's smoke tier inside it (needs Docker)

Environments are plain virtualenvs filled by pip, reused between runs. pip matters here:
torch is pinned to ==2.13.0 and pip takes the CPU wheel from its configured find-links on
our CPU machines (uv would ignore that and pull a multi-GB CUDA build).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import nox

nox.options.default_venv_backend = "virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
# Extras every suite's CPU path needs (torch as the pinned CPU wheel).
SUITE_EXTRAS = "suites,rl"
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _install(session: nox.Session, extras: str) -> None:
    session.install("--upgrade", "pip")
    # pip byte-compiles what it installs on one core (45 of the 75 s this install took here); compileall does
    # it on every core (29 s on two). Exit 1 is a file that is not this Python's syntax (torch ships one for
    # 3.12), which pip skips too.
    session.install("--no-compile", "-e", f".[{extras}]")
    site = session.run_install("python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                               silent=True)
    session.run_install("python", "-m", "compileall", "-qq", "-j", "0", site.strip().splitlines()[-1],
                        success_codes=[0, 1])


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite (unit, end to end through MLflow, smoke tier of each suite)."""
    _install(session, f"test,{SUITE_EXTRAS}")
    _apt(session, "chromium", unless=("chromium", "chromium-browser", "google-chrome"))
    # one worker per usable CPU (at most 8: beyond that the longest tests bound the run), each handed one test at
    # a time, slow ones first; `nox -s tests -- -n 0` runs them in one process, in order. The workers share the
    # CPUs, so OpenMP threads wait passively: spinning, they took the CPU from each other (the dmpc smoke-tier
    # test beside one busy core: 135 s with OpenMP's default wait policy, 79 s passive).
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS: no affinity
    workers = min(8, usable)
    session.run("pytest", "-n", str(workers), "--maxschedchunk=1", "--durations=15", *session.posargs,
                env={**THREADS, "OMP_WAIT_POLICY": "PASSIVE", "PAPERCLUB_PROGRESS": "0"})


def _suites(session: nox.Session, tier: str) -> list[str]:
    """Registered suites that define ``tier`` (a suite still being written may have fewer tiers)."""
    out = session.run("python", "-c", "import json; from runners.registry import available, load; "
                      "print(json.dumps({n: sorted(load(n).tiers) for n in sorted(available())}))", silent=True)
    tiers = json.loads(out.strip().splitlines()[-1])
    for name, has in tiers.items():
        if tier not in has:
            session.log(f"{name}: no {tier!r} tier yet (has {', '.join(has)}); not run")
    return [name for name, has in tiers.items() if tier in has]


def _run_tier(session: nox.Session, tier: str) -> None:
    if session.run("python", "-c", "", silent=True) is None:  # `nox --install-only`: run nothing, read nothing
        return
    args = list(session.posargs)
    if "--tier" in args:
        i = args.index("--tier")
        tier = args[i + 1]
        del args[i:i + 2]
    names = args or _suites(session, tier)
    if not names:
        session.error("no suites are registered")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    reports = Path("results") / "reports" / f"{stamp}_{tier}"
    # the plan first: each suite's expected minutes here and what it must make; the main job runs cheapest first
    session.run("paperclub", "plan", *names, "--tier", tier, "--json", str(reports / "plan.json"), env=THREADS)
    if not args:
        names = [step["suite"] for step in json.loads((reports / "plan.json").read_text())["steps"]]
    run_dirs, failed = [], []
    for name in names:
        run_dir = Path("results") / "runs" / f"{stamp}_{name}_{tier}"
        # 0 pass, 1 claim failed, 3 inconclusive/skipped: all are results to report; 2 is a crash.
        session.run("paperclub", "run", name, "--tier", tier, "--out", str(run_dir),
                    success_codes=[0, 1, 2, 3, 130], env=THREADS)
        summary = run_dir / "summary.json"
        status = json.loads(summary.read_text())["status"] if summary.exists() else "error"
        if summary.exists():
            run_dirs.append(str(run_dir))
            # rewritten after every suite: stopping the job early still leaves a report of what finished
            session.run("paperclub", "report", *run_dirs, "--out", str(reports / "report"))
            session.run("paperclub", "report", *run_dirs, "--results", str(reports / "RESULTS.md"))
            session.log(f"report of {len(run_dirs)} of {len(names)} suites: {reports / 'report'}.md")
        if status != "pass":
            failed.append(f"{name}: {status}")
    regressions = _regressions(session, run_dirs, reports / "regressions.json") if run_dirs else []
    if failed:
        session.log("not every suite passed: " + "; ".join(failed))
        if any(f.endswith((": error", ": interrupted")) for f in failed):
            session.error("a suite crashed or was interrupted; see its run directory")
    if regressions:
        session.error("regression against the shipped baselines: " + "; ".join(regressions))


def _regressions(session: nox.Session, run_dirs: list[str], out: Path) -> list[str]:
    """One regression table across the runs against results/baselines (the shipped, accepted ones);
    returns 'suite: metric, ...' for each run that regressed."""
    session.run("paperclub", "compare", *run_dirs, "--json", str(out), success_codes=[0, 1, 3])
    verdicts = json.loads(out.read_text())["verdicts"]
    return [f"{v['suite']}: {', '.join(v['regressions'])}" for v in verdicts if v["verdict"] == "regression"]


def _offline_data(session: nox.Session) -> None:
    """FashionMNIST from Debian's dataset-fashion-mnist where we may install it; otherwise the
    suite's loader falls back to the standard download (and says where it looked)."""
    if os.environ.get("PAPERCLUB_FMNIST") or Path("/usr/share/datasets/fashion-mnist").is_dir():
        return
    _apt(session, "dataset-fashion-mnist")


def _apt(session: nox.Session, package: str, unless: tuple[str, ...] = ()) -> None:
    """Install a Debian package where we may (root, apt-get); a failure is left to whatever needs it
    to report. ``unless``: commands any of which makes the package unnecessary."""
    if any(shutil.which(c) for c in unless):
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        session.run("apt-get", "update", "-qq", external=True, success_codes=[0, 100])
        session.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", package, external=True,
                    success_codes=[0, 100])


@nox.session(python=PYTHON)
def reproduce(session: nox.Session) -> None:
    """Main job: `small` tier of every suite, MLflow to results/mlflow.db, then one report."""
    _install(session, SUITE_EXTRAS)
    _offline_data(session)
    _run_tier(session, "small")


@nox.session(python=PYTHON)
def smoke(session: nox.Session) -> None:
    """`smoke` tier of every suite (plumbing and invariants; about 2 minutes each at most)."""
    _install(session, SUITE_EXTRAS)
    _run_tier(session, "smoke")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")


@nox.session(python=PYTHON)
def image(session: nox.Session) -> None:
    """Build containers/Dockerfile.cpu (the pinned base, or a Debian bookworm base made with debootstrap
    where it cannot be pulled) and run every suite's smoke tier inside it with no network; the summaries
    are checked from the host (containers/image.py, standard library only). Needs a Docker daemon: as
    root on Debian, `apt-get install docker.io debootstrap` and start `dockerd`."""
    session.run("python", "containers/image.py", *session.posargs)


@nox.session(python=PYTHON)
def lock(session: nox.Session) -> None:
    """Regenerate the images' hashed lock files (containers/requirements-*.txt) from pyproject.toml.
    The CPU lock takes torch 2.13.0+cpu from PAPERCLUB_TORCH_WHEELS or pip's find-links when set,
    else from PyTorch's CPU index. `nox -s lock -- --verify` checks both locks against PyPI instead
    (every pin installable on its image's platform, every hash one PyPI publishes)."""
    session.install("uv==0.13.9")
    session.run("python", "containers/locks.py", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Micro-benchmarks of hot paths, stored per machine class under results/bench/<class>
    (PAPERCLUB_HW_CLASS). Where that class has a stored run, the new one is compared with the newest
    (`nox -s bench -- --benchmark-compare=0001` picks another). PAPERCLUB_BENCH_FAIL=min:30% (any
    pytest-benchmark --benchmark-compare-fail expression) makes a regression beyond it fail the session:
    use it on a quiet, dedicated machine. It is off by default because on a shared 2-core VM two runs
    of the same code differed by up to 65% in medians and 50% in minima (the pure-Python harness
    benchmarks jump between two levels from one process to the next)."""
    _install(session, f"test,{SUITE_EXTRAS}")
    hw = os.environ.get("PAPERCLUB_HW_CLASS", f"cpu-{os.cpu_count()}c")
    storage = Path("results/bench") / hw
    args = ["--benchmark-only", f"--benchmark-storage=file://{storage}", "--benchmark-autosave"]
    if any(storage.glob("*/*.json")) and not any(
            a == "--benchmark-compare" or a.startswith("--benchmark-compare=") for a in session.posargs):
        args.append("--benchmark-compare")
    if os.environ.get("PAPERCLUB_BENCH_FAIL"):
        args.append(f"--benchmark-compare-fail={os.environ['PAPERCLUB_BENCH_FAIL']}")
    session.run("pytest", "benchmarks", *args, *session.posargs, env=THREADS)
