"""Harness hot paths: claim evaluation and summary validation (run with `nox -s bench`)."""

import random

from runners.api import Claim
from runners.claims import evaluate
from runners.rundir import schema_errors


def test_evaluate_100_claims(benchmark):
    rng = random.Random(0)
    claims = [Claim(f"c{i}", f"m{i}", "ge", {"small": 0.5}) for i in range(100)]
    samples = [[rng.random() for _ in range(5)] for _ in claims]
    rows = benchmark(lambda: [evaluate(c, s, "small") for c, s in zip(claims, samples, strict=True)])
    assert len(rows) == 100


def test_validate_summary(benchmark):
    summary = {
        "schema_version": 1, "run_uid": "0" * 32, "suite": "x", "suite_version": 1, "tier": "small",
        "hw_class": "cpu-2c", "status": "pass", "seeds": [0, 1, 2], "seeds_done": [0, 1, 2],
        "metrics": {f"m{i}": 0.5 for i in range(200)}, "samples": {f"m{i}": [0.5] * 3 for i in range(200)},
        "claims": [], "figures": [], "env": {"git_sha": "", "python": "", "torch": "", "device": ""},
        "started_at": "", "wall_s": 1.0,
    }
    assert benchmark(schema_errors, summary) == []
