"""A tensor-parallel target (paper_ssd.tp) on a two-rank gloo group of CPU processes: the engines'
greedy streams equal the single-process target's, for AR, SD and SSD on a batch of two prompts, over a
dynamic or a static KV cache."""

from __future__ import annotations

from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")  # transformers' tensor-parallel loading needs it

from paper_ssd import engine, models  # noqa: E402


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("tp")
    return (models.tiny_qwen2(root / "target", layers=2, hidden=64, seed=0),
            models.tiny_qwen2(root / "draft", layers=1, hidden=32, seed=1))


@pytest.mark.slow
@pytest.mark.parametrize("static_cache", [0, 128])  # a dynamic KV cache; a static one on every rank
def test_tensor_parallel_target_decodes_the_single_process_streams(pair, static_cache):
    target_spec, draft_spec = pair
    single, draft = target_spec.session(), draft_spec.session()
    split = replace(target_spec, tensor_parallel=2, static_cache=static_cache).session()
    try:
        weight = split._session.model.model.layers[0].self_attn.q_proj.weight
        assert weight.to_local().shape[0] == weight.shape[0] // 2  # each rank holds half of the heads
        assert isinstance(split._session, models.StaticHFSession) == bool(static_cache)
        cfg = engine.DecodeConfig(k=3, temperature=0.0, fan_out=[2, 2, 2, 2], seed=0)
        batch = [[5, 17, 42, 99, 3, 8], [7, 7, 100]]  # two prompts of different lengths, decoded together
        for run in (lambda t: engine.autoregressive(t, batch, 16, 0.0, 0),
                    lambda t: engine.speculative(t, draft, batch, 16, cfg)):
            assert run(split)[0] == run(single)[0]
        with engine.DraftProcess(draft_spec, cfg) as proc:
            assert engine.ssd(split, proc, batch, 16, cfg, core=None)[0] == engine.ssd(single, proc, batch, 16, cfg,
                                                                                     core=None)[0]
    finally:
        split.close()
