"""D-MPC's models and planner: the noise schedule, a denoising sanity check on a toy distribution,
chunk targets with termination and timeouts by hand, sampler shapes, and SSR picking the best
candidate under a known objective."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from paper_dmpc import diffusion, models, planner  # noqa: E402


def test_cosine_schedule_matches_its_formula():
    bar = diffusion.cosine_alphas_cumprod(100)
    f = lambda t: math.cos((t / 100 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert bar[0].item() == pytest.approx(f(1) / f(0), rel=1e-5)
    assert bar[49].item() == pytest.approx(f(50) / f(0), rel=1e-4)
    assert (bar[1:] < bar[:-1]).all() and 0 < bar[-1] < 1e-3


def test_diffusion_learns_a_two_mode_conditional_distribution():
    # with v-prediction, the suites' setting (epsilon-prediction with this small residual MLP puts every
    # sample in one mode: its error at the last step, over sqrt(alpha_bar) ~ 1e-3 here, decides the sign)
    # x in R^{2 x 1}: given c = +1 both steps are +-2 (equally likely, same sign); given c = -1, near 0
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = diffusion.MLPDenoiser(horizon=2, dim=1, cond_dim=1, hidden=64, layers=2)
    model = diffusion.Diffusion(net, train_steps=50, sample_steps=10, clip=5.0, prediction="v")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(800):
        c = torch.randint(0, 2, (256, 1), generator=gen).float() * 2 - 1
        sign = torch.randint(0, 2, (256, 1, 1), generator=gen).float() * 2 - 1
        x = torch.where(c[:, :, None] > 0, 2 * sign.expand(-1, 2, 1), 0.1 * torch.randn(256, 2, 1, generator=gen))
        loss = model.loss(x, c, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pos = model.sample(torch.ones(400, 1), (2, 1), gen)
    zero = model.sample(-torch.ones(400, 1), (2, 1), gen)
    assert pos.shape == (400, 2, 1)
    near_mode = (pos - 2).abs().amax(1).lt(0.5) | (pos + 2).abs().amax(1).lt(0.5)
    assert near_mode.float().mean() > 0.85  # both steps at one mode, not between
    share_up = (pos.mean(1) > 0).float().mean()
    assert 0.3 < share_up < 0.7  # both modes kept
    assert zero.abs().mean() < 0.3


@pytest.mark.parametrize("prediction", diffusion.PREDICTIONS)
def test_x0_and_eps_estimates_are_exact_for_a_perfect_network(prediction):
    # a "network" that returns the true target (eps, or v = sqrt(bar) eps - sqrt(1 - bar) x0) recovers
    # x0 and eps exactly at every step, the last (bar ~ 2e-7) included
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(8, 4, 3, generator=gen), torch.randn(8, 4, 3, generator=gen)
    model = diffusion.Diffusion(None, train_steps=100, prediction=prediction)
    for t in (0, 50, 99):
        bar = model.bar[t].double()
        xt = bar.sqrt() * x0.double() + (1 - bar).sqrt() * eps.double()
        target = eps.double() if prediction == "epsilon" else bar.sqrt() * eps.double() - (1 - bar).sqrt() * x0.double()
        model.bar = model.bar.double()
        model.net = lambda x, tt, c, target=target: target  # noqa: B023
        got_x0, got_eps = model.estimates(xt, torch.tensor(t), None)
        torch.testing.assert_close(got_x0, x0.double(), rtol=0, atol=1e-9 if prediction == "v" else 1e-6)
        torch.testing.assert_close(got_eps, eps.double(), rtol=0, atol=1e-9)


def test_unknown_prediction_is_refused():
    with pytest.raises(ValueError, match="prediction must be one of"):
        diffusion.Diffusion(None, prediction="x0")


def test_chunks_targets_padding_and_timeouts_by_hand():
    # episode 1: 3 steps, terminates; episode 2: 4 steps, cut by a timeout
    obs = np.arange(7, dtype=np.float32)[:, None]
    data = {"observations": obs, "next_observations": obs + 0.5, "actions": np.ones((7, 1), np.float32),
            "rewards": np.array([1, 2, 3, 1, 1, 1, 1], np.float32),
            "terminals": np.array([0, 0, 1, 0, 0, 0, 0], bool), "timeouts": np.array([0, 0, 0, 0, 0, 0, 1], bool)}
    ch = models.Chunks.build(data, horizon=2, gamma=0.5, penalty=-100)
    # terminated episode: every start is kept (3), padded; timed-out one: starts 0..2 of 4 (a window fits)
    assert len(ch) == 6
    np.testing.assert_allclose(ch.states[:, 0], [0, 1, 2, 3, 4, 5])
    # value from t=0: 1 + .5*2 + .25*(3-100) = -22.25; t=2: -97
    np.testing.assert_allclose(ch.values[:3], [-22.25, 2 + 0.5 * -97, -97])
    np.testing.assert_allclose(ch.values[3:], [1 + .5 + .25 + .125, 1 + .5 + .25, 1 + .5])
    # the last start of the terminated episode: one real step, then the absorbing state with a zero action
    np.testing.assert_allclose(ch.futures[2, :, 0], [2.5, 2.5])
    np.testing.assert_allclose(ch.actions[2, :, 0], [1, 0])
    np.testing.assert_allclose(ch.futures[5, :, 0], [5.5, 6.5])
    with pytest.raises(ValueError, match="no episode yields"):
        models.Chunks.build({k: v[3:] for k, v in data.items()}, horizon=9)


def test_samplers_give_chunks_of_the_right_shape_and_range():
    rng = np.random.default_rng(0)
    n = 64
    ch = models.Chunks(rng.normal(size=(n, 5)).astype(np.float32), rng.uniform(-1, 1, (n, 4, 2)).astype(np.float32),
                       rng.normal(size=(n, 4, 5)).astype(np.float32), rng.normal(size=n).astype(np.float32))
    cfg = models.ModelConfig(horizon=4, hidden=32, layers=1, train_steps=10, proposal_steps=3, dynamics_steps=2)
    norm = models.Normalizer(ch)
    prop, dyn, obj = (cls(cfg, 5, 2, norm) for cls in (models.ActionProposal, models.Dynamics, models.Objective))
    s = torch.from_numpy(ch.states[:7])
    a = prop.sample(s)
    assert a.shape == (7, 4, 2) and a.abs().max() <= 1
    fut = dyn.sample(s, a)
    assert fut.shape == (7, 4, 5) and obj(s, a, fut).shape == (7,)
    ema, losses = models.train(obj, ch, models.TrainConfig(steps=30, batch=16))
    assert len(losses) == 30 and losses[-1] < losses[0] and not any(p.requires_grad for p in ema.parameters())
    tcfg = models.ModelConfig(horizon=4, denoiser="transformer", train_steps=10, proposal_steps=2)
    tprop = models.ActionProposal(tcfg, 5, 2, norm)
    assert tprop.sample(s).shape == (7, 4, 2) and tprop.loss(s, a, fut, None).item() > 0


class _Fixed:
    """A proposal whose N candidates for each state are known: candidate k is the constant k / N."""

    def __init__(self, n, horizon=3):
        self.n, self.horizon = n, horizon

    def sample(self, s, gen=None):
        k = torch.arange(len(s)) % self.n
        return (k.float() / self.n)[:, None, None].expand(-1, self.horizon, 1).clone()


class _Integrator:
    def sample(self, s, a, gen=None):
        return s[:, None, :1] + torch.cumsum(a, 1)


def test_ssr_executes_the_best_candidate_under_a_known_objective():
    n = 8
    target = torch.tensor([0.9, 2.1])  # best final state for two starts at 0.0 and 1.0
    objective = lambda s, a, fut: -(fut[:, -1, 0] - target.repeat_interleave(n)).abs()  # noqa: E731
    ssr = planner.SSR(_Fixed(n), _Integrator(), objective, samples=n)
    best = ssr(torch.tensor([[0.0], [1.0]]))
    # start 0: final = 3k/8 closest to 0.9 at k = 2 (0.75) vs k = 3 (1.125) -> k = 2; start 1: 1 + 3k/8 -> k = 3
    np.testing.assert_allclose(best[:, 0, 0], [2 / 8, 3 / 8])
    # a novel objective swapped in at run time: the largest final state wins
    ssr.objective = lambda s, a, fut: fut[:, -1, 0]
    np.testing.assert_allclose(ssr(torch.tensor([[0.0]]))[0, 0, 0], 7 / 8)


def test_jump_objective_is_the_summed_predicted_torso_height_and_agents_pickle():
    import pickle

    fut = torch.tensor([[[1.0, 9.0], [2.0, 9.0], [3.0, 9.0]], [[0.5, 0.0], [0.5, 0.0], [0.5, 0.0]]])
    np.testing.assert_allclose(planner.torso_height(None, None, fut), [6.0, 1.5])
    # the suite evaluates agents in spawned worker processes: each must survive pickling
    ssr = planner.SSR(_Fixed(4), _Integrator(), planner.torso_height, samples=4)
    again = pickle.loads(pickle.dumps(ssr))
    s = torch.tensor([[0.0], [1.0]])
    np.testing.assert_allclose(again(s), ssr(s))
    policy = pickle.loads(pickle.dumps(planner.ChunkPolicy(_Fixed(3))))
    assert policy(s).shape == (2, 3, 1)


def test_evaluation_runs_chunks_open_loop_between_plans_and_stops_at_termination():
    pytest.importorskip("gymnasium")
    calls = []

    def policy(s, gen):
        calls.append(len(s))
        return torch.zeros(len(s), 4, 3)

    out = planner.evaluate(policy, "hopper", episodes=3, seed=0, replan=2, max_steps=10)
    assert calls[0] == 3 and len(calls) == 5  # one plan every 2 steps over 10 steps
    assert out["lengths"].tolist() == [10, 10, 10] and out["returns"].shape == (3,)
    np.testing.assert_allclose(out["normalized"], 100 * (out["returns"] + 20.272305) / (3234.3 + 20.272305))
    assert (out["max_height"] >= out["mean_height"]).all()
    assert "plan_states" not in out
    # recording (distillation's data): every planning state of every live episode, and the actions then executed
    seen = []

    def counting(s, gen):
        seen.append(s.clone())
        return torch.arange(len(s) * 12, dtype=torch.float32).view(len(s), 4, 3) / 100

    rec = planner.evaluate(counting, "hopper", episodes=3, seed=0, replan=2, max_steps=10, record=True)
    assert rec["plan_states"].shape == (15, 11) and rec["plan_actions"].shape == (15, 2, 3)
    np.testing.assert_array_equal(rec["plan_states"], torch.cat(seen).numpy())
    np.testing.assert_allclose(rec["plan_actions"][:3], (np.arange(36).reshape(3, 4, 3) / 100)[:, :2], rtol=1e-6)
    np.testing.assert_array_equal(rec["returns"], planner.evaluate(counting, "hopper", 3, 0, 2, 10)["returns"])


def test_chunk_mlp_is_bc_with_one_action_and_a_distilled_policy_with_k():
    from paper_dmpc import baselines

    rng = np.random.default_rng(2)
    ch = models.Chunks(rng.normal(size=(64, 5)).astype(np.float32), rng.uniform(-0.9, 0.9, (64, 4, 2)).astype(np.float32),
                       np.zeros((64, 4, 5), np.float32), np.zeros(64, np.float32))
    cfg = models.ModelConfig(horizon=4, hidden=32, layers=2)
    norm = models.Normalizer(ch)
    s, a = torch.from_numpy(ch.states), torch.from_numpy(ch.actions)
    bc = baselines.BCPolicy(cfg, 5, 2, norm)
    assert bc.sample(s[:3]).shape == (3, 4, 2) and torch.equal(bc.sample(s[:3])[:, 3], bc.act(s[:3]))
    assert bc.loss(s, a, None, None).item() == pytest.approx((bc.act(s) - a[:, 0]).pow(2).mean().item())
    student = baselines.BCPolicy(cfg, 5, 2, norm, chunk=2)
    out = student.sample(s[:3])
    assert out.shape == (3, 4, 2) and torch.equal(out[:, :2], student.chunk_act(s[:3]))
    assert torch.equal(out[:, 2], out[:, 1]) and torch.equal(out[:, 3], out[:, 1])  # the last action held
    assert student.loss(s, a, None, None).item() == pytest.approx(
        (student.chunk_act(s) - a[:, :2]).pow(2).mean().item())
    ema, losses = models.train(student, ch, models.TrainConfig(steps=200, batch=64, lr=3e-3))
    assert losses[-1] < 0.5 * losses[0]  # it fits the chunks it is shown


def test_ddim_clips_its_x0_estimates():
    # an untrained denoiser: without clipping the first DDIM step divides by sqrt(alpha_bar) ~ 5e-4 and
    # the samples explode; with clip c every x0 estimate, hence the final sample, stays within +-c
    torch.manual_seed(0)
    net = diffusion.MLPDenoiser(horizon=4, dim=3, cond_dim=2, hidden=32, layers=1)
    cond = torch.randn(64, 2)
    wild = diffusion.Diffusion(net, train_steps=100, sample_steps=10).sample(cond, (4, 3))
    tame = diffusion.Diffusion(net, train_steps=100, sample_steps=10, clip=5.0).sample(cond, (4, 3))
    assert tame.abs().max() <= 5.0 + 1e-5 and wild.abs().max() > 5.0


def test_fine_tuning_chunks_are_the_new_ones_plus_as_many_old_ones():
    def chunks(n, offset):
        x = np.arange(n, dtype=np.float32) + offset
        return models.Chunks(x[:, None], np.zeros((n, 2, 1), np.float32), np.zeros((n, 2, 1), np.float32), x)

    new, old = chunks(3, 100), chunks(10, 0)
    mixed = new.mixed_with(old, np.random.default_rng(0))
    assert len(mixed) == 6
    np.testing.assert_array_equal(mixed.values[:3], [100, 101, 102])  # every new chunk, once
    assert len(set(mixed.values[3:].tolist())) == 3 and (mixed.values[3:] < 10).all()  # 3 distinct old ones
    np.testing.assert_array_equal(mixed.states[:, 0], mixed.values)  # rows stay aligned across fields
    assert len(chunks(20, 100).mixed_with(old, np.random.default_rng(0))) == 30  # at most all the old ones


def test_ensemble_members_trained_apart_join_into_the_same_ensemble():
    """split() shares each member (one-member ensembles); join() puts them back in order: the joined
    ensemble predicts exactly what the original does, and a member trained alone sees only its own loss."""
    from paper_dmpc import baselines

    rng = np.random.default_rng(1)
    n = 32
    ch = models.Chunks(rng.normal(size=(n, 5)).astype(np.float32), rng.uniform(-1, 1, (n, 1, 2)).astype(np.float32),
                       rng.normal(size=(n, 1, 5)).astype(np.float32), rng.normal(size=n).astype(np.float32))
    cfg = models.ModelConfig(horizon=3, hidden=16, layers=1)
    ens = baselines.OneStepEnsemble(cfg, 5, 2, models.Normalizer(ch), members=3)
    parts = ens.split()
    assert [len(p.members) for p in parts] == [1, 1, 1] and parts[1].members[0] is ens.members[1]
    s, a = torch.from_numpy(ch.states[:6]), torch.from_numpy(ch.actions[:6, 0])
    a3 = a[:, None].expand(-1, 3, -1)
    joined = baselines.OneStepEnsemble.join(parts)
    assert torch.equal(joined.sample(s, a3), ens.sample(s, a3))
    for k in range(3):  # the joint loss is the members' mean
        assert torch.equal(joined.step(s, a, k), ens.step(s, a, k))
    joint = ens.loss(s, a[:, None], torch.from_numpy(ch.futures[:6]), None)
    apart = sum(p.loss(s, a[:, None], torch.from_numpy(ch.futures[:6]), None) for p in parts) / 3
    assert joint.item() == pytest.approx(apart.item(), rel=1e-6)
