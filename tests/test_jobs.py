"""runners.jobs: the same jobs give the same results on every backend available here."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runners.jobs import JobPool, Task, chain_costs


@pytest.mark.parametrize("kind, options", [("inline", {}), ("process", {}), ("submitit", {"cluster": "debug"}),
                                           ("submitit", {"cluster": "local", "timeout_min": 5})])
def test_backends_return_results_in_order(kind, options, tmp_path):
    if kind == "submitit":
        pytest.importorskip("submitit")
    with JobPool(kind, workers=2, options=options, folder=tmp_path / "jobs") as pool:
        assert pool.map(math.factorial, [5, 3, 4], "factorials") == [120, 6, 24]
        assert pool.submit(math.factorial, 6).result() == 720


def test_inline_jobs_raise_their_error_from_result():
    with JobPool("inline") as pool:
        fut = pool.submit(math.factorial, -1)
    with pytest.raises(ValueError, match="not defined for negative values"):
        fut.result()


def test_bad_executor_and_missing_backend_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown executor 'dask'; use one of inline, process, submitit, ray"):
        JobPool("dask")
    try:
        import ray  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match=r"executor=ray needs ray: pip install 'paperclub\[ray\]'"):
            JobPool("ray")


def test_graph_tasks_get_their_inputs_results_and_the_longest_chain_starts_first():
    """With one worker the start order is the order of decreasing chain cost among ready tasks: 'a' heads
    a chain of cost 1 + 10 and starts before 'b' (cost 5) although 'b' is dearer on its own."""
    started = []

    def job(x):
        started.append(x[0])
        return x

    tasks = {"b": Task(job, lambda done: ("b", 2), cost=5.0),
             "a": Task(job, lambda done: ("a", 3), cost=1.0),
             "c": Task(job, lambda done: ("c", done["a"][1] * done["b"][1]), after=("a", "b"), cost=1.0),
             "d": Task(job, lambda done: ("d", done["a"][1] + 1), after=("a",), cost=10.0)}
    assert chain_costs(tasks) == {"b": 6.0, "a": 11.0, "c": 1.0, "d": 10.0}
    with JobPool("inline") as pool:
        out = pool.run_graph(tasks, "graph")
    assert started == ["a", "d", "b", "c"]
    assert out == {"a": ("a", 3), "b": ("b", 2), "c": ("c", 6), "d": ("d", 4)}


def test_graph_on_worker_processes_passes_results_on():
    tasks = {"f5": Task(math.factorial, lambda done: 5),
             "f3": Task(math.factorial, lambda done: 3),
             "f5f3": Task(math.factorial, lambda done: done["f3"], after=("f3",)),
             "sqrt": Task(math.isqrt, lambda done: done["f5"] * done["f3"], after=("f5", "f3"))}
    with JobPool("process", workers=2) as pool:
        assert pool.run_graph(tasks) == {"f5": 120, "f3": 6, "f5f3": 720, "sqrt": 26}


def test_graph_errors_name_the_bad_tasks():
    with pytest.raises(ValueError, match="tasks wait on unknown tasks: nope"):
        chain_costs({"a": Task(math.factorial, lambda d: 1, after=("nope",))})
    with pytest.raises(ValueError, match="in a cycle: a -> b -> a"):
        chain_costs({"a": Task(math.factorial, lambda d: 1, after=("b",)),
                     "b": Task(math.factorial, lambda d: 1, after=("a",))})
    with JobPool("inline") as pool, pytest.raises(ValueError, match="not defined for negative values"):
        pool.run_graph({"a": Task(math.factorial, lambda d: -1)})


def test_a_resumed_graph_runs_only_what_had_not_finished():
    calls, finished = [], []

    def job(arg):
        name, inputs = arg
        calls.append(name)
        return name + "(" + ",".join(inputs) + ")"

    tasks = {"a": Task(job, lambda done: ("a", [])),
             "b": Task(job, lambda done: ("b", [done["a"]]), after=("a",)),
             "c": Task(job, lambda done: ("c", [done["a"], done["b"]]), after=("a", "b"))}
    with JobPool("inline", 1) as pool:
        done = pool.run_graph(tasks, known={"a": "a(kept)"}, on_done=lambda n, r: finished.append((n, r)))
    assert calls == ["b", "c"]  # a finished in the run that was cut off: its kept result is used
    assert done == {"a": "a(kept)", "b": "b(a(kept))", "c": "c(a(kept),b(a(kept)))"}
    assert finished == [("b", "b(a(kept))"), ("c", "c(a(kept),b(a(kept)))")]


def test_a_killed_parent_takes_its_pool_workers_with_it(tmp_path):
    """SIGKILL gives the pool no shutdown: its spawned workers still end (within their watch's second)
    instead of finishing their jobs for nobody."""
    script = tmp_path / "parent.py"
    script.write_text(f"""
import os, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from runners.jobs import JobPool

def job(path):
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    pool = JobPool("process", 1)
    pool.submit(job, {str(tmp_path / "worker.pid")!r})
    time.sleep(120)
""")
    parent = subprocess.Popen([sys.executable, str(script)])
    pid_file = tmp_path / "worker.pid"
    for _ in range(300):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the pool's worker outlived its killed parent")
