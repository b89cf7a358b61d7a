"""paper_infcompute: exact invariants, the fitter on synthetic laws, determinism, caching."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from paper_infcompute import corpus, ensemble, fit  # noqa: E402
from paper_infcompute import train as tr  # noqa: E402
from paper_infcompute.model import Decoder, ModelConfig, apply_rope, rope_tables  # noqa: E402

TINY = ModelConfig(d_model=16, n_layers=1, n_heads=2, seq_len=32)
SPEC = corpus.CorpusSpec(train_bytes=4000, val_bytes=3000)


@pytest.fixture(scope="module")
def small_corpus():
    return corpus.load(SPEC)


def nll(logprobs, windows):
    """The mean NLL of the targets (``windows[:, 1:]``) under materialised log-probabilities [n, T, V]."""
    return float(-logprobs.gather(-1, windows[:, 1:, None]).mean())


@pytest.mark.parametrize("method", ["logit", "prob"])
def test_ensemble_nll_never_above_member_mean(method):
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        members = [torch.log_softmax(3 * torch.randn(4, 8, 11, generator=gen), -1) for _ in range(3)]
        targets = torch.randint(11, (4, 9), generator=gen)
        ens = nll(ensemble.combine(members, method), targets)
        assert ens <= np.mean([nll(m, targets) for m in members]) + 1e-6


def test_ensemble_of_one_is_the_member():
    lp = torch.log_softmax(torch.randn(2, 3, 5), -1)
    assert torch.allclose(ensemble.combine([lp], "logit"), lp, atol=1e-6)
    assert torch.allclose(ensemble.combine([lp], "prob"), lp, atol=1e-6)
    with pytest.raises(ValueError, match="unknown ensemble"):
        ensemble.combine([lp], "median")


def test_fit_recovers_known_law():
    x = np.array([1.0, 2, 4, 8, 16, 32])
    rng = np.random.default_rng(0)
    per_seed = 0.5 / x**0.8 + 2.0 + 0.002 * rng.standard_normal((5, len(x)))
    law = fit.fit_power_law(x, per_seed.mean(0), per_seed=per_seed, n_boot=50)
    assert law.A == pytest.approx(0.5, abs=0.03)
    assert law.alpha == pytest.approx(0.8, abs=0.1)
    assert law.E == pytest.approx(2.0, abs=0.01)
    assert len(law.loo_E) == 6 and len(law.boot_E) == 50
    assert law.stable(0.05) and not law.stable(1e-6)
    assert fit.invert(law, float(law(8.0))) == pytest.approx(8.0, rel=1e-9)
    assert fit.invert(law, law.E - 0.1) == math.inf


@pytest.mark.parametrize("y", [[3.0, 2.5, 2.4, 2.38], [2.0, 2.1, 2.3, 2.2], [1.0, 1.0, 1.0, 1.0]])
def test_fitted_asymptote_within_zero_and_min_loss(y):
    law = fit.fit_power_law([1, 2, 4, 8], y)
    assert 0.0 <= law.E <= min(y) + 1e-9 and law.A >= 0


def test_fit_needs_three_points():
    with pytest.raises(ValueError, match=">= 3 points"):
        fit.fit_power_law([1, 2], [1.0, 0.5])


def test_corpus_is_deterministic_and_disjoint(small_corpus, tmp_path):
    again = corpus.load(SPEC)
    assert again.sha256 == small_corpus.sha256 and np.array_equal(again.train, small_corpus.train)
    assert not set(small_corpus.train_files) & set(small_corpus.val_files)
    assert len(small_corpus.train) == 4000 and len(small_corpus.val) == 3000 and small_corpus.vocab_size == 256
    for i in range(4):
        (tmp_path / f"f{i}.txt").write_text(f"document {i} " * 200)
    own = corpus.load(corpus.CorpusSpec(source=str(tmp_path), pattern="*.txt", train_bytes=3000, val_bytes=2000))
    assert len(own.train_files) >= 1 and not set(own.train_files) & set(own.val_files)
    with pytest.raises(ValueError, match="corpus too small"):
        corpus.load(corpus.CorpusSpec(source=str(tmp_path), pattern="*.txt", train_bytes=10**6))
    with pytest.raises(FileNotFoundError, match="tokenizer vocabulary not found"):
        corpus.encoder_for(str(tmp_path / "gpt2.tiktoken"))


def test_decoder_is_causal_and_rope_preserves_norm():
    torch.manual_seed(0)
    model = Decoder(TINY)
    idx = torch.randint(256, (1, 16))
    changed = idx.clone()
    changed[0, 10] = (changed[0, 10] + 1) % 256
    a, b = model(idx), model(changed)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-6) and not torch.allclose(a[0, 10:], b[0, 10:])
    x = torch.randn(2, 3, 16, 8)
    cos, sin = rope_tables(16, 8)
    assert torch.allclose(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_kv_cache_decoding_equals_full_forward():
    torch.manual_seed(0)
    model = Decoder(TINY).eval()
    idx = torch.randint(256, (3, TINY.seq_len))
    full = model(idx)
    caches = model.new_caches()
    steps = [model(idx[:, :5], caches)] + [model(idx[:, t:t + 1], caches) for t in range(5, TINY.seq_len)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    caches = model.new_caches()  # several new tokens at once after a filled cache (a verification pass)
    chunks = [model(idx[:, :3], caches), model(idx[:, 3:9], caches), model(idx[:, 9:], caches)]
    assert torch.allclose(torch.cat(chunks, dim=1), full, atol=1e-5)
    with pytest.raises(ValueError, match="exceed seq_len"):
        model(torch.randint(256, (1, TINY.seq_len + 1)))


def test_schedule_and_decay_groups():
    assert tr.lr_at(0, 1000, 1.0, 0.01) == pytest.approx(0.1)  # warm-up: 10 steps
    assert tr.lr_at(9, 1000, 1.0, 0.01) == pytest.approx(1.0)
    assert tr.lr_at(10, 1000, 1.0, 0.01) == pytest.approx(1.0)
    assert tr.lr_at(505, 1000, 1.0, 0.01) == pytest.approx(0.5)
    assert tr.lr_at(999, 1000, 1.0, 0.01) < 1e-4
    model = Decoder(TINY)
    decay, rest = tr.param_groups(model, 0.4)
    n_linear = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) for p in m.parameters())
    assert sum(p.numel() for p in decay["params"]) == n_linear and decay["weight_decay"] == 0.4
    assert model.embed.weight in rest["params"] and rest["weight_decay"] == 0.0


def test_training_is_deterministic_and_cached(small_corpus, tmp_path):
    cfg = tr.RunConfig(model=TINY, corpus=SPEC, epochs=2, batch_size=16)
    _, m1 = tr.train(cfg, small_corpus)
    _, m2 = tr.train(cfg, small_corpus)
    assert m1["val_loss"] == m2["val_loss"] and m1["steps"] == 2 * math.ceil(124 / 16)
    _, m3 = tr.train(tr.RunConfig(model=TINY, corpus=SPEC, epochs=2, batch_size=16, seed=1), small_corpus)
    assert m3["val_loss"] != m1["val_loss"]
    model_a, first = tr.cached_run(cfg, small_corpus, tmp_path)
    model_b, second = tr.cached_run(cfg, small_corpus, tmp_path)
    assert not first["cached"] and second["cached"] and second["val_loss"] == first["val_loss"]
    val = tr.windows(small_corpus.val, TINY.seq_len)
    assert float(ensemble.token_nll([model_b], val)["logit"][0].mean()) == pytest.approx(first["val_loss"], abs=1e-6)


def test_local_search_finds_and_certifies_the_optimum():
    from paper_infcompute.search import local_optimum, neighbours

    grids = {"epochs": [8, 16, 32, 64, 128], "wd": [0.1, 0.4, 1.6, 6.4]}
    calls = []

    def bowl(p):  # minimum at epochs 32, wd 1.6
        calls.append(p)
        return (math.log2(p["epochs"]) - 5) ** 2 + (math.log2(p["wd"] / 1.6)) ** 2

    def many(points):
        return [bowl(p) for p in points]

    res = local_optimum(many, grids, {"epochs": 8, "wd": 0.1})
    assert res.best == {"epochs": 32, "wd": 1.6} and res.certified and res.loss == 0
    assert len(calls) == res.runs == len({tuple(sorted(c.items())) for c in calls})  # no point run twice
    assert all(res.evaluated[tuple(sorted(n.items()))] > 0 for n in neighbours(res.best, grids))
    short = local_optimum(many, grids, {"epochs": 8, "wd": 0.1}, max_runs=4)
    assert not short.certified and short.runs == 4
    with pytest.raises(ValueError, match="not on its grid"):
        local_optimum(many, grids, {"epochs": 10, "wd": 0.1})


def test_sampler_matches_model_distribution():
    from paper_infcompute.sample import sample

    class Fixed(torch.nn.Module):  # next-token distribution independent of context
        def forward(self, x, caches=None):
            logits = torch.log(torch.tensor([0.7, 0.2, 0.1]))
            return logits.expand(*x.shape, 3)

        def new_caches(self):
            return []

    toks = sample([Fixed()], 29_700, seq_len=8, unigram=np.array([1.0, 0.0, 0.0]), seed=0, streams=100)
    body = toks.reshape(-1, 9)[:, 1:].ravel()  # the first token of each stream is the unigram draw
    assert len(toks) == 29_700 and np.all(toks.reshape(-1, 9)[:, 0] == 0)
    assert np.bincount(body, minlength=3) / len(body) == pytest.approx([0.7, 0.2, 0.1], abs=0.01)
    again = sample([Fixed()], 29_700, seq_len=8, unigram=np.array([1.0, 0.0, 0.0]), seed=0, streams=100)
    assert np.array_equal(toks, again)


def test_data_efficiency_and_retention():
    from paper_infcompute.metrics import data_efficiency, distill_retention

    # the paper's reconstructed standard data law: L(D) = 1.28 / D^0.231 + 1.91 (D in B tokens)
    law = fit.PowerLaw(A=1.28, alpha=0.231, E=1.91, x0=1.0, rmse=0.0)
    d = 0.2097
    assert data_efficiency(law, float(law(d)), d) == pytest.approx(1.0)
    assert data_efficiency(law, 3.17, d) == pytest.approx(5.17, rel=0.05)  # the joint recipe's 5.17x
    assert data_efficiency(law, 1.9, d) == math.inf
    # 8x300M ensemble: single 3.5, ensemble 3.32, student 3.3635 -> the paper's ~0.76-0.83 retention range
    assert distill_retention(3.5, 3.3, 3.35) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="not better"):
        distill_retention(3.3, 3.4, 3.35)


def test_kv_cache_with_grouped_query_attention():
    torch.manual_seed(1)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, seq_len=12)
    model = Decoder(cfg).eval()
    assert model.blocks[0].qkv.out_features == 32 + 2 * 2 * 8  # q, then 2 key and 2 value heads of 8
    idx = torch.randint(256, (2, 12))
    caches = model.new_caches()
    steps = [model(idx[:, t:t + 1], caches) for t in range(12)]
    assert torch.allclose(torch.cat(steps, dim=1), model(idx), atol=1e-5)
    assert caches[0]["k"].shape == (2, 2, 12, 8)  # the cache holds the 2 shared heads, not 4
    with pytest.raises(ValueError, match="not a multiple"):
        Decoder(ModelConfig(d_model=32, n_heads=4, n_kv_heads=3))


def test_paper_shapes_have_the_papers_parameter_counts():
    from suites.infcompute import PAPER_SHAPES

    expected = {"150M": 22.8e6, "300M": 102.0e6, "600M": 339.8e6, "1.4B": 906.0e6}  # non-embedding
    for d, (name, layers, heads, kv, ff) in PAPER_SHAPES.items():
        with torch.device("meta"):
            model = Decoder(ModelConfig(vocab_size=128_256, d_model=d, n_layers=layers, n_heads=heads,
                                        n_kv_heads=kv, d_ff=ff, seq_len=4096))
        assert model.n_params() == pytest.approx(expected[name], rel=0.01), name
        assert model.n_params(non_embedding=False) - model.n_params() == 2 * 128_256 * d  # untied


def test_distillation_mix_and_the_no_real_data_ablation(small_corpus):
    synth = np.random.default_rng(0).integers(0, 256, 20_000)
    base = dict(model=TINY, corpus=SPEC, epochs=2, batch_size=16, synth_weight=0.75, synth_key="s")
    _, mixed = tr.train(tr.RunConfig(**base), small_corpus, synth)
    _, synthetic = tr.train(tr.RunConfig(**base, real_data=False), small_corpus, synth)
    # 4 real rows per batch -> ceil(124 / 4) steps per epoch for both; every row synthetic in the ablation
    assert mixed["steps"] == synthetic["steps"] == 2 * math.ceil(124 / 4)
    assert mixed["tokens"] == synthetic["tokens"] == mixed["steps"] * 16 * TINY.seq_len
    assert mixed["val_loss"] != synthetic["val_loss"]
    with pytest.raises(ValueError, match="needs teacher samples"):
        tr.train(tr.RunConfig(**base), small_corpus)
    with pytest.raises(ValueError, match="must be in"):
        tr.train(tr.RunConfig(**{**base, "synth_weight": 1.0}), small_corpus, synth)
    with pytest.raises(ValueError, match="real_data=False needs"):
        tr.train(tr.RunConfig(model=TINY, corpus=SPEC, real_data=False), small_corpus)
    # fields added later leave the cache keys of earlier configs alone (this key predates them),
    # and change them when set
    plain = tr.RunConfig(model=TINY, corpus=SPEC)
    assert plain.key() == "597e51663b7bac1cf6b5"
    assert len({plain.key(), tr.RunConfig(model=TINY, corpus=SPEC, precision="bf16").key(),
                tr.RunConfig(model=ModelConfig(d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, seq_len=32),
                             corpus=SPEC).key()}) == 3


def test_efficiency_bounds_and_measured_floor():
    from paper_infcompute.metrics import data_efficiency_bounds, measured_efficiency_floor

    x = np.array([1.0, 2, 4, 8, 16])
    law = fit.fit_power_law(x, 1.0 / x**0.5 + 2.0)
    low, point, high = data_efficiency_bounds(law, float(law(8.0)), 4.0)
    assert point == pytest.approx(2.0, rel=1e-3) and low <= point <= high and len(law.loo) == 5
    # standard losses 3.0, 2.6, 2.4 at budgets 1, 2, 4: a loss of 2.5 is beyond budget 2 -> floor 2/2 = 1
    assert measured_efficiency_floor([1, 2, 4], [3.0, 2.6, 2.4], 2.5, 2) == 1.0
    assert measured_efficiency_floor([1, 2, 4], [3.0, 2.6, 2.4], 2.3, 2) == 2.0
    assert measured_efficiency_floor([1, 2, 4], [3.0, 2.6, 2.4], 3.5, 2) == 0.0


def test_jsonl_shards_are_read_by_their_text_field(tmp_path):
    import gzip

    def document(path):
        return b"".join(corpus.document_blocks(path))

    records = [{"text": "first document"}, {"text": "second"}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"text": "zipped", "url": "x"}) + "\n")
    assert document(tmp_path / "a.jsonl") == b"first document\n\nsecond"
    # a record at a time
    assert list(corpus.document_blocks(tmp_path / "a.jsonl")) == [b"first document", b"\n\nsecond"]
    assert document(tmp_path / "b.jsonl.gz") == b"zipped"
    (tmp_path / "plain.txt").write_bytes(b"0123456789")
    assert list(corpus.document_blocks(tmp_path / "plain.txt", block=4)) == [b"0123", b"4567", b"89"]
    zstandard = pytest.importorskip("zstandard")
    frames = [zstandard.ZstdCompressor().compress((json.dumps({"text": t}) + "\n").encode()) for t in ("één", "two")]
    (tmp_path / "c.jsonl.zstd").write_bytes(b"".join(frames))  # DCLM-baseline's shards; two frames, both read
    assert document(tmp_path / "c.jsonl.zstd") == "één\n\ntwo".encode()


def test_a_shard_is_decompressed_only_as_far_as_the_budget_reads(tmp_path):
    """A shard is streamed a record at a time: a budget met in its first record leaves the rest unread, so a
    damaged tail after it is never reached, while reading the whole shard fails on it."""
    zstandard = pytest.importorskip("zstandard")
    good = zstandard.ZstdCompressor().compress((json.dumps({"text": "x" * 5000}) + "\n").encode())
    (tmp_path / "d.jsonl.zstd").write_bytes(good + b"\x28\xb5\x2f\xfd" + b"not a zstd frame" * 64)
    used: list[str] = []
    got = b"".join(corpus._read(corpus.Source(root=tmp_path), ["d.jsonl.zstd"], 0, 3000, used))
    assert got == b"x" * 3000 and used == ["d.jsonl.zstd"]
    with pytest.raises(zstandard.ZstdError):
        list(corpus.document_blocks(tmp_path / "d.jsonl.zstd"))


def test_a_hub_dataset_is_read_at_one_commit(tmp_path, monkeypatch):
    """``hf://datasets/OWNER/NAME``: the files matching the pattern anywhere in the repository, listed and
    fetched at the commit the branch names when the corpus is made; the token cache keeps that commit and
    does not ask the hub again."""
    import huggingface_hub

    shards = {f"global-shard_0{g}/shard_{i}.jsonl": f"shard {g} {i} " * 60 for g in range(2) for i in range(3)}
    for name, text in shards.items():
        (tmp_path / "hub" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "hub" / name).write_text(json.dumps({"text": text}) + "\n")
    calls = []

    class Api:
        def dataset_info(self, repo, revision=None):
            calls.append(("info", repo, revision))
            return type("Info", (), {"sha": "a" * 40})()

        def list_repo_files(self, repo, repo_type, revision):
            calls.append(("list", repo, repo_type, revision))
            return [*shards, "README.md"]

    def download(repo, name, repo_type, revision):
        calls.append(("get", name, revision))
        return str(tmp_path / "hub" / name)

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    spec = corpus.CorpusSpec(source="hf://datasets/org/web", pattern="*.jsonl", train_bytes=1500, val_bytes=500)
    made = corpus.load(spec, tmp_path / "cache")
    assert made.revision == "a" * 40 and calls[0] == ("info", "org/web", None)
    assert ("list", "org/web", "dataset", "a" * 40) in calls
    read = [c[1] for c in calls if c[0] == "get"]
    assert read == made.val_files + made.train_files and set(read) <= set(shards)  # never README.md
    assert {c[2] for c in calls if c[0] == "get"} == {"a" * 40}
    local = corpus.load(replace(spec, source=str(tmp_path / "hub")))  # the same files from a directory
    assert np.array_equal(made.train, local.train) and made.sha256 == local.sha256
    calls.clear()
    again = corpus.load(spec, tmp_path / "cache")
    assert calls == [] and again.revision == made.revision  # mapped: the hub is not asked again
    calls.clear()
    assert corpus.load(replace(spec, source="hf://datasets/org/web@" + "a" * 40)).sha256 == made.sha256
    assert not [c for c in calls if c[0] == "info"]  # a commit sha is not resolved


def test_search_certifies_from_points_it_has_already_seen():
    """A 1-D search whose budget runs out exactly as it reaches the grid's edge is still certified:
    every neighbour of the edge point was run on the way there."""
    from paper_infcompute.search import local_optimum

    losses = {8: 3.0, 16: 2.8, 32: 2.6, 64: 2.5}
    res = local_optimum(lambda pts: [losses[p["epochs"]] for p in pts], {"epochs": [8, 16, 32, 64]},
                        {"epochs": 16}, max_runs=4)
    assert res.best == {"epochs": 64} and res.certified and res.runs == 4


class _Payload:
    """What an attacker with write access to a shared cache would plant: unpickling it runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_poisoned_or_torn_cache_entry_is_refused_and_rebuilt(small_corpus, tmp_path, capsys):
    cfg = tr.RunConfig(model=TINY, corpus=SPEC, epochs=2, batch_size=16)
    _, first = tr.cached_run(cfg, small_corpus, tmp_path)
    [entry] = tmp_path.glob("run-*.pt")
    good = entry.read_bytes()
    marker = tmp_path / "code-ran"
    torch.save({"state": _Payload(marker), "metrics": {}}, entry)  # a pickle with a payload
    _, again = tr.cached_run(cfg, small_corpus, tmp_path)
    assert not marker.exists() and not again["cached"] and again["val_loss"] == first["val_loss"]
    assert "does not load (UnpicklingError); training it again" in capsys.readouterr().err
    entry.write_bytes(good[: len(good) // 2])  # a fill killed halfway
    _, again = tr.cached_run(cfg, small_corpus, tmp_path)
    assert not again["cached"] and "training it again" in capsys.readouterr().err
    assert tr.cached_run(cfg, small_corpus, tmp_path)[1]["cached"]  # the rebuilt entry is whole
    assert not list(tmp_path.glob(".*.part"))  # no temporary file left behind
