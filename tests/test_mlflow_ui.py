"""The MLflow comparison UI as a user sees it: two published runs of a real suite, `paperclub ui`
(mlflow server on 127.0.0.1, sqlite store), the compare-runs page rendered in headless Chromium,
and every process the server spawned gone after Ctrl-C, even when the test fails.

Screenshots of the page are kept under results/test-artifacts/ (PAPERCLUB_TEST_ARTIFACTS)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from runners.cli import main

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Chromium on a machine with no outside network: no background connections, no first-run work.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.browser


def browser() -> str:
    found = os.environ.get("PAPERCLUB_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if found:
        return found
    if os.environ.get("PAPERCLUB_REQUIRE_BROWSER") == "1":
        pytest.fail("no Chromium found (looked for $PAPERCLUB_CHROMIUM, " + ", ".join(BROWSERS) + ")")
    pytest.skip("no Chromium: apt-get install chromium (the CI installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).children(recursive=True)
    return []


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
    return out


@pytest.fixture
def two_runs(harness_env):
    """Two smoke runs of pacbayes, published to the test's sqlite store."""
    import mlflow

    for out in ("r1", "r2"):
        assert main(["run", "pacbayes", "--tier", "smoke", "--out", out]) in (0, 3)
    summary = json.loads((harness_env / "r1" / "summary.json").read_text())
    claim = next(c for c in summary["claims"] if c["status"] == "pass")
    runs = mlflow.search_runs(experiment_names=["paperclub/pacbayes"],
                              filter_string="tags.suite = 'pacbayes'", output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2
    return parents, claim["metric"]


@pytest.mark.slow
def test_compare_page_renders_both_runs_and_a_claim_metric(two_runs, harness_env):
    from playwright.sync_api import sync_playwright

    exe = browser()
    parents, metric = two_runs
    port = free_port()
    log = (harness_env / "ui.log").open("w")
    ui = subprocess.Popen([sys.executable, "-m", "runners.cli", "ui", "--port", str(port)], cwd=harness_env,
                          stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    spawned: list[psutil.Process] = []
    artifacts = Path(os.environ.get("PAPERCLUB_TEST_ARTIFACTS", ROOT / "results" / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        line = ui.stdout.readline()  # printed once the server answers /health
        assert f"http://127.0.0.1:{port}" in line, line + (harness_env / "ui.log").read_text()
        spawned = descendants(ui.pid)
        assert any("mlflow" in " ".join(p.cmdline()) for p in spawned)

        ids = json.dumps([r.info.run_id for r in parents])
        url = f"http://127.0.0.1:{port}/#/compare-runs?runs={ids}&experiments={json.dumps([parents[0].info.experiment_id])}"
        names = [r.data.tags["mlflow.runName"] for r in parents]
        with sync_playwright() as pw:
            chrome = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
            try:
                page = chrome.new_page(viewport={"width": 1600, "height": 1100})
                page.goto(url)
                for name in names:
                    page.get_by_text(name, exact=True).first.wait_for(timeout=90_000)
                page.screenshot(path=str(artifacts / "mlflow-compare-runs.png"))
                # the metrics table is a virtualised grid (300 px tall): scroll it until the row exists
                row = page.get_by_title("Plot chart").filter(has_text=re.compile(f"^{re.escape(metric)}$"))
                grids = page.locator("[role=grid]")
                for step in range(200):
                    if row.count():
                        break
                    grids.last.evaluate("(g, y) => { g.scrollTop = y; }", 90 * (step + 1))
                    page.wait_for_timeout(100)
                row.first.wait_for(timeout=30_000)
                row.first.scroll_into_view_if_needed()
                page.screenshot(path=str(artifacts / "mlflow-compare-metrics.png"))
                text = page.inner_text("body")
            finally:
                chrome.close()
        assert all(name in text for name in names) and metric in text
        assert "Comparing 2 Runs" in text
    finally:
        spawned = spawned or descendants(ui.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(ui.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
        try:
            rc = ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc = None
        deadline = time.monotonic() + 30
        while alive(spawned) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = alive(spawned)
        for p in left:  # never leave a server behind, even on failure
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        if rc is None:
            ui.kill()
            ui.wait()
        log.close()
    assert rc == 0, (harness_env / "ui.log").read_text()
    assert not left, f"still running after Ctrl-C: {[' '.join(p.cmdline())[:80] for p in left]}"


@pytest.mark.parametrize(("host", "warns"), [("127.0.0.1", False), ("127.0.0.2", False), ("::1", False),
                                             ("localhost", False), ("0.0.0.0", True), ("10.1.2.3", True),
                                             ("ui.example.org", True)])
def test_listening_beyond_loopback_warns_about_authentication(host, warns):
    from runners.ui import exposure_warning

    warning = exposure_warning(host)
    assert (warning is not None) == warns
    if warns:
        assert "no authentication" in warning and "basic-auth" in warning and host in warning


def test_ui_listens_on_loopback_unless_told_otherwise(monkeypatch):
    import runners.ui as ui

    monkeypatch.setattr(ui.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(ui.shutil, "which", lambda name: "/bin/mlflow")
    cmd = ui.mlflow_server_cmd("sqlite:///x.db", 5001)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    cmd = ui.mlflow_server_cmd("sqlite:///x.db", 5001, host="0.0.0.0")
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    from runners.cli import build_parser

    assert build_parser().parse_args(["ui"]).host == "127.0.0.1"
    assert build_parser().parse_args(["ui", "--host", "0.0.0.0"]).host == "0.0.0.0"
