"""The code that runs under bf16 autocast only on a GPU (``enabled=device.type == "cuda"``: dmpc's training
and planning, lewm's training), run here under the CPU's bf16 autocast, so that every change keeps it
checked (on a GPU it has run only in the suites' full-tier rehearsals, a few steps each). It shows that the
dtypes meet (bf16 outputs into fp32 buffers, indexing, the generators) and that losses and plans stay
finite; not that bf16 numbers match fp32's, nor CUDA's autocast, whose op lists differ from the CPU's."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture
def gpu_autocast_here(monkeypatch):
    """Every ``torch.autocast`` region is bf16 autocast on the CPU, whatever device and ``enabled`` it names;
    yields the dtypes that ``nn.Linear`` layers computed in meanwhile."""
    real, dtypes = torch.autocast, []
    monkeypatch.setattr(torch, "autocast", lambda *a, **k: real("cpu", dtype=torch.bfloat16, enabled=True))
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, _, out: dtypes.append(out.dtype) if isinstance(m, torch.nn.Linear) else None)
    yield dtypes
    hook.remove()


def test_dmpc_trains_and_plans_under_bf16_autocast(gpu_autocast_here):
    pytest.importorskip("gymnasium")
    from paper_dmpc import baselines, models, planner

    rng = np.random.default_rng(0)
    n, s_dim, a_dim = 64, 11, 3  # Hopper's state and action sizes
    chunks = models.Chunks(rng.normal(size=(n, s_dim)).astype(np.float32),
                           rng.uniform(-1, 1, (n, 4, a_dim)).astype(np.float32),
                           rng.normal(size=(n, 4, s_dim)).astype(np.float32), rng.normal(size=n).astype(np.float32))
    cfg = models.ModelConfig(horizon=4, hidden=32, layers=1, train_steps=10, proposal_steps=3, dynamics_steps=2)
    norm, one_step = models.Normalizer(chunks), baselines.chunks_for(chunks, 1)
    made = {"proposal": (models.ActionProposal(cfg, s_dim, a_dim, norm), chunks),
            "dynamics": (models.Dynamics(cfg, s_dim, a_dim, norm), chunks),
            "objective": (models.Objective(cfg, s_dim, a_dim, norm), chunks),
            "bc": (baselines.BCPolicy(cfg, s_dim, a_dim, norm), one_step),
            "ensemble": (baselines.OneStepEnsemble(cfg, s_dim, a_dim, norm, members=2), one_step)}
    m = {}
    for name, (model, data) in made.items():
        m[name], losses = models.train(model, data, models.TrainConfig(steps=3, batch=8))
        assert len(losses) == 3 and np.isfinite(losses).all(), name
    assert torch.bfloat16 in gpu_autocast_here  # the losses' layers ran in bf16
    # D-MPC, and MBOP, whose ensemble writes each member's bf16 rows into one fp32 tensor
    for agent in (planner.SSR(m["proposal"], m["dynamics"], m["objective"], samples=4),
                  baselines.MBOP(m["bc"], m["ensemble"], m["objective"], samples=4)):
        out = planner.evaluate(agent, "hopper", episodes=2, seed=0, replan=2, max_steps=4)
        assert out["lengths"].tolist() == [4, 4] and np.isfinite(out["returns"]).all(), type(agent).__name__


def test_lewm_trains_under_bf16_autocast(gpu_autocast_here):
    from paper_lewm.config import ModelConfig
    from paper_lewm.train import TrainConfig, Windows, train

    rng = np.random.default_rng(0)
    data = Windows.build(rng.integers(0, 255, (6, 21, 16, 16, 3), dtype=np.uint8), rng.uniform(-1, 1, (6, 20, 2)),
                         frameskip=5, span=4)
    model = ModelConfig(image_size=16, channels=(8, 16), dim=16, projector_hidden=32, layers=1, heads=2,
                        head_dim=8, mlp=32)
    _, history = train(TrainConfig(model=model, steps=3, batch=4, directions=16), data)
    assert len(history["loss"]) == 3 and np.isfinite(history["loss"]).all() and np.isfinite(history["reg"]).all()
    assert torch.bfloat16 in gpu_autocast_here
