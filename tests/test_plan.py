"""The main job's plan: expected cost per suite on this machine, cheapest first, said before it starts."""

from __future__ import annotations

import json

import pytest

from runners import plan as planning
from runners.api import Preparation
from runners.cli import main
from runners.config import compose
from runners.registry import load


def _finished(runs, name, suite, wall_s, status="pass", started="2026-11-01T00:00:00", hw="cpu-2c", tier="small"):
    (runs / name).mkdir(parents=True)
    (runs / name / "summary.json").write_text(json.dumps(
        {"suite": suite, "tier": tier, "hw_class": hw, "status": status, "wall_s": wall_s, "started_at": started}))


def test_measured_minutes_are_the_fastest_of_this_machines_newest_finished_runs(tmp_path):
    runs = tmp_path / "runs"
    _finished(runs, "a", "toy", 600.0, started="2026-11-01")  # made its data: slower
    _finished(runs, "b", "toy", 120.0, started="2026-11-02")
    _finished(runs, "c", "toy", 6.0, status="interrupted", started="2026-11-03")  # never finished: not a time
    _finished(runs, "d", "toy", 3.0, hw="h100-x1")  # another machine class
    _finished(runs, "e", "toy", 3.0, tier="smoke")
    (runs / "torn").mkdir()
    (runs / "torn" / "summary.json").write_text("{")
    minutes, source = planning.measured_minutes("toy", "small", "cpu-2c", runs)
    assert minutes == pytest.approx(2.0) and "measured here (b; fastest of 2)" == source
    assert planning.measured_minutes("toy", "small", "cpu-4c", runs) is None


def test_plan_runs_the_cheapest_first_counting_what_each_must_make(harness_env, monkeypatch):
    toy, peer = load("toy"), load("toy_peer")
    monkeypatch.setattr(toy, "expected_minutes", {"small": 5.0})
    monkeypatch.setattr(peer, "expected_minutes", {"small": 8.0})
    monkeypatch.setattr(toy, "preparation", lambda self, cfg, seeds: [Preparation("data", False, 10.0),
                                                                       Preparation("weights", True, 30.0)])
    monkeypatch.setattr(peer, "preparation", lambda self, cfg, seeds: [])
    steps = planning.plan(["toy_needs", "toy", "toy_peer"], "small", harness_env / "runs", "cpu-2c")
    assert [s.suite for s in steps] == ["toy_peer", "toy", "toy_needs"]  # 8 < 5 + 10; cannot run here: last
    assert steps[1].to_prepare == 10.0 and steps[1].total == 15.0 and steps[2].unmet
    _finished(harness_env / "runs", "fast", "toy", 60.0)  # a measured run here beats the estimate
    steps = planning.plan(["toy", "toy_peer"], "small", harness_env / "runs", "cpu-2c")
    assert [(s.suite, s.minutes) for s in steps] == [("toy_peer", 8.0), ("toy", 1.0)]


def test_plan_command_prints_the_table_and_writes_the_order(harness_env, monkeypatch, capsys):
    monkeypatch.setattr(load("toy_peer"), "expected_minutes", {"smoke": 0.5})
    out = harness_env / "plan.json"
    assert main(["plan", "toy", "toy_peer", "--tier", "smoke", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "plan: smoke tier on" in printed and "the suite's estimate" in printed and "no estimate" in printed
    assert "about 0 minutes in all, plus toy (no estimate)" in printed
    saved = json.loads(out.read_text())
    assert [s["suite"] for s in saved["steps"]] == ["toy_peer", "toy"] and saved["steps"][1]["total"] is None
    assert main(["plan", "nosuch"]) == 2
    assert capsys.readouterr().err.strip().startswith("paperclub: error: unknown suite 'nosuch'")


def test_suites_say_what_they_must_make_and_whether_it_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERCLUB_CACHE", str(tmp_path))
    monkeypatch.setenv("PAPERCLUB_FMNIST", str(tmp_path / "nowhere"))
    monkeypatch.setattr("paper_pacbayes.data.DEBIAN_DIR", tmp_path / "no-debian")

    def prep(name, tier, *overrides, seeds=3):
        cls = load(name)
        return cls().preparation(compose(cls, tier, list(overrides))[0], list(range(seeds)))

    made = prep("dmpc", "small")  # one dataset per seed, each with its own learner seed
    assert [p.what.split(", ")[1].split(" (")[0] for p in made] == ["SAC seed 0", "SAC seed 1", "SAC seed 2"]
    assert all("Hopper-v5 data" in p.what and not p.cached and p.minutes > 1 for p in made)
    walker = prep("dmpc", "small", "env=walker2d")  # its own learner, and that learner's minutes
    assert walker[0].what.startswith("Walker2d-v5 data, CrossQ seed 0") and walker[0].minutes < made[0].minutes
    cls = load("dmpc")
    cfg = compose(cls, "small", [])[0]
    folder = tmp_path / "dmpc" / f"hopper-{cls._data_spec(cfg, 1).key()}"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text("{}")
    assert [p.cached for p in prep("dmpc", "small")] == [False, True, False]
    assert len(prep("dmpc", "small", "data_per_seed=false")) == 1 and prep("dmpc", "small", "data_path=x.hdf5") == []
    assert [(p.what.split()[0], p.cached) for p in prep("ssd", "small")] == [
        ("qwen2.5-coder-1.5b-instruct", False), ("qwen2.5-coder-0.5b-instruct", False)]
    assert prep("ssd", "smoke") == []  # the tiny pair trains inside the run
    assert [(p.what, p.cached) for p in prep("pacbayes", "small")] == [("fmnist data", False)]
    assert prep("pacbayes", "smoke") == []  # digits ship with scikit-learn
