"""Build the CPU image and run every suite's smoke tier inside it (`nox -s image` runs this file).

1. The base: the Dockerfile's pinned ``BASE_IMAGE`` where ``docker pull`` gets it; otherwise a Debian
   bookworm (the pinned base's release) with Debian's Python 3.11, made here with debootstrap and
   imported, which the output and the record say plainly.
2. The build uses the host's network. pip's CA bundle goes in as a build secret (never a layer); a
   local wheel directory that pip's configuration names (find-links) is served on 127.0.0.1 as the
   ``WHEELS`` build argument; PyTorch's CPU index is left out where it cannot be reached. The lock's
   hashes are checked whatever the source.
3. ``paperclub run SUITE --tier smoke`` for every suite, each in its own container with no network,
   a results directory of this build mounted at /work/results.
4. From the host: every summary finished (no error or interrupt, every seed done) and names the image.

It writes results/image/<utc>/image.json (the base, build seconds, image size, each suite's status)
and exits 1 if a smoke run failed to finish or did not name the image, 2 if the image could not be
built. Needs a Docker daemon that answers, and BuildKit (``docker buildx``, or a client older than 23
with DOCKER_BUILDKIT=1); debootstrap and root for the local base.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import http.server
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "containers" / "Dockerfile.cpu"
LOCAL_BASE = "paperclub-base:bookworm-debootstrap"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = "python3,python3-venv,ca-certificates,passwd"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
WHEELS_PORT = 38421  # where the local wheels are served during the build
SUITES = ("pacbayes", "ssd", "infcompute", "lewm", "dmpc")
CONTAINER_UID = 1000  # the image's user (Dockerfile.cpu)
PUBLISHED = "paperclub.publish_state"  # runners.tracking.STATE_TAG: "complete" once a run is in MLflow


def say(msg: str) -> None:
    print(f"image: {msg}", flush=True)


def pinned_base() -> str:
    """The default of the Dockerfile's BASE_IMAGE argument: the pinned base, by digest."""
    m = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    if not m:
        raise SystemExit("image: Dockerfile.cpu declares no ARG BASE_IMAGE default")
    return m[1]


def docker(*args: str, check: bool = True, timeout: float | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, timeout=timeout, text=True, **kw)


def daemon_answers() -> str | None:
    """None if a Docker daemon answers, else why not (one line)."""
    if not shutil.which("docker"):
        return "no docker client on PATH"
    try:
        out = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20, capture_output=True)
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    if out.returncode != 0 or not out.stdout.strip():
        return "no Docker daemon answers (" + (out.stderr.strip().splitlines() or ["docker info failed"])[-1] + ")"
    return None


def build_command() -> tuple[list[str], dict[str, str]]:
    """A build command with BuildKit (secrets and mounts): buildx where installed; otherwise a client
    older than 23 on PATH, whose plain `build` uses the daemon's BuildKit under DOCKER_BUILDKIT=1."""
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode == 0:
        return ["docker", "buildx", "build", "--load"], {}
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        client = Path(folder) / "docker"
        if not client.is_file():
            continue
        version = subprocess.run([str(client), "version", "--format", "{{.Client.Version}}"],
                                 capture_output=True, text=True).stdout.strip()
        if version and int(version.split(".")[0]) < 23:
            return [str(client), "build"], {"DOCKER_BUILDKIT": "1"}
    raise SystemExit("image: the build needs BuildKit: install docker buildx, or a Docker client older than 23 "
                     "(Debian bookworm's docker.io)")


def base_image(work: Path) -> tuple[str, str]:
    """(image, how it was obtained): the pinned base if it can be pulled, else the local bookworm base."""
    pinned = pinned_base()
    try:
        pulled = docker("pull", pinned, check=False, timeout=300, capture_output=True)
    except subprocess.TimeoutExpired:
        pulled = None
    if pulled is not None and pulled.returncode == 0:
        return pinned, "pinned base pulled"
    say(f"the pinned base {pinned} cannot be pulled here; using a Debian bookworm base made with debootstrap "
        f"(the same Debian release, Debian's Python 3.11 instead of the python image's 3.11.14)")
    if docker("image", "inspect", LOCAL_BASE, check=False, capture_output=True).returncode == 0:
        return LOCAL_BASE, "local debootstrap base (made earlier)"
    if not shutil.which("debootstrap") or os.geteuid() != 0:
        raise SystemExit("image: making the local base needs debootstrap and root (apt-get install debootstrap)")
    rootfs = work / "rootfs"
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(rootfs),
                    DEBIAN_MIRROR], check=True)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    docker("import", "--change", 'CMD ["/bin/bash"]', "-", LOCAL_BASE, stdin=tar.stdout, capture_output=True)
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    return LOCAL_BASE, "local debootstrap base (made now)"


def ca_bundle() -> str | None:
    """The CA bundle pip uses here (PIP_CERT, pip's configuration, else the system's), for the build secret."""
    cert = os.environ.get("PIP_CERT") or _pip_config("cert")
    for path in (cert, "/etc/ssl/certs/ca-certificates.crt"):
        if path and Path(path).is_file():
            return path
    return None


@functools.cache
def _pip_settings() -> str:
    """What `pip config list` prints here (asked once)."""
    return subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout


def _pip_config(key: str) -> str:
    m = re.search(rf"^(?:global|:env:)\.{re.escape(key)}='([^']*)'", _pip_settings(), re.M)
    return m[1] if m else ""


def wheel_dir() -> Path | None:
    """The local wheel directory pip's configuration names (find-links), if any."""
    for entry in (os.environ.get("PIP_FIND_LINKS") or _pip_config("find-links")).split():
        path = Path(entry.removeprefix("file://"))
        if path.is_dir():
            return path
    return None


@contextlib.contextmanager
def served(folder: Path | None):
    """``folder`` over HTTP on 127.0.0.1 while the build runs (the build shares the host's network); yields its URL."""
    if folder is None:
        yield ""
        return
    handler = functools.partial(_QuietHandler, directory=str(folder))
    try:  # one port, so that the build argument (part of the layer cache's key) stays the same
        server = http.server.ThreadingHTTPServer(("127.0.0.1", WHEELS_PORT), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=15):
            return True
    except OSError:
        return False


def build(ref: str, base: str, work: Path) -> float:
    """Build the image; returns the seconds it took."""
    argv, env = build_command()
    torch_index = TORCH_INDEX if reachable(TORCH_INDEX + "/") else ""
    if not torch_index:
        say(f"{TORCH_INDEX} cannot be reached; torch must come from the local wheels (under the lock's hash)")
    cert = ca_bundle()
    with served(wheel_dir()) as wheels:
        cmd = [*argv, "--network", "host", "-f", str(DOCKERFILE), "-t", ref, "--build-arg", f"BASE_IMAGE={base}",
               "--build-arg", f"IMAGE_REF={ref}", "--build-arg", f"TORCH_INDEX={torch_index}",
               "--build-arg", f"WHEELS={wheels}", *(["--secret", f"id=ca_bundle,src={cert}"] if cert else []),
               str(ROOT)]
        say("building: " + " ".join(cmd))
        start = time.monotonic()
        subprocess.run(cmd, check=True, env={**os.environ, **env})
    return time.monotonic() - start


def smoke(ref: str, results: Path, suites: tuple[str, ...]) -> dict[str, dict]:
    """Every suite's smoke tier in its own container (no network); each summary checked from the host."""
    results.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(results, CONTAINER_UID, CONTAINER_UID)
    else:
        results.chmod(0o777)
    out = {}
    for suite in suites:  # each publishes to the MLflow store in the mounted results/ (runners.tracking)
        start = time.monotonic()
        proc = docker("run", "--rm", "--network", "none", "-v", f"{results.resolve()}:/work/results", ref,
                      "run", suite, "--tier", "smoke", "--out", f"/work/results/{suite}", check=False)
        out[suite] = check_summary(results / suite / "summary.json", ref)
        out[suite].update(exit_code=proc.returncode, seconds=round(time.monotonic() - start, 1))
    for suite, published in published_suites(results / "mlflow.db", out).items():
        out[suite]["published"] = published
        if not published:
            out[suite].update(ok=False, problem=(out[suite]["problem"] + "; " if out[suite]["problem"] else "")
                              + "not published to MLflow inside the image")
        say(f"{suite}: {out[suite]['status']} ({out[suite]['seconds']} s)"
            + ("" if out[suite]["ok"] else ": " + out[suite]["problem"]))
    return out


def published_suites(store: Path, suites) -> dict[str, bool]:
    """Whether each suite's run reached the MLflow store (sqlite) completely, read from the host."""
    done: set[str] = set()
    if store.is_file():
        with contextlib.closing(sqlite3.connect(store)) as db:
            done = {v for (v,) in db.execute(
                "SELECT s.value FROM tags s JOIN tags p ON s.run_uuid = p.run_uuid "
                "WHERE s.key = 'suite' AND p.key = ? AND p.value = 'complete'", (PUBLISHED,))}
    return {suite: suite in done for suite in suites}


def check_summary(path: Path, ref: str) -> dict:
    """Whether a smoke run inside the image finished and says it ran there."""
    if not path.is_file():
        return {"ok": False, "status": "missing", "problem": f"no {path.name} was written"}
    s = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    if s["status"] in ("error", "interrupted") or s["seeds_done"] != s["seeds"]:
        problems.append(f"status {s['status']}, seeds {s['seeds_done']} of {s['seeds']}: {s.get('reason')}")
    if s["env"].get("image") != ref:
        problems.append(f"env.image is {s['env'].get('image')!r}, not {ref!r}")
    return {"ok": not problems, "status": s["status"], "image": s["env"].get("image"),
            "python": s["env"].get("python"), "problem": "; ".join(problems)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("suites", nargs="*", default=list(SUITES), help="suites whose smoke tier runs inside")
    ap.add_argument("--tag", default=None, help="image tag (default paperclub-cpu:<git sha>)")
    args = ap.parse_args(argv)
    why = daemon_answers()
    if why:
        say(why)
        return 2
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "dev"
    ref = args.tag or f"paperclub-cpu:{sha}"
    out_dir = ROOT / "results" / "image" / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir.mkdir(parents=True)
    record: dict = {"image": ref, "complete": False}
    try:
        base, how = base_image(out_dir)
        record.update(base=base, base_source=how)
        record["build_seconds"] = round(build(ref, base, out_dir), 1)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        say(f"the image was not built: {exc}")
        (out_dir / "image.json").write_text(json.dumps(record, indent=1))
        return 2
    record["size_bytes"] = int(docker("image", "inspect", "-f", "{{.Size}}", ref, capture_output=True).stdout)
    say(f"built {ref} on {base} ({how}) in {record['build_seconds']} s, {record['size_bytes'] / 1e9:.2f} GB")
    record["smoke"] = smoke(ref, out_dir / "results", tuple(args.suites))
    record["complete"] = True
    (out_dir / "image.json").write_text(json.dumps(record, indent=1))
    bad = [s for s, r in record["smoke"].items() if not r["ok"]]
    say(f"record: {out_dir / 'image.json'}; " + (f"not finished inside the image: {', '.join(bad)}" if bad
                                                  else f"all {len(record['smoke'])} smoke runs finished inside it"))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
