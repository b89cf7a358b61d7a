"""Suite `infcompute`: Kim, Kotha, Liang, Hashimoto, "Pre-training under infinite compute"
(arXiv 2509.14786), scaled to byte-level models on Python's standard-library source.

Per seed, one complete sweep: the standard recipe (weight decay 0.1, epochs tuned), the
regularized recipe (epochs and weight decay tuned per size until certified locally optimal),
K-member ensembles at the paper's member hyper-parameters, and the power-law asymptotes
(regularized in N, ensemble in K, joint in N then K). Runs go through a pool of single-thread
workers and are cached by config hash, so an interrupted sweep resumes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from runners.api import Claim, RunResult, Suite, SuiteConfig
from runners.progress import track

PAPER = "Kim et al. 2025 (arXiv 2509.14786v1)"


@dataclass
class InfComputeConfig(SuiteConfig):
    corpus: str = "stdlib"  # "stdlib" or a directory of text files
    pattern: str = "*.py"
    train_bytes: int = 12_500
    val_bytes: int = 32_000
    seq_len: int = 64
    batch_size: int = 32
    n_layers: int = 2
    lr: float = 3e-3
    sizes: list[int] = field(default_factory=lambda: [24, 48, 64, 96])  # d_model
    standard_wd: float = 0.1
    standard_epochs: list[int] = field(default_factory=lambda: [16, 32, 64])
    epochs_grid: list[int] = field(default_factory=lambda: [8, 16, 32, 64, 128])
    wd_grid: list[float] = field(default_factory=lambda: [0.1, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8])
    search_start_epochs: int = 32
    search_start_wd: float = 3.2
    max_search_runs: int = 12
    members: int = 5
    combine: str = "logit"  # logit | prob (both are reported)
    workers: int = 2
    cache_dir: str = ""  # default: $PAPERCLUB_CACHE or ~/.cache/paperclub, then /infcompute


def _t(value: float, tiers=("small",)) -> dict[str, float]:
    return {t: value for t in tiers}


class InfComputeSuite(Suite):
    name = "infcompute"
    version = 1
    config = InfComputeConfig
    paper = PAPER
    description = "Standard vs regularized vs ensemble vs joint scaling asymptotes under a fixed data budget"
    tiers = {
        "smoke": ["train_bytes=6000", "val_bytes=8000", "sizes=[16,24,32]", "standard_epochs=[8,16]",
                  "epochs_grid=[8,16,32]", "wd_grid=[0.1,0.8,3.2]", "search_start_epochs=16",
                  "search_start_wd=0.8", "max_search_runs=4", "members=3"],
        "small": [],
    }
    default_seeds = {"smoke": 1, "small": 1}
    claims = (
        Claim("ensemble.never_worse_than_members", "ensemble_gain_min", "ge", _t(0.0, ("smoke", "small")),
              source="exact: convexity of log-sum-exp / Jensen",
              description="at every size, both combine rules: ensemble NLL <= mean member NLL"),
        Claim("fit.asymptote_in_range", "fits_in_range", "ge", _t(1.0, ("smoke", "small")),
              source="fitting constraint 0 <= E <= min observed loss"),
        Claim("standard.overfits", "standard_overfit_gap", "ge", _t(0.0), paper_value=0.0146,
              source=f"{PAPER}, Fig. 2 (1.4B 3.764 vs 600M 3.750)",
              description="standard recipe's tuned loss at the largest size minus the best smaller size"),
        Claim("regularized.monotone", "regularized_monotone", "ge", _t(1.0), paper_value=1.0,
              source=f"{PAPER}, Fig. 3", description="fraction of size steps where the tuned loss falls"),
        Claim("regularized.beats_standard", "reg_vs_standard_margin", "ge", _t(0.0),
              paper_value=3.7497 - 3.43, source=f"{PAPER}, Figs. 2-3 (3.75 -> 3.43)",
              description="best standard loss - E_regularized - fit spread of E_regularized"),
        Claim("ensemble.beats_regularized", "ens_vs_reg_margin", "ge", _t(0.0), paper_value=3.43 - 3.27,
              source=f"{PAPER}, Figs. 4-5 (300M members 3.27 vs 3.43)",
              description="E_regularized - E_ensemble(second size) - both fits' spreads"),
        Claim("joint.beats_ensemble", "joint_vs_ens_margin", "ge", _t(0.0), paper_value=3.27 - 3.17,
              source=f"{PAPER}, Fig. 6 (3.17)", description="E_ensemble(second size) - E_joint - spreads"),
    )

    def notes(self, cfg, tier):
        return [
            f"Byte-level Llama-style decoders, {cfg.n_layers} layers, d_model {cfg.sizes}, trained on "
            f"{cfg.train_bytes} bytes of {cfg.corpus} source (the paper: 150M-1.4B parameters on 200M DCLM tokens).",
            f"Learning rate fixed at {cfg.lr} (the paper also tunes it); epochs grid {cfg.epochs_grid}, "
            f"weight decay grid {cfg.wd_grid}; ensembles of {cfg.members} members, hyper-parameters per size "
            "from a two-point box (the single-model optimum, and the paper's 2x epochs / half weight decay), "
            f"picked by the {cfg.members}-member loss (the paper picks by fitted asymptote over a larger box).",
            "One sweep per seed; claims on gaps subtract the fits' leave-one-out spread, and a gap the fits "
            "cannot resolve (spread >= gap) is reported inconclusive, never passed.",
            "Not yet in this suite: distillation (ensemble -> student, self-distillation) and the data-scaling "
            "law / data-efficiency projection; full-tier (GPU cluster) configs.",
        ]

    # ------------------------------------------------------------------ run
    def run(self, cfg: InfComputeConfig, seed: int, out_dir: Path) -> RunResult:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        import numpy as np
        import torch

        from paper_infcompute import corpus as corpus_mod
        from paper_infcompute import ensemble, fit
        from paper_infcompute import train as tr
        from paper_infcompute.model import ModelConfig
        from paper_infcompute.search import local_optimum

        torch.set_num_threads(cfg.threads)
        spec = corpus_mod.CorpusSpec(source=cfg.corpus, pattern=cfg.pattern, train_bytes=cfg.train_bytes,
                                     val_bytes=cfg.val_bytes)
        corpus = corpus_mod.load(spec)
        cache = Path(cfg.cache_dir or os.environ.get("PAPERCLUB_CACHE", Path.home() / ".cache" / "paperclub"))
        cache = cache / "infcompute"
        val = tr.windows(corpus.val, cfg.seq_len)

        def run_cfg(d, epochs, wd, member=0):
            model = ModelConfig(vocab_size=corpus.vocab_size, d_model=d, n_layers=cfg.n_layers,
                                n_heads=max(2, d // 16), seq_len=cfg.seq_len)
            return tr.RunConfig(model=model, corpus=spec, epochs=epochs, lr=cfg.lr, weight_decay=wd,
                                batch_size=cfg.batch_size, seed=1000 * seed + member)

        metrics: dict[str, float] = {}
        series: dict[str, list] = {}
        info: dict = {"corpus_sha256": corpus.sha256, "train_files": corpus.train_files,
                      "val_files": corpus.val_files, "time_s": {}}
        n_params = {d: tr.Decoder(run_cfg(d, 1, 0.1).model).n_params() for d in cfg.sizes}
        info["n_params"] = n_params
        t_start = time.perf_counter()
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(cfg.workers, mp_context=ctx, initializer=tr.pool_init) as pool:
            def losses(cfgs, what="training runs"):
                futures = [pool.submit(tr.train_job, (c, spec, str(cache))) for c in cfgs]
                for _ in track(as_completed(futures), what, total=len(futures)):
                    pass
                return [f.result()["val_loss"] for f in futures]

            # standard recipe: weight decay 0.1, epochs tuned per size
            t0 = time.perf_counter()
            grid = [(d, e) for d in cfg.sizes for e in cfg.standard_epochs]
            std = dict(zip(grid, losses([run_cfg(d, e, cfg.standard_wd) for d, e in grid], "standard recipe"),
                           strict=True))
            std_best = {d: min(std[(d, e)] for e in cfg.standard_epochs) for d in cfg.sizes}
            info["time_s"]["standard"] = round(time.perf_counter() - t0, 1)

            # regularized recipe: (epochs, wd) certified locally optimal per size
            t0 = time.perf_counter()
            reg, reg_best, certified = {}, {}, 0
            for d in track(cfg.sizes, "regularized search"):
                res = local_optimum(
                    lambda points, d=d: losses([run_cfg(d, p["epochs"], p["wd"]) for p in points]),
                    {"epochs": cfg.epochs_grid, "wd": cfg.wd_grid},
                    {"epochs": cfg.search_start_epochs, "wd": cfg.search_start_wd}, max_runs=cfg.max_search_runs)
                reg[d], reg_best[d] = res.loss, res.best
                certified += res.certified
                info.setdefault("regularized_search", {})[d] = {
                    "best": res.best, "loss": res.loss, "certified": res.certified, "runs": res.runs}
            info["time_s"]["regularized"] = round(time.perf_counter() - t0, 1)

            # ensembles: K members differing in init seed and data order. Member hyper-parameters are
            # chosen per size from a small box, as in the paper: the single-model optimum and the paper's
            # shift (2x epochs, half the weight decay); the one whose K-member ensemble is best wins.
            t0 = time.perf_counter()

            def candidates(best):
                shifted = (min(2 * best["epochs"], max(cfg.epochs_grid)),
                           min(cfg.wd_grid, key=lambda w: abs(w - best["wd"] / 2)))
                return {"optimum": (best["epochs"], best["wd"]), "shifted": shifted}

            member_cfgs = {(d, name): [run_cfg(d, *hp, member=k) for k in range(cfg.members)]
                           for d in cfg.sizes for name, hp in candidates(reg_best[d]).items()}
            losses([c for cfgs in member_cfgs.values() for c in cfgs], "ensemble members")
            info["time_s"]["ensemble_training"] = round(time.perf_counter() - t0, 1)

        t0 = time.perf_counter()
        ens_curves = {m: {} for m in ("logit", "prob")}
        gains, chosen = [], {}
        for d in track(cfg.sizes, "ensemble evaluation"):
            best = None
            for name in candidates(reg_best[d]):
                lps = [tr.token_logprobs(tr.load_model(c, corpus, cache), val) for c in member_cfgs[(d, name)]]
                nlls = [tr.nll(lp, val) for lp in lps]
                curves = {m: [tr.nll(ensemble.combine(lps[:k], m), val) for k in range(1, cfg.members + 1)]
                          for m in ens_curves}
                gains += [float(np.mean(nlls)) - c[-1] for c in curves.values()]
                info.setdefault("member_candidates", {})[f"d{d}_{name}"] = {
                    "hparams": candidates(reg_best[d])[name], "member_mean": float(np.mean(nlls)), **curves}
                if best is None or curves[cfg.combine][-1] < best[1][cfg.combine][-1]:
                    best = (name, curves, nlls)
            chosen[d] = best[0]
            for m in ens_curves:
                ens_curves[m][d] = best[1][m]
            metrics[f"member_loss_d{d}"] = float(np.mean(best[2]))
        info["time_s"]["ensemble_eval"] = round(time.perf_counter() - t0, 1)

        # fits
        ks = np.arange(1, cfg.members + 1)
        ens_fits = {d: fit.fit_power_law(ks, ens_curves[cfg.combine][d]) for d in cfg.sizes}
        xs = np.array([n_params[d] for d in cfg.sizes], dtype=float)
        reg_fit = fit.fit_power_law(xs, [reg[d] for d in cfg.sizes])
        joint_fit = fit.fit_power_law(xs, [ens_fits[d].E for d in cfg.sizes])
        info["fits"] = {"regularized": reg_fit.as_dict(), "joint": joint_fit.as_dict(),
                        **{f"ensemble_d{d}": f.as_dict() for d, f in ens_fits.items()}}

        inconclusive: dict[str, str] = {}

        def margin(metric, gap, *fits_used):
            """gap minus the fits' leave-one-out spreads; a gap the fits cannot resolve decides nothing."""
            spreads = {name: f.E_spread for name, f in fits_used}
            metrics[metric] = gap - sum(spreads.values())
            shaky = {n: s for n, s in spreads.items() if not np.isfinite(s) or s >= abs(gap)}
            if shaky:
                inconclusive[metric] = "; ".join(
                    f"{n} moves by {s:.3g} under leave-one-out refits, not less than the gap {abs(gap):.3g}"
                    for n, s in shaky.items())

        ref = cfg.sizes[1] if len(cfg.sizes) > 1 else cfg.sizes[0]  # the paper's 300M: second size
        smaller = cfg.sizes[:-1]
        metrics.update({
            "ensemble_gain_min": min(gains),
            "fits_in_range": float(all(0 <= f.E <= min(y) + 1e-9 for f, y in
                                       [(reg_fit, [reg[d] for d in cfg.sizes]),
                                        (joint_fit, [ens_fits[d].E for d in cfg.sizes])]
                                       + [(ens_fits[d], ens_curves[cfg.combine][d]) for d in cfg.sizes])),
            "standard_best": min(std_best.values()),
            "standard_overfit_gap": std_best[cfg.sizes[-1]] - min(std_best[d] for d in smaller),
            "regularized_monotone": float(np.mean([reg[b] < reg[a] for a, b in zip(cfg.sizes, cfg.sizes[1:], strict=False)])),
            "e_regularized": reg_fit.E, "e_regularized_spread": reg_fit.E_spread,
            "alpha_regularized": reg_fit.alpha,
            "e_ensemble": ens_fits[ref].E, "e_ensemble_spread": ens_fits[ref].E_spread,
            "e_joint": joint_fit.E, "e_joint_spread": joint_fit.E_spread,
            "searches_certified": float(certified),
            "best_ensemble_loss": min(ens_curves[cfg.combine][d][-1] for d in cfg.sizes),
        })
        margin("reg_vs_standard_margin", metrics["standard_best"] - reg_fit.E, ("E_regularized", reg_fit))
        margin("ens_vs_reg_margin", reg_fit.E - ens_fits[ref].E, ("E_regularized", reg_fit),
               (f"E_ensemble(d{ref})", ens_fits[ref]))
        margin("joint_vs_ens_margin", ens_fits[ref].E - joint_fit.E, (f"E_ensemble(d{ref})", ens_fits[ref]),
               ("E_joint", joint_fit))
        for d in cfg.sizes:
            metrics[f"standard_loss_d{d}"] = std_best[d]
            metrics[f"regularized_loss_d{d}"] = reg[d]
            metrics[f"ensemble_loss_d{d}_k{cfg.members}"] = ens_curves[cfg.combine][d][-1]
            metrics[f"ensemble_prob_loss_d{d}_k{cfg.members}"] = ens_curves["prob"][d][-1]
            metrics[f"e_ensemble_d{d}"] = ens_fits[d].E
        info["time_s"]["total"] = round(time.perf_counter() - t_start, 1)
        series["standard"] = [(n_params[d], std_best[d]) for d in cfg.sizes]
        series["regularized"] = [(n_params[d], reg[d]) for d in cfg.sizes]
        series["ensemble_asymptote"] = [(n_params[d], ens_fits[d].E) for d in cfg.sizes]
        series["ensemble_measured"] = [(n_params[d], ens_curves[cfg.combine][d][-1]) for d in cfg.sizes]
        for e in cfg.standard_epochs:
            series[f"standard_epochs_{e}"] = [(n_params[d], std[(d, e)]) for d in cfg.sizes]
        for d in cfg.sizes:
            series[f"ensemble_k_d{d}"] = list(zip(ks.tolist(), ens_curves[cfg.combine][d], strict=True))
        info["regularized_hparams"] = {d: reg_best[d] for d in cfg.sizes}
        info["member_hparams"] = {d: {"rule": chosen[d], "epochs_wd": candidates(reg_best[d])[chosen[d]]}
                                  for d in cfg.sizes}
        return RunResult(metrics=metrics, series=series, info=info, inconclusive=inconclusive)

    # ------------------------------------------------------------------ figures
    def figures(self, results, cfg, out_dir):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        r = results[0]
        paths = []
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ys = []
        for key, style, label in (("standard", "C3o-", "standard (wd 0.1, epochs tuned)"),
                                  ("regularized", "C0s-", "regularized (epochs, wd tuned)"),
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
        fig.tight_layout()
        paths.append(out_dir / "fig-recipes-vs-size.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)

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
        fig.tight_layout()
        paths.append(out_dir / "fig-ensemble-scaling.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
        return paths
