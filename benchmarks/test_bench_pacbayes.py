"""pacbayes hot paths: Kronecker vs dense projection, exact arithmetic coding (`nox -s bench`)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from paper_pacbayes import coding  # noqa: E402
from paper_pacbayes.subspace import KroneckerProjector  # noqa: E402

D, d = 25_450, 1024  # MLP 784-32-10 in a 1024-dim subspace; the dense P is 100 MB


@pytest.fixture(scope="module")
def projector():
    torch.set_num_threads(1)
    return KroneckerProjector(D, d, seed=0)


def test_kronecker_projection(benchmark, projector):
    w = torch.randn(d)
    benchmark(projector, w)


def test_dense_projection(benchmark, projector):
    dense = projector.dense()
    w = torch.randn(d)
    out = benchmark(torch.mv, dense, w)
    assert torch.allclose(out, projector(w), atol=1e-4)


def test_arithmetic_code_d1024(benchmark):
    sym = np.random.default_rng(0).choice(9, size=1024, p=np.full(9, 1 / 9))
    bits = benchmark(coding.coded_length, sym, 9)
    assert bits >= coding.entropy_bits(sym, 9)
