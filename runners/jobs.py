"""Fan a suite's inner sweep (many independent training runs) out to workers.

One interface, three backends, chosen by config and never by the suite's code:

- ``inline``: in this process, one job after another (one worker, a GPU, or debugging);
- ``process``: a local pool of spawned processes (the CPU tiers: 2 single-thread workers);
- ``submitit``: one job per run through submitit, the engine under Hydra's submitit launcher
  (``cluster=slurm`` on a cluster, ``local`` for subprocesses, ``debug`` in-process);
- ``ray``: one remote task per run on a Ray cluster (``ray.init(address=...)``).

Jobs are a picklable function of one picklable argument; ``submit`` returns a
``concurrent.futures.Future`` for every backend, so callers use ``as_completed`` and
``result()`` the same way everywhere.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

KINDS = ("inline", "process", "submitit", "ray")


def _with_init(initializer: Callable | None, fn: Callable, arg: Any) -> Any:
    if initializer is not None:
        initializer()
    return fn(arg)


class JobPool:
    def __init__(self, kind: str = "process", workers: int = 2, initializer: Callable | None = None,
                 options: dict | None = None, folder: str | Path = "jobs"):
        if kind not in KINDS:
            raise ValueError(f"unknown executor {kind!r}; use one of {', '.join(KINDS)}")
        self.kind, self.workers, self.initializer = kind, max(1, int(workers)), initializer
        options = dict(options or {})
        if kind == "inline":
            self._pool = None
            if initializer is not None:
                initializer()
        elif kind == "process":
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=initializer)
        elif kind == "submitit":
            try:
                import submitit
            except ImportError as err:
                raise RuntimeError("executor=submitit needs submitit: pip install 'paperclub[slurm]'") from err
            self._executor = submitit.AutoExecutor(folder=str(folder), cluster=options.pop("cluster", None))
            if options:
                self._executor.update_parameters(**options)
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

    def submit(self, fn: Callable, arg: Any) -> cf.Future:
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
            return self._pool.submit(lambda: self._executor.submit(_with_init, self.initializer, fn, arg).result())
        return self._remote.remote(self.initializer, fn, arg).future()

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

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> JobPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
