"""Hot paths of ssd, lewm and dmpc (`nox -s bench`): one verification step, SIGReg, one batched CEM
iteration, a Push-T physics step, one diffusion training step and one Sample-Score-Rank plan."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_ssd_verify_batch4_k5_vocab32k(benchmark):
    from paper_ssd.verify import verify

    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(4, 6, 32_000, generator=g), -1)
    q = torch.softmax(torch.randn(4, 5, 32_000, generator=g), -1)
    draft = torch.multinomial(q.view(-1, 32_000), 1, generator=g).view(4, 5)
    verdict = benchmark(verify, draft, q, p, g)
    assert ((verdict.accepted >= 0) & (verdict.accepted <= 5)).all()


def test_lewm_sigreg_256x128_m1024(benchmark):
    from paper_lewm.sigreg import sigreg

    z = torch.randn(4, 256, 128, generator=torch.Generator().manual_seed(0))
    stat = benchmark(sigreg, z, 1024, torch.Generator().manual_seed(1))
    assert stat.item() < 3  # the N-scaled statistic is about 1 for Gaussian embeddings (~100 if shrunk 10x)


def test_lewm_cem_iteration_50_problems(benchmark):
    from paper_lewm import plan
    from paper_lewm.model import LeWM, ModelConfig

    model = LeWM(ModelConfig(image_size=32)).eval()
    z = torch.randn(50, 1, model.cfg.dim)
    cost = plan.latent_cost(model, z, torch.randn(50, model.cfg.dim))
    cfg = plan.CEMConfig(samples=128, iterations=1, elites=13, horizon=5)
    out = benchmark(plan.cem, cost, 50, 10, cfg, torch.Generator().manual_seed(0))
    assert out.shape == (50, 5, 10)


def test_lewm_pusht_step_64_states(benchmark):
    pytest.importorskip("pymunk")
    from paper_lewm.pusht import PushT

    env = PushT()
    s = env.sample_free(np.random.default_rng(0), 64)
    out = benchmark(env.step, s, np.random.default_rng(1).uniform(-1, 1, (64, 2)))
    assert out.shape == s.shape


@pytest.fixture(scope="module")
def dmpc_parts():
    from paper_dmpc import models

    rng = np.random.default_rng(0)
    n, f = 4096, 16
    ch = models.Chunks(rng.normal(size=(n, 11)).astype(np.float32), rng.uniform(-1, 1, (n, f, 3)).astype(np.float32),
                       rng.normal(size=(n, f, 11)).astype(np.float32), rng.normal(size=n).astype(np.float32))
    cfg = models.ModelConfig(horizon=f)
    norm = models.Normalizer(ch)
    return ch, [cls(cfg, 11, 3, norm) for cls in (models.ActionProposal, models.Dynamics, models.Objective)]


def test_dmpc_dynamics_training_step_batch256(benchmark, dmpc_parts):
    ch, (_, dyn, _) = dmpc_parts
    opt = torch.optim.AdamW(dyn.parameters(), lr=3e-4)
    batch = [torch.from_numpy(x[:256]) for x in (ch.states, ch.actions, ch.futures, ch.values)]

    def step():
        loss = dyn.loss(*batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    assert np.isfinite(benchmark(step))


def test_dmpc_ssr_plan_10_envs_n64(benchmark, dmpc_parts):
    from paper_dmpc.planner import SSR

    ch, (prop, dyn, obj) = dmpc_parts
    ssr = SSR(prop, dyn, obj, samples=64)
    s = torch.from_numpy(ch.states[:10])
    chunk = benchmark(ssr, s, torch.Generator().manual_seed(0))
    assert chunk.shape == (10, 16, 3)
