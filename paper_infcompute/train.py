"""Training one run: a pure function of a small hashable config, cached by its hash.

AdamW (0.9, 0.95), cosine schedule decaying to 0 after a linear warm-up (1% of steps), global
gradient-norm clipping at 1.0, weight decay on Linear weights only (not embeddings, not
norms), as in the paper's levanter setup. The seed sets both the initialisation and the
data order. Loss is next-token cross-entropy in nats per token (per byte for the byte
vocabulary).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from paper_infcompute import distributed
from paper_infcompute.corpus import Corpus, CorpusSpec
from paper_infcompute.loss import linear_cross_entropy
from paper_infcompute.model import Decoder, ModelConfig, parameter_count
from paper_infcompute.sample import load_samples, sample, save_shard, shard_dir


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    epochs: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.1
    batch_size: int = 32
    warmup_frac: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    # distillation: fraction of each batch drawn from teacher samples, and which samples
    synth_weight: float = 0.0
    synth_key: str = ""
    # False: every row synthetic, on the schedule (step count) of the mix above: the paper's
    # "without real data" ablation
    real_data: bool = True
    device: str = "cpu"
    precision: str = "fp32"  # fp32 | bf16 (autocast; parameters stay fp32, as in the paper)
    # memory: rows per forward/backward pass (gradients accumulate to the batch; 0: the whole batch),
    # rows of the loss' vocabulary projection at a time (0: all), recompute blocks in the backward pass
    micro_batch: int = 0
    loss_chunk: int = 0
    checkpointing: bool = False

    def key(self) -> str:
        """Content hash. Fields added after the first release enter it only when set away from
        their default, so finished runs in existing caches keep their keys."""
        fields = asdict(self)
        for name, default in _LATER_FIELDS.items():
            if fields[name] == default:
                del fields[name]
        if fields["model"]["n_kv_heads"] == 0:
            del fields["model"]["n_kv_heads"]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]

    @classmethod
    def from_dict(cls, fields: dict) -> RunConfig:
        """The config ``asdict`` gave (a JSON record of a run)."""
        return cls(**{**fields, "model": ModelConfig(**fields["model"]), "corpus": CorpusSpec(**fields["corpus"])})


_LATER_FIELDS = {"real_data": True, "device": "cpu", "precision": "fp32", "micro_batch": 0, "loss_chunk": 0,
                 "checkpointing": False}


class Windows:
    """Non-overlapping (seq_len + 1)-token windows with stride seq_len (inputs and targets) over a token
    array, in memory or memory-mapped: row i is ``tokens[i * seq_len : i * seq_len + seq_len + 1]``; over a
    list of arrays (shards), each shard's windows in turn (none crosses a shard's end). Rows are gathered
    when indexed (an int64 tensor [rows, seq_len + 1]), so data larger than memory are never copied whole."""

    def __init__(self, tokens: np.ndarray | list[np.ndarray], seq_len: int):
        self.parts, self.seq_len = tokens if isinstance(tokens, list) else [tokens], seq_len
        self.starts = np.cumsum([0] + [max(0, (len(p) - 1) // seq_len) for p in self.parts])
        self.n = int(self.starts[-1])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, rows) -> torch.Tensor:
        rows = np.arange(self.n)[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.seq_len + 1), dtype=np.int64)
        part = np.searchsorted(self.starts, rows, side="right") - 1
        offsets = np.arange(self.seq_len + 1)[None, :]
        for p in np.unique(part):
            pick = part == p
            out[pick] = self.parts[p][offsets + self.seq_len * (rows[pick] - self.starts[p])[:, None]]
        return torch.from_numpy(out)


def windows(tokens: np.ndarray, seq_len: int) -> torch.Tensor:
    """Every window of ``tokens`` at once (``Windows`` of it, all rows)."""
    return Windows(tokens, seq_len)[:]


def lr_at(step: int, total: int, peak: float, warmup_frac: float) -> float:
    warm = max(1, math.ceil(warmup_frac * total))
    if step < warm:
        return peak * (step + 1) / warm
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def param_groups(model: Decoder, weight_decay: float) -> list[dict]:
    decay = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


@torch.no_grad()
def mean_nll(model: Decoder, data: torch.Tensor, batch: int = 256) -> float:
    """Mean next-token NLL without keeping the [n, T, V] log-probabilities (large vocabularies)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(data), batch):
        rows = data[i:i + batch].to(device)
        logits = model(rows[:, :-1]).float()
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1), reduction="sum"))
        count += rows[:, 1:].numel()
    return total / count


def optimizer(model: Decoder, cfg: RunConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


def step_benchmark(cfg: RunConfig, steps: int = 3, warmup: int = 1) -> dict:
    """One device's training step of ``cfg`` (its micro-batches, loss chunks, checkpointing, precision) on
    random tokens, which take the same time and memory as text: seconds per step and tokens per second
    after ``warmup`` steps, FLOPs per token, MFU where the peak is known, and the peak memory allocated
    on a GPU."""
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = Decoder(cfg.model).to(device)
    opt = optimizer(model, cfg)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    gen = torch.Generator().manual_seed(cfg.seed)
    batch = torch.randint(cfg.model.vocab_size, (cfg.batch_size, cfg.model.seq_len + 1), generator=gen).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        accumulate(model, batch, cfg, autocast)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    _sync(device)
    wall = time.perf_counter() - t0
    tokens = steps * batch[:, 1:].numel()
    out = {"seconds_per_step": wall / steps, "tokens_per_s": tokens / wall, "n_params_total": model.n_params(False),
           **throughput(model, tokens, wall, 1, device, cfg.precision)}
    if device.type == "cuda":
        out["peak_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def micro_batches(rows: int, micro: int, world: int = 1) -> list[slice]:
    """Row slices of a batch of ``rows``: ``micro``-row micro-batches (0: one), as many as makes a multiple
    of ``world`` so every rank takes the same number (``parts[rank::world]``); trailing ones may be empty."""
    count = 1 if micro <= 0 else -(-rows // micro)
    count = world * -(-count // world)
    bounds = np.linspace(0, rows, count + 1).round().astype(int) if micro <= 0 else np.minimum(np.arange(count + 1) * micro, rows)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def accumulate(model: Decoder, batch: torch.Tensor, cfg: RunConfig, autocast, rank: int = 0, world: int = 1,
               ddp=None) -> float:
    """Backward of the batch's mean next-token loss, one micro-batch at a time: each adds the gradient of
    its tokens' summed loss over the batch's token count, so the accumulated ``.grad`` equals one pass over
    the whole batch (to rounding). Over ``world`` ranks (``ddp``: the DistributedDataParallel wrapper, which
    averages the ranks' gradients once, after the last micro-batch) each rank takes every world-th
    micro-batch. Returns this rank's share of the loss (the shares sum to the batch's mean loss)."""
    parts = micro_batches(len(batch), cfg.micro_batch, world)[rank::world]
    total, shared = batch[:, 1:].numel(), 0.0
    for j, rows in enumerate(parts):
        part, weight = batch[rows], 1.0
        if not len(part):  # a rank without rows in this (short) batch still joins the gradient exchange
            part, weight = batch[:1], 0.0
        sync = ddp is None or j == len(parts) - 1
        with contextlib.nullcontext() if sync else ddp.no_sync():
            # the part's mean x its share of the batch's tokens (exactly 1 for a whole batch on one rank);
            # x world: the ranks' gradients are averaged, and their sum is the batch's gradient
            loss = _micro_loss(ddp or model, model, part, cfg, autocast) * (weight * part[:, 1:].numel() * world / total)
            loss.backward()
        shared = shared + loss.detach() / world
    return float(shared)


def _micro_loss(forward, model: Decoder, part: torch.Tensor, cfg: RunConfig, autocast) -> torch.Tensor:
    """The mean next-token loss of one micro-batch. Without a chunked loss or checkpointing it is the
    plain full-logits cross-entropy, the reference the others are tested against."""
    inputs, targets = part[:, :-1], part[:, 1:]
    if not cfg.loss_chunk and not cfg.checkpointing:
        with autocast:
            logits = forward(inputs)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
    with autocast:
        hidden = forward(inputs, features=True, checkpoint=cfg.checkpointing)
        return linear_cross_entropy(hidden, model.head, targets, cfg.loss_chunk) / targets.numel()


def train(cfg: RunConfig, corpus: Corpus, synth: list[np.ndarray] | None = None, progress=None,
          evaluate: bool = True) -> tuple[Decoder, dict]:
    """Train one run. Under ``torch.distributed`` (``distributed.init_from_env``) every rank draws the same
    batches and takes its share of each batch's micro-batches (data parallel, ``DistributedDataParallel``);
    the result equals one process's to rounding. Metrics: tokens trained, wall time, tokens per second per
    device, model FLOPs utilisation where the device's peak is known, and the loss curve."""
    if cfg.synth_weight > 0 and synth is None:
        raise ValueError(f"synth_weight={cfg.synth_weight} needs teacher samples ({cfg.synth_key or 'no synth_key'})")
    if not 0 <= cfg.synth_weight < 1:
        raise ValueError(f"synth_weight must be in [0, 1), got {cfg.synth_weight}; use real_data=False for no real rows")
    rank, world = distributed.rank_world()
    device = distributed.local_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = Decoder(cfg.model).to(device)
    ddp = distributed.data_parallel(model) if world > 1 else None
    data = Windows(corpus.train, cfg.model.seq_len)
    synth_w = Windows(synth, cfg.model.seq_len) if cfg.synth_weight > 0 else None
    n_real = max(1, round(cfg.batch_size * (1 - cfg.synth_weight))) if synth_w is not None else cfg.batch_size
    n_synth = cfg.batch_size - n_real if synth_w is not None else 0
    if not cfg.real_data and synth_w is None:
        raise ValueError("real_data=False needs synth_weight > 0 (the schedule of the mix it replaces)")
    # the real data is seen `epochs` times; synthetic rows fill the rest of each batch
    steps_per_epoch = math.ceil(len(data) / n_real)
    total = cfg.epochs * steps_per_epoch
    opt = optimizer(model, cfg)
    gen = torch.Generator().manual_seed(10_007 * cfg.seed + 1)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    model.train()
    step, t0, tokens, curve = 0, time.perf_counter(), 0, []
    epochs = range(cfg.epochs) if progress is None or rank else progress(range(cfg.epochs), "epochs")
    for _ in epochs:
        order = torch.randperm(len(data), generator=gen)
        for i in range(0, len(data), n_real):
            batch = data[order[i:i + n_real]]
            if n_synth:
                picked = synth_w[torch.randint(len(synth_w), (n_synth if cfg.real_data else len(batch) + n_synth,),
                                               generator=gen)]
                batch = torch.cat([batch, picked]) if cfg.real_data else picked
            batch = batch.to(device, non_blocking=True)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, cfg.lr, cfg.warmup_frac)
            opt.zero_grad(set_to_none=True)
            loss = accumulate(model, batch, cfg, autocast, rank, world, ddp)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            curve.append(distributed.sum_over_ranks(loss, device) if world > 1 else loss)
            tokens += batch[:, 1:].numel()
            step += 1
    wall = time.perf_counter() - t0
    metrics = {"steps": step, "tokens": tokens, "train_s": wall, "tokens_per_s": tokens / max(wall, 1e-9), "devices": world,
               "d_model": cfg.model.d_model, "n_params": model.n_params(), "n_params_total": model.n_params(non_embedding=False),
               **throughput(model, tokens, wall, world, device, cfg.precision), "loss_curve": thin(curve)}
    if evaluate:
        val, rows = windows(corpus.val, cfg.model.seq_len), cfg.micro_batch or 256
        metrics["val_loss"] = mean_nll(model, val, rows)
        metrics["train_loss"] = mean_nll(model, data[: max(len(val), 1024)], rows)  # a fixed slice on large corpora
    return model.cpu(), metrics


def thin(values: list[float], most: int = 512) -> list[float]:
    """At most ``most`` evenly spaced values of a per-step series (the last always kept)."""
    if len(values) <= most:
        return values
    idx = np.unique(np.linspace(0, len(values) - 1, most).round().astype(int))
    return [values[i] for i in idx]


# Dense bf16 peak FLOP/s per device, by a substring of its name (vendors' data sheets, SXM parts).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}


def flops_per_token(cfg: ModelConfig) -> float:
    """Training FLOPs per token: 6 N + 12 L d T, N the parameters that multiply (all but the input
    embedding), the second term attention's (PaLM, appendix B). Recomputation does not count."""
    return 6 * (parameter_count(cfg) - cfg.vocab_size * cfg.d_model) + 12 * cfg.n_layers * cfg.d_model * cfg.seq_len


def throughput(model: Decoder, tokens: int, wall: float, world: int, device: torch.device, precision: str) -> dict:
    """Tokens per second per device, the FLOPs per token (``flops_per_token``), and model FLOPs utilisation
    (MFU) over the device's dense bf16 peak, left out where the peak is unknown (CPUs, fp32 runs,
    unlisted GPUs)."""
    per_device = tokens / max(wall, 1e-9) / world
    out = {"tokens_per_s_per_device": per_device, "flops_per_token": flops_per_token(model.cfg)}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    if peak and precision == "bf16":
        out["mfu"] = out["flops_per_token"] * per_device / peak
    return out
def checked_load(path: Path, **kw):
    """``torch.load`` of tensors and plain data only, after checking every record of the archive
    against the CRC-32 stored beside it (torch's own reader does not: a flipped byte would load)."""
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
    if bad is not None:
        raise zipfile.BadZipFile(f"record {bad} of {path} does not match its checksum")
    return torch.load(path, weights_only=True, **kw)


def cached_run(cfg: RunConfig, corpus: Corpus, cache: Path, synth: list[np.ndarray] | None = None,
               progress=None) -> tuple[Decoder, dict]:
    """Train, or load the finished run with the same config hash (sweeps resume for free).

    Entries hold tensors and plain data only and are loaded with ``weights_only=True``, so a file
    planted in a shared cache cannot run code; an entry that does not load, or whose bytes no longer
    match its checksums, is said in one line and trained again. Each fill writes its own temporary
    file and renames it: concurrent fills of one key leave one whole entry."""
    path = Path(cache) / f"run-{cfg.key()}-{corpus.sha256[:12]}.pt"
    if path.is_file():
        try:
            saved = checked_load(path)
            model = Decoder(cfg.model)
            model.load_state_dict(saved["state"])
            return model, {**saved["metrics"], "cached": True}
        except Exception as exc:  # whatever is wrong with it, it is rebuilt, never used
            print(f"cache entry {path} does not load ({type(exc).__name__}); training it again", file=sys.stderr)
    model, metrics = train(cfg, corpus, synth, progress)
    if distributed.rank_world()[0] == 0:  # data-parallel ranks hold one model: the first writes it
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        torch.save({"state": model.state_dict(), "metrics": metrics, "config": asdict(cfg)}, tmp)
        tmp.replace(path)
    distributed.barrier()
    return model, {**metrics, "cached": False}


def pool_init(threads: int = 1) -> None:
    """Process-pool initializer: one intra-op thread per worker (2 x 1 beats 1 x 2 here)."""
    torch.set_num_threads(threads)


def _synth_of(cfg: RunConfig, cache: Path) -> list[np.ndarray] | None:
    if not cfg.synth_key:
        return None
    synth = load_samples(cache, cfg.synth_key)
    if synth is None:
        raise FileNotFoundError(f"teacher samples {shard_dir(cache, cfg.synth_key)} are missing or damaged")
    return synth


def train_job(args: tuple[RunConfig, CorpusSpec, str]) -> dict:
    """Picklable job (process pool, submitit, ray): train (or load) one run and return its metrics.
    Teacher samples named by ``cfg.synth_key`` are read from the cache directory (``sample.load_samples``)."""
    from paper_infcompute.corpus import load

    cfg, spec, cache = args
    distributed.init_from_env(cfg.device)
    _, metrics = cached_run(cfg, load(spec, cache), Path(cache), _synth_of(cfg, Path(cache)))
    return metrics


def sample_job(args: tuple) -> dict:
    """Picklable job: shard ``index`` of the samples under ``key``: ``n_tokens`` tokens from the ensemble
    of the runs ``teachers`` (trained, or loaded from the cache, on their device), in ``streams``
    parallel streams from ``seed``; returns the shard's record (``sample.save_shard``)."""
    from paper_infcompute.corpus import load

    teachers, spec, cache, key, index, n_tokens, seed, streams = args
    corpus = load(spec, cache)
    unigram = np.bincount(corpus.train, minlength=corpus.vocab_size) / len(corpus.train)
    models = [load_model(c, corpus, Path(cache)) for c in teachers]
    first = teachers[0]
    tokens = sample(models, n_tokens, first.model.seq_len, unigram, seed=seed, streams=streams,
                    device=str(distributed.local_device(first.device)), precision=first.precision)
    return save_shard(Path(cache), key, index, tokens, corpus.vocab_size)


def load_model(cfg: RunConfig, corpus: Corpus, cache: Path) -> Decoder:
    """The run's model (trained now if it is not in the cache) on the device it was trained for."""
    synth = _synth_of(cfg, cache)
    return cached_run(cfg, corpus, cache, synth)[0].to(distributed.local_device(cfg.device))
