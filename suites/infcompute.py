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
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from runners.api import Claim, Invariant, RunResult, Suite, SuiteConfig, at_tiers
from runners.progress import track
from runners.rundir import cache_root

PAPER = "Kim et al. 2025 (arXiv 2509.14786v1)"

# The paper's model shapes (levanter LlamaConfig presets, seq len 4096), by d_model:
# name, layers, heads, key/value heads, MLP width.
PAPER_SHAPES = {512: ("150M", 6, 8, 8, 1792), 768: ("300M", 12, 12, 12, 2688),
                1024: ("600M", 24, 16, 8, 3584), 2048: ("1.4B", 16, 16, 8, 7168)}


@dataclass
class InfComputeConfig(SuiteConfig):
    corpus: str = "stdlib"  # "stdlib" or a directory of text files / JSON-lines shards
    pattern: str = "*.py"
    tokenizer: str = "bytes"  # or a local gpt2.tiktoken vocabulary file
    train_bytes: int = 12_500
    val_bytes: int = 32_000
    data_sizes: list[int] = field(default_factory=lambda: [3125, 6250, 12_500, 25_000])  # standard data law
    seq_len: int = 64
    batch_size: int = 32
    n_layers: int = 2
    paper_shapes: bool = False  # layers / heads / kv heads / MLP width from PAPER_SHAPES by d_model
    lr: float = 3e-3
    precision: str = "fp32"  # fp32 | bf16 (autocast, fp32 parameters: the paper's policy)
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
    # independent re-runs (init seed and data order) of the single runs that per-run claims compare: the
    # standard recipe at its largest and best smaller size (standard.overfits), and each distillation
    # student; they are those claims' units
    replicates: int = 3
    executor: str = "process"  # process | submitit | ray (runners.jobs)
    executor_options: dict[str, Any] = field(default_factory=dict)  # e.g. {cluster: slurm, gpus_per_node: 1}
    workers: int = 2  # jobs in flight
    cache_dir: str = ""  # default: $PAPERCLUB_CACHE or ~/.cache/paperclub, then /infcompute


_t = partial(at_tiers, tiers=("small",))


class InfComputeSuite(Suite):
    name = "infcompute"
    version = 2
    config = InfComputeConfig
    paper = PAPER
    description = "Standard vs regularized vs ensemble vs joint scaling, distillation and data efficiency under a fixed data budget"
    tiers = {
        "smoke": ["train_bytes=6000", "val_bytes=8000", "data_sizes=[3000,6000,12000]", "sizes=[16,24,32]",
                  "standard_epochs=[8,16]", "standard_start_epochs=8", "epochs_grid=[8,16,32]", "wd_grid=[0.1,0.8,3.2]",
                  "search_start_epochs=16", "search_start_wd=0.8", "max_search_runs=4", "members=3",
                  "distill_tokens=20000", "distill_epochs=8", "replicates=1"],
        "small": [],
        # The paper's setup: 150M-1.4B Llama models, ~200M tokens of a real web corpus (DCLM-baseline
        # JSON-lines shards; ~850 MB of text is ~200M GPT-2 tokens), seq 4096, batch 64, bf16, its grids,
        # one GPU job per training run through submitit (SLURM). `corpus=` must name the shards.
        "full": ["device=cuda", "precision=bf16", "paper_shapes=true", "sizes=[512,768,1024,2048]",
                 "corpus=???", "pattern=*.jsonl.gz", "tokenizer=???", "train_bytes=850000000",
                 "val_bytes=18000000", "data_sizes=[850000000,1700000000,3400000000,6800000000]",
                 "seq_len=4096", "batch_size=64", "standard_epochs=[1,2,4,8,16]", "standard_start_epochs=4",
                 "epochs_grid=[1,2,4,8,16,32,64]", "wd_grid=[0.1,0.2,0.4,0.8,1.6,3.2,6.4]",
                 "search_start_epochs=16", "search_start_wd=0.8", "max_search_runs=40", "lr=0.003",
                 "distill_tokens=10000000000", "distill_weight=0.9", "distill_epochs=16",
                 "executor=submitit", "workers=64", "+executor_options.cluster=slurm",
                 "+executor_options.gpus_per_node=1", "+executor_options.tasks_per_node=1",
                 "+executor_options.timeout_min=2880"],
    }
    tier_requires = {"full": frozenset({"cuda"})}
    default_seeds = {"smoke": 1, "small": 1, "full": 1}
    expected_minutes = {"smoke": 1.0, "small": 12.5}  # 2 cores, fresh clone (README)
    claims = (
        Claim("standard.overfits", "standard_overfit_gap", "ge", _t(0.0, tiers=("small", "full")),
              unit="seed pairs", source=f"{PAPER}, Fig. 2", context="1.4B 3.764 vs 600M 3.750 nats per Llama-3 token",
              description="standard recipe's tuned loss at the largest size minus the best smaller size, per "
                          "pair of runs with one init seed and data order"),
        Claim("regularized.monotone", "regularized_monotone", "ge", _t(1.0, tiers=("small", "full")), paper_value=1.0,
              source=f"{PAPER}, Fig. 3",
              description="fraction of size steps where the tuned loss (mean over seeds) falls"),
        Claim("regularized.beats_standard", "reg_vs_standard_margin", "ge", _t(0.0, tiers=("small", "full")),
              source=f"{PAPER}, Figs. 2-3", context="3.75 -> 3.43 nats per Llama-3 token (gap 0.32, no spread subtracted)",
              description="best standard loss - E_regularized - fit spread of E_regularized"),
        Claim("ensemble.beats_regularized", "ens_vs_reg_margin", "ge", _t(0.0, tiers=("small", "full")),
              source=f"{PAPER}, Figs. 4-5", context="300M members: 3.27 vs 3.43 nats per Llama-3 token",
              description="E_regularized - E_ensemble(second size) - both fits' spreads"),
        Claim("joint.beats_ensemble", "joint_vs_ens_margin", "ge", _t(0.0, tiers=("small", "full")),
              source=f"{PAPER}, Fig. 6", context="joint asymptote 3.17 against the ensemble's 3.27 nats per Llama-3 token",
              description="E_ensemble(second size) - E_joint - spreads"),
        Claim("distill.retention", "distill_retention", "ge", _t(0.5, tiers=("small", "full")), paper_value=0.83,
              unit="students", version=2,  # v2: the mean of several students
              source=f"{PAPER}, Sec. 6 (8x300M ensemble -> 300M student, 83%)",
              description="(single - student) / (single - ensemble) at the second size, per student seed; single "
                          "= tuned single-model loss (mean over seeds)"),
        Claim("self_distill.real_data_beats_teacher", "self_distill_real_margin", "ge", _t(0.0, tiers=("small", "full")),
              unit="students", version=2,  # v2: the mean of several students
              source=f"{PAPER}, Table 4", context="teacher 3.7103 -> student 3.4373 nats per Llama-3 token (no noise subtracted)",
              description="teacher - student (synthetic + real data) - seed-to-seed sd of the teacher's recipe, per "
                          "student seed"),
        Claim("self_distill.no_real_data_does_not", "self_distill_no_real_margin", "le", _t(0.0, tiers=("small", "full")),
              unit="students", version=2,  # v2: the mean of several students
              source=f"{PAPER}, Table 4", context="without real data the student reaches 4.0693 against the teacher's 3.7103",
              description="teacher - student (synthetic only, same steps) - seed-to-seed sd, per student seed; <= 0: no gain "
                          "beyond run-to-run noise"),
        Claim("data_efficiency.ensemble", "data_efficiency_ensemble", "ge", _t(1.5, tiers=("small", "full")),
              scale="log", source=f"{PAPER}, Sec. 5.3",
              context="5 x 1.4B ensemble: 3.75x, a point estimate (here the most pessimistic leave-one-out refit)",
              description="data the standard recipe needs (its fitted data law, most pessimistic leave-one-out "
                          "refit) to match the best measured 5-member ensemble, over the budget"),
        Claim("data_efficiency.joint", "data_efficiency_joint", "ge", _t(2.0, tiers=("small", "full")),
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
        shapes = "the paper's 150M-1.4B shapes" if cfg.paper_shapes else f"{cfg.n_layers} layers"
        return [
            f"Llama-style decoders ({shapes}), d_model {cfg.sizes}, {cfg.tokenizer} tokens, trained on "
            f"{cfg.train_bytes} bytes of {cfg.corpus} text (the paper: 150M-1.4B parameters on 200M DCLM tokens).",
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
            f"sampled tokens at temperature 1, students at wd {cfg.distill_wd}, {cfg.distill_epochs} passes over "
            f"the real data with {cfg.distill_weight:.0%} synthetic rows; the no-real-data student keeps that "
            "schedule with every row synthetic.",
            "One sweep per seed; claims on gaps subtract the fits' leave-one-out spread, and a gap the fits "
            "cannot resolve (spread >= gap) is reported inconclusive, never passed.",
        ]

    # ------------------------------------------------------------------ run
    def run(self, cfg: InfComputeConfig, seed: int, out_dir: Path) -> RunResult:
        import functools
        from concurrent.futures import ThreadPoolExecutor, as_completed

        import numpy as np
        import torch

        from paper_infcompute import corpus as corpus_mod
        from paper_infcompute import ensemble, fit
        from paper_infcompute import metrics as pm
        from paper_infcompute import train as tr
        from paper_infcompute.model import ModelConfig
        from paper_infcompute.sample import sample
        from paper_infcompute.search import local_optimum
        from runners.jobs import JobPool

        if cfg.train_bytes not in cfg.data_sizes:
            raise ValueError(f"data_sizes {cfg.data_sizes} must include train_bytes={cfg.train_bytes}")
        if cfg.paper_shapes and set(cfg.sizes) - set(PAPER_SHAPES):
            raise ValueError(f"paper_shapes: sizes must be among {sorted(PAPER_SHAPES)}, got {cfg.sizes}")
        torch.set_num_threads(cfg.threads)

        def spec_for(n_bytes):
            return corpus_mod.CorpusSpec(source=cfg.corpus, pattern=cfg.pattern, train_bytes=n_bytes,
                                         val_bytes=cfg.val_bytes, tokenizer=cfg.tokenizer)

        spec = spec_for(cfg.train_bytes)
        corpus = corpus_mod.load(spec)
        cache = cache_root(cfg.cache_dir)
        cache = cache / "infcompute"
        cache.mkdir(parents=True, exist_ok=True)
        val = tr.windows(corpus.val, cfg.seq_len)

        def model_cfg(d):
            if cfg.paper_shapes:
                _, layers, heads, kv, ff = PAPER_SHAPES[d]
            else:
                layers, heads, kv, ff = cfg.n_layers, max(2, d // 16), 0, 0
            return ModelConfig(vocab_size=corpus.vocab_size, d_model=d, n_layers=layers, n_heads=heads,
                               n_kv_heads=kv, d_ff=ff, seq_len=cfg.seq_len)

        def run_cfg(d, epochs, wd, member=0, data=spec, **extra):
            return tr.RunConfig(model=model_cfg(d), corpus=data, epochs=epochs, lr=cfg.lr, weight_decay=wd,
                                batch_size=cfg.batch_size, seed=1000 * seed + member, device=cfg.device,
                                precision=cfg.precision, **extra)

        metrics: dict[str, float] = {}
        series: dict[str, list] = {}
        inconclusive: dict[str, str] = {}
        units: dict[str, list[float]] = {}  # claims over seed pairs and students: one value per unit
        info: dict = {"corpus_sha256": corpus.sha256, "train_files": corpus.train_files,
                      "val_files": corpus.val_files, "train_tokens": len(corpus.train), "time_s": {}}
        n_params = {d: tr.Decoder(model_cfg(d)).n_params() for d in cfg.sizes}
        info["n_params"] = n_params
        t_start = time.perf_counter()
        pool = JobPool(cfg.executor, cfg.workers, functools.partial(tr.pool_init, cfg.threads),
                       cfg.executor_options, folder=cache / "jobs")
        with pool:
            inflight, lock = {}, threading.Lock()

            def submit(c):  # one job per distinct config, however many phases ask for it
                with lock:
                    if c.key() not in inflight:
                        inflight[c.key()] = pool.submit(tr.train_job, (c, c.corpus, str(cache)))
                    return inflight[c.key()]

            def losses(cfgs, what):
                return [m["val_loss"] for m in pool.map(tr.train_job, [(c, c.corpus, str(cache)) for c in cfgs], what)]

            # 1. every search at once, one thread each, all feeding the same pool: the standard recipe
            #    (weight decay fixed, epochs tuned until locally optimal) at every data budget and size, and
            #    the regularized recipe (epochs and weight decay tuned) at every size
            t0 = time.perf_counter()

            def search(d, grids, start, max_runs, data=spec, wd=None):
                def evaluate(points):
                    futures = [submit(run_cfg(d, p["epochs"], p.get("wd", wd), data=data)) for p in points]
                    return [f.result()["val_loss"] for f in futures]

                return local_optimum(evaluate, grids, start, max_runs=max_runs)

            std_grid = {"epochs": cfg.standard_epochs}
            std_start = {"epochs": cfg.standard_start_epochs}
            with ThreadPoolExecutor(len(cfg.sizes) * (1 + len(cfg.data_sizes))) as threads:
                searches = {d: threads.submit(search, d, {"epochs": cfg.epochs_grid, "wd": cfg.wd_grid},
                                              {"epochs": cfg.search_start_epochs, "wd": cfg.search_start_wd},
                                              cfg.max_search_runs) for d in cfg.sizes}
                std_searches = {(n, d): threads.submit(search, d, std_grid, std_start, len(cfg.standard_epochs),
                                                       spec_for(n), cfg.standard_wd)
                                for n in cfg.data_sizes for d in cfg.sizes}
                for _ in track(as_completed(std_searches.values()), "standard recipe (budgets x sizes)",
                               total=len(std_searches)):
                    pass
                for _ in track(as_completed(searches.values()), "regularized search (sizes)", total=len(searches)):
                    pass
            std_res = {k: f.result() for k, f in std_searches.items()}
            std = {(d, p[0][1]): loss for (n, d), r in std_res.items() if n == cfg.train_bytes
                   for p, loss in r.evaluated.items()}
            std_best = {d: std_res[(cfg.train_bytes, d)].loss for d in cfg.sizes}
            # standard.overfits' units: the largest size against the best smaller one, each at its tuned
            # epochs, re-run with other init seeds and data orders (member 0 is the search's own run)
            pair = (cfg.sizes[-1], min(cfg.sizes[:-1], key=std_best.get))
            reruns = [run_cfg(d, std_res[(cfg.train_bytes, d)].best["epochs"], cfg.standard_wd, member=k)
                      for k in range(1, cfg.replicates) for d in pair]
            rerun_loss = losses(reruns, "standard recipe replicates")
            units["standard_overfit_gap"] = [std_best[pair[0]] - std_best[pair[1]]] + [
                rerun_loss[i] - rerun_loss[i + 1] for i in range(0, len(rerun_loss), 2)]
            std_by_data = {n: min(std_res[(n, d)].loss for d in cfg.sizes) for n in cfg.data_sizes}
            info["standard_search"] = {f"data{n}_d{d}": {"epochs": r.best["epochs"], "loss": r.loss,
                                                         "certified": r.certified, "runs": r.runs}
                                       for (n, d), r in std_res.items()}
            reg_best, certified = {}, 0
            for d in cfg.sizes:
                res = searches[d].result()
                reg_best[d] = res.best
                certified += res.certified
                info.setdefault("regularized_search", {})[d] = {
                    "best": res.best, "loss_seed0": res.loss, "certified": res.certified, "runs": res.runs}
            info["time_s"]["standard_and_regularized"] = round(time.perf_counter() - t0, 1)

            # 2. ensembles: K members differing in init seed and data order. Member hyper-parameters come
            #    from a two-point box per size, as in the paper: the single-model optimum and the paper's shift
            #    (2x epochs, half the weight decay); the one whose K-member ensemble is best wins.
            t0 = time.perf_counter()

            def candidates(best):
                shifted = (min(2 * best["epochs"], max(cfg.epochs_grid)),
                           min(cfg.wd_grid, key=lambda w: abs(w - best["wd"] / 2)))
                return {"optimum": (best["epochs"], best["wd"]), "shifted": shifted}

            member_cfgs = {(d, name): [run_cfg(d, *hp, member=k) for k in range(cfg.members)]
                           for d in cfg.sizes for name, hp in candidates(reg_best[d]).items()}
            flat = [c for cfgs in member_cfgs.values() for c in cfgs]
            by_key = dict(zip([c.key() for c in flat], losses(flat, "ensemble members"), strict=True))
            member_loss = {k: [by_key[c.key()] for c in cfgs] for k, cfgs in member_cfgs.items()}
            info["time_s"]["ensemble_training"] = round(time.perf_counter() - t0, 1)

            # 3. ensemble evaluation (this process)
            t0 = time.perf_counter()
            ens_curves = {m: {} for m in ("logit", "prob")}
            gains, chosen = [], {}
            for d in track(cfg.sizes, "ensemble evaluation"):
                best = None
                for name in candidates(reg_best[d]):
                    lps = [tr.token_logprobs(tr.load_model(c, corpus, cache), val) for c in member_cfgs[(d, name)]]
                    nlls = member_loss[(d, name)]
                    curves = {m: [tr.nll(ensemble.combine(lps[:k], m), val) for k in range(1, cfg.members + 1)]
                              for m in ens_curves}
                    gains += [float(np.mean(nlls)) - c[-1] for c in curves.values()]
                    info.setdefault("member_candidates", {})[f"d{d}_{name}"] = {
                        "hparams": candidates(reg_best[d])[name], "member_losses": nlls, **curves}
                    if best is None or curves[cfg.combine][-1] < best[1][cfg.combine][-1]:
                        best = (name, curves)
                chosen[d] = best[0]
                for m in ens_curves:
                    ens_curves[m][d] = best[1][m]
                metrics[f"member_loss_d{d}"] = float(np.mean(member_loss[(d, chosen[d])]))
            info["time_s"]["ensemble_eval"] = round(time.perf_counter() - t0, 1)

            # 4. distillation at the second size (the paper's 300M): sequence-level, from unconditional
            #    samples at temperature 1 of the ensemble, and of one member for self-distillation
            t0 = time.perf_counter()
            ref = cfg.sizes[1] if len(cfg.sizes) > 1 else cfg.sizes[0]
            teachers = member_cfgs[(ref, chosen[ref])]
            unigram = np.bincount(corpus.train, minlength=corpus.vocab_size) / len(corpus.train)

            def samples_from(cfgs):
                key = hashlib.sha256(repr(([c.key() for c in cfgs], cfg.distill_tokens, seed,
                                           corpus.sha256)).encode()).hexdigest()[:20]
                if tr.load_synth(cache, key) is None:
                    models = [tr.load_model(c, corpus, cache).to(cfg.device) for c in cfgs]
                    tr.save_synth(cache, key, sample(models, cfg.distill_tokens, cfg.seq_len, unigram,
                                                     seed=1000 * seed + 7, device=cfg.device, progress=track))
                return key

            ens_key, self_key = samples_from(teachers), samples_from(teachers[:1])
            kinds = {"ensemble": {"synth_key": ens_key}, "self_real": {"synth_key": self_key},
                     "self_no_real": {"synth_key": self_key, "real_data": False}}
            students = {(kind, k): run_cfg(ref, cfg.distill_epochs, cfg.distill_wd, member=500 + 3 * k + j,
                                           synth_weight=cfg.distill_weight, **kw)
                        for k in range(cfg.replicates) for j, (kind, kw) in enumerate(kinds.items())}
            by_student = dict(zip(students, losses(list(students.values()), "distillation students"), strict=True))
            replicas = {kind: [by_student[(kind, k)] for k in range(cfg.replicates)] for kind in kinds}
            student = {kind: float(np.mean(v)) for kind, v in replicas.items()}
            info["time_s"]["distillation"] = round(time.perf_counter() - t0, 1)

        # 5. fits. The regularized loss per size: mean over the members at the certified optimum.
        reg_seeds = np.array([member_loss[(d, "optimum")] for d in cfg.sizes]).T  # [seeds, sizes]
        reg = dict(zip(cfg.sizes, reg_seeds.mean(0).tolist(), strict=True))
        ks = np.arange(1, cfg.members + 1)
        ens_fits = {d: fit.fit_power_law(ks, ens_curves[cfg.combine][d]) for d in cfg.sizes}
        xs = np.array([n_params[d] for d in cfg.sizes], dtype=float)
        reg_fit = fit.fit_power_law(xs, reg_seeds.mean(0), per_seed=reg_seeds, seed=seed)
        joint_fit = fit.fit_power_law(xs, [ens_fits[d].E for d in cfg.sizes])
        data_x = np.array(cfg.data_sizes, dtype=float)
        data_fit = fit.fit_power_law(data_x, [std_by_data[n] for n in cfg.data_sizes])
        info["fits"] = {"regularized": reg_fit.as_dict(), "joint": joint_fit.as_dict(),
                        "standard_data_law": data_fit.as_dict(),
                        **{f"ensemble_d{d}": f.as_dict() for d, f in ens_fits.items()}}

        def margin(metric, gap, *fits_used):
            """gap minus the fits' leave-one-out spreads; a gap the fits cannot resolve decides nothing."""
            spreads = {name: f.E_spread for name, f in fits_used}
            metrics[metric] = gap - sum(spreads.values())
            shaky = {n: s for n, s in spreads.items() if not np.isfinite(s) or s >= abs(gap)}
            if shaky:
                inconclusive[metric] = "; ".join(
                    f"{n} moves by {s:.3g} under leave-one-out refits, not less than the gap {abs(gap):.3g}"
                    for n, s in shaky.items())

        smaller = cfg.sizes[:-1]
        metrics.update({
            "ensemble_gain_min": min(gains),
            "fits_in_range": float(all(0 <= f.E <= min(y) + 1e-9 for f, y in
                                       [(reg_fit, reg_seeds.mean(0)), (joint_fit, [ens_fits[d].E for d in cfg.sizes]),
                                        (data_fit, [std_by_data[n] for n in cfg.data_sizes])]
                                       + [(ens_fits[d], ens_curves[cfg.combine][d]) for d in cfg.sizes])),
            "standard_best": min(std_best.values()),
            "standard_overfit_gap": std_best[cfg.sizes[-1]] - min(std_best[d] for d in smaller),
            "regularized_monotone": float(np.mean([reg[b] < reg[a] for a, b in zip(cfg.sizes, cfg.sizes[1:], strict=False)])),
            "e_regularized": reg_fit.E, "e_regularized_spread": reg_fit.E_spread,
            "alpha_regularized": reg_fit.alpha,
            "e_ensemble": ens_fits[ref].E, "e_ensemble_spread": ens_fits[ref].E_spread,
            "e_joint": joint_fit.E, "e_joint_spread": joint_fit.E_spread,
            "e_standard_data": data_fit.E, "beta_standard_data": data_fit.alpha,
            "searches_certified": float(certified),
            "best_ensemble_loss": min(ens_curves[cfg.combine][d][-1] for d in cfg.sizes),
        })
        if len(reg_seeds) > 1:  # a size step whose change is within 2 standard errors has no direction
            se = reg_seeds.std(0, ddof=1) / np.sqrt(len(reg_seeds))
            unresolved = [f"d{a}->d{b}: {reg[b] - reg[a]:+.4f} +- {2 * np.hypot(se[i], se[i + 1]):.4f}"
                          for i, (a, b) in enumerate(zip(cfg.sizes, cfg.sizes[1:], strict=False))
                          if abs(reg[b] - reg[a]) < 2 * np.hypot(se[i], se[i + 1])]
            if unresolved:
                inconclusive["regularized_monotone"] = (
                    f"size steps within 2 standard errors over {len(reg_seeds)} seeds: " + "; ".join(unresolved))
        margin("reg_vs_standard_margin", metrics["standard_best"] - reg_fit.E, ("E_regularized", reg_fit))
        margin("ens_vs_reg_margin", reg_fit.E - ens_fits[ref].E, ("E_regularized", reg_fit),
               (f"E_ensemble(d{ref})", ens_fits[ref]))
        margin("joint_vs_ens_margin", ens_fits[ref].E - joint_fit.E, (f"E_ensemble(d{ref})", ens_fits[ref]),
               ("E_joint", joint_fit))

        # distillation
        single, ens_loss = reg[ref], ens_curves[cfg.combine][ref][-1]
        teacher_losses = member_loss[(ref, chosen[ref])]
        noise = float(np.std(teacher_losses, ddof=1)) if len(teacher_losses) > 1 else 0.0
        metrics.update({"distill_student_loss": student["ensemble"], "distill_teacher_loss": ens_loss,
                        "self_distill_teacher_loss": teacher_losses[0],
                        "self_distill_real_loss": student["self_real"],
                        "self_distill_no_real_loss": student["self_no_real"], "member_loss_sd": noise,
                        "self_distill_real_margin": teacher_losses[0] - student["self_real"] - noise,
                        "self_distill_no_real_margin": teacher_losses[0] - student["self_no_real"] - noise})
        for kind, metric in (("self_real", "self_distill_real_margin"), ("self_no_real", "self_distill_no_real_margin")):
            units[metric] = [teacher_losses[0] - loss - noise for loss in replicas[kind]]
        if single - ens_loss > 0:
            metrics["distill_retention"] = pm.distill_retention(single, ens_loss, student["ensemble"])
            units["distill_retention"] = [pm.distill_retention(single, ens_loss, loss) for loss in replicas["ensemble"]]
        else:
            metrics["distill_retention"] = 0.0
            inconclusive["distill_retention"] = (f"the ensemble ({ens_loss:.4f}) is not better than one model "
                                                 f"({single:.4f}): there is no gain to retain")

        # data efficiency: data the standard recipe would need for a loss, over the budget
        std_losses = [std_by_data[n] for n in cfg.data_sizes]
        efficiency = {}
        for name, loss, fit_used in (("regularized", reg_fit.E, reg_fit), ("joint", joint_fit.E, joint_fit),
                                     ("ensemble", metrics["best_ensemble_loss"], None),
                                     ("distill", student["ensemble"], None)):
            low, point, high = pm.data_efficiency_bounds(data_fit, loss, cfg.train_bytes)
            floor = pm.measured_efficiency_floor(cfg.data_sizes, std_losses, loss, cfg.train_bytes)
            efficiency[name] = {"loss": loss, "lowest": low, "point": point, "highest": high, "measured_floor": floor}
            metric = f"data_efficiency_{name}"
            metrics[f"{metric}_measured_floor"] = floor
            if np.isfinite(low):
                metrics[metric] = low
            else:
                metrics[metric] = floor
                inconclusive[metric] = (f"loss {loss:.4f} is at or below the asymptote of every refit of the standard "
                                        f"data law (E = {data_fit.E:.4f}); the value is the measured floor")
            if fit_used is not None and not (np.isfinite(fit_used.E_spread)
                                             and fit_used.E_spread < metrics["standard_best"] - loss):
                inconclusive[metric] = (f"E_{name} moves by {fit_used.E_spread:.3g} under leave-one-out refits, "
                                        f"not less than its gap to the standard recipe "
                                        f"({metrics['standard_best'] - loss:.3g})")
        info["data_efficiency"] = efficiency

        def doubt(metric, why):
            inconclusive[metric] = "; ".join(filter(None, [inconclusive.get(metric), why]))

        # a search that spent its budget uncertified did not find the optimum a claim is about
        uncertified = [d for d in cfg.sizes if not std_res[(cfg.train_bytes, d)].certified]
        if uncertified:
            doubt("standard_overfit_gap", f"the standard recipe's epoch search at d_model {uncertified} is uncertified")
        uncertified = [d for d in cfg.sizes if not searches[d].result().certified]
        for metric in ("regularized_monotone", "reg_vs_standard_margin", "ens_vs_reg_margin") if uncertified else ():
            doubt(metric, f"the regularized search at d_model {uncertified} spent its budget uncertified")

        for d in cfg.sizes:
            metrics[f"standard_loss_d{d}"] = std_best[d]
            metrics[f"regularized_loss_d{d}"] = reg[d]
            metrics[f"ensemble_loss_d{d}_k{cfg.members}"] = ens_curves[cfg.combine][d][-1]
            metrics[f"ensemble_prob_loss_d{d}_k{cfg.members}"] = ens_curves["prob"][d][-1]
            metrics[f"e_ensemble_d{d}"] = ens_fits[d].E
        for n in cfg.data_sizes:
            metrics[f"standard_loss_data{n}"] = std_by_data[n]
        info["time_s"]["total"] = round(time.perf_counter() - t_start, 1)
        series["standard"] = [(n_params[d], std_best[d]) for d in cfg.sizes]
        series["regularized"] = [(n_params[d], reg[d]) for d in cfg.sizes]
        series["ensemble_asymptote"] = [(n_params[d], ens_fits[d].E) for d in cfg.sizes]
        series["ensemble_measured"] = [(n_params[d], ens_curves[cfg.combine][d][-1]) for d in cfg.sizes]
        series["standard_data_law"] = [(n, std_by_data[n]) for n in cfg.data_sizes]
        for e in cfg.standard_epochs:  # the epoch search's points at the main budget
            series[f"standard_epochs_{e}"] = [(n_params[d], std[(d, e)]) for d in cfg.sizes if (d, e) in std]
        for d in cfg.sizes:
            series[f"ensemble_k_d{d}"] = list(zip(ks.tolist(), ens_curves[cfg.combine][d], strict=True))
        info["regularized_hparams"] = {d: reg_best[d] for d in cfg.sizes}
        info["member_hparams"] = {d: {"rule": chosen[d], "epochs_wd": candidates(reg_best[d])[chosen[d]]}
                                  for d in cfg.sizes}
        info["distillation"] = {"size": ref, "teacher_members": len(teachers), "synthetic_tokens": cfg.distill_tokens,
                                "students": student, "single_model": single, "ensemble": ens_loss}
        return RunResult(metrics=metrics, series=series, info=info, inconclusive=inconclusive, units=units)

    # ------------------------------------------------------------------ figures
    def figures(self, results, cfg, out_dir):
        from runners.plotting import FigureWriter, pyplot

        plt = pyplot()
        out = FigureWriter(out_dir)
        import numpy as np

        r = results[0]
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
        ax.set_xscale("log")
        ax.set_xlabel("non-embedding parameters N")
        ax.set_ylabel("validation loss (nats/byte)")
        ax.set_title("Recipes under a fixed data budget (Kim et al. 2025, Figs. 2-6)")
        ax.legend(fontsize=8)
        out.save(fig, "fig-recipes-vs-size.png")

        fig, ax = plt.subplots(figsize=(6.5, 4))
        for i, d in enumerate(cfg.sizes):
            k, y = zip(*r.series[f"ensemble_k_d{d}"], strict=True)
            ax.plot(k, y, "o-", color=f"C{i}", label=f"d_model {d}")
            ax.axhline(r.metrics[f"e_ensemble_d{d}"], color=f"C{i}", ls=":", lw=1)
        ax.set_xticks(np.arange(1, cfg.members + 1))
        ax.set_xlabel("ensemble members K")
        ax.set_ylabel("validation loss (nats/byte)")
        ax.set_title(f"Ensemble scaling ({cfg.combine} averaging); dotted: fitted K->inf asymptote")
        ax.legend(fontsize=8)
        out.save(fig, "fig-ensemble-scaling.png")

        # data efficiency: the standard recipe's data law, and where each recipe's loss sits on it
        from paper_infcompute.fit import PowerLaw

        law = PowerLaw(**{k: r.info["fits"]["standard_data_law"][k] for k in ("A", "alpha", "E", "x0", "rmse")})
        x, y = zip(*r.series["standard_data_law"], strict=True)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        eff = r.info["data_efficiency"]
        top = max([max(x)] + [v["point"] * cfg.train_bytes for v in eff.values() if np.isfinite(v["point"] or np.inf)])
        grid = np.geomspace(min(x), top * 1.3, 200)
        ax.plot(grid, law(grid), "C3-", lw=1, label=f"standard data law: {law.A:.2f}/(D/{law.x0:.0f})^{law.alpha:.2f} + {law.E:.2f}")
        ax.plot(x, y, "C3o", label="standard recipe (best over sizes, epochs)")
        ax.axvline(cfg.train_bytes, color="grey", lw=0.8, ls=":")
        for i, (name, v) in enumerate(eff.items()):
            point = v["point"]
            label = f"{name}: {v['loss']:.3f}"
            if point is not None and np.isfinite(point):
                ax.plot([point * cfg.train_bytes], [v["loss"]], marker="*", ms=12, ls="", color=f"C{i}",
                        label=label + f" -> {point:.2f}x data (lowest refit {v['lowest']:.2f}x)")
            else:
                ax.axhline(v["loss"], color=f"C{i}", ls="--", lw=1, label=label + " (below the law's asymptote)")
        ax.set_xscale("log")
        ax.set_xlabel("training data D (bytes)")
        ax.set_ylabel("validation loss (nats/byte)")
        ax.set_title("Data efficiency against the standard recipe (Kim et al. 2025, Fig. 1 / Sec. 5)")
        ax.legend(fontsize=7)
        out.save(fig, "fig-data-efficiency.png")

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
        ax.set_xlabel("validation loss (nats/byte)")
        ax.set_title(f"Distillation at d_model {r.info['distillation']['size']}: retention "
                     f"{m['distill_retention']:.2f} (paper 0.83)")
        out.save(fig, "fig-distillation.png")
        return out.paths
