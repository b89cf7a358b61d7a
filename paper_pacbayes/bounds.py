"""Generalization bounds for a point-mass posterior on a compressed hypothesis.

KL is in nats: for a hypothesis coded with C bits under a prefix-free code,
KL(Q || P) = C * ln 2 (Solomonoff-style prior P(h) = 2^-C). 0-1 loss, so Delta = 1.

- catoni(err, kl, n, delta, lam): Catoni (2007) at a fixed lambda.
- catoni_opt(...): lambda optimised, paying for the optimisation with a union bound over a
  geometric grid (as in Lotfi et al. 2022, ``pac_bayes_bound_opt``).
- mcallester, occam (Hoeffding + union bound, Wilson 2025 eq. for countable H), convexity.
"""

from __future__ import annotations

import math

LN2 = math.log(2.0)


def kl_from_bits(bits: float) -> float:
    return bits * LN2


def inv_laplace(a: float, q: float) -> float:
    """(1 - exp(-a q)) / (1 - exp(-a)): Catoni's inverse for the Bernoulli Laplace transform."""
    return math.expm1(-a * q) / math.expm1(-a)


def catoni(train_err: float, kl: float, n: int, delta: float, lam: float) -> float:
    """R <= [1 - exp(-(lam/n) R_hat - (KL + ln 1/delta)/n)] / (1 - exp(-lam/n)), for one fixed lam."""
    q = train_err + (kl + math.log(1 / delta)) / lam
    return min(1.0, inv_laplace(lam / n, q))


def catoni_opt(train_err: float, kl: float, n: int, delta: float, alpha: float = 1e-4) -> float:
    """Catoni's bound minimised over g = ln(lam) in (0, 4 + ln n), valid for all lam at once.

    The union over the geometric grid lam_k = (1+alpha)^k costs 2 ln(2 + g / ln(1+alpha))
    nats and a factor (1+alpha) on the complexity term.
    """
    from scipy.optimize import minimize_scalar

    def bound(g: float) -> float:
        lam = math.exp(g)
        q = train_err + (1 + alpha) / lam * (kl + math.log(1 / delta) + 2 * math.log(2 + g / math.log1p(alpha)))
        return inv_laplace(lam / n, q)

    res = minimize_scalar(bound, bounds=(1e-9, 4 + math.log(n)), method="bounded",
                          options={"xatol": 1e-10})
    return min(1.0, float(res.fun))


def mcallester(train_err: float, kl: float, n: int, delta: float) -> float:
    return min(1.0, train_err + math.sqrt((kl + math.log(1 / delta) + math.log(n)) / (2 * n - 1)))


def occam(train_err: float, kl: float, n: int, delta: float, loss_range: float = 1.0) -> float:
    """R <= R_hat + Delta sqrt((ln 1/P(h) + ln 1/delta) / 2n): Hoeffding with a union bound."""
    return min(1.0, train_err + loss_range * math.sqrt((kl + math.log(1 / delta)) / (2 * n)))


def convexity(train_err: float, kl: float, n: int, delta: float) -> float:
    """R <= R_hat/(1 - lam/2) + b/(n lam (1 - lam/2)) at its closed-form optimal lam."""
    b = kl + math.log(1 / delta) + math.log(2 * math.sqrt(n))
    lam = 2 / (math.sqrt(2 * n * train_err / b + 1) + 1)
    return min(1.0, train_err / (1 - lam / 2) + b / (n * lam * (1 - lam / 2)))
