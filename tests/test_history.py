"""A metric's history: bad runs and steps beyond tolerance, the last good and first bad commit, and
the command end to end on published toy runs."""

from __future__ import annotations

import json

from runners.cli import main
from runners.history import analyse


def runs(values, metric="acc"):
    return [{"git_sha": f"c{i}", "started_at": f"2026-11-0{i + 1}", "metrics": {metric: v} if v is not None else {}}
            for i, v in enumerate(values)]


def test_last_good_and_first_bad_bracket_the_newest_bad_streak():
    h = analyse("acc", runs([0.90, 0.91, 0.70, 0.90, 0.71, None, 0.69]), 1, 0.90, 0.05, 0.1)
    assert [p.bad for p in h.points] == [False, False, True, False, True, False, True]
    assert (h.last_good.git_sha, h.first_bad.git_sha) == ("c3", "c4")  # c5 measured nothing: skipped over
    assert [p.step for p in h.points] == ["", "", "worse", "better", "worse", "", ""]


def test_lower_is_better_and_no_reference_uses_the_oldest_run():
    h = analyse("err", runs([0.10, 0.10, 0.30], "err"), -1, None, None, 0.10)
    assert h.reference == 0.10 and h.tolerance == 0.10 * 0.10 and "oldest run (c0)" in h.reference_from
    assert h.first_bad.git_sha == "c2" and h.last_good.git_sha == "c1"


def test_a_good_newest_run_names_nothing_and_undirected_metrics_only_flag_changes():
    h = analyse("acc", runs([0.5, 0.9]), 1, 0.9, 0.01, 0.1)
    assert h.first_bad is None and h.last_good is None and h.points[0].bad
    h = analyse("wall", runs([1.0, 2.0], "wall"), None, None, None, 0.1)
    assert [p.bad for p in h.points] == [False, False] and h.points[1].step == "changed"
    h = analyse("mean", runs([1.0, 0.7, 1.3], "mean"), 0, 1.0, 0.1, 0.1)  # approx: off either way is bad
    assert [p.bad for p in h.points] == [False, True, True] and h.first_bad.git_sha == "c1"


def test_history_command_on_published_runs(harness_env, capsys):
    for out, bias in (("a", "0"), ("b", "0"), ("c", "0.2")):
        assert main(["run", "toy", "--tier", "smoke", "--out", out, f"bias={bias}"]) in (0, 1)
    assert main(["accept", "a"]) == 0
    capsys.readouterr()
    assert main(["history", "toy", "--tier", "smoke", "--metric", "abs_error", "--out", "h.png"]) == 1
    out = capsys.readouterr().out
    assert "beyond tolerance" in out and "abs_error: last good" in out and "first bad" in out
    assert (harness_env / "h.png").stat().st_size > 0
    assert main(["history", "toy", "--tier", "smoke"]) == 1  # every claim metric, one table
    assert (harness_env / "results" / "reports" / "history" / "toy_smoke.png").is_file()
    capsys.readouterr()
    assert main(["history", "toy", "--tier", "full"]) == 3 and "no published toy runs" in capsys.readouterr().out
    summary = json.loads((harness_env / "c" / "summary.json").read_text())
    assert summary["metrics"]["abs_error"] > 0.15
    assert main(["report", "c"]) == 0  # the report draws the same history beside itself
    md = (harness_env / "c" / "report.md").read_text()
    assert "### History" in md and (harness_env / "c" / "report_history_toy_smoke.png").stat().st_size > 0


def test_history_never_creates_a_store(harness_env, monkeypatch, capsys):
    db = harness_env / "absent" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    assert main(["history", "toy", "--tier", "smoke"]) == 3
    assert "no published toy runs" in capsys.readouterr().out and not db.exists() and not db.parent.exists()
