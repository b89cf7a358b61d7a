"""Every claim of every suite can fail, and every invariant can be violated: for each, values are fed
to the evaluator that must make it fail. A statement that holds by construction belongs in the
suite's invariants, never in its claims."""

from __future__ import annotations

import pytest

from runners import registry
from runners.api import Claim
from runners.claims import check_invariant, evaluate

SUITES = [registry.load(name) for name in sorted(registry.BUILTIN)]
CLAIMS = [(s.name, c, tier) for s in SUITES for c in s.claims for tier in c.threshold]
INVARIANTS = [(s.name, inv) for s in SUITES for inv in s.invariants]


def failing_values(claim: Claim, threshold: float) -> list[float]:
    """Three units on the wrong side of the threshold (one, for an exactness claim, is enough)."""
    if claim.rule == "rate":
        return [0.0] * 40 if claim.op == "ge" else [1.0] * 40
    if claim.scale == "log":
        wrong = [threshold / 10, threshold / 11, threshold / 12] if claim.op == "ge" else [threshold * 10] * 3
    elif claim.op == "approx":
        far = threshold + 10 * max(claim.abs_tol, claim.rel_tol * abs(threshold)) + 1
        wrong = [far, far + 0.01, far + 0.02]
    else:
        step = 1 + abs(threshold)
        wrong = [threshold + sign * step * k for k in (1.0, 1.1, 1.2) for sign in [-1 if claim.op == "ge" else 1]]
    return [threshold, threshold, wrong[0]] if claim.rule == "exact" else wrong


@pytest.mark.parametrize(("suite", "claim", "tier"), CLAIMS, ids=[f"{s}:{c.id}@{t}" for s, c, t in CLAIMS])
def test_claim_can_fail(suite, claim, tier):
    values = failing_values(claim, claim.threshold[tier])
    row = evaluate(claim, values, tier, labels=[f"unit {i}" for i in range(len(values))])
    assert row["status"] == "fail", (suite, claim.id, row)


def test_every_suite_names_its_units_and_no_claim_is_an_invariant():
    for suite in SUITES:
        invariant_metrics = {i.metric for i in suite.invariants}
        for claim in suite.claims:
            assert claim.unit and claim.rule in ("mean", "exact", "rate"), claim.id
            # the same metric may feed an invariant (a weak bound) and a claim (a stronger one) only
            # where the claim's threshold is beyond the invariant's bound
            for inv in suite.invariants:
                if inv.metric == claim.metric:
                    assert all(t > inv.bound if inv.op == "ge" else t < inv.bound
                               for t in claim.threshold.values()), (claim.id, inv.id)
        assert invariant_metrics.isdisjoint({c.metric for c in suite.claims if c.op == "approx"})


@pytest.mark.parametrize(("suite", "inv"), INVARIANTS, ids=[f"{s}:{i.id}" for s, i in INVARIANTS])
def test_invariant_can_be_violated(suite, inv):
    wrong = inv.bound - 1 if inv.op == "ge" else inv.bound + 1
    assert check_invariant(inv, [inv.bound, wrong], ["seed 0", "seed 1"])["status"] == "violated"
    assert check_invariant(inv, [inv.bound, inv.bound], ["seed 0", "seed 1"])["status"] == "held"
