"""A Gaussian process fits any fraction of altered labels while its marginal likelihood
falls (Wilson 2025 Fig. 1 d; Wilson & Izmailov 2020, after Zhang et al. 2016).

Binary task, labels in {-1, +1}; a fraction of training labels is replaced by fair coin
flips. GP classification by label regression: exact GP regression on the +-1 labels with an
RBF kernel (median-heuristic lengthscale) and a small noise variance, class = sign of the
posterior mean. The log marginal likelihood log p(y | X) is exact:
  -1/2 y^T (K + s2 I)^-1 y - 1/2 log|K + s2 I| - n/2 log 2 pi.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.spatial.distance import cdist


def rbf(a: np.ndarray, b: np.ndarray, lengthscale: float) -> np.ndarray:
    return np.exp(-cdist(a, b, "sqeuclidean") / (2 * lengthscale**2))


def median_lengthscale(x: np.ndarray, rng: np.random.Generator, m: int = 1000) -> float:
    idx = rng.choice(len(x), size=min(m, len(x)), replace=False)
    d = cdist(x[idx], x[idx])
    return float(np.median(d[np.triu_indices_from(d, 1)]))


def alter_labels(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Replace a random `fraction` of the +-1 labels with fair coin flips."""
    y = y.copy()
    idx = rng.choice(len(y), size=int(round(fraction * len(y))), replace=False)
    y[idx] = rng.choice(np.array([-1.0, 1.0]), size=len(idx))
    return y


def fit_eval(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, lengthscale: float,
             noise_var: float, k_train: np.ndarray | None = None) -> dict:
    n = len(y)
    k = rbf(x, x, lengthscale) if k_train is None else k_train
    factor = cho_factor(k + noise_var * np.eye(n), lower=True)
    alpha = cho_solve(factor, y)
    logdet = 2 * np.sum(np.log(np.diag(factor[0])))
    lml = -0.5 * y @ alpha - 0.5 * logdet - 0.5 * n * np.log(2 * np.pi)
    train_pred = np.sign(k @ alpha)
    test_pred = np.sign(rbf(x_test, x, lengthscale) @ alpha)
    return {"train_acc": float(np.mean(train_pred == y)), "test_acc": float(np.mean(test_pred == y_test)),
            "log_ml_per_n": float(lml / n)}


def sweep(x: np.ndarray, y01: np.ndarray, x_test: np.ndarray, y01_test: np.ndarray, fractions, seed: int,
          noise_var: float = 1e-2) -> dict:
    rng = np.random.default_rng(seed)
    y, y_test = 2.0 * y01 - 1, 2.0 * y01_test - 1
    ls = median_lengthscale(x, rng)
    k = rbf(x, x, ls)
    rows = [fit_eval(x, alter_labels(y, f, rng), x_test, y_test, ls, noise_var, k_train=k) for f in fractions]
    return {"fractions": list(fractions), "lengthscale": ls, **{key: [r[key] for r in rows] for key in rows[0]}}
