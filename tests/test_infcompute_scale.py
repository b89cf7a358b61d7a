"""paper_infcompute at paper scale, on CPU stand-ins: the memory-saving training step (micro-batches
with gradient accumulation, the chunked loss, activation checkpointing) equals the plain one, and
data-parallel training on a two-rank gloo process group follows one process' loss curve."""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from paper_infcompute import corpus  # noqa: E402
from paper_infcompute import train as tr  # noqa: E402
from paper_infcompute.loss import linear_cross_entropy  # noqa: E402
from paper_infcompute.model import Decoder, ModelConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = ModelConfig(vocab_size=256, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, seq_len=16)


def grads_of(model, batch, cfg, precision="fp32"):
    model = copy.deepcopy(model)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    loss = tr.accumulate(model, batch, cfg, autocast)
    return loss, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(0)
    return torch.randint(256, (10, MODEL.seq_len + 1), generator=gen)


def test_chunked_loss_equals_the_full_logits_cross_entropy():
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(3, 7, 12, generator=gen, requires_grad=True)
    head = torch.nn.Linear(12, 50, bias=False)
    targets = torch.randint(50, (3, 7), generator=gen)
    plain = torch.nn.functional.cross_entropy(head(hidden).reshape(-1, 50), targets.reshape(-1), reduction="sum")
    g_plain = torch.autograd.grad(plain, [hidden, head.weight])
    for chunk in (1, 4, 5, 21, 100):
        loss = linear_cross_entropy(hidden, head, targets, chunk)
        assert float(loss.detach()) == pytest.approx(float(plain.detach()), rel=1e-6)
        for a, b in zip(torch.autograd.grad(loss, [hidden, head.weight]), g_plain, strict=True):
            assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_micro_batches_chunked_loss_and_checkpointing_give_the_whole_batch_gradients(batch, precision):
    torch.manual_seed(0)
    model = Decoder(MODEL)
    base = tr.RunConfig(model=MODEL)
    loss0, g0 = grads_of(model, batch, base, precision)
    tol = 1e-5 if precision == "fp32" else 2e-2  # bf16: each pass rounds its own products
    for kw in ({"micro_batch": 3}, {"micro_batch": 1}, {"loss_chunk": 7}, {"checkpointing": True},
               {"micro_batch": 4, "loss_chunk": 9, "checkpointing": True}):
        loss, g = grads_of(model, batch, replace(base, **kw), precision)
        assert loss == pytest.approx(loss0, rel=1e-5 if precision == "fp32" else 1e-2), kw
        for name in g0:
            scale = float(g0[name].abs().max())
            assert float((g[name] - g0[name]).abs().max()) <= tol * scale, (kw, name)


def test_micro_batches_cover_the_batch_once_and_split_evenly_over_ranks():
    for rows, micro, world in ((64, 4, 1), (64, 4, 8), (10, 3, 2), (3, 2, 4), (7, 0, 1), (7, 0, 2)):
        parts = tr.micro_batches(rows, micro, world)
        assert len(parts) % world == 0
        covered = [i for s in parts for i in range(rows)[s]]
        assert covered == list(range(rows)), (rows, micro, world)
        if micro:
            assert all(s.stop - s.start <= micro for s in parts)


def test_windows_are_gathered_on_demand_as_before(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 50_000, 1001)
    old_style = torch.as_tensor(tokens[np.arange(17)[None, :] + 16 * np.arange(62)[:, None]], dtype=torch.long)
    mapped = np.memmap(tmp_path / "t.bin", dtype=np.uint16, mode="w+", shape=tokens.shape)
    mapped[:] = tokens
    lazy = tr.Windows(mapped, 16)
    assert len(lazy) == 62 and torch.equal(lazy[:], old_style) and torch.equal(tr.windows(tokens, 16), old_style)
    rows = torch.tensor([5, 0, 61, 5])
    assert torch.equal(lazy[rows], old_style[rows]) and lazy[rows].dtype == torch.long
    assert torch.equal(lazy[3:9], old_style[3:9])
    # over shards: each shard's windows in turn, none across a shard's end
    shards = tr.Windows([tokens[:500], tokens[500:]], 16)
    first, second = tr.windows(tokens[:500], 16), tr.windows(tokens[500:], 16)
    assert len(shards) == len(first) + len(second) == 31 + 31
    assert torch.equal(shards[:], torch.cat([first, second]))
    assert torch.equal(shards[torch.tensor([40, 2, 31, 30])], torch.stack([second[9], first[2], second[0], first[30]]))


def test_plain_training_is_unchanged_by_the_memory_options_to_rounding():
    data = corpus.load(corpus.CorpusSpec(train_bytes=3000, val_bytes=2000))
    cfg = tr.RunConfig(model=replace(MODEL, seq_len=32), epochs=2, batch_size=8)
    _, plain = tr.train(cfg, data)
    _, saving = tr.train(replace(cfg, micro_batch=3, loss_chunk=40, checkpointing=True), data)
    assert plain["steps"] == saving["steps"] == len(plain["loss_curve"])
    assert np.allclose(plain["loss_curve"], saving["loss_curve"], rtol=1e-4)
    assert saving["val_loss"] == pytest.approx(plain["val_loss"], rel=1e-4)
    assert plain["tokens_per_s_per_device"] > 0 and "mfu" not in plain  # no known peak on a CPU
    assert cfg.key() != replace(cfg, micro_batch=3).key()


@pytest.mark.slow
def test_two_ranks_on_gloo_follow_one_process_loss_curve(tmp_path):
    cfg = tr.RunConfig(model=replace(MODEL, seq_len=32), corpus=corpus.CorpusSpec(train_bytes=3000, val_bytes=2000),
                       epochs=2, batch_size=6, micro_batch=2)
    (tmp_path / "run.json").write_text(json.dumps(tr.asdict(cfg)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "paper_infcompute.launch", str(tmp_path / "run.json"), "--cache", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(proc.stdout.strip().splitlines()[-1])
    _, one = tr.train(cfg, corpus.load(cfg.corpus))
    assert two["steps"] == one["steps"] and two["tokens"] == one["tokens"]
    assert np.allclose(two["loss_curve"], one["loss_curve"], rtol=1e-4)
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)
    # rank 0 wrote the run where a sweep looks for it; loading it gives the same model
    model, cached = tr.cached_run(cfg, corpus.load(cfg.corpus), tmp_path / "cache")
    assert cached["cached"] and cached["loss_curve"] == two["loss_curve"]


def test_corpus_is_tokenised_once_into_checked_memory_mapped_files(tmp_path, capsys):
    for i in range(6):
        (tmp_path / f"doc{i}.txt").write_text(f"text number {i} " * 150)
    spec = corpus.CorpusSpec(source=str(tmp_path), pattern="*.txt", train_bytes=5000, val_bytes=2000)
    plain = corpus.load(spec)
    mapped = corpus.load(spec, tmp_path / "cache")
    (entry,) = [p for p in (tmp_path / "cache").glob("tokens-*") if p.is_dir()]
    meta = json.loads((entry / "meta.json").read_text())
    assert isinstance(mapped.train, np.memmap) and mapped.train.dtype == np.uint16
    assert meta["sha256"] == plain.sha256 == mapped.sha256 and meta["tokens"]["train"]["count"] == len(plain.train)
    for split in ("train", "val"):
        assert torch.equal(tr.windows(getattr(mapped, split), 16), tr.windows(getattr(plain, split), 16))
    made = (entry / "train.bin").stat().st_mtime_ns
    again = corpus.load(spec, tmp_path / "cache")  # mapped, not tokenised again
    assert (entry / "train.bin").stat().st_mtime_ns == made and again.train_files == plain.train_files
    # a damaged token file is refused by its checksum and made again
    raw = bytearray((entry / "train.bin").read_bytes())
    raw[10] ^= 1
    (entry / "train.bin").write_bytes(bytes(raw))
    assert np.array_equal(corpus.load(spec, tmp_path / "cache").train, plain.train)
    assert "does not match its checksum" in capsys.readouterr().err
    # a changed text file makes it stale
    changed = tmp_path / plain.train_files[0]
    changed.write_text(changed.read_text().upper())
    fresh = corpus.load(spec, tmp_path / "cache")
    assert "changed since" in capsys.readouterr().err and fresh.sha256 == corpus.load(spec).sha256 != plain.sha256


def test_tokenising_streams_and_its_ids_do_not_depend_on_how_the_text_arrives(tmp_path):
    """The text is read in blocks (documents, or any split): a character split between two blocks, invalid
    bytes, and the pieces cut after blank lines come out as from the whole text at once."""
    rng = random.Random(0)
    text = "".join(rng.choice(["ab", "\n\n", "\n", " ", "é", "日本", "x" * 9]) for _ in range(3000)).encode() + b"\xff\xc3"
    whole = text.decode("utf-8", errors="replace")
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), 6))
        blocks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert "".join(corpus._decoded(blocks)) == whole
        pieces = list(corpus._pieces(corpus._decoded(blocks), size=50))
        assert pieces == list(corpus._pieces([whole], size=50)) and "".join(pieces) == whole
        assert all(len(p) <= 50 for p in pieces)
        assert all(p.endswith("\n\n") or "\n\n" not in p for p in pieces[:-1])  # cut after the last blank line
    assert list(corpus._pieces(["a\n\nbc", "d"], size=4)) == ["a\n\n", "bcd"]
    assert list(corpus._pieces(["abcdefghij"], size=4)) == ["abcd", "efgh", "ij"]  # no blank line: cut at size
    # a corpus too small for its budget is an error, and leaves no partial cache entry behind
    for name in ("a.txt", "b.txt"):  # one for validation, one for training
        (tmp_path / name).write_text("short " * 100)
    spec = corpus.CorpusSpec(source=str(tmp_path), pattern="*.txt", train_bytes=5000, val_bytes=100)
    with pytest.raises(ValueError, match="corpus too small: wanted 5000 bytes, found 600"):
        corpus.load(spec, tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_streaming_ensemble_nll_equals_the_materialised_one():
    from paper_infcompute import ensemble

    torch.manual_seed(3)
    models = [Decoder(MODEL) for _ in range(3)]
    rows = torch.randint(256, (9, MODEL.seq_len + 1), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        whole = [torch.log_softmax(m(rows[:, :-1]).float(), -1) for m in models]  # [n, T, V] per member
    for batch in (1, 4, 9):
        streamed = ensemble.token_nll(models, rows, batch=batch)
        for method in ("logit", "prob"):
            assert streamed[method].shape == (3, 9, MODEL.seq_len)
            for k in range(1, 4):
                reference = -ensemble.combine(whole[:k], method).gather(-1, rows[:, 1:, None]).mean()
                assert float(streamed[method][k - 1].mean()) == pytest.approx(float(reference), abs=1e-6)


def test_a_two_device_submitit_job_is_one_data_parallel_run(tmp_path, monkeypatch):
    """The sweep's executor asks for a run's devices (``JobPool.submit(..., gpus=2)``): submitit starts one
    task per device, and the tasks form one process group (here gloo, locally)."""
    pytest.importorskip("submitit")
    from runners.jobs import JobPool

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = tr.RunConfig(model=replace(MODEL, seq_len=32), corpus=corpus.CorpusSpec(train_bytes=3000, val_bytes=2000),
                       epochs=1, batch_size=6, micro_batch=2)
    with JobPool("submitit", 1, None, {"cluster": "local", "timeout_min": 5}, folder=tmp_path / "jobs") as pool:
        two = pool.submit(tr.train_job, (cfg, cfg.corpus, str(tmp_path / "cache")), gpus=2).result()
        assert pool._executor_for(2).parameters["tasks_per_node"] == 2
    _, one = tr.train(cfg, corpus.load(cfg.corpus))
    assert two["devices"] == 2 and one["devices"] == 1
    assert np.allclose(two["loss_curve"], one["loss_curve"], rtol=1e-4)


@pytest.mark.parametrize("tokenizer, vocab", [("gpt2", 50_257), ("llama3", 128_256)])
def test_every_paper_shape_fits_an_80gb_gpu_at_the_full_tiers_micro_batch(tokenizer, vocab):
    """The preflight's estimate of each phase's peak per device (the largest over the paper's four shapes;
    distillation at 300M), at the full tier's settings; the same step without micro-batches or a chunked
    loss does not fit."""
    from runners.config import compose
    from suites.infcompute import PAPER_SHAPES, InfComputeSuite, _memory

    cfg, _ = compose(InfComputeSuite, "full", ["data.source=/data/dclm", "data.tokenizer=bytes"])
    assert cfg.micro_batch and cfg.loss_chunk and cfg.eval_batch and cfg.sizes == list(PAPER_SHAPES)
    peaks = _memory(cfg, vocab)
    assert set(peaks) == {"training", "ensemble_eval", "distillation_sampling"}
    assert max(peaks.values()) < 80e9, {k: round(v / 1e9, 1) for k, v in peaks.items()}
    for d in PAPER_SHAPES:  # 64 x 4096 tokens at once: the logits alone are tens of GB
        whole = _memory(replace(cfg, sizes=[d], micro_batch=0, loss_chunk=0), vocab)["training"]
        assert whole > 80e9, (d, whole / 1e9)


def test_a_hugging_face_tokenizer_file_and_the_auto_choice(tmp_path, monkeypatch):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(4):
        (docs / f"d{i}.txt").write_text(f"the tokenizer reads document {i}.\n\n" * 120)
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train([str(p) for p in docs.iterdir()], trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"]))
    tok.save(str(tmp_path / "tokenizer.json"))
    spec = corpus.CorpusSpec(source=str(docs), pattern="*.txt", train_bytes=4000, val_bytes=2000,
                             tokenizer=str(tmp_path))  # the directory holding tokenizer.json
    data = corpus.load(spec)
    assert data.vocab_size == corpus.vocab_size(str(tmp_path)) == tok.get_vocab_size()
    assert tok.decode(data.train.tolist()) == "".join((docs / f).read_text() for f in data.train_files)[:4000]
    with pytest.raises(FileNotFoundError, match="tokenizer not found: /no/such/tokenizer.json"):
        corpus.load(replace(spec, tokenizer="/no/such/tokenizer.json"))
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert corpus.resolve_tokenizer("auto") == corpus.GPT2  # no access to the gated Llama 3: GPT-2's
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_token")
    assert corpus.resolve_tokenizer("auto") == corpus.LLAMA3 and corpus.resolve_tokenizer("bytes") == "bytes"


def test_the_one_gpu_medium_tier(harness_env, capsys, monkeypatch):
    """Its largest model is the paper's smallest shape, its claims are judged, it is skipped without a GPU,
    and its memory fits one card; the projection of the paper's runs from a sweep's achieved rate."""
    from runners.cli import main
    from runners.config import compose
    from suites.infcompute import (
        PAPER_SHAPES,
        PAPER_TOKENS_PER_EPOCH,
        InfComputeSuite,
        _memory,
        _projection,
        model_cfg,
    )

    cfg, _ = compose(InfComputeSuite, "medium", [])
    m = model_cfg(cfg, 512, 256)
    assert (m.n_layers, m.n_heads, m.n_kv_heads or m.n_heads, m.ff) == PAPER_SHAPES[512][1:]
    assert cfg.device == "cuda" and cfg.seq_len == 1024 and cfg.data.tokenizer == "bytes"
    assert all(c.threshold.get("medium") == c.threshold["small"] for c in InfComputeSuite.claims)
    assert max(_memory(cfg, 256).values()) * cfg.workers < 80e9  # four runs share the card
    if not torch.cuda.is_available():
        assert main(["run", "infcompute", "--tier", "medium", "--preflight"]) == 3
        assert "skipped: requirement unmet: gpus>=1" in capsys.readouterr().out
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr("paper_infcompute.corpus.resolve_tokenizer", lambda name: "bytes")
    projected = _projection(cfg, trained_flops=3.6e17, seconds=3600.0)  # 100 TFLOP/s
    assert projected["flops_per_s_per_device"] == pytest.approx(1e14)
    paper_150m = replace(cfg, paper_shapes=True, seq_len=4096)
    expected = tr.flops_per_token(model_cfg(paper_150m, 512, 256)) * PAPER_TOKENS_PER_EPOCH / 1e14 / 3600
    assert projected["gpu_hours_per_epoch"]["150M"] == pytest.approx(expected)
    assert list(projected["gpu_hours_per_epoch"]) == ["150M", "300M", "600M", "1.4B"]
    assert _projection(replace(cfg, device="cpu"), 3.6e17, 3600.0) is None
    assert _projection(replace(cfg, executor="submitit"), 3.6e17, 3600.0) is None


def test_flops_per_token_by_hand():
    m = ModelConfig(vocab_size=100, d_model=8, n_layers=2, n_heads=2, d_ff=16, seq_len=10)
    # per layer: qkv 8x24, proj 8x8, gate/up 8x16 each, down 16x8, two norms of 8; final norm 8, head 8x100
    n = 2 * (8 * 24 + 64 + 2 * 128 + 128 + 16) + 8 + 800
    assert tr.flops_per_token(m) == 6 * n + 12 * 2 * 8 * 10
