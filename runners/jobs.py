"""Fan a suite's inner sweep (many independent training runs) out to workers.

One interface, three backends, chosen by config and never by the suite's code:

- ``inline``: in this process, one job after another (one worker, a GPU, or debugging);
- ``process``: a local pool of spawned processes (the CPU tiers: 2 single-thread workers);
- ``submitit``: one job per run through submitit, the engine under Hydra's submitit launcher
  (``cluster=slurm`` on a cluster, ``local`` for subprocesses, ``debug`` in-process);
- ``ray``: one remote task per run on a Ray cluster (``ray.init(address=...)``).

Jobs are a picklable function of one picklable argument; ``submit`` returns a
``concurrent.futures.Future`` for every backend, so callers use ``as_completed`` and
``result()`` the same way everywhere. ``run_graph`` runs jobs that need other jobs' results
(train models, then evaluate agents built from them) with no barrier between the stages: a job
starts as soon as what it needs has finished and a worker is free, the one heading the longest
remaining chain of work first.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("inline", "process", "submitit", "ray")


def _with_init(initializer: Callable | None, fn: Callable, arg: Any) -> Any:
    if initializer is not None:
        initializer()
    return fn(arg)


def _worker_init(parent: int, initializer: Callable | None) -> None:
    """A local pool worker ends with the process that made it, even one killed outright (SIGKILL leaves
    no chance to shut the pool down): a daemon thread watches for the worker being handed to another
    parent and then ends it as SIGTERM would."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()
    if initializer is not None:
        initializer()


@dataclass(frozen=True)
class Task:
    """One job of a graph: ``fn(arg(done))``, where ``done`` maps each finished task's name to its
    result; it starts once every task named in ``after`` has finished. ``cost`` is its expected
    duration in any one unit (seconds, say): only ratios matter, for the order in which ready tasks start."""

    fn: Callable
    arg: Callable[[dict], Any]
    after: tuple[str, ...] = ()
    cost: float = 1.0


def chain_costs(tasks: dict[str, Task]) -> dict[str, float]:
    """Each task's cost plus the costliest chain of tasks waiting on it (its "bottom level"): started in
    decreasing order of this, the long chains start first and the workers tend to finish together."""
    unknown = sorted({d for t in tasks.values() for d in t.after if d not in tasks})
    if unknown:
        raise ValueError(f"tasks wait on unknown tasks: {', '.join(unknown)}")
    waiting = {name: [n for n, t in tasks.items() if name in t.after] for name in tasks}
    level: dict[str, float] = {}

    def visit(name: str, path: tuple[str, ...]) -> float:
        if name in path:
            raise ValueError(f"tasks wait on each other in a cycle: {' -> '.join(path[path.index(name):] + (name,))}")
        if name not in level:
            level[name] = tasks[name].cost + max((visit(n, path + (name,)) for n in waiting[name]), default=0.0)
        return level[name]

    for name in tasks:
        visit(name, ())
    return level


class JobPool:
    def __init__(self, kind: str = "process", workers: int = 2, initializer: Callable | None = None,
                 options: dict | None = None, folder: str | Path = "jobs"):
        if kind not in KINDS:
            raise ValueError(f"unknown executor {kind!r}; use one of {', '.join(KINDS)}")
        self.kind, self.workers, self.initializer = kind, max(1, int(workers)), initializer
        self._lock = threading.Lock()
        options = dict(options or {})
        if kind == "inline":
            self._pool = None
            if initializer is not None:
                initializer()
        elif kind == "process":
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=functools.partial(_worker_init, os.getpid(), initializer))
        elif kind == "submitit":
            try:
                import submitit
            except ImportError as err:
                raise RuntimeError("executor=submitit needs submitit: pip install 'paperclub[slurm]'") from err
            self._submitit = (submitit, str(folder), options.pop("cluster", None), options)
            self._executors: dict[int | None, Any] = {}
            self._executor = self._executor_for(None)
            # one waiting thread per job in flight; the cluster's scheduler does the real queuing
            self._pool = cf.ThreadPoolExecutor(self.workers)
        else:
            try:
                import ray
            except ImportError as err:
                raise RuntimeError("executor=ray needs ray: pip install 'paperclub[ray]'") from err
            if not ray.is_initialized():
                ray.init(address=options.pop("address", None), ignore_reinit_error=True)
            self._remote = ray.remote(**options)(_with_init) if options else ray.remote(_with_init)
            self._pool = None

    def _executor_for(self, gpus: int | None):
        """The submitit executor of jobs with ``gpus`` devices (one task per device: a data-parallel
        group), made on first use; None: the pool's options as given."""
        with self._lock:
            if gpus not in self._executors:
                submitit, folder, cluster, options = self._submitit
                executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
                options = options if gpus is None else {**options, "gpus_per_node": gpus, "tasks_per_node": gpus}
                if options:
                    executor.update_parameters(**options)
                self._executors[gpus] = executor
            return self._executors[gpus]

    def submit(self, fn: Callable, arg: Any, gpus: int | None = None) -> cf.Future:
        """Run ``fn(arg)``. ``gpus``: the devices the job needs, one task each on a cluster (submitit:
        ``gpus_per_node`` and ``tasks_per_node``; ray: ``num_gpus``); local pools share what they see."""
        if self.kind == "inline":  # run now; the future is done when it is returned
            fut: cf.Future = cf.Future()
            try:
                fut.set_result(fn(arg))
            except BaseException as err:  # re-raised by .result(), as from a worker
                if isinstance(err, KeyboardInterrupt):
                    raise
                fut.set_exception(err)
            return fut
        if self.kind == "process":
            return self._pool.submit(fn, arg)
        if self.kind == "submitit":
            executor = self._executor_for(gpus)
            # a job of several tasks (one per device) returns each task's result: the first rank's is the job's
            return self._pool.submit(lambda: executor.submit(_with_init, self.initializer, fn, arg).results()[0])
        remote = self._remote if gpus is None else self._remote.options(num_gpus=gpus)
        return remote.remote(self.initializer, fn, arg).future()

    def map(self, fn: Callable, args: Iterable[Any], description: str = "jobs") -> list:
        """Results in the order of ``args``; the progress bar follows jobs as they finish."""
        from runners.progress import track

        args = list(args)
        if self.kind == "inline":
            return [fn(a) for a in track(args, description, total=len(args))]
        futures = [self.submit(fn, a) for a in args]
        for _ in track(cf.as_completed(futures), description, total=len(futures)):
            pass
        return [f.result() for f in futures]

    def run_graph(self, tasks: dict[str, Task], description: str = "jobs", known: dict[str, Any] | None = None,
                  on_done: Callable[[str, Any], None] | None = None) -> dict[str, Any]:
        """Run every task once what it waits on has finished, at most ``workers`` at a time, the ready
        task with the costliest chain ahead of it first; returns {name: result}. A task's error is
        raised here once it is seen; tasks still running are waited for by ``close``. ``known``: results
        of tasks that finished before (a resumed run), not run again; ``on_done(name, result)`` is
        called here as each task finishes."""
        from runners.progress import track

        level = chain_costs(tasks)
        known = {k: v for k, v in (known or {}).items() if k in tasks}
        ran = track(self._graph(tasks, level, known, on_done), description, total=len(tasks) - len(known))
        return {**known, **dict(ran)}

    def _graph(self, tasks: dict[str, Task], level: dict[str, float], known: dict[str, Any],
               on_done) -> Iterator[tuple[str, Any]]:
        pending, running, done = {k: t for k, t in tasks.items() if k not in known}, {}, dict(known)
        slots = 1 if self.kind == "inline" else self.workers  # inline tasks finish as they are submitted
        while pending or running:
            ready = sorted((n for n, t in pending.items() if all(d in done for d in t.after)), key=lambda n: -level[n])
            for name in ready[:max(0, slots - len(running))]:
                task = pending.pop(name)
                running[self.submit(task.fn, task.arg(done))] = name
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                name = running.pop(fut)
                done[name] = fut.result()
                if on_done is not None:
                    on_done(name, done[name])
                yield name, done[name]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> JobPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
