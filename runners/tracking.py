"""Publish run directories to MLflow: one parent run per invocation, one child per seed.

results/ files are the source of truth; MLflow mirrors them. Publishing is idempotent:
the parent carries the run's ``paperclub.run_uid`` tag and is looked up before anything is
written; a half-published run (crash mid-publish) is deleted and published again.
A local sqlite store is initialised (its schema migrated) and written under an inter-process
lock beside it, in WAL mode, so parallel runs on one machine all publish (unlocked, MLflow's
migrations race on a fresh store); a failed publish is retried with backoff before it is
reported with the command that repeats it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path

import yaml

from runners.claims import n_label
from runners.config import flatten
from runners.errors import HarnessError
from runners.rundir import CONFIG, SUMMARY, load_summary

UID_TAG = "paperclub.run_uid"
STATE_TAG = "paperclub.publish_state"
# MLflow's limits (mlflow.utils.validation): a param value holds at most 6000 characters; one log_batch
# request at most 1000 metrics and 100 params or tags. Metrics go 900 to a request, a margin under 1000.
MAX_PARAM_LEN = 6000
METRICS_PER_BATCH = 900
PARAMS_PER_BATCH = 100


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(Path('results') / 'mlflow.db').resolve()}"


def experiment_name(suite: str) -> str:
    return f"paperclub/{suite}"


BACKOFF_S = 1.0


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


@contextlib.contextmanager
def store_lock(uri: str):
    """Exclusive across processes for a local sqlite store (a no-op for a server)."""
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _client(uri: str):
    """An MLflow client whose store exists: a sqlite store is created and migrated under the lock,
    then put in WAL mode (readers such as `paperclub ui` no longer block a writer)."""
    # Fail fast against a dead server instead of retrying for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    from mlflow.tracking import MlflowClient

    db = _sqlite_path(uri)
    with store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # the store's creation and migrations happen by here
        if db is not None:
            with contextlib.closing(sqlite3.connect(db)) as conn:  # Python's default busy timeout: 5 s
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
    return client


def retrying(fn, *args, backoff_s: float = BACKOFF_S):
    """``fn(*args)``, tried again after 1, 2, 4 ... s on any error but a HarnessError, up to
    $PAPERCLUB_PUBLISH_RETRIES attempts in all (default 4; publishing is idempotent, so a retry
    after a half-done attempt is safe)."""
    retries = max(1, int(os.environ.get("PAPERCLUB_PUBLISH_RETRIES", "4")))
    for attempt in range(retries):
        try:
            return fn(*args)
        except HarnessError:
            raise
        except Exception:
            if attempt == retries - 1:
                raise
            time.sleep(backoff_s * 2 ** attempt)


def _metrics_batch(client, run_id: str, items: list) -> None:
    for i in range(0, len(items), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=items[i:i + METRICS_PER_BATCH])


def _series_metrics(series: dict, ts: int) -> list:
    """Curves -> MLflow metrics with integer steps; a non-integer x is logged beside as <name>_x."""
    from mlflow.entities import Metric

    out = []
    for name, points in series.items():
        integral = all(float(x).is_integer() for x, _ in points)
        for i, (x, y) in enumerate(points):
            if y is None:  # a non-finite point
                continue
            step = int(x) if integral else i
            out.append(Metric(f"series/{name}", float(y), ts, step))
            if not integral:
                out.append(Metric(f"series/{name}_x", float(x), ts, step))
    return out


def publish_run(run_dir: Path, uri: str | None = None) -> tuple[str, str]:
    """Publish one run dir. Returns (parent run id, "published" | "already published")."""
    run_dir = Path(run_dir)
    summary = load_summary(run_dir)
    uri = uri or tracking_uri()
    client = _client(uri)
    with store_lock(uri):
        return _publish(client, run_dir, summary)


def _publish(client, run_dir: Path, summary: dict) -> tuple[str, str]:
    from mlflow.entities import Metric, Param

    name = experiment_name(summary["suite"])
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else client.create_experiment(name)
    uid = summary["run_uid"]
    found = client.search_runs([exp_id], filter_string=f"tags.`{UID_TAG}` = '{uid}'", max_results=1000)
    if any(r.data.tags.get(STATE_TAG) == "complete" and "mlflow.parentRunId" not in r.data.tags for r in found):
        parent = next(r for r in found if "mlflow.parentRunId" not in r.data.tags)
        return parent.info.run_id, "already published"
    for r in found:  # leftovers of an interrupted publish
        client.delete_run(r.info.run_id)

    ts = int(time.time() * 1000)
    tags = {
        UID_TAG: uid, STATE_TAG: "partial", "suite": summary["suite"], "tier": summary["tier"],
        "hw_class": summary["hw_class"], "git_sha": summary["env"]["git_sha"], "status": summary["status"],
        "suite_version": str(summary["suite_version"]), "image": summary["env"].get("image", ""),
        "run_dir": str(run_dir.resolve()), "started_at": summary["started_at"],
    }
    tags.update({f"claim.{c['id']}": c["status"] for c in summary["claims"]})
    tags.update({f"claim.{c['id']}.n": n_label(c) for c in summary["claims"]})
    tags.update({f"invariant.{i['id']}": i["status"] for i in summary.get("invariants", [])})
    tags.update({f"input.{k}": ",".join(str(v)[:12] for v in vs)[:MAX_PARAM_LEN] for k, vs in summary.get("inputs", {}).items()})
    parent = client.create_run(exp_id, run_name=f"{summary['suite']}-{summary['tier']}-{summary['started_at']}",
                               tags=tags, start_time=ts)
    pid = parent.info.run_id
    config = yaml.safe_load((run_dir / CONFIG).read_text()) if (run_dir / CONFIG).exists() else {}
    params = [Param(k, str(v)[:MAX_PARAM_LEN]) for k, v in flatten(config or {}).items()]
    params += [Param("tier", summary["tier"]), Param("seeds", json.dumps(summary["seeds"]))]
    for i in range(0, len(params), PARAMS_PER_BATCH):
        client.log_batch(pid, params=params[i:i + PARAMS_PER_BATCH])
    _metrics_batch(client, pid, [Metric(k, float(v), ts, 0) for k, v in summary["metrics"].items()
                                 if v is not None])
    for name_ in [SUMMARY, CONFIG, "events.jsonl", *summary["figures"]]:
        if (run_dir / name_).is_file():
            client.log_artifact(pid, str(run_dir / name_))

    for seed in summary["seeds_done"]:
        seed_file = run_dir / f"seed_{seed}" / "metrics.json"
        if not seed_file.is_file():
            continue
        rec = json.loads(seed_file.read_text())
        child = client.create_run(exp_id, run_name=f"seed {seed}", start_time=ts, tags={
            "mlflow.parentRunId": pid, UID_TAG: uid, "suite": summary["suite"], "tier": summary["tier"],
            "hw_class": summary["hw_class"], "seed": str(seed),
            **{f"input.{k}": str(v) for k, v in rec.get("inputs", {}).items()}})
        cid = child.info.run_id
        client.log_batch(cid, params=[Param("seed", str(seed))])
        # a non-finite value is written as null (NaN is not JSON): left out here, as in the parent
        items = [Metric(k, float(v), ts, 0) for k, v in rec["metrics"].items() if v is not None]
        items += [Metric("wall_s", float(rec["wall_s"]), ts, 0)]
        _metrics_batch(client, cid, items + _series_metrics(rec.get("series", {}), ts))
        client.log_artifact(cid, str(seed_file))
        client.set_terminated(cid)
    client.set_tag(pid, STATE_TAG, "complete")
    client.set_terminated(pid, status="FINISHED" if summary["status"] in ("pass", "inconclusive", "skipped")
                          else "FAILED")
    return pid, "published"


def try_publish(run_dir: Path, uri: str | None = None) -> tuple[bool, str]:
    """Publish, but never fail the run: returns (ok, one-line message)."""
    uri = uri or tracking_uri()
    try:
        pid, state = retrying(publish_run, run_dir, uri)
    except HarnessError:
        raise
    except Exception as exc:  # store locked, server down, bad URI ...
        first = " ".join(str(exc).split())[:300]
        return False, (f"MLflow publish to {uri} failed ({type(exc).__name__}: {first}); results are on disk; "
                       f"publish later with: paperclub publish {run_dir}")
    return True, f"MLflow: {state} run {pid} in experiment {experiment_name(load_summary(run_dir)['suite'])} ({uri})"
