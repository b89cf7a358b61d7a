"""Every bad input gives exactly one line on stderr and exit code 2."""

from __future__ import annotations

import json

import pytest

from runners.cli import main


def one_line_error(capsys, args) -> str:
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse-level errors
        rc = exc.code
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("paperclub: error: ")
    return err


def test_unknown_suite(harness_env, capsys):
    err = one_line_error(capsys, ["run", "nosuch"])
    assert "unknown suite 'nosuch'" in err and "toy" in err


def test_unknown_override_key_lists_valid_keys(harness_env, capsys):
    err = one_line_error(capsys, ["run", "toy", "nn=3"])
    assert "unknown key 'nn'" in err and "valid keys: threads, device, n, mean" in err


def test_wrong_type(harness_env, capsys):
    err = one_line_error(capsys, ["run", "toy", "n=abc"])
    assert "bad value for 'n' (n=abc)" in err and "Integer" in err


def test_sweep_without_multirun_and_bad_syntax(harness_env, capsys):
    assert "add -m" in one_line_error(capsys, ["run", "toy", "n=1,2"])
    assert "bad override 'n=='" in one_line_error(capsys, ["run", "toy", "n=="])


def test_unknown_tier_and_bad_seeds(harness_env, capsys):
    assert "unknown tier 'huge'" in one_line_error(capsys, ["run", "toy", "--tier", "huge"])
    assert "--seeds must be >= 1" in one_line_error(capsys, ["run", "toy", "--seeds", "0"])


def test_unknown_flag(harness_env, capsys):
    assert "unrecognized arguments: --fast" in one_line_error(capsys, ["run", "toy", "--fast"])


def test_missing_run_dir(harness_env, capsys):
    for cmd in ("compare", "accept", "publish", "report"):
        assert "run directory not found: nope" in one_line_error(capsys, [cmd, "nope"])


@pytest.fixture
def run_dir(harness_env, capsys):
    assert main(["run", "toy", "--tier", "smoke", "--out", "r", "--no-publish"]) == 0
    capsys.readouterr()
    return harness_env / "r"


@pytest.mark.parametrize("content", ["{not json", json.dumps({"schema_version": 1, "suite": "toy"})])
def test_corrupted_baseline_is_an_error_and_not_overwritten(run_dir, capsys, content):
    base = run_dir.parent / "results" / "baselines" / "toy" / "smoke" / "bad.json"
    base.parent.mkdir(parents=True)
    base.write_text(content)
    err = one_line_error(capsys, ["compare", str(run_dir), "--baseline", str(base)])
    assert str(base) in err
    err = one_line_error(capsys, ["accept", str(run_dir), "--baseline", str(base)])
    assert "not a valid baseline" in err or "not valid JSON" in err
    assert base.read_text() == content


def test_schema_invalid_summary(run_dir, capsys):
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["status"] = "great"
    (run_dir / "summary.json").write_text(json.dumps(summary))
    assert "does not match summary.schema.json" in one_line_error(capsys, ["report", str(run_dir)])


def test_unwritable_results_dir(harness_env, capsys):
    (harness_env / "afile").write_text("")  # a file where a directory must go: unwritable even for root
    err = one_line_error(capsys, ["run", "toy", "--out", "afile/run"])
    assert "cannot write to results directory afile/run" in err


def test_ui_without_full_mlflow(harness_env, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    # as with mlflow-skinny alone: no flask, so no server to start
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flask" else real(name, *a))
    assert "pip install -e '.[ui]'" in one_line_error(capsys, ["ui"])
