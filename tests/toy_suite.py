"""A tiny test-only suite that drives every harness path without any ML framework.

It estimates the mean of a Gaussian from n samples: the estimate, its absolute error and a
running-mean curve are real measurements of a real (tiny) computation, so the claims below
are genuinely evaluated, and knobs let tests make it crash, stall or miss a requirement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from runners.api import Claim, Invariant, RunResult, Suite, SuiteConfig


@dataclass
class ToyConfig(SuiteConfig):
    n: int = 400
    mean: float = 1.0
    noise: float = 0.5
    crash_at_seed: int = -1
    sleep_s: float = 0.0
    bad_metric_name: bool = False
    unsure: bool = False  # the suite declares abs_error unable to decide its claim
    odd_info: str = ""  # "nan": non-finite and numpy values in info; "object": something JSON cannot hold
    nan_at_seed: int = -1  # this seed's est_mean is NaN
    drop_at_seed: int = -1  # this seed finishes without est_mean
    miss_at_seed: int = -1  # this seed's estimate misses (an exactness unit that fails)
    bias: float = 0.0  # added to every seed's estimate
    break_invariant: bool = False  # report a negative absolute error
    extra_gb: float = 0.0  # added to the preflight's memory estimate of the draw


class ToySuite(Suite):
    name = "toy"
    version = 1
    config = ToyConfig
    description = "Sample mean of a Gaussian (harness test suite)"
    tiers = {"smoke": ["n=100"], "small": [], "full": ["n=100000"]}
    default_seeds = {"smoke": 3, "small": 3, "full": 3}
    claims = (
        Claim("toy.mean", "est_mean", "approx", {"smoke": 1.0, "small": 1.0}, paper_value=1.0,
              source="by construction", abs_tol=0.3),
        Claim("toy.error", "abs_error", "le", {"smoke": 0.3, "small": 0.3}, paper_value=0.0, source="CLT"),
        Claim("toy.full_only", "est_mean", "ge", {"full": 0.9}, source="full tier only"),
        Claim("toy.every_seed_close", "within_tol", "ge", {"smoke": 1.0, "small": 1.0}, rule="exact",
              source="by construction at n >= 100", description="each seed's estimate within 0.3 of the mean"),
        Claim("toy.draws_above_mean", "above_mean", "ge", {"small": 0.2}, unit="draws", rule="rate",
              source="symmetry", description="of the first 20 draws of each seed, the share above the true mean"),
    )
    invariants = (Invariant("toy.error_nonnegative", "abs_error", "ge", 0.0, source="an absolute value"),)

    sweeps = {"two_means": ["mean=1.0,2.0"]}

    def aggregate(self, runs):
        from runners.claims import mean_ci

        values = [s["metrics"]["est_mean"] for _, s in runs]
        mean, lo, hi = mean_ci(values)
        return [{"metric": "est_mean", "mean": mean, "ci": [lo, hi], "n": len(values), "unit": "means",
                 "paper": None, "context": "true means " + ", ".join(str(c["mean"]) for c, _ in runs)}]

    def rehearsal(self, cfg):
        return [f"n={min(cfg.n, 1000)}"]

    def preflight(self, cfg):
        from runners import preflight

        return [preflight.memory("draw", cfg.device, 8 * cfg.n + cfg.extra_gb * preflight.GB)]

    def phase_steps(self, cfg):
        return {"draw": cfg.n}

    @staticmethod
    def _draw(cfg: ToyConfig, seed: int, out_dir: Path):
        """The seed's draws; each time they are drawn, a line in draws.log (a resumed seed does not redraw)."""
        import numpy as np

        with open(out_dir / "draws.log", "a") as fh:
            fh.write(f"{seed}\n")
        return np.random.default_rng(seed).normal(cfg.mean, cfg.noise, cfg.n)

    def run(self, cfg: ToyConfig, seed: int, out_dir: Path) -> RunResult:
        import numpy as np

        if seed == cfg.crash_at_seed:
            raise RuntimeError(f"planned crash at seed {seed}")
        from runners.progress import Laps

        laps = Laps()
        x = laps.run("draw", self._draw, cfg, seed, out_dir)
        laps.run("wait", time.sleep, cfg.sleep_s)
        running = np.cumsum(x) / np.arange(1, cfg.n + 1)
        steps = np.unique(np.linspace(1, cfg.n, 10).astype(int))
        (out_dir / "samples.npy").write_bytes(x.astype("<f8").tobytes())
        base = float(x.mean()) + cfg.bias + (1.0 if seed == cfg.miss_at_seed else 0.0)
        metrics = {"est_mean": float("nan") if seed == cfg.nan_at_seed else base,
                   "abs_error": abs(base - cfg.mean) * (-1 if cfg.break_invariant else 1),
                   "within_tol": float(abs(base - cfg.mean) <= 0.3), **({"Abs-Error": 0.0} if cfg.bad_metric_name else {})}
        if seed == cfg.drop_at_seed:
            del metrics["est_mean"]
        laps.done("summarise")
        return RunResult(
            metrics=metrics, units={"above_mean": [float(v > cfg.mean) for v in x[:20]]},
            series={"running_mean": [(int(s), float(running[s - 1])) for s in steps],
                    "running_mean_frac": [(s / cfg.n, float(running[s - 1])) for s in steps]},
            artifacts={"samples": str(out_dir / "samples.npy")},
            inconclusive={"abs_error": "declared unreliable by the test"} if cfg.unsure else {},
            info={"n": cfg.n, **({"spread": float("nan"), "count": np.int64(3), "pair": (1, 2)}
                                  if cfg.odd_info == "nan" else {"handle": object()} if cfg.odd_info == "object"
                                  else {})},
        )

    def figures(self, results, cfg, out_dir):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3))
        for i, r in enumerate(results):
            xs, ys = zip(*r.series["running_mean"], strict=True)
            ax.plot(xs, ys, label=f"seed {i}")
        ax.axhline(cfg.mean, color="k", ls="--")
        ax.set_xlabel("samples")
        ax.set_ylabel("running mean")
        ax.legend()
        path = out_dir / "fig-running-mean.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return [path]

    def notes(self, cfg, tier):
        return [f"n = {cfg.n} samples per seed"]


class NeedsMissingSuite(ToySuite):
    name = "toy_needs"
    requires = frozenset({"paperclub_no_such_module"})


class PeerClaimSuite(ToySuite):
    """One claim needs a package that is not installed (a peer baseline): that claim alone is skipped."""

    name = "toy_peer"
    claims = (*ToySuite.claims,
              Claim("toy.vs_peer", "est_mean", "ge", {"smoke": 0.0}, requires=frozenset({"paperclub_no_such_peer"})),
              Claim("toy.noisy_only", "est_mean", "ge", {"smoke": 0.0}, applies=(("noise", 2.0),)))
