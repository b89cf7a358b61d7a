"""Benign overfitting with an order-150 polynomial (Wilson 2025, Fig. 1 a-c).

Model: f(x) = sum_j w_j P_j(x), Legendre P_j, j = 0..J, on x in [-1, 1].
Loss:  sum_i (y_i - f(x_i))^2 + lam * sum_j gamma^j w_j^2, in the interpolating limit lam -> 0,
i.e. the interpolant of minimum weighted norm sum_j gamma^j w_j^2.

Solve: substitute u_j = gamma^(j/2) w_j, so features become P_j(x) gamma^(-j/2) and the
penalty is |u|^2; take the SVD of the scaled n x (J+1) feature matrix and apply Tikhonov
filtering with a tiny lam. Normal equations (or rcond-truncated lstsq) would silently zero
the high orders, because the penalty spans 1 .. gamma^150.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.polynomial import legendre

TARGETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "simple": lambda x: np.sin(2 * x) + 0.5 * x,
    "structured": lambda x: np.cos(3 * np.pi * x) * np.exp(-(x**2)) + 0.3 * x,
    "noise": lambda x: np.zeros_like(x),
}


def features(x: np.ndarray, degree: int) -> np.ndarray:
    """n x (degree+1) Legendre design matrix."""
    return legendre.legvander(np.asarray(x, dtype=float), degree)


def fit_weighted_min_norm(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, lam: float = 1e-8) -> np.ndarray:
    """Coefficients w of the minimum sum_j gamma^j w_j^2 interpolant (Tikhonov limit lam)."""
    scale = gamma ** (-np.arange(degree + 1) / 2.0)
    a = features(x, degree) * scale
    u_, s, vt = np.linalg.svd(a, full_matrices=False)
    u = vt.T @ ((s / (s**2 + lam)) * (u_.T @ y))
    return u * scale


def fit_interpolant(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The unregularized polynomial of degree n-1 through n points (square system)."""
    return np.linalg.solve(features(x, len(x) - 1), y)


def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return legendre.legval(np.asarray(x, dtype=float), w)


def design(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "grid":
        return np.linspace(-1, 1, n)
    if kind == "chebyshev":
        return np.cos(np.pi * (2 * np.arange(n) + 1) / (2 * n))[::-1]
    if kind == "random":
        return np.sort(rng.uniform(-1, 1, n))
    raise ValueError(f"unknown design {kind!r}; use grid, chebyshev or random")


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def experiment(seed: int, n: int = 20, degree: int = 150, gamma: float = 1.05, noise: float = 0.1,
               design_kind: str = "grid", n_test: int = 1000) -> dict:
    """Fit every target three ways; return metrics and the curves for the figure.

    test RMSE is against the noiseless target on a dense grid (for "noise" that target is 0,
    so it measures how wild the interpolant of pure noise is between the points).
    """
    rng = np.random.default_rng(seed)
    x = design(n, design_kind, rng)
    x_test = np.linspace(-1, 1, n_test)
    out: dict = {"x": x, "x_test": x_test, "fits": {}}
    for name, f in TARGETS.items():
        eps = rng.standard_normal(n)
        y = f(x) + (eps if name == "noise" else noise * eps)
        fits = {
            "weighted": fit_weighted_min_norm(x, y, degree, gamma),
            "min_norm": fit_weighted_min_norm(x, y, degree, 1.0),
            "interpolant": fit_interpolant(x, y),
        }
        out["fits"][name] = {
            "y": y, "truth": f(x_test),
            **{k: {"train_rmse": rmse(predict(w, x), y), "test_rmse": rmse(predict(w, x_test), f(x_test)),
                   "curve": predict(w, x_test)} for k, w in fits.items()},
        }
    return out
