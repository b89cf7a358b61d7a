"""paper_lewm: SIGReg against direct integration and on Gaussian vs collapsed samples, the
environment, the model's AdaLN-zero start, CEM on a known quadratic, and the diagnostics."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
scipy_integrate = pytest.importorskip("scipy.integrate")

from paper_lewm import diagnostics, plan  # noqa: E402
from paper_lewm.envs import TwoRoom, generate  # noqa: E402
from paper_lewm.model import LeWM, ModelConfig  # noqa: E402
from paper_lewm.sigreg import epps_pulley, knots_and_weights, sigreg, vicreg  # noqa: E402
from paper_lewm.train import Windows  # noqa: E402


def test_quadrature_is_the_papers_17_knot_trapezoid():
    t, w = knots_and_weights()
    assert len(t) == 17 and float(t[1]) == pytest.approx(3 / 16) and float(t[-1]) == 3.0
    dt = 3 / 16
    assert float(w[0]) == pytest.approx(dt) and float(w[1]) == pytest.approx(2 * dt * np.exp(-dt ** 2 / 2))
    assert float(w[-1]) == pytest.approx(dt * np.exp(-4.5))


def test_epps_pulley_matches_direct_integration():
    rng = np.random.default_rng(0)
    for h in (rng.normal(size=64), rng.normal(0.5, 1.5, size=64), rng.uniform(-1, 1, size=64)):
        def integrand(t, h=h):
            return len(h) * ((np.cos(t * h).mean() - np.exp(-t * t / 2)) ** 2 + np.sin(t * h).mean() ** 2) \
                * np.exp(-t * t / 2)
        direct, _ = scipy_integrate.quad(integrand, -3, 3, limit=200)
        ours = float(epps_pulley(torch.tensor(h, dtype=torch.float64)[:, None])[0])
        assert ours == pytest.approx(direct, rel=0.02, abs=1e-3)


def test_sigreg_is_small_for_gaussians_and_large_for_collapse():
    gen = torch.Generator().manual_seed(0)
    gaussian = torch.randn(4, 256, 32, generator=gen)
    collapsed = 0.01 * torch.randn(4, 256, 32, generator=gen)
    low_rank = torch.randn(4, 256, 1, generator=gen) * torch.ones(32) / np.sqrt(32) * 3
    g = float(sigreg(gaussian, 256, gen))
    # under the null E[N |ecf - cf|^2] = 1 - exp(-t^2), so E[EP] = int_{-3}^{3} (1 - e^{-t^2}) e^{-t^2/2} dt
    expected, _ = scipy_integrate.quad(lambda t: (1 - np.exp(-t * t)) * np.exp(-t * t / 2), -3, 3)
    assert expected == pytest.approx(1.053, abs=0.002) and g == pytest.approx(expected, rel=0.1)
    assert float(sigreg(collapsed, 256, gen)) > 50 * g and float(sigreg(low_rank, 256, gen)) > 10 * g
    # VICReg: the variance hinge is zero at unit std, one at zero std
    assert float(vicreg(gaussian)) < 0.1 and float(vicreg(collapsed)) > 0.9


def test_two_room_is_deterministic_and_walls_hold():
    env = TwoRoom(size=24)
    a, b = generate(env, 20, 40, seed=3), generate(env, 20, 40, seed=3)
    assert np.array_equal(a["positions"], b["positions"]) and np.array_equal(a["actions"], b["actions"])
    assert env.valid(a["positions"]).all()
    crossing = env.room(a["positions"][:, 0]) != env.room(a["positions"][:, -1])
    assert crossing.any()  # the expert goes through the door
    start = np.array([[0.45, 0.8]])  # in the left room, below the door: pushing right hits the wall
    assert env.step(start, np.array([[1.0, 0.0]]))[0, 0] < 0.5 - env.wall_half
    frame = env.render(np.array([0.25, 0.5]))
    assert frame.shape == (24, 24, 3) and frame.dtype == np.uint8
    assert frame[12, 6, 1] < 150 and frame[0, 0, 1] == 90  # the agent's red dot; the grey border
    assert frame[20, 12, 1] == 90 and frame[5, 12, 1] == 255  # the wall, and the door in it


def test_predictor_starts_as_identity_and_actions_matter_after_a_step():
    cfg = ModelConfig(image_size=16, channels=(8, 16), dim=16, projector_hidden=32, layers=2, heads=2, head_dim=8,
                      mlp=32, dropout=0.0)
    model = LeWM(cfg).eval()
    z, a = torch.randn(3, 3, 16), torch.randn(3, 3, 10)
    # AdaLN-zero: every block is the identity at init, so the actions cannot matter yet
    assert torch.allclose(model.predict(z, a), model.predict(z, torch.zeros_like(a)))
    for block in model.predictor.blocks:
        torch.nn.init.normal_(block.ada[1].weight, std=0.1)
    assert not torch.allclose(model.predict(z, a), model.predict(z, torch.zeros_like(a)))
    # causal: a later frame does not change an earlier prediction
    z2 = z.clone()
    z2[:, 2] += 1
    assert torch.allclose(model.predict(z, a)[:, :2], model.predict(z2, a)[:, :2], atol=1e-6)


def test_cem_finds_the_minimum_of_a_known_quadratic():
    target = torch.tensor([[0.5, -1.0], [1.5, 0.2]])  # per problem: the best action at every step

    def cost(cand):  # [P, S, H, A]
        return (cand - target[:, None, None]).pow(2).sum((-1, -2))

    cfg = plan.CEMConfig(samples=200, iterations=15, elites=20, horizon=3)
    best = plan.cem(cost, 2, 2, cfg, torch.Generator().manual_seed(0))
    assert torch.allclose(best, target[:, None].expand(-1, 3, -1), atol=0.05)


def test_action_blocks_round_trip():
    actions = np.random.default_rng(0).uniform(-1, 1, (4, 20, 2))
    w = Windows.build(np.zeros((4, 21, 8, 8, 3), np.uint8), actions, frameskip=5, span=4)
    blocks = w.block(actions)
    assert blocks.shape == (4, 4, 10) and abs(blocks.mean()) < 0.1
    assert np.allclose(w.unblock(blocks), actions, atol=1e-5)


def test_diagnostics_by_hand():
    z = torch.tensor(np.random.default_rng(0).normal(size=(4000, 4)) * [1, 1, 1, 1])
    assert diagnostics.effective_rank(z) == pytest.approx(4, rel=0.05)
    z = torch.tensor(np.random.default_rng(0).normal(size=(4000, 4)) * [1, 0, 0, 0])
    assert diagnostics.effective_rank(z) == pytest.approx(1, rel=0.01)
    assert diagnostics.auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert diagnostics.auroc(np.array([1.0, 3.0]), np.array([2.0, 4.0])) == 0.25
    x = np.random.default_rng(1).normal(size=(200, 3))
    assert diagnostics.probe_r2(x, x[:, :2] * 2 + 1) == pytest.approx(1.0, abs=1e-6)


def test_rollout_feeds_its_own_predictions_back():
    cfg = ModelConfig(image_size=16, channels=(8, 16), dim=16, projector_hidden=32, layers=1, heads=2, head_dim=8,
                      mlp=32, dropout=0.0, history=2)
    model = LeWM(cfg).eval()
    for block in model.predictor.blocks:
        torch.nn.init.normal_(block.ada[1].weight, std=0.1)
    z0, a = torch.randn(3, 1, 16), torch.randn(3, 3, 10)
    with torch.no_grad():
        p1 = model.predict(z0, a[:, :1])[:, -1:]
        p2 = model.predict(torch.cat([z0, p1], 1), a[:, :2])[:, -1:]
        p3 = model.predict(torch.cat([p1, p2], 1), a[:, 1:3])[:, -1]  # history 2: the oldest latent drops out
    assert torch.allclose(model.rollout(z0, a), p3, atol=1e-5)
    with pytest.raises(ValueError, match="one frame"):
        model.rollout(torch.randn(3, 2, 16), a)


@pytest.mark.parametrize("size", [32, 224])
def test_the_gpu_renderer_draws_the_numpy_renderers_frames(size):
    from paper_lewm.envs import TwoRoom

    env = TwoRoom(size=size)
    xy = np.random.default_rng(size).uniform(0.0, 1.0, (3, 5, 2))
    ref = env.render(xy)
    got = env.render_torch(xy, "cpu").numpy()
    assert got.shape == ref.shape == (3, 5, size, size, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # float32 against float64 rounding, nothing else
    windows = Windows.build(None, np.zeros((3, 20, 2)), frameskip=5, span=4, states=np.zeros((3, 21, 2)) + 0.3,
                            render=lambda s: env.render_torch(s, "cpu"))
    frames, _ = windows.window(np.array([0, 2]), np.array([0, 1]))
    assert frames.shape == (2, 4, size, size, 3) and torch.equal(frames[0, 0], env.render_torch(np.full(2, 0.3), "cpu"))


def test_chunked_planning_cost_is_the_whole_batchs():
    model = LeWM(ModelConfig(image_size=16, channels=(8, 16), dim=16, projector_hidden=32, layers=1, heads=2,
                             head_dim=8, mlp=32, dropout=0.0)).eval()
    g = torch.Generator().manual_seed(0)
    z_now, z_goal = torch.randn(3, 1, 16, generator=g), torch.randn(3, 16, generator=g)
    cand = torch.randn(3, 7, 5, 10, generator=g)  # 3 episodes x 7 candidates, 5 blocks of 10
    with torch.no_grad():
        whole = plan.latent_cost(model, z_now, z_goal)(cand)
        for chunk in (1, 4, 21, 64):
            assert torch.allclose(plan.latent_cost(model, z_now, z_goal, chunk)(cand), whole, rtol=1e-5, atol=1e-6)
