"""Ctrl-C mid-run keeps finished seeds; Hydra multirun with basic, joblib and submitit_local."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from runners.cli import main


# JAX (imported by earlier tests in this process) warns at any fork; subprocess's fork is followed by exec at once
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_leaves_finished_seeds_marked_interrupted(harness_env, sig):
    cmd = [sys.executable, "-m", "runners.cli", "run", "toy", "--seeds", "5", "--out", "r", "--no-publish",
           "sleep_s=1.0"]
    # a background launcher (`cmd &` in a script) leaves SIGINT ignored, and Python then keeps it
    # ignored; give the child the default disposition, as an interactive terminal would
    proc = subprocess.Popen(cmd, cwd=harness_env, env=os.environ.copy(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    events = harness_env / "r" / "events.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if events.exists() and '"seed_end"' in events.read_text():
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("no seed finished within 60 s")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    summary = json.loads((harness_env / "r" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["seeds_done"] and len(summary["seeds_done"]) < 5
    assert len(summary["samples"]["est_mean"]) == len(summary["seeds_done"])
    assert not list((harness_env / "r").glob(".summary.json.*")), "temp file left behind"


def sweep(harness_env, capsys, *extra):
    rc = main(["run", "toy", "--tier", "smoke", "--seeds", "3", "--out", "sw", "-m", "n=100,200", *extra])
    out = capsys.readouterr().out
    jobs = sorted(p for p in (harness_env / "sw").iterdir() if (p / "summary.json").exists())
    return rc, out, jobs


@pytest.mark.slow
def test_multirun_basic_publishes_each_job(harness_env, capsys):
    import mlflow

    rc, out, jobs = sweep(harness_env, capsys)
    assert rc == 0, out
    assert [p.name for p in jobs] == ["0", "1"]
    assert [json.loads((p / "seed_0" / "metrics.json").read_text())["info"]["n"] for p in jobs] == [100, 200]
    assert "sweep: 2 jobs" in out
    parents = mlflow.search_runs(experiment_names=["paperclub/toy"], filter_string="params.n = '200'")
    assert len(parents) == 1


@pytest.mark.slow
def test_multirun_joblib(harness_env, capsys):
    rc, out, jobs = sweep(harness_env, capsys, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert rc == 0, out
    assert len(jobs) == 2


@pytest.mark.slow
def test_multirun_submitit_local(harness_env, capsys):
    rc, out, jobs = sweep(harness_env, capsys, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5")
    assert rc == 0, out
    assert len(jobs) == 2
    assert list((harness_env / "sw" / ".submitit").glob("*/*_log.out"))


def test_a_named_sweep_runs_its_jobs_and_gives_headline_numbers_over_them(harness_env, capsys):
    # (the job with mean 2.0 fails toy.mean, whose threshold is 1.0: exit 1)
    assert main(["run", "toy", "--tier", "smoke", "--sweep", "two_means", "--out", "sw", "--no-publish"]) == 1
    rows = json.loads((harness_env / "sw" / "aggregate.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["n"] == 2 and rows[0]["unit"] == "means"
    assert rows[0]["context"] == "true means 1.0, 2.0" and 1.2 < rows[0]["mean"] < 1.8
    assert "over the sweep's runs" in capsys.readouterr().out
    assert main(["run", "toy", "--tier", "smoke", "--sweep", "nope"]) == 2
    assert "unknown sweep 'nope' of suite 'toy'; sweeps: two_means" in capsys.readouterr().err


def test_dmpc_headline_is_the_mean_over_datasets_beside_the_papers_only_on_d4rl_data():
    from suites.dmpc import DMPCSuite

    def run(env, dataset, score, path=""):
        return ({"env": env, "dataset": dataset, "data_path": path},
                {"status": "pass", "metrics": {"score_dmpc": score, "score_mbop": score / 2, "score_bc": 40.0,
                                               "score_distilled": score, "score_dmpc_minus_mbop": score / 2}})

    runs = [run(e, d, 60.0 + i) for i, (e, d) in enumerate((e, d) for e in ("hopper", "halfcheetah", "walker2d")
                                                          for d in ("medium", "medium-replay"))]
    rows = {r["metric"]: r for r in DMPCSuite().aggregate(runs)}
    head = rows["score_dmpc"]
    assert head["mean"] == 62.5 and head["n"] == 6 and head["unit"] == "datasets" and head["ci"][0] < 62.5 < head["ci"][1]
    assert head["paper"] is None and "65.98" in head["context"]  # generated data: the paper's number is context
    d4rl = {r["metric"]: r for r in DMPCSuite().aggregate([run(e, d, 60.0, f"/d4rl/{e}-{d}.hdf5")
                                                           for e, d in (("hopper", "medium"), ("walker2d", "medium"))])}
    assert d4rl["score_dmpc"]["paper"] == 65.98 and d4rl["score_dmpc"]["ci"] == [60.0, 60.0]
