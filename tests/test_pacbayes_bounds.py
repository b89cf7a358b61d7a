"""PAC-Bayes bounds and exact arithmetic coding against hand-computed values."""

import math

import numpy as np
import pytest

from paper_pacbayes import bounds, coding


def test_catoni_opt_matches_pactl_reference():
    # Lotfi et al. 2022 stored row: prefix length 8260 bits, -2 extra bits, train err 0.3216, n 50000
    assert bounds.catoni_opt(0.3216, 8258 * math.log(2), 50000, 0.05) == pytest.approx(0.55965, abs=1e-4)


def test_catoni_fixed_lambda_by_hand():
    # lam = n: a = 1, q = 0.1 + (100 + ln 20)/1000 = 0.202995732; (1 - e^-q)/(1 - e^-1)
    q = 0.1 + (100 + math.log(20)) / 1000
    expected = (1 - math.exp(-q)) / (1 - math.exp(-1))
    assert bounds.catoni(0.1, 100.0, 1000, 0.05, 1000.0) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.290638, abs=1e-6)


def test_optimised_catoni_is_never_far_from_best_fixed_lambda():
    err, kl, n, delta = 0.05, 2000.0, 60000, 0.05
    best_fixed = min(bounds.catoni(err, kl, n, delta, lam) for lam in np.geomspace(1, 4e5, 2000))
    opt = bounds.catoni_opt(err, kl, n, delta)
    assert best_fixed <= opt <= best_fixed * 1.01  # the union over lambda costs little


def test_bound_forms_by_hand_and_ordering():
    err, kl, n, delta = 0.1, 1000.0, 10000, 0.05
    assert bounds.occam(err, kl, n, delta) == pytest.approx(0.1 + math.sqrt((1000 + math.log(20)) / 20000))
    assert bounds.mcallester(err, kl, n, delta) == pytest.approx(
        0.1 + math.sqrt((1000 + math.log(20) + math.log(10000)) / 19999))
    # convexity at its optimal lambda, by hand: b = KL + ln 20 + ln(2 sqrt n)
    b = 1000 + math.log(20) + math.log(200)
    lam = 2 / (math.sqrt(2 * 10000 * 0.1 / b + 1) + 1)
    assert bounds.convexity(err, kl, n, delta) == pytest.approx(0.1 / (1 - lam / 2) + b / (10000 * lam * (1 - lam / 2)))
    # at low training error (n = 60000): Catoni < convexity < McAllester, Occam
    for e in (0.0, 0.01, 0.05):
        c, v, m, o = (f(e, kl, 60000, delta) for f in (bounds.catoni_opt, bounds.convexity, bounds.mcallester,
                                                        bounds.occam))
        assert c < v < min(m, o)
    assert bounds.catoni_opt(0.5, 1e9, 100, 0.05) == 1.0  # capped: vacuous is 1


def test_arithmetic_code_roundtrip_and_length_vs_entropy():
    rng = np.random.default_rng(0)
    for levels, d in [(2, 1), (3, 50), (9, 1024), (5, 3000)]:
        p = rng.dirichlet(np.ones(levels))
        sym = rng.choice(levels, size=d, p=p)
        counts = np.bincount(sym, minlength=levels).tolist()
        m, b = coding.encode(sym.tolist(), counts)
        assert coding.decode(m, b, counts, d) == sym.tolist()  # lossless
        ideal = coding.entropy_bits(sym, levels)
        assert ideal <= b <= math.ceil(ideal) + 1 + 1e-9


def test_coded_length_exact_small_case():
    # counts (3, 1): P(AAAB) = (3/4)^3 (1/4) = 27/256, -log2 P = 3.245 -> 4 or 5 bits
    m, b = coding.encode([0, 0, 0, 1], [3, 1])
    assert b in (4, 5) and coding.decode(m, b, [3, 1], 4) == [0, 0, 0, 1]
    assert coding.coded_length([0, 0, 0, 0], 2) == 0 or coding.coded_length([0, 0, 0, 0], 2) <= 1


def test_message_bits_parts():
    sym = np.array([0, 1, 2, 1, 1, 0, 2, 1] * 128)  # d = 1024, 9 levels declared
    parts = coding.message_bits(sym, 9)
    assert parts["count_bits"] == 9 * 10 and parts["codebook_bits"] == 16 * 9
    total = parts["coded_bits"] + 90 + 144
    assert parts["message_bits"] == total
    assert parts["prefix_free_bits"] == pytest.approx(total + 2 * math.log2(total))


def test_prior_split_is_a_seeded_partition_and_random_labels_are_seeded():
    from paper_pacbayes.compression import prior_split, random_labels

    prior, rest = prior_split(101, 0.5, seed=3)
    assert len(prior) == round(0.5 * 101) and len(prior) + len(rest) == 101
    assert sorted(np.concatenate([prior, rest]).tolist()) == list(range(101))  # disjoint, and every point once
    again, _ = prior_split(101, 0.5, seed=3)
    other, _ = prior_split(101, 0.5, seed=4)
    assert np.array_equal(prior, again) and not np.array_equal(prior, other)
    labels = random_labels(500, 10, seed=3)
    assert labels.min() >= 0 and labels.max() == 9 and np.array_equal(labels, random_labels(500, 10, seed=3))


def test_resnet20_has_twenty_weight_layers_and_no_batch_norm():
    import torch

    from paper_pacbayes.subspace import build, n_params

    net = build("resnet20", 784, 16, 10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + sum(isinstance(m, torch.nn.Linear) for m in net.modules()) == 20
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert 0.26e6 < n_params(net) < 0.28e6  # He et al.'s 0.27M
    assert net(torch.zeros(2, 784)).shape == (2, 10) and build("resnet20", 3072, 8, 10)(torch.zeros(1, 3072)).shape == (1, 10)


def test_a_search_larger_than_its_misc_bits_pay_for_is_refused():
    from suites.pacbayes import BoundConfig

    with pytest.raises(ValueError, match="need more than misc_bits"):
        BoundConfig(misc_bits=1.0, grid=["cnn:8:100", "cnn:16:100"])
    with pytest.raises(ValueError, match="expected arch:width:d"):
        BoundConfig(grid=["vgg:8:100"])
