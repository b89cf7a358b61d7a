"""paper_pacbayes pieces against exact or hand-computed values."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from paper_pacbayes import data, double_descent, gp_labels, poly  # noqa: E402
from paper_pacbayes.quantize import assign, straight_through  # noqa: E402
from paper_pacbayes.subspace import KroneckerProjector, SubspaceModel, mlp  # noqa: E402


@pytest.mark.parametrize(("D", "d"), [(37, 10), (100, 16), (250, 7)])
def test_kronecker_projection_equals_dense_product(D, d):
    proj = KroneckerProjector(D, d, seed=3)
    dense = torch.kron(proj.r1, proj.r2)[:D, :d][proj.perm] / math.sqrt(D)  # the matrix forward() avoids
    w = torch.randn(d, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(proj(w), dense @ w, atol=1e-5)
    assert torch.allclose(proj.dense(), dense, atol=1e-5)
    # deterministic in the seed: the projection is part of the prior
    assert torch.equal(KroneckerProjector(D, d, seed=3)(w), proj(w))


def test_subspace_model_starts_at_theta0_and_trains_only_w():
    torch.manual_seed(0)
    net = mlp(5, 7, 3)
    x = torch.randn(4, 5)
    expected = net(x)
    model = SubspaceModel(net, d=6, seed=0)
    assert torch.allclose(model(x), expected)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["w"]
    model(x).sum().backward()
    assert model.w.grad is not None and model.w.grad.abs().sum() > 0


def test_straight_through_gradients():
    w = torch.tensor([0.1, 0.9, 1.1, -0.2], requires_grad=True)
    c = torch.tensor([0.0, 1.0], requires_grad=True)
    assert assign(w, c).tolist() == [0, 1, 1, 0]
    q = straight_through(w, c)
    assert q.tolist() == [0.0, 1.0, 1.0, 0.0]
    (q * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert w.grad.tolist() == [1.0, 2.0, 3.0, 4.0]  # straight through to w
    assert c.grad.tolist() == [5.0, 5.0]  # each centroid: the sum over the weights assigned to it


def test_weighted_min_norm_interpolant():
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 12)
    y = rng.standard_normal(12)
    # square system: the weighted min-norm solution is the unique interpolant
    assert np.allclose(poly.fit_weighted_min_norm(x, y, 11, 1.3, lam=1e-14), poly.fit_interpolant(x, y), atol=1e-6)
    # overparameterised: it interpolates, and no other interpolant has a smaller weighted norm
    w = poly.fit_weighted_min_norm(x, y, 60, 1.05)
    assert poly.rmse(poly.predict(w, x), y) < 1e-6
    weights = 1.05 ** np.arange(61)
    null = np.linalg.svd(poly.features(x, 60))[2][12:]  # directions that do not change the fit
    for v in null[:5]:
        assert np.sum(weights * w**2) <= np.sum(weights * (w + 0.01 * v) ** 2)


def test_effective_dimension_by_hand():
    # min(n, d) - sum s^2/(s^2 + l n): 2 - (1/(1+1) + 4/(4+1)) = 0.7
    assert double_descent.effective_dimension(np.array([1.0, 2.0]), n=2, d=2, l2=0.5) == pytest.approx(0.7)


def test_gp_log_marginal_likelihood_matches_scipy():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((15, 3)), np.sign(rng.standard_normal(15))
    res = gp_labels.fit_eval(x, y, x, y, lengthscale=1.3, noise_var=0.05)
    cov = gp_labels.rbf(x, x, 1.3) + 0.05 * np.eye(15)
    assert res["log_ml_per_n"] * 15 == pytest.approx(multivariate_normal(np.zeros(15), cov).logpdf(y))
    # nearly noise-free: the posterior mean interpolates any labels
    assert gp_labels.fit_eval(x, y, x, y, lengthscale=1.3, noise_var=1e-6)["train_acc"] == 1.0


def test_alter_labels_fraction():
    y = np.ones(1000)
    altered = gp_labels.alter_labels(y, 0.4, np.random.default_rng(0))
    # 400 replaced by coin flips: about 200 flipped
    assert 150 < np.sum(altered == -1) < 250
    assert np.array_equal(gp_labels.alter_labels(y, 0.0, np.random.default_rng(0)), y)


def test_read_idx(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in arr.shape) + arr.tobytes()
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    assert np.array_equal(data.read_idx(tmp_path / "a.gz"), arr)


def test_missing_fmnist_names_all_places(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("PAPERCLUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(data.DataNotFound) as err:
        data.fmnist_dir(tmp_path / "mine", download=False)
    msg = str(err.value)
    assert str(tmp_path / "mine") in msg and str(tmp_path / "debian") in msg and "download disabled" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
