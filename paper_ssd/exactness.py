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
