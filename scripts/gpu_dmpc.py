"""One short single-GPU run of D-MPC's models at the paper's size: the action proposal, the multi-step
dynamics and the objective J with transformer denoisers (tokens of width 256, 5 layers, 8 heads, MLP
2048), F = 32, 1000 diffusion steps, on one dataset given by path (a cached .npz of Gymnasium v5 local
data, a D4RL .hdf5 or a Minari folder), each for a time box. Saves each model's EMA checkpoint and
OUT/dmpc_gpu.json (steps, steps/s, losses, held-out F-step prediction error) after every model, so a run
cut off by its time limit keeps what finished. Harness-free: needs torch, numpy (h5py for .hdf5).

    python scripts/gpu_dmpc.py --data PATH --out "$OUT"               # on the GPU
    python scripts/gpu_dmpc.py --tiny --device cpu --out /tmp/x        # CPU stand-in (tests)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default="", help="a dataset by path (default with --tiny: a synthetic one)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seconds", type=float, default=150, help="training time box per model")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--tiny", action="store_true", help="tiny shapes and a synthetic dataset: the code path")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from paper_dmpc import data, models

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
    train_set, held_set = data.split_episodes(ds, set(range(0, len(data.episodes(ds)), 10)))  # every tenth held out
    chunks = models.Chunks.build(train_set, mcfg.horizon, mcfg.gamma)
    held_chunks = models.Chunks.build(held_set, mcfg.horizon, mcfg.gamma)
    norm = models.Normalizer(chunks)
    s_dim, a_dim = chunks.states.shape[1], chunks.actions.shape[2]
    record: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
                    "torch": torch.__version__, "data": args.data or "synthetic", "chunks": len(chunks),
                    "model_config": asdict(mcfg), "models": {}, "complete": False}

    def save() -> None:
        tmp = out / "dmpc_gpu.json.part"
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(out / "dmpc_gpu.json")

    def build(cls):
        m = cls(mcfg, s_dim, a_dim, norm)
        if net_kw and hasattr(m, "diffusion"):  # the tiny stand-in's transformer
            from paper_dmpc.diffusion import Diffusion, TransformerDenoiser

            dim, cond = (a_dim, s_dim) if cls is models.ActionProposal else (s_dim, s_dim + mcfg.horizon * a_dim)
            m.diffusion = Diffusion(TransformerDenoiser(mcfg.horizon, dim, cond, **net_kw), mcfg.train_steps,
                                    m.diffusion.sample_steps, mcfg.clip)
        return m.to(device)

    tensors = [torch.from_numpy(x).to(device) for x in (chunks.states, chunks.actions, chunks.futures, chunks.values)]
    for name, cls in (("proposal", models.ActionProposal), ("dynamics", models.Dynamics),
                      ("objective", models.Objective)):
        model = build(cls)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
        ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
        gen = torch.Generator(device=device).manual_seed(0)
        losses, step, t0 = [], 0, time.perf_counter()
        box = 2.0 if args.tiny else args.seconds
        while time.perf_counter() - t0 < box:
            idx = torch.randint(0, len(chunks), (args.batch,), device=device, generator=gen)
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
        torch.save(model.state_dict(), out / f"dmpc_{name}.pt")
        row = {"steps": step, "seconds": round(seconds, 1), "steps_per_s": step / seconds, "batch": args.batch,
               "parameters_millions": sum(p.numel() for p in model.parameters()) / 1e6, "losses": losses[-20:]}
        if name == "dynamics":  # held-out F-step prediction error, per-dimension std units
            k = min(512, len(held_chunks))
            s0, a, fut = (torch.from_numpy(x[:k]).to(device)
                          for x in (held_chunks.states, held_chunks.actions, held_chunks.futures))
            model.eval()
            pred = model.sample(s0, a)
            err = ((pred - fut) / norm.s_std.to(device)).pow(2).mean(-1).mean(0).sqrt()
            row["pred_err_by_step"] = [round(float(e), 4) for e in err]
        record["models"][name] = row
        save()
        print(name, json.dumps({k: v for k, v in row.items() if k != "losses"}), flush=True)
    record["complete"] = True
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
