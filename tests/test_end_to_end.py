"""The whole path on the toy suite: run -> summary -> claims -> MLflow -> compare -> accept -> report."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

from runners.cli import main
from runners.rundir import cache_root, schema_errors


def run(args, capsys):
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def small_run(harness_env, capsys):
    rc, out, err = run(["run", "toy", "--tier", "small", "--out", "results/runs/a"], capsys)
    return rc, out, err, harness_env / "results" / "runs" / "a"


def test_run_writes_valid_summary_and_passes(small_run):
    rc, out, err, run_dir = small_run
    assert rc == 0, out + err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert schema_errors(summary) == []
    assert summary["status"] == "pass" and summary["seeds_done"] == [0, 1, 2]
    statuses = {c["id"]: c["status"] for c in summary["claims"]}
    assert statuses == {"toy.mean": "pass", "toy.error": "pass", "toy.full_only": "skipped",
                        "toy.every_seed_close": "pass", "toy.draws_above_mean": "pass"}
    rows = {c["id"]: c for c in summary["claims"]}
    assert (rows["toy.mean"]["n"], rows["toy.mean"]["unit"]) == (3, "seeds")
    assert (rows["toy.draws_above_mean"]["n"], rows["toy.draws_above_mean"]["unit"]) == (60, "draws")
    assert [len(v) for v in summary["unit_samples"]["above_mean"]] == [20, 20, 20]
    assert summary["invariants"][0]["id"] == "toy.error_nonnegative" and summary["invariants"][0]["status"] == "held"
    assert "3 seeds" in out and "60 draws" in out
    assert len(summary["samples"]["est_mean"]) == 3
    # the seed mean in metrics is the mean of the per-seed samples
    assert summary["metrics"]["est_mean"] == pytest.approx(sum(summary["samples"]["est_mean"]) / 3)
    seed0 = json.loads((run_dir / "seed_0" / "metrics.json").read_text())
    assert seed0["metrics"]["est_mean"] == summary["samples"]["est_mean"][0]
    assert (run_dir / "config.yaml").read_text().startswith("threads: 1")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events][0] == "run_start" and events[-1]["event"] == "run_end"
    assert summary["figures"] == ["fig-running-mean.png"] and (run_dir / "fig-running-mean.png").stat().st_size > 0
    assert "MLflow: published" in out


def test_same_seed_same_numbers(harness_env, capsys):
    for d in ("x", "y"):
        assert run(["run", "toy", "--tier", "smoke", "--out", d, "--no-publish"], capsys)[0] == 0
    a = json.loads((harness_env / "x" / "summary.json").read_text())["samples"]
    b = json.loads((harness_env / "y" / "summary.json").read_text())["samples"]
    assert a == b


def test_mlflow_parent_children_series_and_idempotent_publish(small_run, capsys):
    import mlflow

    rc, out, err, run_dir = small_run
    runs = mlflow.search_runs(experiment_names=["paperclub/toy"], filter_string="tags.tier = 'small'")
    assert len(runs) == 4  # 1 parent + 3 seeds
    parent = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert len(parent) == 1
    assert parent.iloc[0]["tags.claim.toy.mean"] == "pass"
    assert parent.iloc[0]["params.n"] == "400"
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert sorted(children["params.seed"]) == ["0", "1", "2"]
    client = mlflow.tracking.MlflowClient()
    history = client.get_metric_history(children.iloc[0]["run_id"], "series/running_mean")
    assert len(history) == 10 and history[-1].step == 400
    frac = client.get_metric_history(children.iloc[0]["run_id"], "series/running_mean_frac_x")
    assert frac[-1].value == 1.0
    arts = {a.path for a in client.list_artifacts(parent.iloc[0]["run_id"])}
    assert {"summary.json", "config.yaml", "fig-running-mean.png"} <= arts

    assert run(["publish", str(run_dir)], capsys)[0] == 0
    assert run(["publish", str(run_dir)], capsys)[1].count("already published") == 1
    assert len(mlflow.search_runs(experiment_names=["paperclub/toy"])) == 4


def test_publish_failure_keeps_run(harness_env, capsys, monkeypatch):
    # a server nobody listens on: the run still succeeds on disk and says how to publish later
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    rc, out, err = run(["run", "toy", "--tier", "smoke", "--out", "r"], capsys)
    assert rc == 0
    assert "MLflow publish to http://127.0.0.1:9 failed" in err and "paperclub publish r" in err
    assert json.loads((harness_env / "r" / "summary.json").read_text())["status"] == "pass"


def test_accept_compare_and_regression(small_run, capsys, harness_env):
    rc, out, err, run_dir = small_run
    rc, out, _ = run(["compare", str(run_dir)], capsys)
    assert rc == 3 and "no baseline" in out
    assert run(["accept", str(run_dir)], capsys)[0] == 0
    base_files = list((harness_env / "results" / "baselines" / "toy" / "small").glob("*.json"))
    assert len(base_files) == 1
    rc, out, _ = run(["compare", str(run_dir)], capsys)
    assert rc == 0 and "verdict: ok" in out

    # a baseline whose errors were smaller by 10 seed standard deviations: a significant regression
    base = json.loads(base_files[0].read_text())
    errs = base["samples"]["abs_error"]
    shift = 10 * statistics.stdev(errs)
    base["samples"]["abs_error"] = [v - shift for v in errs]
    base_files[0].write_text(json.dumps(base))
    rc, out, _ = run(["compare", str(run_dir)], capsys)
    assert rc == 1 and "regression" in out

    # another hardware class is never compared
    base["hw_class"] = "h100-x1"
    other = harness_env / "other.json"
    other.write_text(json.dumps(base))
    rc, out, _ = run(["compare", str(run_dir), "--baseline", str(other)], capsys)
    assert rc == 3 and "hw_class differs" in out


def test_report_has_claims_and_embedded_figure(small_run, capsys):
    rc, out, err, run_dir = small_run
    assert run(["report", str(run_dir)], capsys)[0] == 0
    md = (run_dir / "report.md").read_text()
    html = (run_dir / "report.html").read_text()
    assert "| toy.mean | est_mean | 1 | ~ 1 |" in md
    assert "fig-running-mean.png" in md and "n = 400 samples per seed" in md
    assert "data:image/png;base64," in html and "<td class='pass'>pass</td>" in html
    assert "### History" not in md  # one published run has no history yet


def test_results_page_is_the_claims_and_notes_of_each_run(small_run, capsys, harness_env):
    rc, out, err, run_dir = small_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run(["report", str(run_dir), "--results", "RESULTS.md"], capsys)[0] == 0
    page = (harness_env / "RESULTS.md").read_text()
    assert f"`paperclub report --results RESULTS.md {run_dir}`" in page  # the command that writes it again
    counts = ", ".join(f"{sum(c['status'] == k for c in summary['claims'])} {k}"
                       for k in ("pass", "fail", "inconclusive", "skipped") if any(c["status"] == k for c in summary["claims"]))
    assert f"| [toy](#toy-small) | small | {counts} | {summary['hw_class']} |" in page
    assert "| claim | paper | threshold | measured (95% CI) | n | status |" in page
    assert "| toy.mean | 1 | ~ 1 |" in page and "n = 400 samples per seed" in page
    assert "![fig-running-mean.png](results/runs/a/fig-running-mean.png)" in page  # linked from the page's folder
    assert "est_mean" not in page  # metric names: the report's


def test_results_page_keeps_the_runs_it_names(small_run, capsys, harness_env):
    rc, out, err, run_dir = small_run
    args = ["report", str(run_dir), "--results", "RESULTS.md", "--keep", "published"]
    assert run(args, capsys)[0] == 0
    kept = harness_env / "published" / "toy_small"
    assert sorted(p.name for p in kept.iterdir()) == ["config.yaml", "fig-running-mean.png", "summary.json"]
    assert (kept / "summary.json").read_bytes() == (run_dir / "summary.json").read_bytes()
    page = (harness_env / "RESULTS.md").read_text()
    assert "`paperclub report --results RESULTS.md published/toy_small`" in page
    assert "![fig-running-mean.png](published/toy_small/fig-running-mean.png)" in page
    # the command on the page's first line writes the same page again from the kept copies
    assert run(["report", "published/toy_small", "--results", "RESULTS.md", "--keep", "published"], capsys)[0] == 0
    assert (harness_env / "RESULTS.md").read_text() == page and (kept / "summary.json").is_file()
    rc, out, err = run(["report", str(run_dir), str(kept), "--results", "R.md", "--keep", "published"], capsys)
    assert rc == 2 and "two runs of toy at tier 'small'" in err and not (harness_env / "R.md").exists()
    rc, out, err = run(["report", str(run_dir), "--keep", "published"], capsys)
    assert rc == 2 and "give --results PATH too" in err


def test_the_committed_results_page_is_what_its_first_line_writes(monkeypatch):
    """RESULTS.md and the runs it names in results/published are committed together; a change to the page's
    format, or a page edited by hand, shows here (write it again with the command on its first line)."""
    from runners.report import results_page

    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(root)
    page = (root / "RESULTS.md").read_text()
    command = re.search(r"Written by `paperclub report --results RESULTS\.md ([^`]+)`", page.splitlines()[2])
    run_dirs = [Path(d) for d in command.group(1).split()]
    assert run_dirs and all(d.parent == Path("results/published") for d in run_dirs)
    assert results_page(run_dirs, root / "RESULTS.md") == page


def test_crash_keeps_finished_seeds(harness_env, capsys):
    rc, out, err = run(["run", "toy", "--out", "c", "--no-publish", "crash_at_seed=1"], capsys)
    assert rc == 2
    summary = json.loads((harness_env / "c" / "summary.json").read_text())
    assert summary["status"] == "error" and summary["seeds_done"] == [0]
    assert "planned crash at seed 1" in summary["reason"]
    assert (harness_env / "c" / "seed_0" / "metrics.json").exists()
    assert "RuntimeError" in (harness_env / "c" / "seed_1" / "error.txt").read_text()


def test_malformed_result_ends_the_run_as_error(harness_env, capsys):
    rc, out, err = run(["run", "toy", "--out", "m", "--no-publish", "bad_metric_name=true"], capsys)
    summary = json.loads((harness_env / "m" / "summary.json").read_text())
    assert rc == 2 and summary["status"] == "error" and "'Abs-Error' is not snake_case" in summary["reason"]


def test_unmet_requirement_is_skipped(harness_env, capsys):
    rc, out, err = run(["run", "toy_needs", "--out", "s", "--no-publish"], capsys)
    assert rc == 3
    summary = json.loads((harness_env / "s" / "summary.json").read_text())
    assert summary["status"] == "skipped" and "paperclub_no_such_module" in summary["reason"]
    assert {c["status"] for c in summary["claims"]} == {"skipped"}


def test_a_claim_with_an_unmet_requirement_alone_is_skipped(harness_env, capsys):
    rc, out, err = run(["run", "toy_peer", "--tier", "smoke", "--out", "p", "--no-publish"], capsys)
    summary = json.loads((harness_env / "p" / "summary.json").read_text())
    claims = {c["id"]: c for c in summary["claims"]}
    assert claims["toy.vs_peer"]["status"] == "skipped" and "paperclub_no_such_peer" in claims["toy.vs_peer"]["reason"]
    assert claims["toy.vs_peer"]["value"] is not None  # measured, shown, but not judged
    assert claims["toy.mean"]["status"] == "pass" and summary["status"] == "pass" and rc == 0
    # a claim about another config value is not tested by this run
    assert claims["toy.noisy_only"]["status"] == "skipped"
    assert claims["toy.noisy_only"]["reason"] == "applies when noise=2.0 (this run: 0.5)"
    run(["run", "toy_peer", "--tier", "smoke", "--out", "q", "--no-publish", "noise=2.0"], capsys)
    claims = {c["id"]: c for c in json.loads((harness_env / "q" / "summary.json").read_text())["claims"]}
    assert claims["toy.noisy_only"]["status"] == "pass"


@pytest.mark.slow
def test_locked_store_keeps_run_and_says_how_to_publish(harness_env, capsys, monkeypatch):
    import sqlite3
    import subprocess
    import sys

    db = harness_env / "mlflow.db"
    assert run(["run", "toy", "--tier", "smoke", "--out", "first"], capsys)[0] == 0  # creates the store
    holder = subprocess.Popen([sys.executable, "-c", f"import sqlite3, time; c = sqlite3.connect({str(db)!r}, "
                               "isolation_level=None); c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); "
                               "time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc, out, err = run(["run", "toy", "--tier", "smoke", "--out", "second"], capsys)
    finally:
        holder.kill()
        holder.wait()
    assert rc == 0
    assert "database is locked" in err and "publish later with: paperclub publish second" in err
    assert json.loads((harness_env / "second" / "summary.json").read_text())["status"] == "pass"
    # once the lock is gone, publishing later works
    assert run(["publish", "second"], capsys)[0] == 0
    assert sqlite3.connect(db).execute("select count(*) from runs").fetchone()[0] == 8


def test_non_finite_info_is_recorded_as_null_and_unserialisable_info_is_an_error(harness_env, capsys):
    assert run(["run", "toy", "--tier", "smoke", "--out", "a", "--no-publish", "odd_info=nan"], capsys)[0] == 0
    rec = json.loads((harness_env / "a" / "seed_0" / "metrics.json").read_text())
    assert rec["info"]["spread"] is None and rec["info"]["count"] == 3 and rec["info"]["pair"] == [1, 2]
    rc, out, err = run(["run", "toy", "--tier", "smoke", "--out", "b", "--no-publish", "odd_info=object"], capsys)
    summary = json.loads((harness_env / "b" / "summary.json").read_text())
    assert rc == 2 and summary["status"] == "error" and "not JSON" in summary["reason"]


def test_suite_declared_unreliable_metric_makes_its_claim_inconclusive(harness_env, capsys):
    rc, out, err = run(["run", "toy", "--tier", "smoke", "--out", "u", "--no-publish", "unsure=true"], capsys)
    summary = json.loads((harness_env / "u" / "summary.json").read_text())
    claim = next(c for c in summary["claims"] if c["id"] == "toy.error")
    assert rc == 3 and summary["status"] == "inconclusive"
    assert claim["status"] == "inconclusive" and claim["reason"] == "declared unreliable by the test"


def test_cache_root_is_the_suite_setting_then_the_environment_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("PAPERCLUB_CACHE", str(tmp_path / "env"))
    assert cache_root(str(tmp_path / "cfg")) == tmp_path / "cfg"
    assert cache_root("") == tmp_path / "env"
    monkeypatch.delenv("PAPERCLUB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "paperclub"


def test_calibrate_from_repeated_runs_then_compare(harness_env, capsys):
    rc, out, err = run(["calibrate", "toy", "--tier", "smoke", "--runs", "3"], capsys)
    assert rc == 0, err
    assert "accepted" in out and "tolerances from 3 runs" in out
    [path] = (harness_env / "results" / "baselines" / "toy" / "smoke").glob("*.json")
    base = json.loads(path.read_text())
    assert base["tolerances"]["abs_error"]["abs"] == 0.0  # the smoke tier is deterministic: no spread
    assert len(base["calibrated_from"]) == 3 and base["tolerances"]["abs_error"]["runs"] == 3
    assert run(["run", "toy", "--tier", "smoke", "--out", "same", "--no-publish"], capsys)[0] == 0
    assert run(["compare", "same"], capsys)[0] == 0
    assert run(["run", "toy", "--tier", "smoke", "--out", "worse", "--no-publish", "bias=0.2"], capsys)[0] == 0
    rc, out, _ = run(["compare", "worse"], capsys)
    assert rc == 1 and "beyond the calibrated tolerance" in out
    assert run(["calibrate", "toy", "--runs", "2"], capsys)[0] == 2  # too few runs: one line, exit 2


def test_publishing_is_retried_with_backoff(monkeypatch):
    from runners.errors import HarnessError
    from runners.tracking import retrying

    calls = []

    def flaky(x):
        calls.append(x)
        if len(calls) < 3:
            raise RuntimeError("database is locked")
        return x * 2

    monkeypatch.setenv("PAPERCLUB_PUBLISH_RETRIES", "4")
    assert retrying(flaky, 21, backoff_s=0) == 42 and len(calls) == 3
    monkeypatch.setenv("PAPERCLUB_PUBLISH_RETRIES", "2")
    calls.clear()
    with pytest.raises(RuntimeError, match="locked"):
        retrying(flaky, 1, backoff_s=0)
    with pytest.raises(HarnessError):  # a bad input is never retried
        retrying(lambda: (_ for _ in ()).throw(HarnessError("bad run dir")), backoff_s=0)


@pytest.mark.slow
def test_four_runs_at_once_on_a_fresh_store_all_publish(harness_env):
    """Unlocked, MLflow's schema migrations race on a fresh sqlite store (0 of 4 published in a trial)."""
    import sqlite3
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-m", "runners.cli", "run", "toy", "--tier", "smoke", "--out", f"p{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [e[-600:] for _, e in outs]
    assert all("MLflow: published" in o for o, _ in outs), [e[-600:] for _, e in outs]
    db = sqlite3.connect(harness_env / "mlflow.db")
    parents = db.execute("select count(*) from runs r where not exists (select 1 from tags t where "
                         "t.run_uuid = r.run_uuid and t.key = 'mlflow.parentRunId')").fetchone()[0]
    assert parents == 4 and db.execute("pragma journal_mode").fetchone()[0] == "wal"
