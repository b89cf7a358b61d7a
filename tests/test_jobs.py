"""runners.jobs: the same jobs give the same results on every backend available here."""

from __future__ import annotations

import math

import pytest

from runners.jobs import JobPool


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
