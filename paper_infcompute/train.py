"""Training one run: a pure function of a small hashable config, cached by its hash.

AdamW (0.9, 0.95), cosine schedule decaying to 0 after a linear warm-up (1% of steps), global
gradient-norm clipping at 1.0, weight decay on Linear weights only (not embeddings, not
norms), as in the paper's levanter setup. The seed sets both the initialisation and the
data order. Loss is next-token cross-entropy in nats per token (per byte for the byte
vocabulary).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from paper_infcompute.corpus import Corpus, CorpusSpec
from paper_infcompute.model import Decoder, ModelConfig


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

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:20]


def windows(tokens: np.ndarray, seq_len: int) -> torch.Tensor:
    """Non-overlapping (seq_len + 1)-token windows with stride seq_len (inputs and targets)."""
    n = (len(tokens) - 1) // seq_len
    idx = np.arange(seq_len + 1)[None, :] + seq_len * np.arange(n)[:, None]
    return torch.as_tensor(tokens[idx], dtype=torch.long)


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
def token_logprobs(model: Decoder, val: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """log p(token) under the model for every target in the validation windows: [n, T, V]."""
    model.eval()
    out = [F.log_softmax(model(val[i:i + batch, :-1]).float(), dim=-1) for i in range(0, len(val), batch)]
    return torch.cat(out)


def nll(logprobs: torch.Tensor, val: torch.Tensor) -> float:
    return float(-logprobs.gather(-1, val[:, 1:, None]).mean())


def train(cfg: RunConfig, corpus: Corpus, synth: np.ndarray | None = None, progress=None,
          evaluate: bool = True) -> tuple[Decoder, dict]:
    torch.manual_seed(cfg.seed)
    model = Decoder(cfg.model)
    data = windows(corpus.train, cfg.model.seq_len)
    synth_w = windows(synth, cfg.model.seq_len) if synth is not None and cfg.synth_weight > 0 else None
    n_real = max(1, round(cfg.batch_size * (1 - cfg.synth_weight))) if synth_w is not None else cfg.batch_size
    n_synth = cfg.batch_size - n_real if synth_w is not None else 0
    # the real data is seen `epochs` times; synthetic rows are added on top of each real batch
    steps_per_epoch = math.ceil(len(data) / n_real)
    total = cfg.epochs * steps_per_epoch
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(10_007 * cfg.seed + 1)
    model.train()
    step, t0, tokens = 0, time.perf_counter(), 0
    epochs = range(cfg.epochs) if progress is None else progress(range(cfg.epochs), "epochs")
    for _ in epochs:
        order = torch.randperm(len(data), generator=gen)
        for i in range(0, len(data), n_real):
            batch = data[order[i:i + n_real]]
            if n_synth:
                batch = torch.cat([batch, synth_w[torch.randint(len(synth_w), (n_synth,), generator=gen)]])
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, cfg.lr, cfg.warmup_frac)
            logits = model(batch[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            tokens += batch[:, 1:].numel()
            step += 1
    wall = time.perf_counter() - t0
    metrics = {"steps": step, "tokens": tokens, "train_s": wall, "tokens_per_s": tokens / max(wall, 1e-9),
               "n_params": model.n_params(), "n_params_total": model.n_params(non_embedding=False)}
    if evaluate:
        val = windows(corpus.val, cfg.model.seq_len)
        metrics["val_loss"] = nll(token_logprobs(model, val), val)
        metrics["train_loss"] = nll(token_logprobs(model, data), data)
    return model, metrics


def cached_run(cfg: RunConfig, corpus: Corpus, cache: Path, synth: np.ndarray | None = None,
               progress=None) -> tuple[Decoder, dict]:
    """Train, or load the finished run with the same config hash (sweeps resume for free)."""
    path = Path(cache) / f"run-{cfg.key()}-{corpus.sha256[:12]}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=False)
        model = Decoder(cfg.model)
        model.load_state_dict(saved["state"])
        return model, {**saved["metrics"], "cached": True}
    model, metrics = train(cfg, corpus, synth, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    torch.save({"state": model.state_dict(), "metrics": metrics, "config": asdict(cfg)}, tmp)
    tmp.replace(path)
    return model, {**metrics, "cached": False}


def pool_init(threads: int = 1) -> None:
    """Process-pool initializer: one intra-op thread per worker (2 x 1 beats 1 x 2 here)."""
    torch.set_num_threads(threads)


def train_job(args: tuple[RunConfig, CorpusSpec, str]) -> dict:
    """Picklable pool job: train (or load) one run and return its metrics."""
    from paper_infcompute.corpus import load

    cfg, spec, cache = args
    _, metrics = cached_run(cfg, load(spec), Path(cache))
    return metrics


def load_model(cfg: RunConfig, corpus: Corpus, cache: Path) -> Decoder:
    return cached_run(cfg, corpus, cache)[0]
