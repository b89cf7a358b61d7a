"""The paper-scale planning-time benchmark of LeWorldModel on one GPU: seconds per CEM plan of LeWM
(ViT-tiny/14 at 224 px, one 192-d token per frame, 6-layer AdaLN-zero predictor) against a
DINO-WM-like patch-token model (a frozen ViT-S/14: 256 tokens of width 384 per frame, 6-layer
frame-causal predictor), with the same CEM (300 samples x 30 iterations, top 30, horizon 5 blocks),
bf16, after a warm-up plan. Weights are random: planning time does not depend on them. Harness-free;
JSON to OUT/lewm_gpu.json after every measurement.

    python scripts/gpu_lewm.py --out "$OUT"                       # on the GPU
    python scripts/gpu_lewm.py --tiny --device cpu --out /tmp/x   # CPU stand-in (tests)
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
    args = ap.parse_args(argv)

    import torch

    from paper_lewm import plan
    from paper_lewm.model import LeWM, ModelConfig
    from paper_lewm.patch_wm import PatchConfig, build

    device = torch.device(args.device)
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
    frames = torch.randint(0, 255, (2, 1, size, size, 3), dtype=torch.uint8, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=not args.tiny)

    def one_plan(model) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad(), autocast:
            z = model.encode(frames)  # the current frame and the goal frame
            cost = plan.latent_cost(model, z[:1], z[1:, 0])
            plan.cem(cost, 1, 10, ccfg, torch.Generator(device=device).manual_seed(0), device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for name, model in (("lewm", lewm), ("patch", patch)):
        result.setdefault("warmup_s", {})[name] = one_plan(model)
        save()
        times = [one_plan(model) for _ in range(args.repeats if name == "lewm" or args.tiny else 1)]
        result.setdefault("seconds_per_plan", {})[name] = min(times)
        result.setdefault("all_times", {})[name] = times
        save()
        print(name, times, flush=True)
    sp = result["seconds_per_plan"]
    result["planning_speedup"] = sp["patch"] / sp["lewm"]
    result["paper"] = {"lewm_seconds_per_plan": 0.98, "dino_wm_seconds_per_plan": 47, "ratio": 48}
    result["complete"] = True
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
