"""Double descent with linear random features and effective dimensionality (Wilson 2025,
Fig. 1 g; recipe of Maddox, Benton & Wilson 2020, random-features notebook).

n training and n test points, y ~ N(0, 1). Feature matrix X (n x d): the first
min(d, informative) columns are N(0, 1) + y (weakly informative), any further columns pure
noise. w = minimum-norm least squares. Risk = ||X w - y|| / ||y|| (relative error).
N_eff = min(n, d) - sum_i s_i^2 / (s_i^2 + l n), s_i the singular values of X_train: the
number of poorly determined directions, which peaks at the interpolation threshold d = n.
"""

from __future__ import annotations

import numpy as np


def features(y: np.ndarray, d: int, informative: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((len(y), d))
    k = min(d, informative)
    x[:, :k] += y[:, None]
    return x


def effective_dimension(s: np.ndarray, n: int, d: int, l2: float) -> float:
    return float(min(n, d) - np.sum(s**2 / (s**2 + l2 * n)))


def sweep(seed: int, n: int = 200, n_test: int = 200, widths: range | list[int] = range(5, 400, 2),
          informative: int = 1000, l2: float = 1e-3) -> dict:
    rng = np.random.default_rng(seed)
    y, y_test = rng.standard_normal(n), rng.standard_normal(n_test)
    widths = list(widths)
    d_max = max(widths)
    # draw the widest design once; narrower models use its first d columns (nested features)
    x_full = features(y, d_max, informative, rng)
    x_test_full = features(y_test, d_max, informative, rng)
    train, test, neff = [], [], []
    for d in widths:
        x, xt = x_full[:, :d], x_test_full[:, :d]
        w, *_ = np.linalg.lstsq(x, y, rcond=None)
        train.append(float(np.linalg.norm(x @ w - y) / np.linalg.norm(y)))
        test.append(float(np.linalg.norm(xt @ w - y_test) / np.linalg.norm(y_test)))
        neff.append(effective_dimension(np.linalg.svd(x, compute_uv=False), n, d, l2))
    return {"widths": widths, "train_error": train, "test_error": test, "neff": neff}
