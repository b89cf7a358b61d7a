"""paper_ssd engines on tiny decoders: greedy identity of AR / SD / SSD, the output law under
sampling, KV rollback and forking, cache keying, and failure of the draft process."""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy.stats")

from paper_infcompute import corpus  # noqa: E402
from paper_infcompute import train as tr  # noqa: E402
from paper_infcompute.model import ModelConfig  # noqa: E402
from paper_ssd import engine  # noqa: E402
from paper_ssd.exactness import two_token_pvalues  # noqa: E402
from paper_ssd.lm import Rows, save_tiny  # noqa: E402
from tests.ssd_rows import check_ragged_rows  # noqa: E402

SPEC = corpus.CorpusSpec(train_bytes=12_000, val_bytes=2000)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A target and a smaller draft trained for a few seconds on the same bytes (so they agree often)."""
    root = tmp_path_factory.mktemp("ssd")
    text = corpus.load(SPEC)
    specs = []
    for name, d, layers in (("target", 48, 2), ("draft", 16, 1)):
        cfg = tr.RunConfig(model=ModelConfig(d_model=d, n_layers=layers, n_heads=2, seq_len=160), corpus=SPEC,
                           epochs=3, batch_size=16)
        model, _ = tr.train(cfg, text, evaluate=False)
        specs.append(save_tiny(model, root / f"{name}.pt"))
    prompts = [text.val[i:i + 24].tolist() for i in (0, 500, 1000)]
    return specs[0], specs[1], prompts


def test_sessions_roll_back_and_fork_exactly(pair):
    target = pair[0].session()
    seq = list(range(40, 60))
    full = target.feed(seq)
    target.reset()
    target.feed(seq[:12] + [7, 7, 7])  # a rejected speculation ...
    target.crop(12)  # ... rolled back
    assert torch.allclose(target.feed(seq[12:]), full[12:], atol=1e-5)
    rows = Rows(target, 1, torch.ones(1, 20, dtype=torch.bool), torch.tensor([20]))
    branches = rows.take([0, 0, 0], [10, 10, 10])
    out = branches.feed(torch.tensor([[seq[10]], [seq[10]], [99]]))
    assert out.shape[:2] == (3, 1) and torch.allclose(out[0, 0], full[10], atol=1e-5)
    assert torch.allclose(out[0], out[1]) and not torch.allclose(out[0], out[2])
    assert target.length == 20  # forking leaves the parent alone
    with pytest.raises(ValueError, match="cannot crop"):
        target.crop(50)


@pytest.mark.parametrize("backup", ["jit", "fast"])
def test_greedy_streams_are_identical(pair, backup):
    target_spec, draft_spec, prompts = pair
    target, draft = target_spec.session(), draft_spec.session()
    cfg = engine.DecodeConfig(k=3, temperature=0.0, fan_out=[2, 2, 2, 2], backup=backup)
    with engine.DraftProcess(draft_spec, cfg, core=None) as proc:
        for prompt in prompts:
            ar, _ = engine.autoregressive(target, prompt, 40)
            sd, sd_stats = engine.speculative(target, draft, prompt, 40, cfg)
            ssd_out, ssd_stats = engine.ssd(target, proc, prompt, 40, cfg, core=None)
            assert sd == ar and ssd_out == ar
            for st in (sd_stats, ssd_stats):
                assert st.new_tokens == 40 and st.accepted <= st.drafted and st.rounds <= 40
            assert ssd_stats.hits <= ssd_stats.length_hits <= ssd_stats.predicted == ssd_stats.rounds - 1
    summary = ssd_stats.summary()
    assert summary["tokens_per_round"] >= 1 and 0 <= summary["hit_rate"] <= 1


def test_trained_pair_accepts_and_the_cache_hits(pair):
    target_spec, draft_spec, prompts = pair
    cfg = engine.DecodeConfig(k=3, temperature=0.0, fan_out=[3, 3, 3, 3])
    with engine.DraftProcess(draft_spec, cfg, core=None) as proc:
        _, stats = engine.ssd(target_spec.session(), proc, prompts[0], 60, cfg, core=None)
    s = stats.summary()
    assert s["acceptance"] > 0.2 and s["hit_rate"] > 0.3, s  # trained on the same bytes: they agree


@pytest.mark.parametrize("mode", ["sd", "ssd_jit", "ssd_fast_saguaro"])
def test_sampling_matches_the_targets_law(pair, mode):
    """First two tokens at temperature 1 over many seeded runs against the target's exact law."""
    target_spec, draft_spec, prompts = pair
    prompt = prompts[1]
    target, draft = target_spec.session(), draft_spec.session()
    backup, c = ("fast", 0.5) if mode == "ssd_fast_saguaro" else ("jit", 1.0)
    n, batch = 1500, 25  # each row of a batch is an independent draw
    samples = []
    with engine.DraftProcess(draft_spec, engine.DecodeConfig(k=1, temperature=1.0, fan_out=[2, 2], backup=backup,
                                                             saguaro_c=c), core=None) as proc:
        for seed in range(n // batch):
            cfg = engine.DecodeConfig(k=1, temperature=1.0, fan_out=[2, 2], backup=backup, saguaro_c=c, seed=seed)
            if mode == "sd":
                out, _ = engine.speculative(target, draft, [prompt] * batch, 2, cfg)
            else:
                out, _ = engine.ssd(target, proc, [prompt] * batch, 2, cfg, core=None)
            samples += [tuple(x) for x in out]
    # first token: chi-square against p(. | prompt); second: its conditional law, through the
    # randomised PIT (uniform under the target's law whatever the first token was), by Kolmogorov-Smirnov
    chi2, ks = two_token_pvalues(target, prompt, samples)
    assert chi2 > 1e-3 and ks > 1e-3


def test_a_reconfigured_draft_process_serves_as_a_new_one(pair):
    """One process that served the jit backup and is then configured for the random one gives the streams
    and statistics of a new random-backup process: at temperature 1 both the draft's sampling and its random
    guesses draw from its generators, which a configure seeds afresh."""
    target_spec, draft_spec, prompts = pair
    target = target_spec.session()
    jit = engine.DecodeConfig(k=2, temperature=1.0, fan_out=[2, 2, 2], backup="jit", seed=3)
    fast = engine.DecodeConfig(**{**jit.__dict__, "backup": "fast"})

    def runs(proc, cfg):
        return [engine.ssd(target, proc, p, 24, cfg, core=None) for p in prompts]

    def facts(out):
        return [(o, st.hits, st.length_hits, st.rounds, st.accepted) for o, st in out]

    with engine.DraftProcess(draft_spec, fast, core=None) as proc:
        new = facts(runs(proc, fast))
    with engine.DraftProcess(draft_spec, jit, core=None) as proc:
        runs(proc, jit)
        proc.configure(fast)
        assert facts(runs(proc, fast)) == new


class BrokenSpec:
    def session(self):
        raise RuntimeError("weights not found: /nowhere/draft.pt")


def test_a_failing_or_dead_draft_is_a_clear_error_and_leaves_no_process(pair):
    cfg = engine.DecodeConfig(k=2, fan_out=[1, 1, 1])
    t0 = time.monotonic()
    proc = engine.DraftProcess(BrokenSpec(), cfg, core=None)
    with pytest.raises(RuntimeError, match="(?s)draft process failed.*weights not found"):
        engine.ssd(pair[0].session(), proc, pair[2][0], 10, cfg, core=None)
    proc.close()
    assert not proc.proc.is_alive() and time.monotonic() - t0 < 30
    proc = engine.DraftProcess(pair[1], cfg, core=None)
    proc.proc.kill()
    with pytest.raises(RuntimeError, match="draft process died"):
        engine.ssd(pair[0].session(), proc, pair[2][0], 10, cfg, core=None)
    proc.close()
    assert not proc.proc.is_alive()


def test_cache_keys_cover_the_fan_out_and_exclude_the_speculated_token(pair):
    cfg = engine.DecodeConfig(k=2, temperature=0.5, fan_out=[3, 2, 1], fan_out_miss=[0, 4, 2])
    s = [pair[2][0], pair[2][1][:15]]  # two rows of different lengths, built in one batch
    rows = Rows.fresh(pair[1].session(), 2)
    rows.feed([x[:-1] for x in s])
    xs = [[101, 102], [103, 104]]
    cache = engine._build_cache(rows, s, xs, cfg, [cfg.fan_out, cfg.fan_out_miss], torch.Generator())
    for r, fan in enumerate([cfg.fan_out, cfg.fan_out_miss]):
        per_length = {j: [t for (rr, jj, t) in cache if (rr, jj) == (r, j)] for j in range(3)}
        assert [len(per_length[j]) for j in range(3)] == fan
        assert xs[r][0] not in per_length[0] and xs[r][1] not in per_length[1]
    tokens, q = cache[(0, 0, [t for (rr, jj, t) in cache if (rr, jj) == (0, 0)][0])]
    assert len(tokens) == 2 and q.shape == (2, 256)
    # each branch's chain is what the draft alone proposes after s + x_1..x_j + t (greedy)
    greedy = engine.DecodeConfig(k=2, temperature=0.0, fan_out=[1, 1, 1])
    rows = Rows.fresh(pair[1].session(), 2)
    rows.feed([x[:-1] for x in s])
    cache = engine._build_cache(rows, s, xs, greedy, [greedy.fan_out] * 2, torch.Generator())
    alone = pair[1].session()
    for (r, j, t), (tokens, q) in cache.items():
        assert q is None
        alone.reset()
        first = int(alone.feed(s[r] + xs[r][:j] + [t])[-1].argmax())
        assert tokens == [first, int(alone.feed([first])[-1].argmax())]


def test_ragged_rows_match_each_sequence_alone(pair):
    check_ragged_rows(pair[0].session(), [list(range(30, 52)), list(range(60, 69)), list(range(5, 18))])


@pytest.mark.parametrize("backup", ["jit", "fast"])
def test_a_batch_decodes_each_row_as_it_would_alone(pair, backup):
    """Batch of prompts of different lengths: every mode's greedy stream per row is the target's."""
    target_spec, draft_spec, prompts = pair
    batch = [prompts[0], prompts[1][:17], prompts[2][:9], prompts[0][5:]]
    target, draft = target_spec.session(), draft_spec.session()
    cfg = engine.DecodeConfig(k=3, temperature=0.0, fan_out=[2, 2, 2, 2], backup=backup)
    alone = [engine.autoregressive(target, p, 30)[0] for p in batch]
    ar, ar_stats = engine.autoregressive(target, batch, 30)
    sd, sd_stats = engine.speculative(target, draft, batch, 30, cfg)
    with engine.DraftProcess(draft_spec, cfg, core=None) as proc:
        out, stats = engine.ssd(target, proc, batch, 30, cfg, core=None)
    assert ar == alone and sd == alone and out == alone
    for st in (ar_stats, sd_stats, stats):
        assert st.new_tokens == 4 * 30
    assert stats.steps < stats.rounds and stats.hits <= stats.length_hits <= stats.predicted
    assert stats.predicted == stats.rounds - 4  # every row's rounds after its first


def test_config_errors_are_plain():
    with pytest.raises(ValueError, match="k\\+1 = 4 entries"):
        engine.DecodeConfig(k=3, fan_out=[1, 1]).check()
    with pytest.raises(ValueError, match="same budget"):
        engine.DecodeConfig(k=1, fan_out=[2, 2], fan_out_miss=[3, 0]).check()
    with pytest.raises(ValueError, match="constant fan-out"):
        engine.DecodeConfig(k=1, fan_out=[3, 1], saguaro_c=0.5).check()
    with pytest.raises(ValueError, match="jit or fast"):
        engine.DecodeConfig(backup="neural").check()
