"""One short single-GPU run of D-MPC's models at the paper's size: the action proposal, the multi-step
dynamics, the objective J and single-step diffusion dynamics (rolled out: the compounding-error
comparison) with transformer denoisers (tokens of width 256, 5 layers, 8 heads, MLP
2048), F = 32, 1000 diffusion steps, on one dataset given by path (a cached .npz of Gymnasium v5 local
data, a D4RL .hdf5 or a Minari folder), each for a time box. Saves each model's EMA checkpoint and
OUT/dmpc_gpu.json (steps, steps/s, losses, held-out F-step prediction error of each dynamics model and
their ratio) after every model, so a run
cut off by its time limit keeps what finished. Then, where gymnasium and mujoco import, D-MPC itself:
Sample-Score-Rank with these three models (N = 64, replanning every step, bf16) in the environment the
data came from, D4RL-normalised returns and seconds per control step. Harness-free: needs torch, numpy
(h5py for .hdf5; gymnasium and mujoco for the closed loop).

    python scripts/gpu_dmpc.py --data PATH --out "$OUT"               # on the GPU
    python scripts/gpu_dmpc.py --data PATH --out "$OUT" --models dynamics dynamics_1step --episodes 0
    python scripts/gpu_dmpc.py --tiny --device cpu --out /tmp/x        # CPU stand-in (tests)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default="", help="a dataset by path (default with --tiny: a synthetic one)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seconds", type=float, default=150, help="training time box per model")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--env", default="hopper", help="the environment of the closed-loop evaluation")
    ap.add_argument("--episodes", type=int, default=5, help="closed-loop episodes (0: none)")
    ap.add_argument("--samples", type=int, default=64, help="N, candidate chunks per control step")
    ap.add_argument("--max-steps", type=int, default=1000)
    ap.add_argument("--eval-seconds", type=float, default=150,
                    help="time for the closed loop: episodes are cut at fewer steps where a plan costs too much")
    ap.add_argument("--models", nargs="+", default=["proposal", "dynamics", "objective", "dynamics_1step"],
                    help="which models to train, in order (the closed loop needs the first three)")
    ap.add_argument("--seed", type=int, default=0,
                    help="initialisation, batches, samples and the held-out episodes (every tenth, from seed %% 10)")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes and a synthetic dataset: the code path")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from paper_dmpc import baselines, data, models

    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        rng = np.random.default_rng(0)
        n = 600
        ds = {"observations": rng.normal(size=(n, 11)).astype(np.float32),
              "actions": rng.uniform(-1, 1, (n, 3)).astype(np.float32), "rewards": rng.normal(size=n).astype(np.float32),
              "terminals": np.zeros(n, bool), "timeouts": (np.arange(n) % 100 == 99)}
        ds["next_observations"] = np.roll(ds["observations"], -1, 0)
        mcfg = models.ModelConfig(horizon=4, denoiser="transformer", train_steps=20, proposal_steps=2, dynamics_steps=2)
        net_kw = {"width": 32, "layers": 1, "heads": 2, "mlp": 64}
    else:
        ds = data.load_path(args.data)
        mcfg = models.ModelConfig(horizon=32, denoiser="transformer", train_steps=1000, proposal_steps=32,
                                  dynamics_steps=10)
        net_kw = {}
    torch.manual_seed(args.seed)
    held = set(range(args.seed % 10, len(data.episodes(ds)), 10))  # every tenth episode held out
    train_set, held_set = data.split_episodes(ds, held)
    chunks = models.Chunks.build(train_set, mcfg.horizon, mcfg.gamma)
    held_chunks = models.Chunks.build(held_set, mcfg.horizon, mcfg.gamma)
    norm = models.Normalizer(chunks)
    s_dim, a_dim = chunks.states.shape[1], chunks.actions.shape[2]
    record: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
                    "torch": torch.__version__, "data": args.data or "synthetic", "chunks": len(chunks),
                    "seed": args.seed,
                    "model_config": asdict(mcfg), "models": {}, "complete": False}

    def save() -> None:
        tmp = out / "dmpc_gpu.json.part"
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(out / "dmpc_gpu.json")

    def build(cls, cfg):
        m = cls(cfg, s_dim, a_dim, norm)
        if net_kw and hasattr(m, "diffusion"):  # the tiny stand-in's transformer
            from paper_dmpc.diffusion import Diffusion, TransformerDenoiser

            dim, cond = (a_dim, s_dim) if cls is models.ActionProposal else (s_dim, s_dim + cfg.horizon * a_dim)
            m.diffusion = Diffusion(TransformerDenoiser(cfg.horizon, dim, cond, **net_kw), cfg.train_steps,
                                    m.diffusion.sample_steps, cfg.clip, cfg.prediction)
        return m.to(device)

    one = replace(mcfg, horizon=1)
    specs = {"proposal": (models.ActionProposal, mcfg, chunks), "dynamics": (models.Dynamics, mcfg, chunks),
             "objective": (models.Objective, mcfg, chunks),
             # single-step diffusion dynamics of the same size, rolled out: the compounding-error comparison
             "dynamics_1step": (models.Dynamics, one, baselines.chunks_for(chunks, 1))}
    unknown = set(args.models) - set(specs)
    if unknown:
        ap.error(f"unknown model(s) {sorted(unknown)}; choose from {sorted(specs)}")
    k = min(512, len(held_chunks))
    pick = np.random.default_rng(args.seed).choice(len(held_chunks), k, replace=False)
    s0, a0, fut0 = (torch.from_numpy(x[pick]).to(device)
                    for x in (held_chunks.states, held_chunks.actions, held_chunks.futures))
    trained = {}
    for name in args.models:
        cls, cfg, ch = specs[name]
        tensors = [torch.from_numpy(x).to(device) for x in (ch.states, ch.actions, ch.futures, ch.values)]
        model = build(cls, cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4, fused=True)
        ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
        gen = torch.Generator(device=device).manual_seed(args.seed)
        losses, step, t0 = [], 0, time.perf_counter()
        box = 2.0 if args.tiny else args.seconds
        while time.perf_counter() - t0 < box:
            idx = torch.randint(0, len(ch), (args.batch,), device=device, generator=gen)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = model.loss(*(x[idx] for x in tensors), gen=gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                for k, v in model.state_dict().items():
                    if v.dtype.is_floating_point:
                        ema[k].lerp_(v, 0.005)
            step += 1
            if step % 50 == 0 or args.tiny:
                losses.append((step, loss.item()))
        seconds = time.perf_counter() - t0
        model.load_state_dict(ema)
        trained[name] = model.eval()
        torch.save(model.state_dict(), out / f"dmpc_{name}.pt")
        row = {"steps": step, "seconds": round(seconds, 1), "steps_per_s": step / seconds, "batch": args.batch,
               "parameters_millions": sum(p.numel() for p in model.parameters()) / 1e6, "losses": losses[-20:]}
        if name.startswith("dynamics"):  # held-out F-step prediction error (rolled out), per-dimension std units
            dyn = model if name == "dynamics" else baselines.SingleStepDynamics(model)
            err = models.rollout_error(dyn, s0, a0, fut0, norm.s_std.to(device))
            row["pred_err_by_step"] = [round(float(e), 4) for e in err]
        record["models"][name] = row
        if {"dynamics", "dynamics_1step"} <= set(record["models"]):
            errs = [record["models"][m]["pred_err_by_step"][-1] for m in ("dynamics", "dynamics_1step")]
            record["pred_err_ratio_multi_over_single"] = errs[0] / errs[1]
        save()
        print(name, json.dumps({k: v for k, v in row.items() if k != "losses"}), flush=True)
    try:
        import gymnasium  # noqa: F401
        import mujoco  # noqa: F401
    except ImportError as e:
        record["closed_loop"] = f"not run: {e}"
        args.episodes = 0
    if args.episodes > 0 and not {"proposal", "dynamics", "objective"} <= set(trained):
        record["closed_loop"] = "not run: it needs the proposal, the dynamics and the objective"
    elif args.episodes > 0:
        from paper_dmpc import planner

        ssr = planner.SSR(trained["proposal"], trained["dynamics"], trained["objective"], args.samples)
        gen = torch.Generator(device=device).manual_seed(args.seed)

        def policy(s, _cpu_gen):  # the evaluation's states live on the CPU; the models on the device
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                return ssr(s.to(device), gen).float().cpu()

        probe = torch.from_numpy(np.repeat(chunks.states[:1], args.episodes, 0))
        policy(probe, None)  # warm-up
        t0 = time.perf_counter()
        for _ in range(3):
            policy(probe, None)
        per_plan = (time.perf_counter() - t0) / 3
        steps = 2 if args.tiny else max(1, min(args.max_steps, int(args.eval_seconds / per_plan)))
        t0 = time.perf_counter()
        res = planner.evaluate(policy, args.env, args.episodes, 50_000 + 100 * args.seed, 1, steps)
        record["closed_loop"] = {
            "env": args.env, "episodes": args.episodes, "samples": args.samples, "replan": 1,
            "precision": "bf16" if device.type == "cuda" else "fp32",
            "normalized": res["normalized"].round(2).tolist(), "normalized_mean": float(res["normalized"].mean()),
            "max_steps": steps, "cut_short": steps < args.max_steps,
            "lengths": res["lengths"].tolist(), "seconds_per_control_step": res["seconds_per_step"],
            "seconds": round(time.perf_counter() - t0, 1)}
        print("closed loop", json.dumps(record["closed_loop"]), flush=True)
    record["complete"] = True
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
