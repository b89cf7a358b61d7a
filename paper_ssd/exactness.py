"""Distribution checks for the verifier, after the official test_verify_distribution.py: run many
independent toy rounds and compare the law of the emitted tokens with the target's, in total
variation against the noise floor of as many exact draws (pass: TV < max(0.01, 5 x floor))."""

from __future__ import annotations

import torch

from paper_ssd.verify import Verdict, one_hot_proposal, saguaro, verify


def tv(samples: torch.Tensor, law: torch.Tensor) -> float:
    freq = torch.bincount(samples, minlength=len(law)).double() / len(samples)
    return 0.5 * float((freq - law.double()).abs().sum())


def noise_floor(law: torch.Tensor, n: int, gen: torch.Generator) -> float:
    """TV of n exact draws from the law: what sampling noise alone gives."""
    return tv(torch.multinomial(law, n, replacement=True, generator=gen), law)


def passes(samples: torch.Tensor, law: torch.Tensor, gen: torch.Generator) -> bool:
    return tv(samples, law) < max(0.01, 5 * noise_floor(law, len(samples), gen))


def toy_rounds(p: torch.Tensor, q: torch.Tensor, n: int, gen: torch.Generator, proposal: str = "sample",
               c: float = 1.0, fan_out: int = 2) -> tuple[torch.Tensor, Verdict, torch.Tensor]:
    """n rounds of fixed per-position laws p [K+1, V] (target) and q [K, V] (draft). ``proposal``:
    "sample" (from q, Saguaro-rescaled when C < 1), "random" (SSD's fast backup), or a token id
    (a fixed cached chain), the last two verified as q = delta_x. Returns the draft tokens, the
    verdict and the first emitted token of every round."""
    k, v = q.shape
    if proposal == "sample":
        q_used = saguaro(q, fan_out, c)
        draft = torch.multinomial(q_used, n, replacement=True, generator=gen).T  # [n, K]
        q_rows = q_used.expand(n, k, v)
    elif proposal == "random":
        draft = torch.randint(v, (n, k), generator=gen)
        q_rows = one_hot_proposal(draft, v)
    else:
        draft = torch.full((n, k), int(proposal))
        q_rows = one_hot_proposal(draft, v)
    verdict = verify(draft, q_rows, p.expand(n, k + 1, v), gen)
    first = torch.where(verdict.accepted > 0, draft[:, 0], verdict.bonus)
    return draft, verdict, first


def next_token_law(session, prefix: list[int]) -> torch.Tensor:
    """The target's exact next-token distribution after ``prefix`` (float64)."""
    session.reset()
    return torch.softmax(session.feed(prefix)[-1].double(), -1)


def two_token_pvalues(session, prompt: list[int], samples: list[tuple[int, int]], seed: int = 0,
                      min_expected: float = 5.0) -> tuple[float, float]:
    """End-to-end test of generated pairs (y1, y2) against the target's own law: a chi-square
    p-value for y1 against p(. | prompt), rare tokens pooled into one bin; and a Kolmogorov-Smirnov
    p-value for y2 through the randomised probability integral transform under p(. | prompt, y1),
    which is uniform on [0, 1] exactly when y2 follows the target whatever y1 was."""
    import numpy as np
    from scipy import stats

    n = len(samples)
    counts = np.bincount([a for a, _ in samples], minlength=session.vocab_size)
    expected = next_token_law(session, prompt).numpy() * n
    big = expected >= min_expected
    observed = np.append(counts[big], counts[~big].sum())
    expected = np.append(expected[big], expected[~big].sum())
    chi2 = float(stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue)
    rng = np.random.default_rng(seed)
    laws = {a: next_token_law(session, prompt + [a]) for a in {a for a, _ in samples}}
    u = [float(laws[a][:b].sum()) + rng.random() * float(laws[a][b]) for a, b in samples]
    return chi2, float(stats.kstest(u, "uniform").pvalue)


def greedy_identity(target, prompts: list, streams: dict[str, list], eps: float) -> tuple[list[float], list[dict]]:
    """Per (mode, prompt) stream, 1.0 if it equals AR's; a divergence counts as explained (and is
    logged) only where the target's top-2 logit gap at that position is below ``eps`` (bf16 ties)."""
    ok, divergences = [], []
    for mode, outs in streams.items():
        if mode == "ar":
            continue
        for i, out in enumerate(outs):  # batched modes cover the first prompts
            ref = streams["ar"][i]
            if out == ref:
                ok.append(True)
                continue
            pos = next(j for j, (a, b) in enumerate(zip(ref, out, strict=False)) if a != b)
            target.reset()
            top2 = target.feed(prompts[i] + ref[:pos])[-1].topk(2).values
            gap = float(top2[0] - top2[1])
            divergences.append({"mode": mode, "prompt": i, "position": pos, "top2_gap": gap, "explained": gap < eps})
            ok.append(gap < eps)
    return [float(x) for x in ok], divergences
