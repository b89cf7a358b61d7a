"""A run cut off mid-phase (killed, preempted) continues with `paperclub run --resume RUN_DIR`: no finished
seed or phase runs again, and the run keeps its id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from runners.cli import main


def _start(harness_env, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "runners.cli", "run", "toy", "--tier", "small", "--out", "cut", "--no-publish", *args]
    return subprocess.Popen(cmd, cwd=harness_env, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_run_killed_mid_phase_resumes_without_redoing_finished_work(harness_env, capsys, sig):
    proc = _start(harness_env, "sleep_s=2")
    # seed 1 has finished its first phase (its draws are kept) and sleeps in its second: cut it off there
    _wait_for(harness_env / "cut" / "seed_1" / "phases" / "draw.pkl", proc)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    cut = json.loads((harness_env / "cut" / "summary.json").read_text())
    assert cut["status"] == "interrupted" and cut["seeds_done"] == [0]
    assert main(["run", "--resume", "cut", "--no-publish"]) == 0
    summary = json.loads((harness_env / "cut" / "summary.json").read_text())
    assert summary["status"] == "pass" and summary["seeds_done"] == [0, 1, 2]
    assert summary["run_uid"] == cut["run_uid"] and summary["started_at"] == cut["started_at"]
    assert summary["wall_s"] >= cut["wall_s"] and "seeds [0] were read back" in " ".join(summary["notes"])
    # every seed drew once: seed 0 was read back, seed 1's draws were loaded, seed 2 ran whole
    for seed in (0, 1, 2):
        assert (harness_env / "cut" / f"seed_{seed}" / "draws.log").read_text() == f"{seed}\n"
        assert not (harness_env / "cut" / f"seed_{seed}" / "phases").exists()  # kept results go once it finishes
    rows = json.loads((harness_env / "cut" / "seed_1" / "phases.json").read_text())["phases"]
    assert [(r["phase"], r.get("resumed", False)) for r in rows] == [("draw", True), ("wait", False),
                                                                     ("summarise", False)]
    # the resumed run's numbers are the uninterrupted run's
    assert main(["run", "toy", "--tier", "small", "--out", "whole", "--no-publish", "sleep_s=0"]) == 0
    whole = json.loads((harness_env / "whole" / "summary.json").read_text())
    assert summary["samples"] == whole["samples"]
    assert [c["status"] for c in summary["claims"]] == [c["status"] for c in whole["claims"]]


def test_resume_takes_only_cut_off_runs_and_nothing_else(harness_env, capsys):
    assert main(["run", "toy", "--tier", "smoke", "--out", "done", "--no-publish"]) == 0
    capsys.readouterr()
    assert main(["run", "--resume", "done"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ended 'pass': only an interrupted or crashed run is resumed" in err[0]
    assert main(["run", "toy", "--resume", "done"]) == 2
    assert "--resume RUN_DIR takes the run's own suite" in capsys.readouterr().err
    assert main(["run", "--resume", "nowhere"]) == 2
    assert "run directory not found: nowhere" in capsys.readouterr().err
