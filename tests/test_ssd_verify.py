"""paper_ssd: exact verification (distribution tests in the spirit of the official
test_verify_distribution.py) and the paper's closed forms against hand-computed values."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from paper_ssd import theory  # noqa: E402
from paper_ssd.exactness import noise_floor, toy_rounds, tv  # noqa: E402
from paper_ssd.verify import one_hot_proposal, probs, saguaro, verify  # noqa: E402

N = 200_000


def toy(v: int, k: int, seed: int, temperature: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    p = probs(2 * torch.randn(k + 1, v, generator=gen), temperature)
    q = probs(2 * torch.randn(k, v, generator=gen), temperature)
    return p, q, gen


def run_rounds(p, q, gen, **kw):
    return toy_rounds(p, q, N, gen, **kw)


@pytest.mark.parametrize("v", [4, 8, 16])
@pytest.mark.parametrize("case", ["sync", "saguaro_c0.3", "fast_backup", "fixed_chain", "temperature_0.7"])
def test_emitted_tokens_follow_the_target(v, case):
    temperature = 0.7 if case == "temperature_0.7" else 1.0
    p, q, gen = toy(v, 2, seed=v, temperature=temperature)
    kw = {"sync": {}, "temperature_0.7": {}, "saguaro_c0.3": {"c": 0.3},
          "fast_backup": {"proposal": "random"}, "fixed_chain": {"proposal": "1"}}[case]
    draft, verdict, first = run_rounds(p, q, gen, **kw)
    floor = noise_floor(p[0], N, gen)
    assert tv(first, p[0]) < max(0.01, 5 * floor)
    # given the first token was accepted, the second emitted token follows p_2
    sel = verdict.accepted >= 1
    second = torch.where(verdict.accepted[sel] >= 2, draft[sel, 1], verdict.bonus[sel])
    assert tv(second, p[1]) < max(0.01, 5 * noise_floor(p[1], int(sel.sum()), gen))
    # and after all K accepted, the bonus follows p_{K+1}
    full = verdict.accepted == 2
    if int(full.sum()) > 2000:
        assert tv(verdict.bonus[full], p[2]) < max(0.01, 5 * noise_floor(p[2], int(full.sum()), gen))


def test_the_test_catches_a_biased_verifier():
    """The official engine's pre-fix behaviour: greedy-match acceptance at temperature > 0 skews
    toward argmax p. Our TV criterion must flag it."""
    gen = torch.Generator().manual_seed(3)
    p, q = torch.tensor([[0.4, 0.3, 0.2, 0.1]]), torch.tensor([[0.25, 0.25, 0.25, 0.25]])
    draft = torch.multinomial(q, N, replacement=True, generator=gen).T
    accept = draft[:, 0] == p[0].argmax()  # emits 0.25 delta_argmax + 0.75 p: P(argmax) 0.40 -> 0.55
    bonus = torch.multinomial(p[0], N, replacement=True, generator=gen)
    first = torch.where(accept, draft[:, 0], bonus)
    assert tv(first, p[0]) > max(0.01, 5 * noise_floor(p[0], N, gen))


def test_greedy_is_argmax_matching():
    logits_p = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    p = probs(logits_p, 0.0)[None]
    draft = torch.tensor([[1, 2]])  # first matches argmax (1), second does not (argmax 0)
    verdict = verify(draft, one_hot_proposal(draft, 3), p)
    assert verdict.accepted.tolist() == [1] and verdict.bonus.tolist() == [0]
    assert verdict.emitted(draft) == [[1, 0]]
    all_ok = verify(torch.tensor([[1, 0]]), one_hot_proposal(torch.tensor([[1, 0]]), 3), p)
    assert all_ok.emitted(torch.tensor([[1, 0]])) == [[1, 0, 2]]  # bonus from p_{K+1}


def test_no_q_is_the_deterministic_proposal():
    """q=None (greedy drafting, random backup) gives the very verdicts of explicit one-hot q."""
    p, _, gen = toy(6, 3, seed=11)
    draft = torch.randint(6, (5000, 3), generator=gen)
    p = p.expand(5000, 4, 6)
    a = verify(draft, one_hot_proposal(draft, 6), p, torch.Generator().manual_seed(5))
    b = verify(draft, None, p, torch.Generator().manual_seed(5))
    assert torch.equal(a.accepted, b.accepted) and torch.equal(a.bonus, b.bonus)
    assert set(a.accepted.tolist()) == {0, 1, 2, 3}


def test_saguaro_rescales_the_top_f_and_renormalises():
    q = torch.tensor([0.5, 0.3, 0.1, 0.1])
    out = saguaro(q, 2, 0.5)  # top-2 (0.5, 0.3) halved -> 0.25, 0.15, 0.1, 0.1 over 0.6
    assert torch.allclose(out, torch.tensor([0.25, 0.15, 0.1, 0.1]) / 0.6)
    assert torch.equal(saguaro(q, 2, 1.0), q)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        saguaro(q, 2, 1.5)


def test_verify_rejects_inconsistent_inputs():
    p = torch.full((1, 3, 4), 0.25)
    with pytest.raises(ValueError, match="shapes disagree"):
        verify(torch.zeros(1, 3, dtype=torch.long), torch.full((1, 3, 4), 0.25), p)
    q = torch.tensor([[[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]])
    with pytest.raises(ValueError, match="zero probability"):
        verify(torch.zeros(1, 2, dtype=torch.long), q, p)
    with pytest.raises(ValueError, match="temperature"):
        probs(torch.zeros(3), -1.0)


def test_closed_forms_against_hand_values():
    assert theory.expected_tokens_per_round(0.5, 2) == pytest.approx(1.75)  # (1 - 0.125) / 0.5
    assert theory.expected_tokens_per_round(1.0, 4) == 5
    assert theory.uniform_fan_out(3, 2) == [2, 2, 2, 2]
    # Theorem 7: p_hit 0.8, E_hit 3, E_miss 2, T_p 0.5 (hidden), T_b 0.2 -> (2.4 + 0.4) / (0.8 + 0.24)
    assert theory.ssd_speedup(0.8, 3.0, 2.0, 0.5, 0.2) == pytest.approx(2.8 / 1.04)
    assert theory.ssd_speedup(1.0, 3.0, 2.0, 2.0, 0.0) == pytest.approx(1.5)  # draft-bound: T_p > 1
    assert theory.sd_speedup(0.5, 2, 0.25) == pytest.approx(1.75 / 1.5)


def test_geometric_fan_out_follows_theorem_12():
    f = theory.geometric_fan_out(k=4, budget=30, accept_rate=0.7, r=0.5)
    assert sum(f) == 30 and len(f) == 5
    assert all(a >= b for a, b in zip(f[:4], f[1:4], strict=False))  # shrinks with accepted length
    # the all-accepted slot is boosted by (1 - a)^(-1/(1+r)) = 0.3^(-2/3) ~ 2.23 over the geometric trend
    trend = 0.7 ** (4 / 1.5) / 0.7 ** (3 / 1.5)
    assert f[4] > f[3] * trend * 1.5
    with pytest.raises(ValueError, match="acceptance rate"):
        theory.geometric_fan_out(3, 10, 1.0, 0.5)


def test_outcome_prediction_by_hand():
    from paper_ssd.offline import miss_exponent, outcome_prediction

    p = torch.tensor([[0.5, 0.3, 0.2]]).log()
    q = torch.tensor([[0.2, 0.5, 0.3]]).log()
    # overlap 0.2 + 0.3 + 0.2 = 0.7; the residual is all on token 0; the draft ranks 1, 2, 0
    out = outcome_prediction(p, q, 1.0, [1, 2])
    assert out["acceptance"] == pytest.approx(0.7) and out["rejection"] == pytest.approx(0.3)
    assert out["hit"][1] == pytest.approx(0.0) and out["hit"][2] == pytest.approx(1.0)
    greedy = outcome_prediction(p, q, 0.0, [1])  # argmax 0 vs 1: always rejected, bonus 0 = draft's 3rd
    assert greedy["acceptance"] == 0 and greedy["hit"][1] == 0
    # a rejection of a token that is not the draft's top-1: q = (.5, .4, .1), p = (.7, .1, .2). Only
    # x = 1 is ever rejected (e = (0, .3, 0)); the cache then holds the top-1 excluding x, token 0,
    # and the bonus follows r = (.2, 0, .1) / .3: a hit 2/3 of the time (ranks 2..F+1 would say 0)
    out = outcome_prediction(torch.tensor([[0.7, 0.1, 0.2]]).log(), torch.tensor([[0.5, 0.4, 0.1]]).log(), 1.0, [1, 2])
    assert out["rejection"] == pytest.approx(0.3) and out["hit"][1] == pytest.approx(2 / 3)
    assert out["hit"][2] == pytest.approx(1.0)
    fans = [1, 2, 4, 8]
    r, a = miss_exponent(fans, {f: 1 - 0.6 * f ** -0.5 for f in fans})
    assert r == pytest.approx(0.5) and a == pytest.approx(0.6)


def test_stdlib_prompts_are_deterministic_and_of_both_kinds():
    from paper_ssd.prompts import stdlib_prompts

    first, again = stdlib_prompts(5, seed=0), stdlib_prompts(5, seed=0)
    assert first == again and [p["kind"] for p in first] == ["code", "prose", "code", "prose", "code"]
    assert all(p["text"].startswith("def ") and '"""' in p["text"] for p in first if p["kind"] == "code")
    assert all(150 <= len(p["text"]) <= 400 for p in first if p["kind"] == "prose")
    assert stdlib_prompts(5, seed=1) != first
    assert [p["kind"] for p in stdlib_prompts(1)] == ["code"] and stdlib_prompts(0) == []  # no prose asked: none read


@pytest.mark.parametrize("c", [1.0, 0.4])
def test_outcome_prediction_matches_simulated_rounds(c):
    """The closed-form hit rate against rounds simulated as the engine plays them: x drawn from
    the (Saguaro-rescaled) q, the exact test, the bonus from the residual, and the cache's
    candidates = the draft's top-F by logits without x."""
    from paper_ssd.offline import outcome_prediction

    gen = torch.Generator().manual_seed(7)
    v, n = 8, 400_000
    p_logits, q_logits = 1.5 * torch.randn(1, v, generator=gen), 1.5 * torch.randn(1, v, generator=gen)
    fans = [1, 2, 3]
    exact = outcome_prediction(p_logits, q_logits, 1.0, fans, c=c, saguaro_fan=2)
    p, q = probs(p_logits, 1.0)[0], saguaro(probs(q_logits, 1.0), 3, c)[0]
    x = torch.multinomial(q, n, replacement=True, generator=gen)
    rejected = torch.rand(n, generator=gen) >= (p[x] / q[x]).clamp(max=1)
    residual = (p - q).clamp(min=0)
    bonus = torch.multinomial(residual / residual.sum(), n, replacement=True, generator=gen)
    order = q_logits[0].argsort(descending=True)
    for f in fans:
        ranked = order[None].expand(n, v)
        keep = ranked != x[:, None]
        candidates = ranked[keep].view(n, v - 1)[:, :f]  # top-F without x
        hit = (candidates == bonus[:, None]).any(-1)
        assert float(hit[rejected].float().mean()) == pytest.approx(exact["hit"][f], abs=0.01)
    assert float(rejected.float().mean()) == pytest.approx(exact["rejection"], abs=0.005)


def test_theorem7_on_measured_stats_by_hand():
    from paper_ssd.engine import Stats

    st = Stats(new_tokens=30, rounds=10, steps=10, verify_s=1.0, decode_s=3.0, predicted=9, hits=6,
               tokens_on_hit=24, draft_busy_s=0.5, backup_s=0.3)
    t7 = theory.ssd_model_on_measured(st)
    # p = 6/9, E_hit = 24/6 = 4, E_miss = 6/(10-6) = 1.5, t_verify 0.1 s, T_p = 0.05/0.1, T_b = (0.3/3)/0.1
    assert (t7["t_primary"], t7["t_backup"]) == (pytest.approx(0.5), pytest.approx(1.0))
    assert t7["speedup_over_one_verify"] == pytest.approx((2 / 3 * 4 + 1 / 3 * 1.5) / (2 / 3 + 1 / 3 * 2))
    assert t7["model_tokens_per_s"] == pytest.approx(23.75) and t7["measured_tokens_per_s"] == 10.0
    assert Stats.total([st, st]).new_tokens == 60 and Stats.total([]).new_tokens == 0


def test_pooled_chunks_equal_one_pass_over_all_positions():
    from paper_ssd.offline import outcome_prediction, pooled

    gen = torch.Generator().manual_seed(3)
    p, q = 2 * torch.randn(30, 12, generator=gen), 2 * torch.randn(30, 12, generator=gen)
    for t, kw in ((1.0, {}), (0.0, {}), (1.0, {"c": 0.3, "saguaro_fan": 2})):
        whole = outcome_prediction(p, q, t, [1, 2, 4], **kw)
        parts = [outcome_prediction(p[a:b], q[a:b], t, [1, 2, 4], **kw) for a, b in ((0, 7), (7, 19), (19, 30))]
        joined = pooled(parts, [7, 12, 11])
        assert joined["acceptance"] == pytest.approx(whole["acceptance"])
        assert joined["rejection"] == pytest.approx(whole["rejection"])
        assert joined["hit"] == pytest.approx(whole["hit"])


def test_jackknife_of_a_mean_gives_back_the_observations():
    from paper_ssd.offline import jackknife

    # with equal sizes and rejection 1, the pooled hit rate is the mean of the parts': pseudo-values are the parts
    parts = [{"acceptance": 0.0, "rejection": 1.0, "hit": {1: h}} for h in (0.2, 0.5, 0.6)]
    assert jackknife(lambda v: v["hit"][1], parts, [10, 10, 10]) == pytest.approx([0.2, 0.5, 0.6])
