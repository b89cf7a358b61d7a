"""`nox -s image` (containers/image.py): the CPU image built and every suite's smoke tier run inside it where
a Docker daemon answers (skipped with the reason otherwise: CI starts none); its checks on their own."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("paperclub_image", ROOT / "containers" / "image.py")
image = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(image)


def _summary(path: Path, **changes) -> Path:
    s = {"status": "pass", "seeds": [0], "seeds_done": [0], "reason": None, "env": {"image": "paperclub-cpu:abc"}}
    s.update(changes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(s))
    return path


def test_a_smoke_run_counts_only_if_it_finished_and_names_the_image(tmp_path):
    ok = image.check_summary(_summary(tmp_path / "a" / "summary.json"), "paperclub-cpu:abc")
    assert ok["ok"] and ok["problem"] == ""
    skipped = image.check_summary(_summary(tmp_path / "b" / "summary.json", status="skipped"), "paperclub-cpu:abc")
    assert skipped["ok"]  # a tier without claims is skipped yet measured everything
    crashed = image.check_summary(_summary(tmp_path / "c" / "summary.json", status="error", seeds_done=[],
                                           reason="seed 0 crashed: ImportError: mujoco"), "paperclub-cpu:abc")
    assert not crashed["ok"] and "ImportError: mujoco" in crashed["problem"]
    elsewhere = image.check_summary(_summary(tmp_path / "d" / "summary.json", env={"image": ""}), "paperclub-cpu:abc")
    assert not elsewhere["ok"] and "env.image is ''" in elsewhere["problem"]
    missing = image.check_summary(tmp_path / "e" / "summary.json", "paperclub-cpu:abc")
    assert not missing["ok"] and missing["status"] == "missing"


def test_the_default_base_is_the_pinned_digest():
    assert image.pinned_base().startswith("python:3.11.14-slim-bookworm@sha256:")


def test_no_daemon_is_one_line():
    proc = subprocess.run([sys.executable, str(ROOT / "containers" / "image.py")], capture_output=True, text=True,
                          env={"PATH": "/nonexistent"}, timeout=60)
    assert proc.returncode == 2 and proc.stdout.strip() == "image: no docker client on PATH"


def test_image_builds_and_every_smoke_run_finishes_inside():
    why = image.daemon_answers()
    if why:
        pytest.skip(why)
    proc = subprocess.run([sys.executable, str(ROOT / "containers" / "image.py")], cwd=ROOT, capture_output=True,
                          text=True, timeout=5400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    record = json.loads(sorted((ROOT / "results" / "image").glob("*/image.json"))[-1].read_text())
    assert record["complete"] and set(record["smoke"]) == set(image.SUITES)
    assert all(r["ok"] and r["image"] == record["image"] for r in record["smoke"].values())


def test_a_suite_counts_as_published_once_its_run_is_complete_in_the_store(tmp_path):
    import sqlite3

    store = tmp_path / "mlflow.db"
    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE tags (key TEXT, value TEXT, run_uuid TEXT)")
        db.executemany("INSERT INTO tags VALUES (?, ?, ?)", [
            ("suite", "lewm", "r1"), ("paperclub.publish_state", "complete", "r1"),
            ("suite", "dmpc", "r2"), ("paperclub.publish_state", "partial", "r2")])  # cut off mid-publish
    assert image.published_suites(store, ["lewm", "dmpc", "ssd"]) == {"lewm": True, "dmpc": False, "ssd": False}
    assert image.published_suites(tmp_path / "none.db", ["lewm"]) == {"lewm": False}
    from runners.tracking import STATE_TAG

    assert image.PUBLISHED == STATE_TAG  # the script reads the store with the standard library only
