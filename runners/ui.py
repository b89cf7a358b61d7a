"""The MLflow UI on 127.0.0.1: start `mlflow server` in its own process group, wait until it
answers, stop the whole group (server and every worker it spawned) with SIGINT, then harder."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from runners.errors import HarnessError

HOST = "127.0.0.1"


def exposure_warning(host: str) -> str | None:
    """What to say when the server listens beyond this machine (None on a loopback address)."""
    import ipaddress

    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return None
    if host == "localhost":
        return None
    return (f"warning: the MLflow server on {host} has no authentication unless configured: whoever reaches it "
            "can read, change and delete every run. Turn on MLflow's basic auth (mlflow server --app-name "
            "basic-auth, users in MLFLOW_AUTH_CONFIG_PATH's database; clients set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD) or put it behind an authenticating proxy.")


def _probe_host(host: str) -> str:
    return HOST if host in ("0.0.0.0", "::", "") else host


def mlflow_server_cmd(uri: str, port: int, workers: int = 1, host: str = HOST) -> list[str]:
    if importlib.util.find_spec("flask") is None or not shutil.which("mlflow"):
        raise HarnessError("the MLflow UI needs the full mlflow package: pip install -e '.[ui]'")
    artifacts = Path("results") / "mlartifacts"
    return ["mlflow", "server", "--backend-store-uri", uri, "--host", host, "--port", str(port),
            "--workers", str(workers), "--artifacts-destination", str(artifacts.resolve())]


def start(uri: str, port: int, timeout_s: float = 90.0, host: str = HOST) -> subprocess.Popen:
    """Start the server in a new session (its own process group) and wait for /health."""
    proc = subprocess.Popen(mlflow_server_cmd(uri, port, host=host), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://{_probe_host(host)}:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"mlflow server exited with {proc.returncode} before answering on port {port}"
                               " (is the port taken?)")
        with contextlib.suppress(urllib.error.URLError, OSError), \
                urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            if r.status == 200:
                return proc
        time.sleep(0.25)
    stop(proc)
    raise HarnessError(f"mlflow server did not answer on {url}/health within {timeout_s:.0f} s")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGINT to the server's process group, then SIGTERM, then SIGKILL; reap the leader."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
            if proc.poll() is not None and not _group_alive(pgid):
                return


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(uri: str, port: int, host: str = HOST) -> int:
    """`paperclub ui`: start, print the URL, wait for Ctrl-C (or SIGTERM), stop everything."""
    warning = exposure_warning(host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    proc = start(uri, port, host=host)
    print(f"MLflow UI for {uri}: http://{_probe_host(host)}:{port}  (Ctrl-C stops it)", flush=True)
    # also when started in the background, where SIGINT arrives ignored
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        while proc.poll() is None:
            time.sleep(0.5)
        print(f"mlflow server exited with {proc.returncode}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        stop(proc)
