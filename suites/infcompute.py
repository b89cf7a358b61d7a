"""Suite `infcompute`: Kim, Kotha, Liang, Hashimoto, "Pre-training under infinite compute"
(arXiv 2509.14786), scaled to byte-level models on Python's standard-library source.

Per seed, one complete sweep: the standard recipe (weight decay 0.1, epochs tuned) at several
data budgets (its data-scaling law), the regularized recipe (epochs and weight decay tuned per
size until certified locally optimal), K-member ensembles with member hyper-parameters from a
two-point box, distillation (ensemble -> student, self-distillation with and without real
data), the power-law asymptotes (regularized in N, ensemble in K, joint in N then K) and the
data-efficiency projection through the standard recipe's data law. Training runs are jobs on a
pluggable executor (local process pool, submitit/SLURM, Ray) and are cached by config hash, so
an interrupted sweep resumes.
"""

from __future__ import annotations

import hashlib
import math
import sys
import threading
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from paper_infcompute.corpus import CorpusSpec
from runners.api import Claim, Invariant, RunResult, Suite, SuiteConfig, at_tiers
from runners.progress import Laps, track
from runners.rundir import cache_root

PAPER = "Kim et al. 2025 (arXiv 2509.14786v1)"
# Seeds a run derives from its own seed s (part of the results: changing one changes the numbers). A training
# run's init and data order: RUNS_PER_SEED s + member, where member 0 is the searches', 1..K-1 the ensemble
# members and the overfitting gap's replicates, STUDENT_MEMBER + 3 k + j the k-th student of the j-th kind;
# the teachers' synthetic samples: RUNS_PER_SEED s + SAMPLES_MEMBER.
RUNS_PER_SEED = 1000
STUDENT_MEMBER = 500
SAMPLES_MEMBER = 7
SHARD_SEEDS = 1_000_003  # shard i of a teacher's samples draws from seed + SHARD_SEEDS i

# The paper's model shapes (levanter LlamaConfig presets, seq len 4096), by d_model:
# name, layers, heads, key/value heads, MLP width.
PAPER_SHAPES = {512: ("150M", 6, 8, 8, 1792), 768: ("300M", 12, 12, 12, 2688),
                1024: ("600M", 24, 16, 8, 3584), 2048: ("1.4B", 16, 16, 8, 7168)}


@dataclass
class Setup:
    """One seed's corpus, held-out windows and cache, and the configs every phase trains: a model of
    each width (the suite's shapes or the paper's), and a training run of it."""

    cfg: Any
    seed: int
    corpus: Any
    val: Any
    cache: Path
    n_params: dict[int, int] = field(default_factory=dict)  # by width

    @classmethod
    def load(cls, cfg, seed: int) -> Setup:
        from paper_infcompute import corpus as corpus_mod
        from paper_infcompute import train as tr

        cache = cache_root(cfg.cache_dir) / "infcompute"
        cache.mkdir(parents=True, exist_ok=True)
        corpus = corpus_mod.load(cfg.data, cache)  # tokenised once; every job maps the same files
        setup = cls(cfg, seed, corpus, tr.windows(corpus.val, cfg.seq_len), cache)
        setup.n_params = {d: tr.Decoder(setup.model_cfg(d)).n_params() for d in cfg.sizes}
        return setup

    def model_cfg(self, d: int):
        return model_cfg(self.cfg, d, self.corpus.vocab_size)

    def run_cfg(self, d: int, epochs: int, wd: float, member: int = 0, data=None, **extra):
        """A training run at width ``d``; ``member`` picks its init seed and data order (0: the searches')."""
        from paper_infcompute import train as tr

        c = self.cfg
        return tr.RunConfig(model=self.model_cfg(d), corpus=data or c.data, epochs=epochs,
                            lr=c.lr, weight_decay=wd, batch_size=c.batch_size, seed=RUNS_PER_SEED * self.seed + member,
                            device=c.device, precision=c.precision, micro_batch=c.micro_batch, loss_chunk=c.loss_chunk,
                            checkpointing=c.checkpointing, **extra)


def model_cfg(cfg, d: int, vocab: int):
    """The model of width ``d``: the paper's shape of that width, or the suite's layers and heads."""
    from paper_infcompute.model import ModelConfig

    if cfg.paper_shapes:
        _, layers, heads, kv, ff = PAPER_SHAPES[d]
    else:
        heads = d // cfg.head_dim if cfg.head_dim else max(2, d // 16)
        ff = 16 * math.ceil(cfg.ff_mult * d / 16) if cfg.ff_mult else 0
        layers, kv = cfg.n_layers, 0
    return ModelConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads, n_kv_heads=kv, d_ff=ff,
                       seq_len=cfg.seq_len)


def _hub_corpus(spec):
    """A hub dataset as the corpus: it answers, and has files matching the pattern (one listing)."""
    from paper_infcompute import corpus as corpus_mod
    from runners.preflight import Need

    what, needed = f"the corpus ({spec.source})", f"files matching {spec.pattern} on the hub"
    try:
        source = corpus_mod.source_of(spec)
        n = len(source.names(spec.pattern))
    except Exception as exc:  # no network, no such repository or revision, no access: one line, never a crash
        return Need(what, needed, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", False)
    return Need(what, needed, f"{n} at commit {source.revision[:12]}", n > 0)


def _vocab(tokenizer: str) -> int:
    """The vocabulary of a tokenizer for the estimates: known ones by name, others read (the paper's 128,256
    where the file cannot be read: its need is reported on its own)."""
    from paper_infcompute import corpus as corpus_mod

    known = {"bytes": 256, corpus_mod.LLAMA3: 128_256, corpus_mod.GPT2: 50_257}
    if tokenizer in known:
        return known[tokenizer]
    try:
        return corpus_mod.vocab_size(tokenizer)
    except (OSError, ValueError, ImportError):
        return 128_256


def _n_params(model) -> int:
    from paper_infcompute.model import parameter_count

    return parameter_count(model)


# Training keeps, per parameter: fp32 weights 4, gradients 4, AdamW moments 8, and the bf16 copies autocast
# makes of the weights for a pass 2 bytes.
TRAIN_BYTES_PER_PARAM = 18


def _memory(cfg, vocab: int) -> dict[str, float]:
    """Each phase's peak bytes per device, the largest over the widths it trains or evaluates.

    Training (data parallel: every device holds the whole model and optimizer): ``TRAIN_BYTES_PER_PARAM``
    per parameter; one micro-batch's activations kept for the backward pass, each layer's
    (``preflight.transformer_activation_bytes``; a GPU's fused attention keeps no T x T matrix), or with
    checkpointing each layer's fp32 input plus one layer's while it is recomputed; and the loss over one
    chunk of rows (or the micro-batch): logits, their fp32 copy and its gradient. Evaluation
    (``ensemble.token_nll``): K fp32 models and, for ``_eval_rows`` windows, K members' fp32
    log-probabilities and the stack their combination makes. Sampling (``sample.sample``): K fp32 models
    and their key/value caches for every stream."""
    from runners.preflight import transformer_activation_bytes

    width = 2 if cfg.precision == "bf16" else 4
    micro = cfg.micro_batch or cfg.batch_size
    peaks = {"training": 0.0, "ensemble_eval": 0.0}
    for d in cfg.sizes:
        m = model_cfg(cfg, d, vocab)
        rows, params = micro * m.seq_len, _n_params(m)
        layer = transformer_activation_bytes(micro, m.seq_len, d, 1, m.n_heads, width, m.ff / d, flash=cfg.device != "cpu")
        kept = m.n_layers * rows * d * 4 + layer if cfg.checkpointing else m.n_layers * layer
        loss_rows = min(cfg.loss_chunk, rows) if cfg.loss_chunk > 0 else rows
        peaks["training"] = max(peaks["training"], TRAIN_BYTES_PER_PARAM * params + kept + loss_rows * vocab * (width + 8))
        peaks["ensemble_eval"] = max(peaks["ensemble_eval"], cfg.members * 4 * params
                                     + (2 * cfg.members + 2) * _eval_rows(cfg) * m.seq_len * vocab * 4)
    m = model_cfg(cfg, _distill_size(cfg), vocab)
    kv = 2 * m.n_layers * cfg.sample_streams * (m.seq_len + 1) * (m.n_kv_heads or m.n_heads) * (m.d_model // m.n_heads)
    peaks["distillation_sampling"] = cfg.members * (4 * _n_params(m) + width * kv) + 2 * cfg.sample_streams * vocab * 4
    return peaks


PAPER_TOKENS_PER_EPOCH = 800 * 64 * 4096  # the paper's 200M-token budget: 800 batches of 64 x 4096


def _projection(cfg, trained_flops: float, seconds: float) -> dict | None:
    """The paper's runs at the rate this sweep achieved: GPU-hours per epoch over the paper's 200M tokens for
    each of its four shapes (context 4096, the full tier's tokenizer), at the FLOP/s per device of this
    sweep's searches and ensemble members (the FLOPs of every run they trained over their wall time and
    the visible GPUs). The paper's larger shapes usually reach a higher utilisation than small models, so
    these hours are likely overestimates. None off a GPU, or with a cluster executor (whose wall time is
    not device time)."""
    if not cfg.device.startswith("cuda") or cfg.executor not in ("process", "inline") or min(seconds, trained_flops) <= 0:
        return None
    import torch

    from paper_infcompute.corpus import resolve_tokenizer
    from paper_infcompute.train import flops_per_token

    rate = trained_flops / seconds / max(1, torch.cuda.device_count())
    vocab = _vocab(resolve_tokenizer("auto"))
    paper = replace(cfg, paper_shapes=True, seq_len=4096)
    hours = {name: flops_per_token(model_cfg(paper, d, vocab)) * PAPER_TOKENS_PER_EPOCH / rate / 3600
             for d, (name, *_) in PAPER_SHAPES.items()}
    return {"flops_per_s_per_device": rate, "vocab": vocab, "gpu_hours_per_epoch": hours}


def _eval_rows(cfg) -> int:
    return cfg.eval_batch or cfg.micro_batch or 256


def _distill_size(cfg) -> int:
    """The width distillation works at: the second (the paper's 300M), or the only one."""
    return cfg.sizes[1] if len(cfg.sizes) > 1 else cfg.sizes[0]


class Trainer:
    """Training runs through one job pool: each distinct config trains once however many phases (and
    threads) ask for it (``submit``), or a list of configs at once (``losses``); results are cached. A
    run of width d asks the pool for ``gpus[d]`` devices (data parallel), the pool's default otherwise."""

    def __init__(self, pool, cache: Path, gpus: dict[int, int] | None = None):
        self.pool, self.cache, self.gpus = pool, cache, gpus or {}
        self._inflight, self._lock = {}, threading.Lock()

    def submit(self, c):
        from paper_infcompute import train as tr

        with self._lock:
            if c.key() not in self._inflight:
                self._inflight[c.key()] = self.pool.submit(tr.train_job, (c, c.corpus, str(self.cache)),
                                                           gpus=self.gpus.get(c.model.d_model))
            return self._inflight[c.key()]

    def losses(self, cfgs: list, what: str) -> list[float]:
        from concurrent.futures import as_completed

        futures = [self.submit(c) for c in cfgs]
        for _ in track(as_completed(set(futures)), what, total=len(set(futures))):
            pass
        return [f.result()["val_loss"] for f in futures]

    def trained_flops(self) -> float:
        """Training FLOPs of every run this sweep has trained so far (runs loaded from the cache excluded)."""
        done = [f.result() for f in self._inflight.values() if f.done() and f.exception() is None]
        return float(sum(m["tokens"] * m["flops_per_token"] for m in done if "flops_per_token" in m and not m.get("cached")))

    def throughput(self) -> dict[str, dict]:
        """Per width, over the runs trained by this sweep (not loaded from the cache): their count, devices
        per run, and the median tokens per second per device and model FLOPs utilisation."""
        import numpy as np

        by_width: dict[int, list[dict]] = {}
        for f in self._inflight.values():
            m = f.result() if f.done() and f.exception() is None else {}
            if "tokens_per_s_per_device" in m and not m.get("cached"):
                by_width.setdefault(m["d_model"], []).append(m)
        return {f"d{d}": {"runs": len(ms), "devices": max(m["devices"] for m in ms),
                          "tokens_per_s_per_device": float(np.median([m["tokens_per_s_per_device"] for m in ms])),
                          "mfu": float(np.median([m["mfu"] for m in ms])) if all("mfu" in m for m in ms) else None}
                for d, ms in sorted(by_width.items())}


@dataclass
class Searches:
    """The standard recipe's epoch searches by (data budget, width) and the regularized recipe's
    (epochs, weight decay) searches by width (``search.local_optimum``'s results), and the standard
    recipe's overfitting gap per replicate: its largest width against its best smaller one, each at its
    tuned epochs (replicate 0: the searches' own runs)."""

    standard: dict[tuple[int, int], Any]
    regularized: dict[int, Any]
    overfit_gaps: list[float]

    def standard_at(self, n_bytes: int) -> dict[int, float]:
        """The standard recipe's tuned loss per width at one data budget."""
        return {d: r.loss for (n, d), r in self.standard.items() if n == n_bytes}


@dataclass
class Members:
    """Each width's two candidate member settings ("optimum": the regularized search's; "shifted": 2x
    epochs, half the weight decay, the paper's shift), and K members' configs and losses for each."""

    hparams: dict[int, dict[str, tuple]]
    cfgs: dict[tuple[int, str], list]
    losses: dict[tuple[int, str], list[float]]


@dataclass
class Ensembles:
    """Per combination rule, each width's loss against ensemble size 1..K for the chosen candidate; the
    chosen candidate per width; every candidate's curves (for the record); each ensemble's gain over
    its members' mean loss."""

    curves: dict[str, dict[int, list[float]]]
    chosen: dict[int, str]
    candidates: dict[str, dict]
    gains: list[float]


@dataclass
class Distillation:
    """Students at width ``size``, per kind (ensemble teacher; self-distillation with and without real
    data) and replicate; the teacher's member count."""

    size: int
    teachers: int
    replicas: dict[str, list[float]]

    @property
    def student(self) -> dict[str, float]:
        import numpy as np

        return {kind: float(np.mean(v)) for kind, v in self.replicas.items()}


@dataclass
class Fits:
    """Power laws (``fit.fit_power_law``): the regularized loss in parameters (over the member seeds at
    the optimum), each width's ensemble in K, the joint (ensemble asymptotes in parameters), and the
    standard recipe's best loss in data; with the per-seed regularized losses they were fitted to."""

    regularized: Any
    ensemble: dict[int, Any]
    joint: Any
    data: Any
    regularized_seeds: Any


def _check(cfg) -> None:
    if cfg.data.train_bytes not in cfg.data_sizes:
        raise ValueError(f"data_sizes {cfg.data_sizes} must include data.train_bytes={cfg.data.train_bytes}")
    if cfg.paper_shapes and set(cfg.sizes) - set(PAPER_SHAPES):
        raise ValueError(f"paper_shapes: sizes must be among {sorted(PAPER_SHAPES)}, got {cfg.sizes}")
    if cfg.gpus_per_size and len(cfg.gpus_per_size) != len(cfg.sizes):
        raise ValueError(f"gpus_per_size {cfg.gpus_per_size} must give one device count per size {cfg.sizes}")


def _resolved(cfg):
    """The config with its tokenizer named as it will be used (``auto`` resolved): the runs' cache keys
    and the report name the tokenizer that made the tokens."""
    from paper_infcompute.corpus import resolve_tokenizer

    return replace(cfg, data=replace(cfg.data, tokenizer=resolve_tokenizer(cfg.data.tokenizer)))


def _search(cfg, setup: Setup, trainer: Trainer) -> Searches:
    """Every search at once, one thread each, all feeding the same pool: the standard recipe (weight
    decay fixed, epochs tuned until locally optimal) at every data budget and width, and the regularized
    recipe (epochs and weight decay tuned) at every width; then the overfitting gap's replicates."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from paper_infcompute.search import local_optimum

    def search(d, grids, start, max_runs, data=None, wd=None):
        def evaluate(points):
            futures = [trainer.submit(setup.run_cfg(d, p["epochs"], p.get("wd", wd), data=data)) for p in points]
            return [f.result()["val_loss"] for f in futures]

        return local_optimum(evaluate, grids, start, max_runs=max_runs)

    with ThreadPoolExecutor(len(cfg.sizes) * (1 + len(cfg.data_sizes))) as threads:
        regularized = {d: threads.submit(search, d, {"epochs": cfg.epochs_grid, "wd": cfg.wd_grid},
                                         {"epochs": cfg.search_start_epochs, "wd": cfg.search_start_wd},
                                         cfg.max_search_runs) for d in cfg.sizes}
        standard = {(n, d): threads.submit(search, d, {"epochs": cfg.standard_epochs},
                                           {"epochs": cfg.standard_start_epochs}, len(cfg.standard_epochs),
                                           replace(cfg.data, train_bytes=n), cfg.standard_wd)
                    for n in cfg.data_sizes for d in cfg.sizes}
        for _ in track(as_completed(standard.values()), "standard recipe (budgets x sizes)", total=len(standard)):
            pass
        for _ in track(as_completed(regularized.values()), "regularized search (sizes)", total=len(regularized)):
            pass
    standard = {k: f.result() for k, f in standard.items()}
    best = {d: standard[(cfg.data.train_bytes, d)].loss for d in cfg.sizes}
    pair = (cfg.sizes[-1], min(cfg.sizes[:-1], key=best.get))
    reruns = [setup.run_cfg(d, standard[(cfg.data.train_bytes, d)].best["epochs"], cfg.standard_wd, member=k)
              for k in range(1, cfg.replicates) for d in pair]
    rerun = trainer.losses(reruns, "standard recipe replicates")
    gaps = [best[pair[0]] - best[pair[1]]] + [rerun[i] - rerun[i + 1] for i in range(0, len(rerun), 2)]
    return Searches(standard, {d: f.result() for d, f in regularized.items()}, gaps)


def _train_members(cfg, setup: Setup, trainer: Trainer, searches: Searches) -> Members:
    """K members per width and candidate, differing in init seed and data order. The candidates are the
    paper's two-point box: the single-model optimum and its shift (2x epochs, half the weight decay)."""
    hparams = {}
    for d in cfg.sizes:
        best = searches.regularized[d].best
        shifted = (min(2 * best["epochs"], max(cfg.epochs_grid)), min(cfg.wd_grid, key=lambda w: abs(w - best["wd"] / 2)))
        hparams[d] = {"optimum": (best["epochs"], best["wd"]), "shifted": shifted}
    cfgs = {(d, name): [setup.run_cfg(d, *hp, member=k) for k in range(cfg.members)]
            for d in cfg.sizes for name, hp in hparams[d].items()}
    flat = [c for group in cfgs.values() for c in group]
    by_key = dict(zip([c.key() for c in flat], trainer.losses(flat, "ensemble members"), strict=True))
    return Members(hparams, cfgs, {k: [by_key[c.key()] for c in group] for k, group in cfgs.items()})


def _evaluate_ensembles(cfg, setup: Setup, members: Members) -> Ensembles:
    """Each candidate's ensembles of its first 1..K members on the held-out windows, by both rules
    (``ensemble.combine``: logit or probability averaging); per width the candidate whose K-member
    ensemble (by ``cfg.combine``) is best is chosen."""
    import numpy as np

    from paper_infcompute import ensemble
    from paper_infcompute import train as tr

    curves, chosen, candidates, gains = {"logit": {}, "prob": {}}, {}, {}, []
    for d in track(cfg.sizes, "ensemble evaluation"):
        best = None
        for name, hp in members.hparams[d].items():
            models = [tr.load_model(c, setup.corpus, setup.cache) for c in members.cfgs[(d, name)]]
            per_token = ensemble.token_nll(models, setup.val, tuple(curves), batch=_eval_rows(cfg))
            del models
            nlls = members.losses[(d, name)]
            by_rule = {m: [float(k_nll.mean()) for k_nll in per_token[m]] for m in curves}
            gains += [float(np.mean(nlls)) - c[-1] for c in by_rule.values()]
            candidates[f"d{d}_{name}"] = {"hparams": hp, "member_losses": nlls, **by_rule}
            if best is None or by_rule[cfg.combine][-1] < best[1][cfg.combine][-1]:
                best = (name, by_rule)
        chosen[d] = best[0]
        for m in curves:
            curves[m][d] = best[1][m]
    return Ensembles(curves, chosen, candidates, gains)


def _shards(cfg) -> list[int]:
    """Tokens per sampling job: ``distill_tokens`` in shards of ``sample_shard_tokens`` (0: one shard)."""
    size = cfg.sample_shard_tokens or cfg.distill_tokens
    return [min(size, cfg.distill_tokens - start) for start in range(0, cfg.distill_tokens, size)]


def _distill(cfg, setup: Setup, trainer: Trainer, members: Members, ensembles: Ensembles) -> Distillation:
    """Distillation at the second width (the paper's 300M): students trained on real data plus
    unconditional samples (temperature 1) of the chosen ensemble, or of its first member alone
    (self-distillation, with and without the real data); ``replicates`` students of each kind. The
    samples are drawn by jobs on the sweep's executor, a shard each (``_shards``)."""

    from paper_infcompute import sample
    from paper_infcompute import train as tr

    ref = _distill_size(cfg)
    teachers = members.cfgs[(ref, ensembles.chosen[ref])]

    def samples_from(cfgs):
        key = hashlib.sha256(repr(([c.key() for c in cfgs], cfg.distill_tokens, setup.seed,
                                   setup.corpus.sha256)).encode()).hexdigest()[:20]
        if sample.load_samples(setup.cache, key) is None:
            seed = RUNS_PER_SEED * setup.seed + SAMPLES_MEMBER
            jobs = [(cfgs, cfg.data, str(setup.cache), key, i, n, seed + SHARD_SEEDS * i, cfg.sample_streams)
                    for i, n in enumerate(_shards(cfg))]
            sample.finish(setup.cache, key, trainer.pool.map(tr.sample_job, jobs, "sampling teachers (shards)"))
        return key

    ens_key, self_key = samples_from(teachers), samples_from(teachers[:1])
    kinds = {"ensemble": {"synth_key": ens_key}, "self_real": {"synth_key": self_key},
             "self_no_real": {"synth_key": self_key, "real_data": False}}
    students = {(kind, k): setup.run_cfg(ref, cfg.distill_epochs, cfg.distill_wd, member=STUDENT_MEMBER + 3 * k + j,
                                         synth_weight=cfg.distill_weight, **kw)
                for k in range(cfg.replicates) for j, (kind, kw) in enumerate(kinds.items())}
    loss = dict(zip(students, trainer.losses(list(students.values()), "distillation students"), strict=True))
    return Distillation(ref, len(teachers), {kind: [loss[(kind, k)] for k in range(cfg.replicates)] for kind in kinds})


def _fit(cfg, setup: Setup, searches: Searches, members: Members, ensembles: Ensembles) -> Fits:
    """The power laws: the regularized loss (the members' mean at the optimum, per seed) in parameters,
    each width's ensemble in K, the joint law in parameters through the ensemble asymptotes, and the
    standard recipe's best loss over widths in data."""
    import numpy as np

    from paper_infcompute import fit

    reg_seeds = np.array([members.losses[(d, "optimum")] for d in cfg.sizes]).T  # [seeds, sizes]
    ks = np.arange(1, cfg.members + 1)
    ens = {d: fit.fit_power_law(ks, ensembles.curves[cfg.combine][d]) for d in cfg.sizes}
    xs = np.array([setup.n_params[d] for d in cfg.sizes], dtype=float)
    reg = fit.fit_power_law(xs, reg_seeds.mean(0), per_seed=reg_seeds, seed=setup.seed)
    joint = fit.fit_power_law(xs, [ens[d].E for d in cfg.sizes])
    data = fit.fit_power_law(np.array(cfg.data_sizes, dtype=float), [_standard_by_data(cfg, searches)[n]
                                                                       for n in cfg.data_sizes])
    return Fits(reg, ens, joint, data, reg_seeds)


def _standard_by_data(cfg, searches: Searches) -> dict[int, float]:
    """The standard recipe's best loss over widths at each data budget."""
    return {n: min(searches.standard_at(n).values()) for n in cfg.data_sizes}


def _data_efficiency(cfg, searches: Searches, fits: Fits, ensembles: Ensembles, distill: Distillation) -> dict:
    """Per recipe, the data the standard recipe would need to reach its loss, over the budget: bounds
    through the standard data law's refits (``metrics.data_efficiency_bounds``) and the floor the
    measured budgets alone give."""
    from paper_infcompute import metrics as pm

    standard = _standard_by_data(cfg, searches)
    losses = {"regularized": fits.regularized.E, "joint": fits.joint.E,
              "ensemble": min(ensembles.curves[cfg.combine][d][-1] for d in cfg.sizes),
              "distill": distill.student["ensemble"]}
    out = {}
    for name, loss in losses.items():
        low, point, high = pm.data_efficiency_bounds(fits.data, loss, cfg.data.train_bytes)
        out[name] = {"loss": loss, "lowest": low, "point": point, "highest": high,
                     "measured_floor": pm.measured_efficiency_floor(cfg.data_sizes, [standard[n] for n in cfg.data_sizes],
                                                                    loss, cfg.data.train_bytes)}
    return out


def _regularized(cfg, fits: Fits) -> dict[int, float]:
    """The regularized recipe's loss per width: its members' mean at the optimum."""
    return dict(zip(cfg.sizes, fits.regularized_seeds.mean(0).tolist(), strict=True))


def _teacher_noise(members: Members, ensembles: Ensembles, size: int) -> tuple[list[float], float]:
    """(the distillation teachers' losses, their standard deviation: the noise a student must beat)."""
    import numpy as np

    losses = members.losses[(size, ensembles.chosen[size])]
    return losses, float(np.std(losses, ddof=1)) if len(losses) > 1 else 0.0


def _metrics(cfg, searches: Searches, members: Members, ensembles: Ensembles, distill: Distillation, fits: Fits,
             efficiency: dict) -> dict[str, float]:
    """Every metric of a seed; the one place their names are written."""
    import numpy as np

    from paper_infcompute import metrics as pm

    standard, reg, curves = searches.standard_at(cfg.data.train_bytes), _regularized(cfg, fits), ensembles.curves
    ref, student = distill.size, distill.student
    teacher_losses, noise = _teacher_noise(members, ensembles, ref)
    fitted = [(fits.regularized, fits.regularized_seeds.mean(0)), (fits.joint, [fits.ensemble[d].E for d in cfg.sizes]),
              (fits.data, list(_standard_by_data(cfg, searches).values()))]
    m = {f"member_loss_d{d}": float(np.mean(members.losses[(d, ensembles.chosen[d])])) for d in cfg.sizes}
    m.update({
        "ensemble_gain_min": min(ensembles.gains),
        "fits_in_range": float(all(0 <= f.E <= min(y) + 1e-9 for f, y in fitted + [
            (fits.ensemble[d], curves[cfg.combine][d]) for d in cfg.sizes])),
        "standard_best": min(standard.values()),
        "standard_overfit_gap": standard[cfg.sizes[-1]] - min(standard[d] for d in cfg.sizes[:-1]),
        "regularized_monotone": float(np.mean([reg[b] < reg[a] for a, b in zip(cfg.sizes, cfg.sizes[1:], strict=False)])),
        "e_regularized": fits.regularized.E, "e_regularized_spread": fits.regularized.E_spread,
        "alpha_regularized": fits.regularized.alpha,
        "e_ensemble": fits.ensemble[ref].E, "e_ensemble_spread": fits.ensemble[ref].E_spread,
        "e_joint": fits.joint.E, "e_joint_spread": fits.joint.E_spread,
        "e_standard_data": fits.data.E, "beta_standard_data": fits.data.alpha,
        "searches_certified": float(sum(r.certified for r in searches.regularized.values())),
        "best_ensemble_loss": min(curves[cfg.combine][d][-1] for d in cfg.sizes),
    })
    for metric, gap, used in _margins(cfg, fits, m["standard_best"]):  # the gap less the fits' refit spreads
        m[metric] = gap - sum(f.E_spread for _, f in used)
    ens_loss = curves[cfg.combine][ref][-1]
    m.update({"distill_student_loss": student["ensemble"], "distill_teacher_loss": ens_loss,
              "self_distill_teacher_loss": teacher_losses[0], "self_distill_real_loss": student["self_real"],
              "self_distill_no_real_loss": student["self_no_real"], "member_loss_sd": noise,
              "self_distill_real_margin": teacher_losses[0] - student["self_real"] - noise,
              "self_distill_no_real_margin": teacher_losses[0] - student["self_no_real"] - noise})
    gained = reg[ref] - ens_loss > 0
    m["distill_retention"] = pm.distill_retention(reg[ref], ens_loss, student["ensemble"]) if gained else 0.0
    for name, e in efficiency.items():
        m[f"data_efficiency_{name}_measured_floor"] = e["measured_floor"]
        m[f"data_efficiency_{name}"] = e["lowest"] if np.isfinite(e["lowest"]) else e["measured_floor"]
    for d in cfg.sizes:
        m[f"standard_loss_d{d}"], m[f"regularized_loss_d{d}"] = standard[d], reg[d]
        m[f"ensemble_loss_d{d}_k{cfg.members}"] = curves[cfg.combine][d][-1]
        m[f"ensemble_prob_loss_d{d}_k{cfg.members}"] = curves["prob"][d][-1]
        m[f"e_ensemble_d{d}"] = fits.ensemble[d].E
    m.update({f"standard_loss_data{n}": loss for n, loss in _standard_by_data(cfg, searches).items()})
    return m


def _margins(cfg, fits: Fits, standard_best: float) -> list[tuple[str, float, list]]:
    """(metric, the gap it is about, the fits whose leave-one-out spread counts against it) for each
    ordering claim: regularized below standard, the ensemble below regularized, the joint below the
    ensemble (at the distillation's width)."""
    ref = _distill_size(cfg)
    reg, ens, joint = ("E_regularized", fits.regularized), (f"E_ensemble(d{ref})", fits.ensemble[ref]), ("E_joint", fits.joint)
    return [("reg_vs_standard_margin", standard_best - fits.regularized.E, [reg]),
            ("ens_vs_reg_margin", fits.regularized.E - fits.ensemble[ref].E, [reg, ens]),
            ("joint_vs_ens_margin", fits.ensemble[ref].E - fits.joint.E, [ens, joint])]


def _doubts(cfg, searches: Searches, fits: Fits, efficiency: dict, m: dict) -> dict[str, str]:
    """The claims' metrics this seed cannot decide, with the reason: size steps within noise, gaps the
    fits cannot resolve, no ensemble gain to retain, losses beyond the data law, uncertified searches."""
    import numpy as np

    why: dict[str, str] = {}
    seeds, reg = fits.regularized_seeds, _regularized(cfg, fits)
    if len(seeds) > 1:  # a size step whose change is within 2 standard errors has no direction
        se = seeds.std(0, ddof=1) / np.sqrt(len(seeds))
        unresolved = [f"d{a}->d{b}: {reg[b] - reg[a]:+.4f} +- {2 * np.hypot(se[i], se[i + 1]):.4f}"
                      for i, (a, b) in enumerate(zip(cfg.sizes, cfg.sizes[1:], strict=False))
                      if abs(reg[b] - reg[a]) < 2 * np.hypot(se[i], se[i + 1])]
        if unresolved:
            why["regularized_monotone"] = f"size steps within 2 standard errors over {len(seeds)} seeds: " + "; ".join(unresolved)
    for metric, gap, used in _margins(cfg, fits, m["standard_best"]):
        shaky = {n: f.E_spread for n, f in used if not np.isfinite(f.E_spread) or f.E_spread >= abs(gap)}
        if shaky:
            why[metric] = "; ".join(f"{n} moves by {s:.3g} under leave-one-out refits, not less than the gap "
                                    f"{abs(gap):.3g}" for n, s in shaky.items())
    single, ens_loss = reg[_distill_size(cfg)], m["distill_teacher_loss"]
    if not single - ens_loss > 0:
        why["distill_retention"] = (f"the ensemble ({ens_loss:.4f}) is not better than one model ({single:.4f}): "
                                    "there is no gain to retain")
    for name, e in efficiency.items():
        used = {"regularized": fits.regularized, "joint": fits.joint}.get(name)
        if not np.isfinite(e["lowest"]):
            why[f"data_efficiency_{name}"] = (f"loss {e['loss']:.4f} is at or below the asymptote of every refit of the "
                                              f"standard data law (E = {fits.data.E:.4f}); the value is the measured floor")
        if used is not None and not (np.isfinite(used.E_spread) and used.E_spread < m["standard_best"] - e["loss"]):
            why[f"data_efficiency_{name}"] = (f"E_{name} moves by {used.E_spread:.3g} under leave-one-out refits, not "
                                              f"less than its gap to the standard recipe ({m['standard_best'] - e['loss']:.3g})")
    # a search that spent its budget uncertified did not find the optimum a claim is about
    uncertified = [d for d in cfg.sizes if not searches.standard[(cfg.data.train_bytes, d)].certified]
    if uncertified:
        _add(why, "standard_overfit_gap", f"the standard recipe's epoch search at d_model {uncertified} is uncertified")
    uncertified = [d for d in cfg.sizes if not searches.regularized[d].certified]
    for metric in ("regularized_monotone", "reg_vs_standard_margin", "ens_vs_reg_margin") if uncertified else ():
        _add(why, metric, f"the regularized search at d_model {uncertified} spent its budget uncertified")
    return why


def _add(why: dict[str, str], metric: str, reason: str) -> None:
    why[metric] = "; ".join(filter(None, [why.get(metric), reason]))


def _units(cfg, searches: Searches, members: Members, ensembles: Ensembles, distill: Distillation,
           fits: Fits) -> dict[str, list[float]]:
    """The claims' units, one value each: the overfitting gap per replicate, and the distillation margins
    and retention per student (retention only where the ensemble gained over one model)."""
    from paper_infcompute import metrics as pm

    ref = distill.size
    teacher_losses, noise = _teacher_noise(members, ensembles, ref)
    units = {"standard_overfit_gap": searches.overfit_gaps}
    for kind, metric in (("self_real", "self_distill_real_margin"), ("self_no_real", "self_distill_no_real_margin")):
        units[metric] = [teacher_losses[0] - loss - noise for loss in distill.replicas[kind]]
    single, ens_loss = _regularized(cfg, fits)[ref], ensembles.curves[cfg.combine][ref][-1]
    if single - ens_loss > 0:
        units["distill_retention"] = [pm.distill_retention(single, ens_loss, loss) for loss in distill.replicas["ensemble"]]
    return units


def _series(cfg, setup: Setup, searches: Searches, ensembles: Ensembles, fits: Fits) -> dict[str, list]:
    """Loss against parameters per recipe (standard, regularized, ensemble asymptote and measured),
    the standard recipe's data law and epoch-search points, each width's ensemble against K."""
    n_params, curves = setup.n_params, ensembles.curves[cfg.combine]
    standard, reg = searches.standard_at(cfg.data.train_bytes), _regularized(cfg, fits)
    series = {"standard": [(n_params[d], standard[d]) for d in cfg.sizes],
              "regularized": [(n_params[d], reg[d]) for d in cfg.sizes],
              "ensemble_asymptote": [(n_params[d], fits.ensemble[d].E) for d in cfg.sizes],
              "ensemble_measured": [(n_params[d], curves[d][-1]) for d in cfg.sizes],
              "standard_data_law": list(_standard_by_data(cfg, searches).items())}
    points = {(d, p[0][1]): loss for (n, d), r in searches.standard.items() if n == cfg.data.train_bytes
              for p, loss in r.evaluated.items()}
    for e in cfg.standard_epochs:  # the epoch search's points at the main budget
        series[f"standard_epochs_{e}"] = [(n_params[d], points[(d, e)]) for d in cfg.sizes if (d, e) in points]
    for d in cfg.sizes:
        series[f"ensemble_k_d{d}"] = list(zip(range(1, cfg.members + 1), curves[d], strict=True))
    return series


def _info(cfg, setup: Setup, searches: Searches, members: Members, ensembles: Ensembles, distill: Distillation,
          fits: Fits, efficiency: dict, laps, throughput: dict) -> dict:
    """The seed's record: corpus, sizes, every search's result, the member candidates, fits, data
    efficiency, distillation, and each phase's seconds."""
    corpus = setup.corpus
    return {"corpus_sha256": corpus.sha256, **({"corpus_revision": corpus.revision} if corpus.revision else {}),
            "train_files": corpus.train_files, "val_files": corpus.val_files,
            "train_tokens": len(corpus.train), "time_s": {**{k: round(v, 1) for k, v in laps.items()},
                                                          "total": round(laps.total(), 1)},
            "n_params": setup.n_params, "training_throughput": throughput,
            "standard_search": {f"data{n}_d{d}": {"epochs": r.best["epochs"], "loss": r.loss, "certified": r.certified,
                                                  "runs": r.runs} for (n, d), r in searches.standard.items()},
            "regularized_search": {d: {"best": r.best, "loss_seed0": r.loss, "certified": r.certified, "runs": r.runs}
                                   for d, r in searches.regularized.items()},
            "member_candidates": ensembles.candidates,
            "fits": {"regularized": fits.regularized.as_dict(), "joint": fits.joint.as_dict(),
                     "standard_data_law": fits.data.as_dict(), **{f"ensemble_d{d}": f.as_dict() for d, f in fits.ensemble.items()}},
            "data_efficiency": efficiency,
            "regularized_hparams": {d: r.best for d, r in searches.regularized.items()},
            "member_hparams": {d: {"rule": ensembles.chosen[d], "epochs_wd": members.hparams[d][ensembles.chosen[d]]}
                               for d in cfg.sizes},
            "distillation": {"size": distill.size, "teacher_members": distill.teachers,
                             "synthetic_tokens": cfg.distill_tokens, "students": distill.student,
                             "single_model": _regularized(cfg, fits)[distill.size],
                             "ensemble": ensembles.curves[cfg.combine][distill.size][-1]}}


@dataclass
class InfComputeConfig(SuiteConfig):
    # the corpus: source "stdlib" or a directory of text files / JSON-lines shards, the files' pattern, the
    # tokenizer ("bytes" or a local gpt2.tiktoken vocabulary file), and the training and held-out bytes
    data: CorpusSpec = field(default_factory=lambda: CorpusSpec(train_bytes=12_500))
    data_sizes: list[int] = field(default_factory=lambda: [3125, 6250, 12_500, 25_000])  # standard data law
    seq_len: int = 64
    batch_size: int = 32
    n_layers: int = 2
    head_dim: int = 0  # 0: max(2, d_model // 16) heads
    ff_mult: float = 0.0  # MLP width over d_model (0: Llama's 8/3; the paper's shapes: 3.5)
    paper_shapes: bool = False  # layers / heads / kv heads / MLP width from PAPER_SHAPES by d_model
    lr: float = 3e-3
    precision: str = "fp32"  # fp32 | bf16 (autocast, fp32 parameters: the paper's policy)
    # memory per device (paper_infcompute.train.RunConfig): rows per forward/backward pass, gradients
    # accumulated to batch_size (0: the whole batch; also the evaluation's rows per pass), rows of the loss'
    # vocabulary projection at a time (0: all), activation checkpointing
    micro_batch: int = 0
    loss_chunk: int = 0
    checkpointing: bool = False
    eval_batch: int = 0  # windows per pass of the ensemble evaluation (0: micro_batch, or 256)
    gpus_per_size: list[int] = field(default_factory=list)  # devices per training run, by size (data parallel)
    sizes: list[int] = field(default_factory=lambda: [24, 48, 64, 96])  # d_model
    standard_wd: float = 0.1
    standard_epochs: list[int] = field(default_factory=lambda: [8, 16, 32, 64])  # grid of its epoch search
    standard_start_epochs: int = 16
    epochs_grid: list[int] = field(default_factory=lambda: [8, 16, 32, 64, 128])
    wd_grid: list[float] = field(default_factory=lambda: [0.1, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8])
    search_start_epochs: int = 32
    search_start_wd: float = 3.2
    max_search_runs: int = 12
    members: int = 5
    combine: str = "logit"  # logit | prob (both are reported)
    # distillation at the second size (the paper's 300M): teacher samples at temperature 1
    distill_tokens: int = 200_000
    distill_weight: float = 0.75  # fraction of each student batch that is synthetic
    distill_epochs: int = 32  # passes over the real data
    distill_wd: float = 0.1
    sample_streams: int = 512  # sequences sampled in parallel per job (their key/value caches share a device)
    sample_shard_tokens: int = 0  # tokens per sampling job (0: one job)
    # independent re-runs (init seed and data order) of the single runs that per-run claims compare: the
    # standard recipe at its largest and best smaller size (standard.overfits), and each distillation
    # student; they are those claims' units
    replicates: int = 3
    executor: str = "process"  # process | submitit | ray (runners.jobs)
    executor_options: dict[str, Any] = field(default_factory=dict)  # e.g. {cluster: slurm, gpus_per_node: 1}
    workers: int = 2  # jobs in flight
    cache_dir: str = ""  # default: $PAPERCLUB_CACHE or ~/.cache/paperclub, then /infcompute


_t = partial(at_tiers, tiers=("small",))
MEASURED = ("small", "medium", "full")  # the tiers whose claims are judged (smoke checks the plumbing)


class InfComputeSuite(Suite):
    name = "infcompute"
    version = 2
    config = InfComputeConfig
    paper = PAPER
    description = "Standard vs regularized vs ensemble vs joint scaling, distillation and data efficiency under a fixed data budget"
    tiers = {
        "smoke": ["data.train_bytes=6000", "data.val_bytes=8000", "data_sizes=[3000,6000,12000]", "sizes=[16,24,32]",
                  "standard_epochs=[8,16]", "standard_start_epochs=8", "epochs_grid=[8,16,32]", "wd_grid=[0.1,0.8,3.2]",
                  "search_start_epochs=16", "search_start_wd=0.8", "max_search_runs=4", "members=3",
                  "distill_tokens=20000", "distill_epochs=8", "replicates=1"],
        "small": [],
        # One GPU, about an hour (projected, never run: the searches' usual paths train about 1.7B tokens over
        # the three sizes and 0.6B for the students, about 2.5e17 FLOPs, an hour at 7% of an H100's bf16 peak):
        # three sizes up to the paper's smallest shape (d_model 512, 6 layers, 8 heads, MLP 1792: its "150M"
        # with Llama 3's vocabulary), byte tokens of 1 MB of text (2 MB for the data law), context 1024, the
        # paper's grids, four runs at a time on the card.
        "medium": ["device=cuda", "precision=bf16", "sizes=[256,384,512]", "n_layers=6", "head_dim=64", "ff_mult=3.5",
                   "seq_len=1024", "batch_size=64", "data.train_bytes=1000000", "data.val_bytes=500000",
                   "data_sizes=[250000,500000,1000000,2000000]", "standard_epochs=[4,8,16,32]",
                   "standard_start_epochs=8", "epochs_grid=[4,8,16,32,64]", "wd_grid=[0.1,0.2,0.4,0.8,1.6,3.2,6.4]",
                   "search_start_epochs=16", "search_start_wd=0.8", "max_search_runs=12", "distill_tokens=4000000",
                   "distill_epochs=16", "sample_streams=256", "workers=4"],
        # The paper's setup: 150M-1.4B Llama models, ~200M tokens of a real web corpus (DCLM-baseline's
        # JSON-lines shards, read from the hub at the commit its main branch names when the corpus is made, or
        # from a directory: data.source=PATH; ~850 MB of text is ~200M GPT-2 tokens), seq 4096, batch 64 in
        # micro-batches of 4, bf16, its grids, each training run one submitit (SLURM) job of 1-4 GPUs (data
        # parallel), teacher samples in 100 jobs of 100M tokens. The tokenizer is Llama 3's where the hub gives
        # access, GPT-2's otherwise.
        "full": ["device=cuda", "precision=bf16", "paper_shapes=true", "sizes=[512,768,1024,2048]",
                 "micro_batch=4", "loss_chunk=4096", "eval_batch=1", "gpus_per_size=[1,1,2,4]",
                 "sample_streams=64", "sample_shard_tokens=100000000",
                 "data.source=hf://datasets/mlfoundations/dclm-baseline-1.0", "data.pattern=*.jsonl.zstd", "data.tokenizer=auto", "data.train_bytes=850000000",
                 "data.val_bytes=18000000", "data_sizes=[850000000,1700000000,3400000000,6800000000]",
                 "seq_len=4096", "batch_size=64", "standard_epochs=[1,2,4,8,16]", "standard_start_epochs=4",
                 "epochs_grid=[1,2,4,8,16,32,64]", "wd_grid=[0.1,0.2,0.4,0.8,1.6,3.2,6.4]",
                 "search_start_epochs=16", "search_start_wd=0.8", "max_search_runs=40", "lr=0.003",
                 "distill_tokens=10000000000", "distill_weight=0.9", "distill_epochs=16",
                 "executor=submitit", "workers=64", "+executor_options.cluster=slurm",
                 "+executor_options.gpus_per_node=1", "+executor_options.tasks_per_node=1",
                 "+executor_options.timeout_min=2880"],
    }
    tier_requires = {"medium": frozenset({"gpus>=1"}), "full": frozenset({"gpus>=1"})}
    renamed_keys = {"corpus": "data.source",
                    **{k: f"data.{k}" for k in ("pattern", "tokenizer", "train_bytes", "val_bytes")}}
    default_seeds = {"smoke": 1, "small": 1, "medium": 1, "full": 1}
    expected_minutes = {"smoke": 1.0, "small": 12.5}  # 2 cores, fresh clone (README)
    claims = (
        Claim("standard.overfits", "standard_overfit_gap", "ge", _t(0.0, tiers=MEASURED),
              unit="seed pairs", source=f"{PAPER}, Fig. 2", context="1.4B 3.764 vs 600M 3.750 nats per Llama-3 token",
              description="standard recipe's tuned loss at the largest size minus the best smaller size, per "
                          "pair of runs with one init seed and data order"),
        Claim("regularized.monotone", "regularized_monotone", "ge", _t(1.0, tiers=MEASURED), paper_value=1.0,
              source=f"{PAPER}, Fig. 3",
              description="fraction of size steps where the tuned loss (mean over seeds) falls"),
        Claim("regularized.beats_standard", "reg_vs_standard_margin", "ge", _t(0.0, tiers=MEASURED),
              source=f"{PAPER}, Figs. 2-3", context="3.75 -> 3.43 nats per Llama-3 token (gap 0.32, no spread subtracted)",
              description="best standard loss - E_regularized - fit spread of E_regularized"),
        Claim("ensemble.beats_regularized", "ens_vs_reg_margin", "ge", _t(0.0, tiers=MEASURED),
              source=f"{PAPER}, Figs. 4-5", context="300M members: 3.27 vs 3.43 nats per Llama-3 token",
              description="E_regularized - E_ensemble(second size) - both fits' spreads"),
        Claim("joint.beats_ensemble", "joint_vs_ens_margin", "ge", _t(0.0, tiers=MEASURED),
              source=f"{PAPER}, Fig. 6", context="joint asymptote 3.17 against the ensemble's 3.27 nats per Llama-3 token",
              description="E_ensemble(second size) - E_joint - spreads"),
        Claim("distill.retention", "distill_retention", "ge", _t(0.5, tiers=MEASURED), paper_value=0.83,
              unit="students", version=2,  # v2: the mean of several students
              source=f"{PAPER}, Sec. 6 (8x300M ensemble -> 300M student, 83%)",
              description="(single - student) / (single - ensemble) at the second size, per student seed; single "
                          "= tuned single-model loss (mean over seeds)"),
        Claim("self_distill.real_data_beats_teacher", "self_distill_real_margin", "ge", _t(0.0, tiers=MEASURED),
              unit="students", version=2,  # v2: the mean of several students
              source=f"{PAPER}, Table 4", context="teacher 3.7103 -> student 3.4373 nats per Llama-3 token (no noise subtracted)",
              description="teacher - student (synthetic + real data) - seed-to-seed sd of the teacher's recipe, per "
                          "student seed"),
        Claim("self_distill.no_real_data_does_not", "self_distill_no_real_margin", "le", _t(0.0, tiers=MEASURED),
              unit="students", version=2,  # v2: the mean of several students
              source=f"{PAPER}, Table 4", context="without real data the student reaches 4.0693 against the teacher's 3.7103",
              description="teacher - student (synthetic only, same steps) - seed-to-seed sd, per student seed; <= 0: no gain "
                          "beyond run-to-run noise"),
        Claim("data_efficiency.ensemble", "data_efficiency_ensemble", "ge", _t(1.5, tiers=MEASURED),
              scale="log", source=f"{PAPER}, Sec. 5.3",
              context="5 x 1.4B ensemble: 3.75x, a point estimate (here the most pessimistic leave-one-out refit)",
              description="data the standard recipe needs (its fitted data law, most pessimistic leave-one-out "
                          "refit) to match the best measured 5-member ensemble, over the budget"),
        Claim("data_efficiency.joint", "data_efficiency_joint", "ge", _t(2.0, tiers=MEASURED),
              scale="log", source=f"{PAPER}, abstract",
              context="5.17x, a point estimate (here the most pessimistic leave-one-out refit)",
              description="the same projection for the joint (N, K -> inf) asymptote"),
    )

    invariants = (
        Invariant("ensemble.never_worse_than_members", "ensemble_gain_min", "ge", 0.0, tol=1e-6,
                  source="convexity of log-sum-exp (Jensen)",
                  description="at every size, both combine rules: ensemble NLL <= mean member NLL"),
        Invariant("fit.asymptote_in_range", "fits_in_range", "ge", 1.0,
                  source="the fitter's bounds: 0 <= E <= the lowest observed loss"),
    )

    def notes(self, cfg, tier):
        from paper_infcompute.corpus import resolve_tokenizer

        shapes = "the paper's 150M-1.4B shapes" if cfg.paper_shapes else f"{cfg.n_layers} layers"
        tokenizer = resolve_tokenizer(cfg.data.tokenizer)
        vocab = _vocab(tokenizer)
        sizes = []
        for d in cfg.sizes:
            total = _n_params(model_cfg(cfg, d, vocab))
            sizes.append(f"d_model {d}: {_count(total - 2 * vocab * d)} non-embedding ({_count(total)} in all)")
        return [
            f"Llama-style decoders ({shapes}), trained on {cfg.data.train_bytes} bytes of {cfg.data.source} text (the "
            "paper: 150M-1.4B parameters on 200M DCLM tokens). Sizes by their non-embedding parameters, the fits' N: "
            + "; ".join(sizes) + ".",
            _tokenizer_note(tokenizer, vocab),
            f"Learning rate fixed at {cfg.lr} (the paper also tunes it); epochs grid {cfg.epochs_grid}, "
            f"weight decay grid {cfg.wd_grid}; ensembles of {cfg.members} members, hyper-parameters per size "
            "from a two-point box (the single-model optimum, and the paper's 2x epochs / half weight decay), "
            f"picked by the {cfg.members}-member loss (the paper picks by fitted asymptote over a larger box).",
            "The regularized loss at a size is the mean over the ensemble's members trained at the search's "
            "optimum (seed 0 found it; the others are independent re-runs), so the N-law is not fitted to the "
            "search's luckiest seed. A search that spends its run budget before every neighbour of its best "
            "point is worse is uncertified (info.regularized_search): the claims resting on it are then "
            "inconclusive, never passed.",
            f"`standard.overfits` is judged over {cfg.replicates} pairs of runs (the largest size and the best "
            "smaller one at their tuned epochs, each pair with its own init seed and data order); the "
            f"distillation claims over {cfg.replicates} students of each kind.",
            f"Standard recipe: weight decay {cfg.standard_wd}, epochs tuned until locally optimal on "
            f"{cfg.standard_epochs}, best size taken, at budgets {cfg.data_sizes} bytes (the paper: 0.2B-1.6B "
            "tokens); its data law L(D) = A/D^beta + E is inverted for the data efficiency, and the lowest value "
            "over the law and its leave-one-out refits is reported (the measured floor, which needs no law, beside it).",
            "A size step of the regularized recipe that moves by less than 2 standard errors over the seeds has no "
            "direction: `regularized.monotone` is then inconclusive, naming the steps.",
            f"Distillation at d_model {cfg.sizes[1] if len(cfg.sizes) > 1 else cfg.sizes[0]}: {cfg.distill_tokens} "
            "sampled tokens (a scaled choice: the paper generated about 10B with a serving engine) at temperature "
            f"1, in jobs of {cfg.sample_shard_tokens or cfg.distill_tokens} tokens, {cfg.sample_streams} streams each; "
            f"students at wd {cfg.distill_wd}, {cfg.distill_epochs} passes over "
            f"the real data with {cfg.distill_weight:.0%} synthetic rows; the no-real-data student keeps that "
            "schedule with every row synthetic.",
            "One sweep per seed; claims on gaps subtract the fits' leave-one-out spread, and a gap the fits "
            "cannot resolve (spread >= gap) is reported inconclusive, never passed.",
        ]

    # ------------------------------------------------------------------ run
    def rehearsal(self, cfg):
        """Every run of the sweep at its real model, sequence and batch shapes on a thousandth of the text
        (at least four batches) and of the synthetic tokens (at most one batch of streams: decoding is
        sequential), one job at a time here (the projection is then GPU-hours: a GPU per job)."""
        train = min(cfg.data.train_bytes, max(cfg.data.train_bytes // 1000, 4 * cfg.batch_size * (cfg.seq_len + 1)))
        sizes = ",".join(str(max(1, n * train // cfg.data.train_bytes)) for n in cfg.data_sizes)
        synth = min(cfg.distill_tokens * train // cfg.data.train_bytes, cfg.sample_streams * (cfg.seq_len + 1))
        return [f"data.train_bytes={train}", f"data_sizes=[{sizes}]", f"distill_tokens={max(1, synth)}",
                "executor=process", "workers=1"]

    def phase_steps(self, cfg):
        """Training tokens per epoch (every run of every phase passes over ``data.train_bytes`` of text;
        the searches may take other paths on other data) and the distillation's synthetic tokens."""
        return {"standard_and_regularized": cfg.data.train_bytes, "ensemble_training": cfg.data.train_bytes,
                "distillation": cfg.distill_tokens + cfg.data.train_bytes}

    def preflight(self, cfg):
        """The corpus, the tokenizer (a file, or hub access: a token where it is gated), each phase's peak
        memory per device at the configured micro-batch (``_memory``), and disk for the run cache."""
        from paper_infcompute import corpus as corpus_mod
        from runners import preflight as pf

        needs = [] if cfg.data.source == "stdlib" else [
            _hub_corpus(cfg.data) if cfg.data.source.startswith(corpus_mod.HUB)
            else pf.present("the corpus (data.source)", cfg.data.source)]
        tokenizer = corpus_mod.resolve_tokenizer(cfg.data.tokenizer)
        if tokenizer != "bytes" and not Path(tokenizer).expanduser().exists() and tokenizer.count("/") == 1:
            from huggingface_hub import try_to_load_from_cache

            cached = isinstance(try_to_load_from_cache(tokenizer, "tokenizer.json"), str)
            needs.append(pf.hub_access(tokenizer, cached, gated=tokenizer == corpus_mod.LLAMA3,
                                       filename="tokenizer.json"))
        elif tokenizer != "bytes":
            needs.append(pf.present("the tokenizer (data.tokenizer)", tokenizer))
        peaks = _memory(cfg, _vocab(tokenizer))
        needs += [pf.memory(phase, cfg.device, peak) for phase, peak in peaks.items()]
        weights = sum(4 * _n_params(model_cfg(cfg, d, _vocab(tokenizer))) for d in cfg.sizes)
        runs = len(cfg.data_sizes) * len(cfg.standard_epochs) + cfg.max_search_runs + 2 * cfg.members + 3 * cfg.replicates
        tokens = 4 * (cfg.data.train_bytes + 2 * cfg.distill_tokens)
        needs.append(pf.free_disk("the run cache", cache_root(cfg.cache_dir), (runs * weights + tokens) / pf.GB + 1))
        return needs

    def run(self, cfg: InfComputeConfig, seed: int, out_dir: Path) -> RunResult:
        import torch

        from paper_infcompute import train as tr
        from runners.jobs import JobPool

        _check(cfg)
        cfg = _resolved(cfg)
        torch.set_num_threads(cfg.threads)
        setup = Setup.load(cfg, seed)
        laps = Laps()
        with JobPool(cfg.executor, cfg.workers, partial(tr.pool_init, cfg.threads), cfg.executor_options,
                     folder=setup.cache / "jobs") as pool:
            trainer = Trainer(pool, setup.cache, dict(zip(cfg.sizes, cfg.gpus_per_size, strict=False)))
            searches = laps.run("standard_and_regularized", _search, cfg, setup, trainer)
            members = laps.run("ensemble_training", _train_members, cfg, setup, trainer, searches)
            projection = _projection(cfg, trainer.trained_flops(), laps["standard_and_regularized"] + laps["ensemble_training"])
            if projection:
                print(f"projected at this sweep's {projection['flops_per_s_per_device'] / 1e12:.1f} TFLOP/s per GPU: GPU-hours "
                      "per epoch of the paper's 200M tokens: " + ", ".join(
                          f"{k} {v:.2f}" for k, v in projection["gpu_hours_per_epoch"].items()), file=sys.stderr)
            ensembles = laps.run("ensemble_eval", _evaluate_ensembles, cfg, setup, members)
            distill = laps.run("distillation", _distill, cfg, setup, trainer, members, ensembles)
        fits = _fit(cfg, setup, searches, members, ensembles)
        efficiency = _data_efficiency(cfg, searches, fits, ensembles, distill)
        metrics = _metrics(cfg, searches, members, ensembles, distill, fits, efficiency)
        return RunResult(metrics=metrics, series=_series(cfg, setup, searches, ensembles, fits),
                         inconclusive=_doubts(cfg, searches, fits, efficiency, metrics),
                         units=_units(cfg, searches, members, ensembles, distill, fits),
                         info=_info(cfg, setup, searches, members, ensembles, distill, fits, efficiency, laps,
                                    {"by_width": trainer.throughput(), "paper_runs_projected": projection}))

    # ------------------------------------------------------------------ figures
    def figures(self, results, cfg, out_dir):
        from runners.plotting import FigureWriter, pyplot

        plt, out, r = pyplot(), FigureWriter(out_dir), results[0]  # seed 0's sweep
        _fig_recipes(plt, out, r, cfg)
        _fig_ensemble_scaling(plt, out, r, cfg)
        _fig_data_efficiency(plt, out, r, cfg)
        _fig_distillation(plt, out, r, cfg)
        return out.paths


def _fig_recipes(plt, out, r, cfg) -> None:
    """Loss against parameters per recipe, with the fitted asymptotes (Figs. 2-6)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ys = []
    for key, style, label in (("standard", "C3o-", "standard (wd 0.1, epochs tuned; one seed)"),
                              ("regularized", "C0s-", f"regularized (epochs, wd tuned; mean of {cfg.members} seeds)"),
                              ("ensemble_measured", "C2o--", f"ensemble of {cfg.members} (measured)"),
                              ("ensemble_asymptote", "C2^-", "ensemble K->inf asymptote (fit)")):
        x, y = zip(*r.series[key], strict=True)
        ax.plot(x, y, style, label=label)
        ys += y
    lo, hi = min(ys) - 0.05, max(ys) + 0.05
    for name, color, ls in (("e_regularized", "C0", "--"), ("e_joint", "C2", ":")):
        value, spread = r.metrics[name], r.metrics.get(f"{name}_spread")
        label = f"{name} = {value:.3f}" + (f" (LOO spread {spread:.2g})" if spread is not None else "")
        if lo <= value <= hi:
            ax.axhline(value, color=color, ls=ls, lw=1, label=label)
        else:  # a degenerate fit: say so rather than squash the measured curves
            ax.plot([], [], color=color, ls=ls, lw=1, label=label + ", off scale")
    ax.set_ylim(lo, hi)
    _loss_axes(ax, "non-embedding parameters N", "Recipes under a fixed data budget (Kim et al. 2025, Figs. 2-6)", 8,
               _unit(cfg))
    out.save(fig, "fig-recipes-vs-size.png")


def _count(n: float) -> str:
    """A parameter count the way papers write it: 906M, 1.43B, 13.9k."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(int(n))


def _tokenizer_note(tokenizer: str, vocab: int) -> str:
    """What the losses are measured in, and whether the paper's absolute values compare."""
    from paper_infcompute.corpus import LLAMA3

    if tokenizer == "bytes":
        return ("Tokens are bytes (vocabulary 256): losses are nats per byte, on another scale than the paper's nats "
                "per Llama-3 token; only orderings, ratios and fractions compare.")
    if tokenizer == LLAMA3:
        return (f"Tokens from the paper's Llama-3 tokenizer ({LLAMA3}, vocabulary {vocab}); documents are joined by "
                "blank lines without BOS/EOS tokens (levanter's preparation may differ), so absolute losses are "
                "close to, not exactly, the paper's scale.")
    return (f"Tokens from {tokenizer} (vocabulary {vocab}), not the paper's Llama-3 tokenizer: absolute losses are "
            "not on the paper's scale (3.75 / 3.43 / 3.27 / 3.17 nats per Llama-3 token do not compare); "
            "orderings, ratios and fractions do.")


def _unit(cfg) -> str:
    return "nats/byte" if cfg.data.tokenizer == "bytes" else "nats/token"


def _loss_axes(ax, xlabel: str, title: str, legend_size: int, unit: str) -> None:
    """Validation loss against a log-scaled x, with labels, title and legend."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"validation loss ({unit})")
    ax.set_title(title)
    ax.legend(fontsize=legend_size)


def _fig_ensemble_scaling(plt, out, r, cfg) -> None:
    """Each width's ensemble loss against K, with its fitted K -> inf asymptote."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, d in enumerate(cfg.sizes):
        k, y = zip(*r.series[f"ensemble_k_d{d}"], strict=True)
        ax.plot(k, y, "o-", color=f"C{i}", label=f"d_model {d}")
        ax.axhline(r.metrics[f"e_ensemble_d{d}"], color=f"C{i}", ls=":", lw=1)
    ax.set_xticks(np.arange(1, cfg.members + 1))
    ax.set_xlabel("ensemble members K")
    ax.set_ylabel(f"validation loss ({_unit(cfg)})")
    ax.set_title(f"Ensemble scaling ({cfg.combine} averaging); dotted: fitted K->inf asymptote")
    ax.legend(fontsize=8)
    out.save(fig, "fig-ensemble-scaling.png")


def _fig_data_efficiency(plt, out, r, cfg) -> None:
    """The standard recipe's data law, and where each recipe's loss sits on it."""
    import numpy as np

    from paper_infcompute.fit import PowerLaw

    law = PowerLaw(**{k: r.info["fits"]["standard_data_law"][k] for k in ("A", "alpha", "E", "x0", "rmse")})
    x, y = zip(*r.series["standard_data_law"], strict=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    eff = r.info["data_efficiency"]
    top = max([max(x)] + [v["point"] * cfg.data.train_bytes for v in eff.values() if np.isfinite(v["point"] or np.inf)])
    grid = np.geomspace(min(x), top * 1.3, 200)
    ax.plot(grid, law(grid), "C3-", lw=1, label=f"standard data law: {law.A:.2f}/(D/{law.x0:.0f})^{law.alpha:.2f} + {law.E:.2f}")
    ax.plot(x, y, "C3o", label="standard recipe (best over sizes, epochs)")
    ax.axvline(cfg.data.train_bytes, color="grey", lw=0.8, ls=":")
    for i, (name, v) in enumerate(eff.items()):
        point = v["point"]
        label = f"{name}: {v['loss']:.3f}"
        if point is not None and np.isfinite(point):
            ax.plot([point * cfg.data.train_bytes], [v["loss"]], marker="*", ms=12, ls="", color=f"C{i}",
                    label=label + f" -> {point:.2f}x data (lowest refit {v['lowest']:.2f}x)")
        else:
            ax.axhline(v["loss"], color=f"C{i}", ls="--", lw=1, label=label + " (below the law's asymptote)")
    _loss_axes(ax, "training data D (bytes of text)", "Data efficiency against the standard recipe (Kim et al. 2025, "
               "Fig. 1 / Sec. 5)", 7, _unit(cfg))
    out.save(fig, "fig-data-efficiency.png")


def _fig_distillation(plt, out, r, cfg) -> None:
    """The distillation students' losses beside their teachers'."""
    m = r.metrics
    bars = [("tuned single model", m[f"regularized_loss_d{r.info['distillation']['size']}"], "C0"),
            (f"{cfg.members}-ensemble (teacher)", m["distill_teacher_loss"], "C2"),
            ("student of the ensemble", m["distill_student_loss"], "C2"),
            ("self-distill teacher", m["self_distill_teacher_loss"], "C1"),
            ("self-distilled, with real data", m["self_distill_real_loss"], "C1"),
            ("self-distilled, synthetic only", m["self_distill_no_real_loss"], "C1")]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    for i, b in enumerate(bars):
        ax.text(b[1], i, f" {b[1]:.4f}", va="center", fontsize=8)
    lo = min(b[1] for b in bars)
    ax.set_xlim(lo - 0.1, max(b[1] for b in bars) + 0.08)
    ax.invert_yaxis()
    ax.set_xlabel(f"validation loss ({_unit(cfg)})")
    ax.set_title(f"Distillation at d_model {r.info['distillation']['size']}: retention "
                 f"{m['distill_retention']:.2f} (paper 0.83)")
    out.save(fig, "fig-distillation.png")
