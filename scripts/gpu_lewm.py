"""The paper-scale planning-time benchmark of LeWorldModel on one GPU: seconds per CEM plan of LeWM
(ViT-tiny/14 at 224 px, one 192-d token per frame, 6-layer AdaLN-zero predictor) against a
DINO-WM-like patch-token model (a frozen ViT-S/14: 256 tokens of width 384 per frame, 6-layer
frame-causal predictor), with the same CEM (300 samples x 30 iterations, top 30, horizon 5 blocks),
in bf16 and in fp32, each after a short warm-up plan. Weights are random: planning time does not depend
on them. With --train, instead, one seed of the suite itself on the GPU at 64 px with a ViT-tiny encoder
(patch 8) and the paper's predictor, to see whether the CPU tiers' findings hold at the paper's width.
Harness-free; JSON to OUT/lewm_gpu.json after every measurement (the suite run: OUT/lewm_gpu_train.json).

    python scripts/gpu_lewm.py --out "$OUT"            # on the GPU: the planning-time benchmark
    python scripts/gpu_lewm.py --out "$OUT" --train    # on the GPU: the suite at 64 px
    python scripts/gpu_lewm.py --tiny --device cpu --out /tmp/x [--train]   # CPU stand-in (tests)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes and CEM: the code path, not the numbers")
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--elites", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    ap.add_argument("--train", action="store_true", help="instead: one seed of the suite at 64 px, ViT-tiny/8")
    ap.add_argument("--cache", default="", help="the suite run's data and model cache (default: the harness's)")
    args = ap.parse_args(argv)

    import torch

    from paper_lewm import plan
    from paper_lewm.model import LeWM, ModelConfig
    from paper_lewm.patch_wm import PatchConfig, build

    device = torch.device(args.device)
    if args.train:
        suite_run(args, device, Path(args.out))
        return 0
    if args.tiny:
        size, samples, iterations, elites = 28, 8, 2, 2
        lewm_cfg = ModelConfig(image_size=size, encoder="vit", vit_patch=14, vit_layers=1, vit_heads=2, dim=32,
                               projector_hidden=64, layers=1, heads=2, head_dim=16, mlp=64)
        dino_cfg = ModelConfig(image_size=size, encoder="vit", vit_patch=7, vit_layers=1, vit_heads=2, dim=48)
        patch_cfg = PatchConfig(dim=48, layers=1, heads=2, head_dim=16, mlp=64)
    else:
        size, samples, iterations, elites = 224, args.samples, args.iterations, args.elites
        lewm_cfg = ModelConfig(image_size=224, encoder="vit", vit_patch=14, vit_layers=12, vit_heads=3, dim=192,
                               projector_hidden=2048, layers=6, heads=16, head_dim=64, mlp=2048)
        dino_cfg = ModelConfig(image_size=224, encoder="vit", vit_patch=14, vit_layers=12, vit_heads=6, dim=384)
        patch_cfg = PatchConfig(dim=384, layers=6, heads=16, head_dim=64, mlp=2048)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
                    "torch": torch.__version__, "cem": {"samples": samples, "iterations": iterations, "elites": elites,
                                                        "horizon": 5}, "complete": False}

    def save() -> None:
        tmp = out_dir / "lewm_gpu.json.part"
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(out_dir / "lewm_gpu.json")

    torch.manual_seed(0)
    lewm = LeWM(lewm_cfg).to(device).eval()
    patch = build(LeWM(dino_cfg).encoder.to(device), patch_cfg, size).eval()
    result["parameters_millions"] = {"lewm": sum(p.numel() for p in lewm.parameters()) / 1e6,
                                     "patch_predictor": sum(p.numel() for p in patch.parameters() if p.requires_grad) / 1e6,
                                     "patch_encoder_frozen": sum(p.numel() for p in patch.frozen.parameters()) / 1e6}
    result["tokens_per_frame"] = {"lewm": 1, "patch": patch.tokens}
    ccfg = plan.CEMConfig(samples=samples, iterations=iterations, elites=elites, horizon=5)
    frames = torch.randint(0, 255, (2, 1, size, size, 3), dtype=torch.uint8, device=device)  # now, goal

    result["paper"] = {"lewm_seconds_per_plan": 0.98, "dino_wm_seconds_per_plan": 47, "ratio": 48}
    for dtype in args.dtypes:
        row = result.setdefault("planning", {}).setdefault(dtype, {})
        for name, model in (("lewm", lewm), ("patch", patch)):
            times = plan.seconds_per_plan(model, frames, ccfg, 10, dtype,
                                          repeats=args.repeats if name == "lewm" or args.tiny else 1)
            row.setdefault("seconds_per_plan", {})[name] = min(times)
            row.setdefault("all_times", {})[name] = times
            save()
            print(dtype, name, times, flush=True)
        row["planning_speedup"] = row["seconds_per_plan"]["patch"] / row["seconds_per_plan"]["lewm"]
        save()
    result["complete"] = True
    save()
    return 0


def suite_run(args, device, out_dir: Path) -> None:
    """One seed of the lewm suite on the GPU: 64 px, ViT-tiny (12 x 192, patch 8: 64 tokens per frame),
    the paper's predictor (6 x 16 x 64, MLP 2048), SIGReg M 1024, batch 128, the paper's Two-Room CEM
    (300 x 10, top 30, all 5 blocks executed); 1,500 steps per model, far fewer than the paper's ~10 epochs,
    and 300 for the patch baseline, which plans on 20 of the 50 episodes (its plans take ~25x longer)."""
    from dataclasses import asdict, replace

    from paper_lewm.config import CEMConfig, ModelConfig
    from suites.lewm import LeWMConfig, LeWMSuite

    cfg = LeWMConfig(device=device.type, threads=8, episodes=600, heldout_episodes=100, steps=1500, batch=128, lr=3e-4,
                     directions=1024, eval_episodes=50, patch_depth=12, patch_steps=300, patch_episodes=20,
                     surprise_samples=500, cache_dir=args.cache,
                     model=ModelConfig(image_size=64, encoder="vit", vit_patch=8, vit_layers=12, vit_heads=3,
                                       dim=192, projector_hidden=2048, layers=6, heads=16, head_dim=64, mlp=2048),
                     cem=CEMConfig(samples=300, iterations=10, elites=30, replan=5))
    if args.tiny:
        cfg = replace(cfg, threads=1, episodes=12, heldout_episodes=8, episode_steps=40, steps=3, batch=8,
                      directions=16, eval_episodes=4, patch_depth=1, patch_steps=2, patch_episodes=2,
                      surprise_samples=8, diag_windows=16,
                      model=ModelConfig(image_size=16, encoder="vit", vit_patch=8, vit_layers=1, vit_heads=2,
                                        dim=16, projector_hidden=32, layers=1, heads=2, head_dim=8, mlp=32),
                      cem=CEMConfig(samples=8, iterations=1, elites=2, replan=5))
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = LeWMSuite().run(cfg, 0, out_dir)
    record = {"config": asdict(cfg), "wall_s": time.perf_counter() - t0, "metrics": res.metrics,
              "train_seconds": res.info["train_seconds"], "inconclusive": res.inconclusive}
    (out_dir / "lewm_gpu_train.json").write_text(json.dumps(record, indent=1, default=float))
    keys = ("collapse_test", "sigreg_norm_pred_err", "none_norm_pred_err", "success_lewm", "success_none",
            "success_vicreg", "success_random", "success_oracle", "success_patch", "planning_speedup",
            "surprise_auroc_teleport", "surprise_auroc_colour")
    print(json.dumps({k: round(res.metrics[k], 3) for k in keys if k in res.metrics}), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
