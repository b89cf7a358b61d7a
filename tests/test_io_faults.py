"""I/O faults keep the contract: a full disk or a vanished run directory is one line on stderr naming
the path and the error, exit 2, and what finished stays on disk (stand-ins raise the errors)."""

from __future__ import annotations

import errno
import json
import shutil

import pytest

import runners.runner as runner
from runners.cli import main
from tests.toy_suite import ToySuite


def disk_full_for(monkeypatch, *names):
    """Writes of files with these names fail as on a full disk."""
    for fn in ("atomic_write_json", "atomic_write_text"):
        real = getattr(runner, fn)

        def fake(path, obj, _real=real):
            if path.name in names:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return _real(path, obj)

        monkeypatch.setattr(runner, fn, fake)


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_full_disk_at_the_summary_says_where_the_finished_seeds_are(harness_env, capsys, monkeypatch):
    calls = {"n": 0}
    real = runner.atomic_write_json

    def fill_after_first_seed(path, obj):
        if path.name == "summary.json":
            calls["n"] += 1
            if calls["n"] > 2:  # the first two: before any seed, after seed 0
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, obj)

    monkeypatch.setattr(runner, "atomic_write_json", fill_after_first_seed)
    assert main(["run", "toy", "--tier", "smoke", "--out", "r", "--no-publish"]) == 2
    line = one_line(capsys)
    assert "r/summary.json: No space left on device" in line and "r/seed_0/metrics.json" in line
    seed0 = json.loads((harness_env / "r" / "seed_0" / "metrics.json").read_text())
    assert seed0["metrics"]["est_mean"] > 0  # what finished stays readable
    assert json.loads((harness_env / "r" / "summary.json").read_text())["seeds_done"] == [0]


def test_a_suite_that_dies_of_a_full_disk_on_a_full_disk(harness_env, capsys, monkeypatch):
    def no_space(self, cfg, seed, out_dir):
        raise OSError(errno.ENOSPC, "No space left on device", str(out_dir / "checkpoint.pt"))

    monkeypatch.setattr(ToySuite, "run", no_space)
    disk_full_for(monkeypatch, "error.txt", "summary.json")
    assert main(["run", "toy", "--tier", "smoke", "--out", "r", "--no-publish"]) == 2
    line = one_line(capsys)
    assert "summary.json: No space left on device" in line and "no seed had finished" in line


def test_a_run_directory_removed_mid_run(harness_env, capsys, monkeypatch):
    real = ToySuite.run

    def remove_then_run(self, cfg, seed, out_dir):
        if seed == 1:
            shutil.rmtree(out_dir.parent)
        return real(self, cfg, seed, out_dir)

    monkeypatch.setattr(ToySuite, "run", remove_then_run)
    assert main(["run", "toy", "--tier", "smoke", "--seeds", "2", "--out", "gone", "--no-publish"]) == 2
    line = one_line(capsys)
    assert "No such file or directory" in line and "gone" in line


@pytest.mark.parametrize("command", [["report", "r", "--out", "rep/x"], ["accept", "r"]])
def test_io_faults_outside_a_run_are_one_line(harness_env, capsys, monkeypatch, command):
    assert main(["run", "toy", "--tier", "smoke", "--out", "r", "--no-publish"]) == 0
    capsys.readouterr()

    def no_space(path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("runners.report.atomic_write_text", no_space)
    monkeypatch.setattr("runners.baseline.atomic_write_json", no_space)
    assert main(command) == 2
    assert "No space left on device" in one_line(capsys)


def test_event_lines_the_disk_cannot_take_are_counted_not_fatal(harness_env, capsys, monkeypatch):
    from runners import rundir

    real = rundir.EventLog.emit

    def flaky(self, event, **fields):
        if event == "seed_end":
            self._fh = _Full()
        return real(self, event, **fields)

    class _Full:
        def write(self, *text):
            raise OSError(errno.ENOSPC, "No space left on device")

        flush = close = write

    monkeypatch.setattr(rundir.EventLog, "emit", flaky)
    assert main(["run", "toy", "--tier", "smoke", "--out", "r", "--no-publish"]) == 0
    summary = json.loads((harness_env / "r" / "summary.json").read_text())
    assert summary["status"] == "pass" and "could not be written (disk)" in summary["notes"][-1]
