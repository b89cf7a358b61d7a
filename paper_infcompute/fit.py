"""Power laws L(x) = A / x^alpha + E, fitted robustly, with honest uncertainty.

Variable projection: for a fixed alpha the model is linear in (A, E), so scan alpha on a log
grid with exact least squares for (A, E) under A >= 0 and 0 <= E <= min(y), then polish all
three with scipy's least_squares inside those bounds. x is divided by its smallest value
(report A in those units). Uncertainty: leave-one-out refits and a seed bootstrap (refit on
resampled per-seed losses). ``stable(gap)`` refuses an asymptote whose spread is larger than
the gap it is used to claim.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PowerLaw:
    A: float
    alpha: float
    E: float
    x0: float  # x was divided by this before fitting
    rmse: float
    loo_E: list[float] = field(default_factory=list)
    boot_E: list[float] = field(default_factory=list)
    loo: list[PowerLaw] = field(default_factory=list, repr=False)  # the leave-one-out refits themselves

    def __call__(self, x) -> np.ndarray:
        return self.A / (np.asarray(x, dtype=float) / self.x0) ** self.alpha + self.E

    @property
    def E_spread(self) -> float:
        """Largest distance of any leave-one-out or bootstrap asymptote from E."""
        others = self.loo_E + self.boot_E
        return max((abs(e - self.E) for e in others), default=float("nan"))

    def stable(self, gap: float) -> bool:
        """True when every refit moves E by less than ``gap`` (a claim of size gap is safe)."""
        return bool(np.isfinite(self.E_spread) and self.E_spread < abs(gap))

    def as_dict(self) -> dict:
        return {"A": self.A, "alpha": self.alpha, "E": self.E, "x0": self.x0, "rmse": self.rmse,
                "E_spread": self.E_spread, "loo_E": self.loo_E, "boot_E": self.boot_E}


def _linear_AE(u: np.ndarray, y: np.ndarray, e_max: float) -> tuple[float, float]:
    """min ||A u + E - y|| with A >= 0, 0 <= E <= e_max (u = x^-alpha)."""
    best = None
    a_mat = np.stack([u, np.ones_like(u)], axis=1)
    (a, e), *_ = np.linalg.lstsq(a_mat, y, rcond=None)
    candidates = [(a, e)]
    for e_fixed in (0.0, e_max):  # E on a bound: A by 1-D least squares
        a1 = max(0.0, float(u @ (y - e_fixed) / (u @ u)))
        candidates.append((a1, e_fixed))
    a0 = 0.0  # A on its bound: E is the clipped mean
    candidates.append((a0, float(np.clip(y.mean(), 0.0, e_max))))
    for a, e in candidates:
        if a < 0 or not 0 <= e <= e_max:
            continue
        r = float(np.sum((a * u + e - y) ** 2))
        if best is None or r < best[0]:
            best = (r, float(a), float(e))
    return best[1], best[2]


def _fit_once(x: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> tuple[float, float, float]:
    from scipy.optimize import least_squares

    e_max = float(y.min())
    scores = []
    for alpha in alphas:
        u = x ** -alpha
        a, e = _linear_AE(u, y, e_max)
        scores.append((float(np.sum((a * u + e - y) ** 2)), a, alpha, e))
    _, a, alpha, e = min(scores)
    res = least_squares(lambda p: p[0] * x ** -p[1] + p[2] - y, x0=[a, alpha, min(max(e, 0.0), e_max)],
                        bounds=([0.0, 0.0, 0.0], [np.inf, 5.0, e_max + 1e-12]), method="trf")
    return float(res.x[0]), float(res.x[1]), float(res.x[2])


def fit_power_law(x, y, per_seed: np.ndarray | None = None, n_boot: int = 200, seed: int = 0,
                  alphas: np.ndarray | None = None) -> PowerLaw:
    """Fit y = A / (x/x0)^alpha + E. ``per_seed`` ([seeds, len(x)]) enables the seed bootstrap."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(x) < 3:
        raise ValueError(f"a power law with an asymptote needs >= 3 points, got {len(x)}")
    alphas = np.geomspace(0.02, 5.0, 200) if alphas is None else alphas
    x0 = float(x.min())
    xs = x / x0
    a, alpha, e = _fit_once(xs, y, alphas)
    rmse = float(np.sqrt(np.mean((a * xs ** -alpha + e - y) ** 2)))
    law = PowerLaw(a, alpha, e, x0, rmse)
    if len(x) >= 4:
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            a_i, alpha_i, e_i = _fit_once(xs[keep], y[keep], alphas)
            law.loo_E.append(e_i)
            law.loo.append(PowerLaw(a_i, alpha_i, e_i, x0, float("nan")))
    if per_seed is not None and len(per_seed) >= 2:
        rng = np.random.default_rng(seed)
        per_seed = np.asarray(per_seed, dtype=float)
        for _ in range(n_boot):
            rows = rng.integers(0, len(per_seed), size=len(per_seed))
            law.boot_E.append(_fit_once(xs, per_seed[rows].mean(0), alphas)[2])
    return law


def invert(law: PowerLaw, loss: float) -> float:
    """x at which the law reaches ``loss``; inf when loss is at or below its asymptote."""
    if loss <= law.E:
        return float("inf")
    return law.x0 * (law.A / (loss - law.E)) ** (1 / law.alpha)
